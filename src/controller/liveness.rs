//! Liveness: `/healthz` fails once the controller is wedged, so the kubelet restarts it.
//!
//! The controller records two heartbeats. The *loop* beats whenever its reconcile runner finishes
//! something: a reconcile, or an idle tick (a wake for an object that is never in the cache, sent
//! every [`Liveness::tick_interval`], which the runner answers at once unless every reconcile slot
//! is stuck). The *watch* beats on every event of the ImageImport watches and whenever a short
//! probe watch of ImageImports opens and ends cleanly (so an idle but healthy watch beats too, and
//! a watch the API server no longer answers does not). Either heartbeat older than the stall time
//! makes the process not live. A replica whose controller is not running (a standby without the
//! Lease, or one still waiting for its CRD) is live: restarting it would not help.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, WatchParams};
use kube::{Client, runtime::reflector::ObjectRef};

use crate::api::image_import::ImageImport;

/// Name of the idle tick's object: not a valid Kubernetes name, so no ImageImport ever has it.
pub const TICK_NAME: &str = "~liveness-tick~";

/// The heartbeats of one controller run, and the stall time; clones share them.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    stall: Duration,
    running: AtomicBool,
    /// Milliseconds since `origin` of the last beat.
    loop_beat: AtomicU64,
    watch_beat: AtomicU64,
}

impl Default for Liveness {
    /// Thirty minutes: three times the default resync interval.
    fn default() -> Self {
        Self::new(Duration::from_secs(1800))
    }
}

/// What [`Liveness::verdict`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The controller does not run here (standby, or waiting for the CRD): live.
    Idle,
    /// Both heartbeats are recent.
    Live,
    /// The reconcile loop has not finished anything for this long.
    LoopStalled(Duration),
    /// No watch event and no healthy probe watch for this long.
    WatchStalled(Duration),
}

impl Verdict {
    /// Whether `/healthz` answers 200.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Idle | Self::Live)
    }
}

/// The pure decision: `since_loop` and `since_watch` are the ages of the two heartbeats.
pub fn judge(
    running: bool,
    since_loop: Duration,
    since_watch: Duration,
    stall: Duration,
) -> Verdict {
    if !running {
        Verdict::Idle
    } else if since_loop > stall {
        Verdict::LoopStalled(since_loop)
    } else if since_watch > stall {
        Verdict::WatchStalled(since_watch)
    } else {
        Verdict::Live
    }
}

impl Liveness {
    /// Heartbeats that count as stalled after `stall` (at least 1 s).
    pub fn new(stall: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                stall: stall.max(Duration::from_secs(1)),
                running: AtomicBool::new(false),
                loop_beat: AtomicU64::new(0),
                watch_beat: AtomicU64::new(0),
            }),
        }
    }

    /// The stall time.
    pub fn stall(&self) -> Duration {
        self.inner.stall
    }

    /// How often the idle tick and the probe watch run: four per stall time, so one late tick
    /// does not count as a stall, and at most every 5 minutes.
    pub fn tick_interval(&self) -> Duration {
        (self.inner.stall / 4).clamp(Duration::from_millis(100), Duration::from_secs(300))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The controller starts: both heartbeats count from now.
    pub fn started(&self) {
        let now = self.now();
        self.inner.loop_beat.store(now, Ordering::SeqCst);
        self.inner.watch_beat.store(now, Ordering::SeqCst);
        self.inner.running.store(true, Ordering::SeqCst);
    }

    /// The controller stopped (lost the Lease, shut down): nothing to judge.
    pub fn stopped(&self) {
        self.inner.running.store(false, Ordering::SeqCst);
    }

    /// The reconcile runner finished something.
    pub fn loop_beat(&self) {
        self.inner.loop_beat.store(self.now(), Ordering::SeqCst);
    }

    /// A watch event arrived, or a probe watch ended cleanly.
    pub fn watch_beat(&self) {
        self.inner.watch_beat.store(self.now(), Ordering::SeqCst);
    }

    /// The verdict now.
    pub fn verdict(&self) -> Verdict {
        let now = self.now();
        let age = |beat: &AtomicU64| {
            Duration::from_millis(now.saturating_sub(beat.load(Ordering::SeqCst)))
        };
        judge(
            self.inner.running.load(Ordering::SeqCst),
            age(&self.inner.loop_beat),
            age(&self.inner.watch_beat),
            self.inner.stall,
        )
    }

    /// The idle tick's object in a scope (a namespace, or all of them).
    pub fn tick_ref(scope: Option<&str>) -> ObjectRef<ImageImport> {
        let reference = ObjectRef::new(TICK_NAME);
        match scope {
            Some(namespace) => reference.within(namespace),
            None => reference,
        }
    }

    /// Runs forever: every tick, a one-second watch of ImageImports in each scope; one that opens
    /// and ends without an error is a watch heartbeat.
    pub async fn probe_watches(self, client: Client, scopes: Vec<Option<String>>) {
        let mut ticker = tokio::time::interval(self.tick_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let mut healthy = true;
            for scope in &scopes {
                let api: Api<ImageImport> = match scope {
                    Some(namespace) => Api::namespaced(client.clone(), namespace),
                    None => Api::all(client.clone()),
                };
                healthy &= probe_watch(&api).await;
            }
            if healthy {
                self.watch_beat();
            }
        }
    }
}

async fn probe_watch(api: &Api<ImageImport>) -> bool {
    let params = WatchParams::default().timeout(1);
    let Ok(stream) = api.watch(&params, "0").await else {
        return false;
    };
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if event.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_controller_that_does_not_run_is_live() {
        assert_eq!(judge(false, S * 100, S * 100, S * 10), Verdict::Idle);
        assert!(Verdict::Idle.is_live());
    }

    #[test]
    fn recent_heartbeats_are_live_and_an_old_one_is_a_stall() {
        assert_eq!(judge(true, S, S * 10, S * 10), Verdict::Live);
        assert_eq!(judge(true, S * 11, S, S * 10), Verdict::LoopStalled(S * 11));
        assert_eq!(
            judge(true, S, S * 11, S * 10),
            Verdict::WatchStalled(S * 11)
        );
        assert!(!Verdict::WatchStalled(S).is_live());
    }

    #[test]
    fn starting_resets_the_heartbeats_and_stopping_makes_it_idle() {
        let liveness = Liveness::new(Duration::from_secs(60));
        assert_eq!(liveness.verdict(), Verdict::Idle);
        liveness.started();
        assert_eq!(liveness.verdict(), Verdict::Live);
        liveness.stopped();
        assert_eq!(liveness.verdict(), Verdict::Idle);
    }

    #[test]
    fn ticks_come_four_times_per_stall_within_bounds() {
        assert_eq!(Liveness::new(S * 8).tick_interval(), S * 2);
        assert_eq!(Liveness::new(S * 3600).tick_interval(), S * 300);
        assert_eq!(Liveness::new(Duration::ZERO).stall(), S);
    }

    #[test]
    fn the_tick_names_no_possible_object() {
        assert!(TICK_NAME.starts_with('~'));
        assert_eq!(
            Liveness::tick_ref(Some("a")).namespace.as_deref(),
            Some("a")
        );
    }
}
