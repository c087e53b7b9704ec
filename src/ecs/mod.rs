//! The Alibaba Cloud ECS side: the RPC wire codec and signatures, credentials, typed requests and
//! responses, errors with their classification, and the HTTP client with retries and rate limits.
//!
//! Nothing here knows about Kubernetes.

pub mod api;
pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod observe;
pub mod params;
pub mod ratelimit;
pub mod redact;
pub mod retry;
pub mod sign;
pub mod sts;
pub mod verbs;

pub use client::{CancelOutcome, ClientConfig, DeleteOutcome, EcsClient};
pub use credentials::{CredentialProvider, CredentialSource, Credentials, CredentialsError};
pub use error::{ApiError, EcsError, ErrorClass};

/// Installs rustls' ring crypto provider as the process default, once.
///
/// reqwest is built without a provider of its own (kube already brings ring), so one must be
/// installed before the first client is built; a second call is a harmless no-op.
pub fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
