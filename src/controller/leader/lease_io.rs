//! One attempt on the Lease and the release at shutdown: the reads and the conditional writes on
//! the Kubernetes API, each bounded in time, apart from the loop that decides when to make them.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::PostParams;
use tokio::time::Instant;

use super::plan::{Plan, plan};
use super::{LeaderElector, LeaderError};

/// What one attempt found or achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Our write went through; we hold the Lease as of the instant stamped into `renewTime`.
    Held { stamped: Instant },
    /// Someone else holds a valid Lease.
    HeldByOther { holder: String },
    /// Another candidate wrote first (`409`).
    LostRace,
}

impl LeaderElector {
    pub(super) async fn attempt_with_timeout(&self) -> Result<Attempt, LeaderError> {
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
    pub(super) async fn release(&self) -> Result<bool, LeaderError> {
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
