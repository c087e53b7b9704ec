//! A hook through which the ECS client reports each attempt of each call, so metrics can count
//! and time ECS calls while this layer stays free of any metrics library.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::EcsError;
use super::redact;

/// Receives one report per attempt the ECS client makes (retries are separate attempts).
pub trait CallObserver: Send + Sync {
    /// One attempt of `action` ended with `outcome` (`"ok"` or [`EcsError::code`]) after `elapsed`.
    fn observe(&self, action: &'static str, outcome: &str, elapsed: Duration);
}

/// The outcome label of an attempt: `"ok"`, or the ECS error code or the stable name of a failure
/// that never reached ECS (`NetworkError`, `Timeout`, ...). Never carries variable text: a code
/// that is not short and plain (an `ApiError` built by hand, not parsed) becomes
/// [`redact::UNUSABLE_CODE`].
pub fn outcome<T>(result: &Result<T, EcsError>) -> &str {
    match result {
        Ok(_) => "ok",
        Err(error) if redact::is_usable_code(error.code()) => error.code(),
        Err(_) => redact::UNUSABLE_CODE,
    }
}

/// An optional [`CallObserver`] that a derived `Debug`, `Clone` and `PartialEq` configuration can
/// hold; two handles are equal when they share one observer (or both have none).
#[derive(Clone, Default)]
pub struct Observer(Option<Arc<dyn CallObserver>>);

impl Observer {
    /// A handle that reports to `observer`.
    pub fn new(observer: Arc<dyn CallObserver>) -> Self {
        Self(Some(observer))
    }

    /// A handle that reports nowhere.
    pub fn none() -> Self {
        Self(None)
    }

    /// Reports one attempt of `action` that ended with `result` after `elapsed`.
    pub fn observe<T>(
        &self,
        action: &'static str,
        result: &Result<T, EcsError>,
        elapsed: Duration,
    ) {
        if let Some(observer) = &self.0 {
            observer.observe(action, outcome(result), elapsed);
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(Some)"
        } else {
            "Observer(None)"
        })
    }
}

impl PartialEq for Observer {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for Observer {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::ApiError;

    #[test]
    fn a_code_unfit_for_a_label_becomes_the_unusable_code() {
        let error = |code: &str| -> Result<(), EcsError> {
            Err(EcsError::Api(Box::new(ApiError {
                action: "DescribeTasks",
                http_status: 400,
                code: code.into(),
                message: String::new(),
                request_id: None,
                host_id: None,
                recommend: None,
                retry_after: None,
            })))
        };
        assert_eq!(outcome(&error("Throttling.User")), "Throttling.User");
        assert_eq!(outcome(&error("a \"label\"\n")), redact::UNUSABLE_CODE);
        assert_eq!(outcome(&error(&"A".repeat(65))), redact::UNUSABLE_CODE);
    }
}
