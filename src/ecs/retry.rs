//! Capped, jittered exponential backoff: how long to wait before trying again.

use std::time::Duration;

use rand::Rng;

/// A backoff policy: the wait doubles from `base` up to `cap`, with random jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry (before jitter).
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 200 ms doubling to 10 s: a throttled account recovers within seconds, and a longer wait inside
    /// one call would only hold up the caller, which has its own, slower requeue.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first), drawn uniformly from the upper half
    /// of the exponential step ("equal jitter"): never zero, so a storm of callers really spreads out.
    pub fn delay(&self, retry: u32) -> Duration {
        let step = self.ceiling(retry);
        let half = step / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    /// The largest wait `delay(retry)` can return.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_within_the_step_and_stop_at_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(2), Duration::from_millis(200));
        assert_eq!(backoff.ceiling(4), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(5), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(60), Duration::from_secs(1));
        for retry in 1..10 {
            for _ in 0..50 {
                let delay = backoff.delay(retry);
                assert!(
                    delay >= backoff.ceiling(retry) / 2 && delay <= backoff.ceiling(retry),
                    "{delay:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_callers_out() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        };
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| backoff.delay(3)).collect();
        assert!(delays.len() > 1, "twenty draws gave one value: {delays:?}");
    }
}
