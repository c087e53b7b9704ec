//! The controller as the engine's shell: credentials from Secrets (`credentials`), running and
//! settled images followed by the batched poller, status written with server-side apply
//! (`status_writer`), Events published (`events`), a slow ECS call shown in status at once.

use std::sync::Arc;

use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::decision::{self, CopyObserved, Lookup, Plan, Timing};
use super::engine::{Blocked, Identity, Latest, Shell};
use super::events::Note;
use super::poller::{Followed, GroupKey};
use super::port::EcsPort;
use super::reconciler::{Context, Error};
use super::status_writer;
use crate::api::conditions::is_valid_reason;
use crate::api::distribution::Distribution;
use crate::api::image_import::{ImageImport, ImageImportStatus, Phase};
use crate::ecs::CredentialProvider;

impl<P: EcsPort> Shell for Context<P> {
    type Port = P;
    type Error = Error;

    fn port(&self) -> &P {
        &self.ecs
    }

    fn timing(&self) -> &Timing {
        &self.timing
    }

    fn failures(&self, object: &ImageImport) -> u32 {
        let key = ObjectRef::from_obj(object);
        super::reconciler::lock(&self.failures)
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    async fn identity(&self, object: &ImageImport) -> Result<Identity, Blocked> {
        match self.credentials_and_account(object).await {
            Ok((credentials, version, account)) => Ok(Identity {
                credentials,
                version,
                account,
            }),
            Err((failure, version)) => Err(Blocked { failure, version }),
        }
    }

    async fn latest(
        &self,
        object: &ImageImport,
        identity: &Identity,
        status: &ImageImportStatus,
    ) -> Latest {
        self.follow(object, &identity.credentials, status).await
    }

    /// If `work` has not finished after `timing.waiting_notice`, writes `base` with
    /// `Reconciling` saying which action is outstanding, then waits on: a slow or silent endpoint
    /// shows in status at once, not only when the call's timeouts and retries have run out.
    async fn patiently<T: Send>(
        &self,
        object: &ImageImport,
        base: &ImageImportStatus,
        action: &'static str,
        work: impl Future<Output = T> + Send,
    ) -> (T, bool) {
        let mut work = std::pin::pin!(work);
        let notice = self.timing.waiting_notice;
        tokio::select! {
            done = &mut work => return (done, false),
            () = tokio::time::sleep(notice) => {}
        }
        let generation = object.metadata.generation.unwrap_or(0);
        let waiting = decision::waiting_for_ecs(base, generation, action, notice, Timestamp::now());
        if let Err(error) = self.write_status(object, None, &waiting).await {
            tracing::warn!(name = %object.name_any(), "failed to say that ECS is slow: {error}");
        }
        (work.await, true)
    }

    async fn record(
        &self,
        object: &ImageImport,
        stored: Option<&ImageImportStatus>,
        plan: &Plan,
    ) -> Result<(), Error> {
        // A resource about to lose its finalizer goes with the status it has, unless that status
        // holds reasons the schema refuses (stored by an older release): the API server validates
        // the whole object, so the finalizer's removal would be refused as well.
        let refusable = object
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| !is_valid_reason(&c.reason)));
        if plan.finalize != decision::Finalize::Now || refusable {
            self.write_status(object, stored, &plan.status).await?;
        }
        self.publish(object, plan).await;
        Ok(())
    }

    fn transfers(&self) -> Option<&crate::upload::Transfers> {
        self.uploads.as_deref()
    }

    async fn source_headers(
        &self,
        object: &ImageImport,
        name: &str,
    ) -> Result<Vec<(String, secrecy::SecretString)>, decision::Failure> {
        Context::source_headers(self, object, name).await
    }

    async fn settle(&self, object: &ImageImport, identity: Option<&Identity>, plan: &Plan) {
        let key = ObjectRef::from_obj(object);
        if plan.failed {
            self.count_failure(&key);
        } else {
            self.reset_failures(&key);
        }
        match identity {
            Some(identity) if object.metadata.deletion_timestamp.is_none() => {
                self.follow(object, &identity.credentials, &plan.status)
                    .await;
            }
            _ => self.poller.untrack(&key),
        }
    }
}

impl<P: EcsPort> Context<P> {
    /// Keeps the poller in line with `status`: a running import or copy every round, an available
    /// (or failed) one on the resync schedule, nothing else; returns what the poller last saw of
    /// each (`NotAsked` before it looked).
    async fn follow(
        &self,
        object: &ImageImport,
        credentials: &Arc<CredentialProvider>,
        status: &ImageImportStatus,
    ) -> Latest {
        let key = ObjectRef::from_obj(object);
        let account = account_of(credentials).await;
        let group = |region: &str| GroupKey {
            region: region.to_string(),
            account: account.clone(),
        };
        let mut images = Vec::new();
        let source_followed = match (&status.image_id, status.phase) {
            (Some(image_id), Some(phase @ (Phase::Available | Phase::Importing))) => {
                images.push(Followed {
                    group: group(&object.spec.region_id),
                    image_id: image_id.clone(),
                    settled: phase == Phase::Available,
                });
                true
            }
            _ => false,
        };
        let mut regions = Vec::new();
        for copy in status
            .copies
            .iter()
            .filter(|c| Distribution::wants(object.spec.distribution.as_ref(), &c.region_id))
        {
            let (
                Some(image_id),
                Some(phase @ (Phase::Available | Phase::Failed | Phase::Importing)),
            ) = (&copy.image_id, copy.phase)
            else {
                continue;
            };
            images.push(Followed {
                group: group(&copy.region_id),
                image_id: image_id.clone(),
                settled: phase != Phase::Importing,
            });
            regions.push(copy.region_id.clone());
        }
        let mut seen = self.poller.follow(key, credentials, &images).into_iter();
        let source = match source_followed {
            true => seen.next().flatten().unwrap_or_default(),
            false => Lookup::NotAsked,
        };
        let copies = regions
            .into_iter()
            .zip(seen)
            .map(|(region_id, image)| CopyObserved {
                region_id,
                image: image.unwrap_or_default(),
            })
            .collect();
        Latest { source, copies }
    }

    /// Writes `status` unless `stored` (what is known to be stored) equals it; the status metrics
    /// are updated either way.
    async fn write_status(
        &self,
        object: &ImageImport,
        stored: Option<&ImageImportStatus>,
        status: &ImageImportStatus,
    ) -> Result<(), Error> {
        if let (Some(namespace), Some(name)) = (
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref(),
        ) {
            self.metrics.record_status(namespace, name, status);
        }
        if stored == Some(status) {
            return Ok(());
        }
        let namespace = object.namespace().ok_or(Error::Incomplete("namespace"))?;
        let name = object
            .meta()
            .name
            .clone()
            .ok_or(Error::Incomplete("name"))?;
        let api: Api<ImageImport> = Api::namespaced(self.client.clone(), &namespace);
        let written = status_writer::apply(&api, &name, status).await;
        if let Ok(status_writer::Written {
            stored: Some(stored),
            ..
        }) = &written
        {
            self.freshness.wrote(&ObjectRef::from_obj(object), stored);
        }
        if let Err(error) = written {
            // Not even the compact status could be stored: say so where people look, since the
            // status itself keeps showing what it said before.
            self.metrics.record_status_write_failure();
            let message = format!(
                "failed to write status (phase {}): {error}",
                status.phase.map_or("unknown", Phase::as_str)
            );
            let note = Note {
                warning: true,
                reason: "StatusWriteFailed",
                message: &message,
            };
            if let Err(event_error) = self.events.publish(object, &note).await {
                tracing::warn!(name = %object.name_any(), "failed to publish an event: {event_error}");
            }
            return Err(error.into());
        }
        self.metrics.record_written(object.status.as_ref(), status);
        Ok(())
    }

    async fn publish(&self, object: &ImageImport, plan: &Plan) {
        for note in &plan.events {
            let note = Note {
                warning: note.warning,
                reason: &note.reason,
                message: &note.message,
            };
            if let Err(error) = self.events.publish(object, &note).await {
                tracing::warn!(name = %object.name_any(), "failed to publish an event: {error}");
            }
        }
    }
}

/// The account a group of the poller is keyed by: the AccessKey ID (empty when the credentials
/// cannot be had: the reconcile fails on them anyway).
async fn account_of(credentials: &CredentialProvider) -> String {
    credentials
        .credentials()
        .await
        .map(|c| c.access_key_id().to_string())
        .unwrap_or_default()
}
