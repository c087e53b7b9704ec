//! Fault injection: failing, dropping or delaying requests, and closing open watches.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::Store;

/// What a matching request suffers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer with this HTTP status and a Kubernetes `Status` body (`500` → `InternalError`).
    #[serde(rename_all = "camelCase")]
    Status {
        /// The HTTP status code.
        code: u16,
    },
    /// Answer `429 TooManyRequests` with a `Retry-After` header.
    #[serde(rename_all = "camelCase")]
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_seconds: u64,
    },
    /// Close the connection without answering.
    Drop,
    /// Wait this long, then answer normally.
    #[serde(rename_all = "camelCase")]
    Delay {
        /// The delay in milliseconds.
        millis: u64,
    },
}

/// A fault rule: requests whose path starts with `path_prefix` (and whose method matches, if
/// given) suffer `action`, for the next `count` matching requests (`None`: until cleared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// URL path prefix, e.g. `/apis/ecs.image-import.dev/v1/namespaces/default/imageimports`.
    pub path_prefix: String,
    /// HTTP method (`GET`, `PATCH`, ...); any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose query contains `watch=true`/`watch=1` (true) or not (false).
    #[serde(default)]
    pub watch: Option<bool>,
    /// How many matching requests are affected; unlimited when absent.
    #[serde(default)]
    pub count: Option<usize>,
    /// What happens to them.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule affecting every request under `path_prefix` until cleared.
    pub fn new(path_prefix: impl Into<String>, action: FaultAction) -> Self {
        Self {
            path_prefix: path_prefix.into(),
            method: None,
            watch: None,
            count: None,
            action,
        }
    }

    /// Limits the rule to the next `count` matching requests.
    #[must_use]
    pub fn times(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    /// Limits the rule to one HTTP method.
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Limits the rule to watch requests (`true`) or to everything else (`false`).
    #[must_use]
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = Some(watch);
        self
    }

    fn matches(&self, method: &str, path: &str, is_watch: bool) -> bool {
        path.starts_with(&self.path_prefix)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.watch.is_none_or(|w| w == is_watch)
            && self.count != Some(0)
    }
}

/// What the server must do with one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub delay: Duration,
    pub failure: Option<FaultAction>,
}

/// The fault hooks of a running server.
#[derive(Debug, Clone)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
    store: Arc<Store>,
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Self {
            rules: Arc::new(Mutex::new(Vec::new())),
            store,
        }
    }

    /// Adds a rule; rules are checked in the order they were added.
    pub fn add(&self, rule: FaultRule) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rule);
    }

    /// Makes the next `count` requests under `path_prefix` fail with `500 InternalError`.
    pub fn fail_next(&self, count: usize, path_prefix: &str) {
        self.add(FaultRule::new(path_prefix, FaultAction::Status { code: 500 }).times(count));
    }

    /// Makes the next `count` requests under `path_prefix` fail with `429` and `Retry-After`.
    pub fn throttle_next(&self, count: usize, path_prefix: &str, retry_after_seconds: u64) {
        self.add(
            FaultRule::new(
                path_prefix,
                FaultAction::TooManyRequests {
                    retry_after_seconds,
                },
            )
            .times(count),
        );
    }

    /// Drops the connection of the next `count` requests under `path_prefix`.
    pub fn drop_next(&self, count: usize, path_prefix: &str) {
        self.add(FaultRule::new(path_prefix, FaultAction::Drop).times(count));
    }

    /// Delays every request under `path_prefix` until cleared.
    pub fn delay(&self, path_prefix: &str, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.add(FaultRule::new(path_prefix, FaultAction::Delay { millis }));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The rules still in force (with their remaining counts).
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ends every open watch stream, as an API server restart or a load balancer would.
    pub fn close_watches(&self) {
        self.store.lock().close_watches();
    }

    /// Consumes the matching rules for one request.
    pub(crate) fn verdict(&self, method: &str, path: &str, is_watch: bool) -> Verdict {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let mut verdict = Verdict::default();
        for rule in rules.iter_mut() {
            if !rule.matches(method, path, is_watch) {
                continue;
            }
            match &rule.action {
                FaultAction::Delay { millis } => {
                    verdict.delay += Duration::from_millis(*millis);
                }
                action if verdict.failure.is_none() => verdict.failure = Some(action.clone()),
                _ => continue,
            }
            if let Some(count) = rule.count.as_mut() {
                *count = count.saturating_sub(1);
            }
        }
        rules.retain(|r| r.count != Some(0));
        verdict
    }
}
