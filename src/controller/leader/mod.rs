//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both call ECS.
//!
//! [`LeaderElector::run`] keeps trying to acquire the Lease and, once it holds it, to renew it;
//! it publishes whether this process is the leader on a [`watch`](tokio::sync::watch) channel.
//! [`while_leader`] runs the operator's work only while that channel says so.
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
//!
//! The parts: this file holds the errors and the [`LeaseConfig`] timings; `plan` decides, without
//! I/O, what to write given the Lease as read; `lease_io` makes one attempt (the read and the
//! conditional write) and the release; `elector` is [`LeaderElector`]'s run loop; `work` runs the
//! guarded work ([`while_leader`]).

mod elector;
mod lease_io;
mod plan;
mod work;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use elector::LeaderElector;
pub use work::{Cancellation, StopGrace, while_leader};

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
