//! Client-side rate limits, one bucket per (endpoint, AccessKey): ECS throttles per account and API,
//! so staying under a budget we choose is cheaper than being throttled and backing off.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Rate limiters keyed by endpoint and AccessKey ID.
#[derive(Debug)]
pub struct RateLimits {
    per_second: Option<NonZeroU32>,
    buckets: Mutex<HashMap<(String, String), Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimits {
    /// `per_second` requests per second per (endpoint, AccessKey), with a burst of the same size;
    /// `None` means unlimited.
    pub fn new(per_second: Option<NonZeroU32>) -> Self {
        Self {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until one more request to `endpoint` with `access_key_id` fits the budget.
    pub async fn acquire(&self, endpoint: &str, access_key_id: &str) {
        let Some(per_second) = self.per_second else {
            return;
        };
        let bucket = {
            // A poisoned lock only means another task panicked mid-insert; the map is still usable.
            let mut buckets = self
                .buckets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                buckets
                    .entry((endpoint.to_string(), access_key_id.to_string()))
                    .or_insert_with(|| {
                        Arc::new(RateLimiter::direct(Quota::per_second(per_second)))
                    }),
            )
        };
        bucket.until_ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_full_bucket_makes_the_next_caller_wait_but_other_keys_do_not() {
        let limits = RateLimits::new(NonZeroU32::new(5));
        for _ in 0..5 {
            limits.acquire("e", "ak").await;
        }
        let other = Instant::now();
        limits.acquire("e", "other-ak").await;
        let other_wait = other.elapsed();
        let start = Instant::now();
        limits.acquire("e", "ak").await;
        let waited = start.elapsed();
        // One token returns every 200 ms at 5/s; the exact figure depends on the machine, the order does not.
        assert!(
            waited >= Duration::from_millis(100),
            "the sixth request did not wait: {waited:?}"
        );
        assert!(
            other_wait < waited,
            "another key waited {other_wait:?}, the full one {waited:?}"
        );
    }
}
