//! The optional bandwidth cap shared by all transfers.

use std::time::{Duration, Instant};

/// A token bucket shared by all transfers: one second of burst.
pub struct Bandwidth {
    rate: u64,
    state: tokio::sync::Mutex<(Instant, f64)>,
}

impl Bandwidth {
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        Self {
            rate,
            state: tokio::sync::Mutex::new((Instant::now(), rate as f64)),
        }
    }

    /// Waits until `bytes` may pass. Waiters queue on the lock, so they pass in turn.
    pub async fn take(&self, bytes: usize) {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let rate = self.rate as f64;
        let tokens = (state.1 + now.duration_since(state.0).as_secs_f64() * rate).min(rate);
        let left = tokens - bytes as f64;
        *state = (now, left);
        if left < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-left / rate)).await;
        }
    }
}
