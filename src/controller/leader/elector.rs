//! [`LeaderElector`]: the loop that contends for the Lease, renews it while held, steps down at
//! its deadline and publishes whether this process is the leader.

use std::future::Future;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use super::lease_io::Attempt;
use super::{LeaderError, LeaseConfig};

/// Contends for one Lease and publishes whether this process holds it.
#[derive(Debug)]
pub struct LeaderElector {
    pub(super) api: Api<Lease>,
    pub(super) config: LeaseConfig,
    leader: watch::Sender<bool>,
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
}

/// A future that completes at `until`, or never when not leader.
async fn step_down_at(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}
