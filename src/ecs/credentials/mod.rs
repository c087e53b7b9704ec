//! Credentials for signing ECS requests (api-reference §8).
//!
//! Sources, in the order the operator tries them for a resource: the resource's Secret
//! ([`Credentials::from_secret_data`]); then the operator's own environment
//! ([`CredentialSource::from_environment`]): an AccessKey in environment variables, OIDC/RRSA through
//! STS `AssumeRoleWithOIDC`, or the ECS instance RAM role from the metadata service.
//! Temporary credentials are cached by [`CredentialProvider`] and refreshed before they expire.
//!
//! Secrets are held in [`SecretString`](secrecy::SecretString): `Debug` prints `[REDACTED]`, and no
//! error or log line here carries a secret, a security token or an OIDC token.
//!
//! One file per concern, everything re-exported here so every `crate::ecs::credentials::X` path
//! stays: `secret.rs` (the [`Credentials`] type and the Secret's keys), `error.rs`
//! ([`CredentialsError`]), `source.rs` (the sources and the environment chain that picks one),
//! `provider.rs` (the caching [`CredentialProvider`]), one file per remote source (`oidc.rs`, STS
//! `AssumeRoleWithOIDC`; `metadata.rs`, the ECS instance RAM role), and `wire.rs` (reading what
//! those two answer).

mod error;
mod metadata;
mod oidc;
mod provider;
mod secret;
mod source;
mod wire;

pub use error::*;
pub use metadata::*;
pub use oidc::*;
pub use provider::*;
pub use secret::*;
pub use source::*;
pub use wire::*;
