//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both call ECS.
//!
//! [`LeaderElector::run`] keeps trying to acquire the Lease and, once it holds it, to renew it;
//! it publishes whether this process is the leader on a [`watch`] channel. [`while_leader`] runs
//! the operator's work only while that channel says so.
//!
//! The rules, and why:
//! - A candidate takes the Lease when it is absent, has no holder (released), has expired
//!   (`renewTime + leaseDurationSeconds` is in the past), or is already held under our identity
//!   (a restarted pod with the same name). Every write is conditional: a create fails with
//!   `409 AlreadyExists` and a replace carries the `resourceVersion` that was read, so when two
//!   candidates race for an expired Lease the API server lets exactly one write through and the
//!   other gets `409 Conflict`, which simply means it lost.
//! - The holder counts itself leader only until `lease_duration - safety_margin` after the instant
//!   it stamped into `renewTime` on its last successful write, measured on its own monotonic clock.
//!   Others may take over only after `lease_duration`, so the holder has stepped down (and its work
//!   has had `safety_margin` to stop) before anyone else can become leader — even when the API
//!   server is unreachable or a renewal hangs. The margin also absorbs clock skew between nodes,
//!   since candidates judge expiry by comparing `renewTime` with their own wall clock.
//! - On shutdown the holder releases the Lease (no holder, a one-second duration), so a successor
//!   takes over at its next retry instead of waiting for the Lease to expire.
//!
//! The crates that exist for this were looked at first: `kube-leader-election` is built on kube 4,
//! and `kube-lease-manager` (kube 5) writes with patches that carry no `resourceVersion`, counts
//! durations in whole seconds and ends its task on an API error, where this operator needs
//! conditional writes, sub-second timings in tests and an election that outlives API outages.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timings cannot give a safe election.
    #[error("invalid leader election settings: {0}")]
    Config(&'static str),
    /// A Kubernetes API call on the Lease failed.
    #[error("lease API call failed: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// A Kubernetes API call on the Lease did not answer in time.
    #[error("lease API call timed out after {0:?}")]
    Timeout(Duration),
}

impl From<kube::Error> for LeaderError {
    fn from(error: kube::Error) -> Self {
        Self::Kube(Box::new(error))
    }
}

/// Which Lease to contend for, as whom, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease (usually the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity, unique among replicas (the pod name).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal; whole seconds, because that is what
    /// the Lease API stores.
    pub lease_duration: Duration,
    /// Time between renewals while leader.
    pub renew_interval: Duration,
    /// Time between attempts while not leader, and after a failed renewal.
    pub retry_interval: Duration,
    /// How much earlier than the Lease's expiry the holder gives up leadership when it could not
    /// renew: time for its work to stop, plus the clock skew tolerated between nodes.
    pub safety_margin: Duration,
}

impl LeaseConfig {
    /// The usual timings (a 15 s Lease renewed every 5 s, retried every 2 s, a 3 s margin).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_interval: Duration::from_secs(2),
            safety_margin: Duration::from_secs(3),
        }
    }

    /// Checks that the timings leave room for at least one retry before the holder must step down.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.identity.is_empty() {
            return Err(LeaderError::Config("the identity is empty"));
        }
        if self.lease_duration.is_zero() || self.lease_duration.subsec_nanos() != 0 {
            return Err(LeaderError::Config(
                "the lease duration must be a whole, positive number of seconds",
            ));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err() {
            return Err(LeaderError::Config("the lease duration is too long"));
        }
        if self.renew_interval.is_zero() || self.retry_interval.is_zero() {
            return Err(LeaderError::Config(
                "the renew and retry intervals must be positive",
            ));
        }
        // A renewal must be due, and one retry possible, before the holder's own deadline.
        let deadline = self.lease_duration.saturating_sub(self.safety_margin);
        if self.safety_margin.is_zero()
            || self.renew_interval.saturating_add(self.retry_interval) >= deadline
        {
            return Err(LeaderError::Config(
                "renew interval plus retry interval must be shorter than the lease duration minus the safety margin, and the margin positive",
            ));
        }
        Ok(())
    }

    /// `leaseDurationSeconds` as written to the Lease.
    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// How long after a successful write the holder still counts itself leader.
    fn valid_for(&self) -> Duration {
        self.lease_duration.saturating_sub(self.safety_margin)
    }
}

/// Contends for one Lease and publishes whether this process holds it.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
}

/// What one attempt found or achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// Our write went through; we hold the Lease as of the instant stamped into `renewTime`.
    Held { stamped: Instant },
    /// Someone else holds a valid Lease.
    HeldByOther { holder: String },
    /// Another candidate wrote first (`409`).
    LostRace,
}

/// The write an attempt makes, decided from what was read.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Create(Lease),
    Replace(Lease),
    Wait { holder: String },
}

impl LeaderElector {
    /// An elector for the Lease `config` names; nothing happens until [`run`](Self::run).
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        let (leader, _) = watch::channel(false);
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leader,
        })
    }

    /// A receiver that says `true` while this process is the leader; it starts `false`.
    ///
    /// The channel closes when [`run`](Self::run) returns, after a last `false`.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// Contends for the Lease until `shutdown` completes, then releases it if held.
    ///
    /// API errors never end the election: they are logged and retried, and a holder that cannot
    /// renew steps down at its deadline. Stop the work guarded by this election before `shutdown`
    /// completes, because the release lets another replica start at once.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        // While leader: the instant after which we may no longer count ourselves leader.
        let mut leader_until: Option<Instant> = None;
        let mut next_attempt = Instant::now();
        loop {
            let deadline = step_down_at(leader_until);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = deadline => {
                    self.step_down(&mut leader_until, "the lease could not be renewed in time");
                    continue;
                }
                () = tokio::time::sleep_until(next_attempt) => {}
            }
            let attempt_started = Instant::now();
            // The attempt races the deadline too: a hanging API call must not keep us leader.
            let outcome = tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = step_down_at(leader_until) => {
                    self.step_down(&mut leader_until, "the lease could not be renewed in time");
                    next_attempt = Instant::now() + self.config.retry_interval;
                    continue;
                }
                outcome = self.attempt_with_timeout() => outcome,
            };
            next_attempt = match outcome {
                Ok(Attempt::Held { stamped }) => {
                    let until = stamped + self.config.valid_for();
                    if Instant::now() < until {
                        if leader_until.is_none() {
                            tracing::info!(
                                lease = %self.config.name,
                                identity = %self.config.identity,
                                "became leader"
                            );
                        }
                        leader_until = Some(until);
                        self.publish(true);
                        attempt_started + self.config.renew_interval
                    } else {
                        // The write took so long that the Lease may already look expired to
                        // others: holding it is not the same as being safe to act.
                        self.step_down(&mut leader_until, "the renewal answered too late");
                        Instant::now()
                    }
                }
                Ok(Attempt::HeldByOther { holder }) => {
                    if leader_until.is_some() {
                        self.step_down(&mut leader_until, "another candidate holds the lease");
                    }
                    tracing::debug!(lease = %self.config.name, %holder, "lease held by another candidate");
                    attempt_started + self.config.retry_interval
                }
                Ok(Attempt::LostRace) => {
                    // A leader keeps its standing until its deadline: the next read shows whether
                    // someone else really took the Lease or only touched it.
                    tracing::debug!(lease = %self.config.name, "lost a write race on the lease");
                    attempt_started + self.config.retry_interval
                }
                Err(error) => {
                    tracing::warn!(lease = %self.config.name, %error, "leader election attempt failed");
                    attempt_started + self.config.retry_interval
                }
            };
        }
        self.step_down(&mut leader_until, "shutting down");
        match tokio::time::timeout(self.config.renew_interval, self.release()).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.config.name, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                tracing::warn!(lease = %self.config.name, %error, "failed to release the lease; it expires on its own");
            }
            Err(_) => {
                tracing::warn!(lease = %self.config.name, "releasing the lease timed out; it expires on its own");
            }
        }
    }

    fn publish(&self, leader: bool) {
        self.leader.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
    }

    fn step_down(&self, leader_until: &mut Option<Instant>, why: &str) {
        if leader_until.take().is_some() {
            tracing::warn!(lease = %self.config.name, identity = %self.config.identity, reason = why, "no longer leader");
        }
        self.publish(false);
    }

    async fn attempt_with_timeout(&self) -> Result<Attempt, LeaderError> {
        // Without a bound, a follower could wait on kube's long read timeout for a dead server.
        let limit = self.config.lease_duration;
        tokio::time::timeout(limit, self.attempt())
            .await
            .map_err(|_| LeaderError::Timeout(limit))?
    }

    /// Reads the Lease and, when it is free, expired or ours, writes it conditionally.
    async fn attempt(&self) -> Result<Attempt, LeaderError> {
        let current = self.api.get_opt(&self.config.name).await?;
        // The monotonic instant is taken before the wall-clock stamp, so our deadline never falls
        // after the expiry others compute from `renewTime`.
        let stamped = Instant::now();
        let plan = plan(current, &self.config, Timestamp::now());
        let written = match plan {
            Plan::Wait { holder } => return Ok(Attempt::HeldByOther { holder }),
            Plan::Create(lease) => self.api.create(&PostParams::default(), &lease).await,
            Plan::Replace(lease) => {
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(Attempt::Held { stamped }),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::LostRace),
            Err(error) => Err(error.into()),
        }
    }

    /// Clears the holder if it is us; `Ok(true)` when a release was written.
    async fn release(&self) -> Result<bool, LeaderError> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        // The shape client-go writes on release: no holder, and a Lease that expires at once for
        // candidates that ignore the missing holder.
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone wrote after our read: the Lease is no longer ours to release.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// A future that completes at `until`, or never when not leader.
async fn step_down_at(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// Decides the write from the Lease as read (`None`: absent) at wall-clock time `now`.
fn plan(current: Option<Lease>, config: &LeaseConfig, now: Timestamp) -> Plan {
    let duration = config.duration_seconds();
    let Some(mut lease) = current else {
        return Plan::Create(Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        });
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec
        .holder_identity
        .clone()
        .filter(|holder| !holder.is_empty());
    match holder {
        Some(holder) if holder == config.identity => {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration);
            if spec.acquire_time.is_none() {
                spec.acquire_time = Some(MicroTime(now));
            }
        }
        Some(holder) if !expired(spec, now) => return Plan::Wait { holder },
        _ => {
            spec.holder_identity = Some(config.identity.clone());
            spec.lease_duration_seconds = Some(duration);
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
    }
    // `lease.metadata.resource_version` is still the one read: the replace is conditional on it.
    Plan::Replace(lease)
}

/// Whether a held Lease's `renewTime + leaseDurationSeconds` lies before `now`; a Lease missing
/// either field cannot prove it is alive.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    let Ok(expiry) = renewed
        .0
        .checked_add(jiff::SignedDuration::from_secs(i64::from(seconds)))
    else {
        return false;
    };
    expiry < now
}

/// Completes when the work it was given to must stop: leadership was lost or the process is
/// shutting down. Pass it to the work as its graceful-shutdown signal.
#[derive(Debug)]
pub struct Cancellation(oneshot::Receiver<()>);

impl Future for Cancellation {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender cancels too: nobody is left to say the work may go on.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// How long work under [`while_leader`] may take to stop after its [`Cancellation`] before it is
/// aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopGrace {
    /// After leadership is lost. Keep it below the election's safety margin: the work must be
    /// over before another replica can become leader.
    pub after_loss: Duration,
    /// At shutdown, while the elector still renews the Lease (stop the elector only afterwards),
    /// so in-flight reconciles may finish.
    pub at_shutdown: Duration,
}

/// Aborts the spawned work when dropped, so work never outlives a dropped or aborted
/// [`while_leader`].
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the work `make_work` builds while `leader` says `true`, until `shutdown` completes or the
/// elector is gone.
///
/// Each time leadership is gained, `make_work` is called with a fresh [`Cancellation`] and its
/// future is spawned. When leadership is lost (or on shutdown) the cancellation completes; work
/// still running after the [`StopGrace`] for the case is aborted, and `while_leader` waits until
/// it is gone before it starts the next term or returns. Work that ends on its own is not
/// restarted until leadership is lost and gained again. Dropping this future aborts the work.
pub async fn while_leader<W, F>(
    mut leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
    grace: StopGrace,
    mut make_work: W,
) where
    W: FnMut(Cancellation) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // `wait_for`'s guard is dropped inside the future, so this function stays `Send`.
        let gained = tokio::select! {
            biased;
            () = &mut shutdown => return,
            gained = leader.wait_for(|leader| *leader).map(|seen| seen.is_ok()) => gained,
        };
        if !gained {
            return;
        }
        let (cancel, cancelled) = oneshot::channel();
        let mut work = AbortOnDrop(tokio::spawn(make_work(Cancellation(cancelled))));
        let mut ended_on_its_own = false;
        let shutting_down = tokio::select! {
            biased;
            () = &mut shutdown => true,
            _ = leader.wait_for(|leader| !*leader).map(|seen| seen.is_ok()) => false,
            _ = &mut work.0 => {
                ended_on_its_own = true;
                false
            }
        };
        if ended_on_its_own {
            tracing::warn!("leader work ended on its own; waiting for the next term");
            let shutting_down = tokio::select! {
                biased;
                () = &mut shutdown => true,
                _ = leader.wait_for(|leader| !*leader).map(|seen| seen.is_ok()) => false,
            };
            if shutting_down {
                return;
            }
            continue;
        }
        let _ = cancel.send(());
        let limit = if shutting_down {
            grace.at_shutdown
        } else {
            grace.after_loss
        };
        if tokio::time::timeout(limit, &mut work.0).await.is_err() {
            tracing::warn!(
                grace_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                "leader work did not stop in time; aborting it"
            );
            work.0.abort();
            let _ = (&mut work.0).await;
        }
        if shutting_down {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig::new("ops", "lease", "me")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_default()
    }

    fn held(holder: &str, renewed: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("lease".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(at(renewed))),
                acquire_time: Some(MicroTime(at(renewed))),
                lease_duration_seconds: Some(seconds),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    /// The spec of a conditional replace on the Lease as read (resourceVersion 7), or `None`.
    fn replaced(plan: Plan) -> Option<LeaseSpec> {
        match plan {
            Plan::Replace(lease) if lease.metadata.resource_version.as_deref() == Some("7") => {
                lease.spec
            }
            _ => None,
        }
    }

    #[test]
    fn an_absent_lease_is_created_with_us_as_holder() {
        // Anything but a create leaves an empty spec, which fails the assertions below.
        let spec = match plan(None, &config(), at("2026-01-01T00:00:00Z")) {
            Plan::Create(lease) => lease.spec.unwrap_or_default(),
            _ => LeaseSpec::default(),
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn a_valid_lease_of_another_is_left_alone() {
        let lease = held("other", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            plan(Some(lease), &config(), at("2026-01-01T00:00:14Z")),
            Plan::Wait {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn an_expired_lease_is_taken_conditionally_and_counts_a_transition() {
        let lease = held("other", "2026-01-01T00:00:00Z", 15);
        let spec =
            replaced(plan(Some(lease), &config(), at("2026-01-01T00:00:16Z"))).unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.renew_time, Some(MicroTime(at("2026-01-01T00:00:16Z"))));
    }

    #[test]
    fn our_own_lease_is_renewed_without_a_transition() {
        let lease = held("me", "2026-01-01T00:00:00Z", 15);
        let spec =
            replaced(plan(Some(lease), &config(), at("2026-01-01T00:00:05Z"))).unwrap_or_default();
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(
            spec.acquire_time,
            Some(MicroTime(at("2026-01-01T00:00:00Z")))
        );
        assert_eq!(spec.renew_time, Some(MicroTime(at("2026-01-01T00:00:05Z"))));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let mut lease = held("", "2026-01-01T00:00:00Z", 15);
        let spec = replaced(plan(
            Some(lease.clone()),
            &config(),
            at("2026-01-01T00:00:01Z"),
        ))
        .unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        let spec =
            replaced(plan(Some(lease), &config(), at("2026-01-01T00:00:01Z"))).unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    }

    #[test]
    fn timings_that_leave_no_room_to_retry_are_refused() {
        assert!(config().validate().is_ok());
        let mut bad = config();
        bad.renew_interval = Duration::from_secs(11);
        assert!(bad.validate().is_err());
        let mut fractional = config();
        fractional.lease_duration = Duration::from_millis(1500);
        assert!(fractional.validate().is_err());
        let mut no_margin = config();
        no_margin.safety_margin = Duration::ZERO;
        assert!(no_margin.validate().is_err());
    }
}
