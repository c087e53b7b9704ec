//! The Alibaba Cloud ECS side: the RPC wire codec and signatures, credentials, typed requests and
//! responses, errors with their classification, and the HTTP client with retries and rate limits.
//!
//! Nothing here knows about Kubernetes.

pub mod params;
pub mod sign;
