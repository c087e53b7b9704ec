//! ECS errors: one typed error for the ECS layer, the parsed API error body, and the classification
//! of every error code this operator can meet (api-reference §1.3, §2–§3, §7 and the original
//! `ImportImage` page), which decides between retrying, refreshing credentials and stalling.
//!
//! The parts: this file holds [`EcsError`] and [`ErrorClass`], what callers match on; `api_error`
//! holds [`ApiError`] and the parsing of ECS's error bodies and `x-acs-retry-after`; `codes` holds
//! the tables of known codes ([`KNOWN_CODES`], [`OPERATOR_CODES`]) and the lookups over them.

mod api_error;
mod codes;

use std::time::Duration;

use super::credentials::CredentialsError;

pub use api_error::{ApiError, parse_retry_after};
pub use codes::{
    IMPORT_ROLE_HINT, KNOWN_CODES, KnownCode, OPERATOR_CODES, classify, known_code,
    operator_code_class,
};

/// The error of the ECS layer.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// ECS answered with an error body.
    #[error(transparent)]
    Api(#[from] Box<ApiError>),
    /// The request never got an answer (connection refused or reset, DNS, TLS).
    #[error("failed to reach ECS for {action}: {source}")]
    Transport {
        /// The ECS action.
        action: &'static str,
        /// What went wrong underneath.
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the configured total timeout.
    #[error("ECS did not answer {action} within {timeout:?}")]
    Timeout {
        /// The ECS action.
        action: &'static str,
        /// The configured total timeout.
        timeout: Duration,
    },
    /// ECS answered, but not with anything we can read. `detail` is redacted and bounded where
    /// the client builds it ([`super::redact::shown_text`]).
    #[error("failed to read the ECS {action} response (HTTP {status}): {detail}")]
    Decode {
        /// The ECS action.
        action: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// What could not be read.
        detail: String,
    },
    /// The answer was larger than the client reads (a hostile or broken server, or a proxy's
    /// error page): refused unread past the limit, and retried, as a gateway hiccup would be.
    #[error("the ECS {action} answer is larger than {limit} bytes; not read")]
    ResponseTooLarge {
        /// The ECS action.
        action: &'static str,
        /// The configured limit ([`super::ClientConfig::max_response_bytes`]).
        limit: usize,
    },
    /// No usable credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The endpoint configuration is unusable (e.g. plain http to a non-loopback host).
    #[error("invalid ECS endpoint: {0}")]
    Endpoint(String),
    /// The request was refused before sending because ECS would refuse it too.
    #[error("invalid ECS request: {0}")]
    InvalidRequest(String),
}

impl EcsError {
    /// How a caller should react to this error: ECS's codes by [`KNOWN_CODES`], the operator's own
    /// by [`OPERATOR_CODES`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(error) => error.class(),
            // A refused OIDC token is fixed by the kubelet's next token or by RAM, never by the
            // resource: retry slowly unless STS says it is transient.
            Self::Credentials(CredentialsError::Sts(error)) if error.class().is_retryable() => {
                error.class()
            }
            Self::Credentials(CredentialsError::Sts(_)) => ErrorClass::External,
            _ => operator_code_class(self.code()),
        }
    }

    /// The ECS error code, or a stable name for errors that never reached ECS.
    ///
    /// Conditions, Events and metrics use it as a reason, so it must not carry variable text.
    pub fn code(&self) -> &str {
        match self {
            Self::Api(error) => &error.code,
            Self::Transport { .. } => "NetworkError",
            Self::Timeout { .. } => "Timeout",
            Self::Decode { .. } => "UnreadableResponse",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Credentials(error) => error.code(),
            Self::Endpoint(_) => "InvalidEndpoint",
            Self::InvalidRequest(_) => "InvalidRequest",
        }
    }

    /// Whether ECS does not know the task asked for (`InvalidTaskId.NotFound`): the task is
    /// missing, which is an observation, not a failure.
    pub fn is_unknown_task(&self) -> bool {
        self.code() == "InvalidTaskId.NotFound"
    }

    /// The parsed ECS error, when ECS answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) => Some(error),
            _ => None,
        }
    }
}

/// What waiting, refreshing or the user can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: throttling, 5xx, network, a resource busy for now. Retry with backoff.
    Retryable,
    /// Temporary credentials went stale or were rejected as such: refresh them, then retry.
    RefreshCredentials,
    /// The request itself is wrong (bad parameter, bad credentials): retrying the same request fails
    /// the same way until the user changes the spec or the Secret.
    InvalidRequest,
    /// Blocked by something outside Kubernetes (quota, RAM role, an OSS object not there yet, the
    /// account): the user fixes it elsewhere, so a slow retry will notice when they have.
    External,
}

impl ErrorClass {
    /// Whether the client may retry at once (with backoff) on its own.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable | Self::RefreshCredentials)
    }
}
