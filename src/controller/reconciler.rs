//! The kube-runtime controller around the pure decision: `reconcile` adds the finalizer
//! (`finalizers`), then dispatches to `apply` or `cleanup`; each gathers what ECS reports,
//! decides, carries out the ECS action, and writes status with server-side apply when it changed.
//! A cleanup still in progress is a requeue; the finalizer goes when the decision says so.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;

use super::credentials::SecretAccess;
use super::decision::{
    self, Decision, EcsAction, Failure, Finalize, ImageView, Lookup, Observed, Timing,
};
use super::events::{EventPublisher, Note};
use super::finalizers::{self, Stage};
use super::lifecycle::{
    self, act, action_name, decision_resource, failure_from, find_by_uid, observe_for_cleanup,
};
use super::poller::{GroupKey, Poller};
use super::port::EcsPort;
use super::secret_watches::SecretWatches;
use super::secrets_in_use::{SecretKey, SecretsInUse};
use super::status_writer;
use crate::api::image_import::{
    ABANDON_ANNOTATION, DeletionPolicy, ImageImport, ImageImportStatus, Phase,
};
use crate::ecs::{CredentialProvider, EcsError};
use crate::metrics::Metrics;

pub use super::status_writer::FIELD_MANAGER;

/// Errors of the controller layer; each has a stable metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API call failed: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// The object lacks a namespace or a name (a namespaced resource always has both).
    #[error("object has no {0}")]
    Incomplete(&'static str),
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Self::Kube(Box::new(error))
    }
}

impl Error {
    /// A stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Incomplete(_) => "incomplete_object",
        }
    }
}

/// What the controller needs, shared by every reconcile. Its fields are the controller's own
/// (`watch`, `credentials`).
pub struct Context<P: EcsPort> {
    pub(super) client: Client,
    pub(super) ecs: Arc<P>,
    pub(super) poller: Arc<Poller<ObjectRef<ImageImport>, P>>,
    pub(super) default_credentials: Option<Arc<CredentialProvider>>,
    pub(super) secret_credentials: Mutex<HashMap<SecretKey, (String, Arc<CredentialProvider>)>>,
    pub(super) failures: Mutex<HashMap<ObjectRef<ImageImport>, u32>>,
    /// Account ids by AccessKey ID: an AccessKey belongs to one account for good, so STS is asked
    /// once per key, not per reconcile.
    pub(super) accounts: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>,
    pub(super) secret_watches: Arc<SecretWatches>,
    pub(super) secrets_in_use: SecretsInUse,
    pub(super) secret_access: SecretAccess,
    pub(super) events: EventPublisher,
    pub(super) timing: Timing,
    pub(super) metrics: Metrics,
}

/// Settings of a controller run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Decision timings, including the poll interval.
    pub timing: Timing,
    /// Reconciles running at once, per watched namespace.
    pub concurrency: u16,
    /// Credentials for resources without a credentials Secret.
    pub default_credentials: Option<Arc<CredentialProvider>>,
    /// Name recorded on Events.
    pub reporter: String,
    /// Where reconciles, phases and progress are counted.
    pub metrics: Metrics,
    /// Set once the watch of ImageImports has listed them all, cleared while it fails (`/readyz`).
    pub watching: Arc<AtomicBool>,
    /// Heartbeats of the reconcile loop and the watches (`/healthz`).
    pub liveness: super::liveness::Liveness,
    /// How a namespace grants the operator its credentials Secrets (named in the
    /// `CredentialsSecretForbidden` message).
    pub secret_access: SecretAccess,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a cleanup ended.
enum Cleaned {
    /// Nothing is left in ECS (or left there on purpose): the finalizer may go.
    Done,
    /// More to do in ECS (or a stall): look again as the action says; the finalizer stays.
    Pending(Action),
}

/// Adds the finalizer first; then applies, or cleans up and lets the finalizer go when nothing
/// is left in ECS. Each reconcile is a span carrying the resource's identity; the ECS calls it
/// makes are its children (`ecs_call`, with the action, the attempt and the request id).
pub async fn reconcile<P: EcsPort>(
    object: Arc<ImageImport>,
    context: Arc<Context<P>>,
) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        namespace = object.metadata.namespace.as_deref().unwrap_or_default(),
        name = object.metadata.name.as_deref().unwrap_or_default(),
        generation = object.metadata.generation.unwrap_or_default(),
        uid = object.metadata.uid.as_deref().unwrap_or_default(),
    );
    let started = std::time::Instant::now();
    let result = dispatch(&object, &context).instrument(span).await;
    context.metrics.record_reconcile(
        result.as_ref().map(|_| ()).map_err(Error::metric_label),
        started.elapsed(),
    );
    result
}

async fn dispatch<P: EcsPort>(object: &ImageImport, context: &Context<P>) -> Result<Action, Error> {
    let namespace = object.namespace().ok_or(Error::Incomplete("namespace"))?;
    let api: Api<ImageImport> = Api::namespaced(context.client.clone(), &namespace);
    match finalizers::stage(object) {
        // Adding it changes the resource, which wakes it again.
        Stage::AddFinalizer => finalizers::add(&api, object)
            .await
            .map(|()| Action::await_change())
            .map_err(Error::from),
        Stage::Apply => apply(object, context).await,
        Stage::Cleanup(index) => match cleanup(object, context).await? {
            Cleaned::Done => finalizers::remove(&api, object, index)
                .await
                .map(|()| Action::await_change())
                .map_err(Error::from),
            Cleaned::Pending(action) => Ok(action),
        },
        Stage::Gone => Ok(Action::await_change()),
    }
}

/// Requeues after failed reconciles: a pending deletion after its own delay, the rest with backoff.
pub fn error_policy<P: EcsPort>(
    object: Arc<ImageImport>,
    error: &Error,
    context: Arc<Context<P>>,
) -> Action {
    let failures = context.count_failure(&ObjectRef::from_obj(object.as_ref()));
    tracing::warn!(name = %object.name_any(), error = %error, kind = error.metric_label(), "reconcile failed");
    Action::requeue(context.timing.backoff.delay(failures))
}

impl<P: EcsPort> Context<P> {
    /// The context of one controller run.
    pub fn new(
        client: Client,
        ecs: Arc<P>,
        poller: Arc<Poller<ObjectRef<ImageImport>, P>>,
        settings: &Settings,
    ) -> Self {
        Self {
            client: client.clone(),
            ecs,
            poller,
            default_credentials: settings.default_credentials.clone(),
            secret_credentials: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            secret_watches: Arc::new(SecretWatches::new(client.clone())),
            secrets_in_use: SecretsInUse::new(client.clone()),
            secret_access: settings.secret_access.clone(),
            events: EventPublisher::new(client, &settings.reporter, std::env::var("POD_NAME").ok()),
            timing: settings.timing,
            metrics: settings.metrics.clone(),
        }
    }

    /// The decision after `failure`, with `base` as the status it happened in (the stored one, or
    /// what was decided before the failing call); counts it, so transient failures back off
    /// further each time. Phase Events compare with the stored status, as every decision does.
    fn failed(
        &self,
        object: &ImageImport,
        base: &ImageImportStatus,
        credentials_version: Option<&str>,
        failure: &Failure,
    ) -> Decision {
        let failures = self.count_failure(&ObjectRef::from_obj(object));
        let stored = object.status.clone().unwrap_or_default();
        let resource = decision_resource(object, &stored, credentials_version, None);
        decision::after_failure(
            &resource,
            base,
            failure,
            failures,
            &self.timing,
            Timestamp::now(),
        )
    }

    /// Writes and publishes a deletion that is not finished, and looks again as it says.
    async fn pending(&self, object: &ImageImport, decision: Decision) -> Result<Cleaned, Error> {
        self.write_status(object, &decision.status).await?;
        self.publish(object, &decision).await;
        Ok(self.requeue(&decision))
    }

    /// A deletion still in progress: looked at again as the decision says (a poll interval when
    /// it says nothing, so a deletion never waits for a change that may not come).
    fn requeue(&self, decision: &Decision) -> Cleaned {
        Cleaned::Pending(Action::requeue(
            decision.requeue.unwrap_or(self.timing.poll_interval),
        ))
    }

    /// Keeps the poller in line with `status`: a running import every round, an available image
    /// on the resync schedule (returning what the resync last saw of it), a failed import not at
    /// all.
    async fn follow(
        &self,
        object: &ImageImport,
        key: &ObjectRef<ImageImport>,
        credentials: &Arc<CredentialProvider>,
        status: &ImageImportStatus,
    ) -> Option<Lookup<ImageView>> {
        let Some(image_id) = &status.image_id else {
            return None;
        };
        let group = || group_key(object, credentials);
        match status.phase {
            Some(Phase::Available) => {
                let credentials = Arc::clone(credentials);
                self.poller
                    .settle(key.clone(), group().await, credentials, image_id)
            }
            Some(Phase::Importing) => {
                let credentials = Arc::clone(credentials);
                self.poller
                    .track(key.clone(), group().await, credentials, image_id)
            }
            Some(Phase::Failed) => {
                self.poller.untrack(key);
                None
            }
            _ => None,
        }
    }

    fn count_failure(&self, key: &ObjectRef<ImageImport>) -> u32 {
        let mut failures = lock(&self.failures);
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn reset_failures(&self, key: &ObjectRef<ImageImport>) {
        lock(&self.failures).remove(key);
    }

    /// Lets go of the resource's credentials Secret (unless another resource names it) and drops
    /// what is kept about it; called just before its finalizer goes, and failing keeps it.
    async fn forget(&self, object: &ImageImport) -> Result<(), Error> {
        self.secrets_in_use.let_go(object).await?;
        if let (Some(namespace), Some(name)) = (
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref(),
        ) {
            self.metrics.forget(namespace, name);
        }
        Ok(())
    }

    async fn write_status(
        &self,
        object: &ImageImport,
        status: &ImageImportStatus,
    ) -> Result<(), Error> {
        if let (Some(namespace), Some(name)) = (
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref(),
        ) {
            self.metrics.record_status(namespace, name, status);
        }
        if object.status.as_ref() == Some(status) {
            return Ok(());
        }
        let namespace = object.namespace().ok_or(Error::Incomplete("namespace"))?;
        let name = object
            .meta()
            .name
            .clone()
            .ok_or(Error::Incomplete("name"))?;
        let api: Api<ImageImport> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = status_writer::apply(&api, &name, status).await {
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

    async fn publish(&self, object: &ImageImport, decision: &Decision) {
        for note in &decision.events {
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

async fn apply<P: EcsPort>(object: &ImageImport, context: &Context<P>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(object);
    let status = object.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let (credentials, version, account) = match context.identity(object).await {
        Ok(found) => found,
        Err((failure, version)) => {
            let failed = context.failed(object, &status, version.as_deref(), &failure);
            return finish(object, context, failed).await;
        }
    };
    let resource = decision_resource(object, &status, version.as_deref(), Some(&account));
    if let Some(decision) = decision::account_guard(&resource, &context.timing, now) {
        context.poller.untrack(&key);
        return finish(object, context, decision).await;
    }
    // What the resync last saw of an available image says whether it drifted.
    let latest = context.follow(object, &key, &credentials, &status).await;
    if decision::settled(&resource, latest.as_ref()) {
        return Ok(Action::await_change());
    }
    let observing = observe(object, &status, &credentials, context, latest);
    let observed = match patiently(object, &status, "DescribeImages", context, observing).await {
        Ok(Some(observed)) => observed,
        // The poller has not seen this import yet; it wakes the resource after its first round.
        Ok(None) => return Ok(Action::requeue(context.timing.watchdog)),
        Err(error) => {
            let failed = context.failed(object, &status, version.as_deref(), &failure_from(&error));
            return finish(object, context, failed).await;
        }
    };
    let decision = decision::apply(&resource, &observed, &context.timing, now);
    context
        .follow(object, &key, &credentials, &decision.status)
        .await;
    if decision.action == EcsAction::Import {
        // Recorded first, so that after a crash during the import the next run looks for the
        // image by its UID tag.
        context.write_status(object, &decision.status).await?;
        context.publish(object, &decision).await;
    }
    // The decided status carries what the import needs (the ClientToken's re-import count).
    let acting = decision::Resource {
        status: &decision.status,
        ..resource
    };
    let action = action_name(&decision.action);
    let acted = act(&*context.ecs, &acting, &decision.action, &credentials);
    let decision = match patiently(object, &decision.status, action, context, acted).await {
        Ok(Some(accepted)) => {
            // Record the IDs before anything else can fail.
            let timing = &context.timing;
            let (image, task) = (&accepted.image_id, &accepted.task_id);
            let imported =
                decision::after_import(&resource, &decision.status, image, task, timing, now);
            context.reset_failures(&key);
            context.write_status(object, &imported.status).await?;
            context
                .follow(object, &key, &credentials, &imported.status)
                .await;
            imported
        }
        Ok(None) => {
            context.reset_failures(&key);
            decision
        }
        Err(error) => context.failed(
            object,
            &decision.status,
            version.as_deref(),
            &failure_from(&error),
        ),
    };
    finish(object, context, decision).await
}

async fn finish<P: EcsPort>(
    object: &ImageImport,
    context: &Context<P>,
    decision: Decision,
) -> Result<Action, Error> {
    context.write_status(object, &decision.status).await?;
    context.publish(object, &decision).await;
    Ok(decision
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

async fn group_key(object: &ImageImport, credentials: &CredentialProvider) -> GroupKey {
    let account = credentials
        .credentials()
        .await
        .map(|c| c.access_key_id().to_string())
        .unwrap_or_default();
    GroupKey {
        region: object.spec.region_id.clone(),
        account,
    }
}

/// Gathers what ECS reports for `apply`: by UID tag when status records no image, else from the
/// batched poller (one `DescribeImages` by ID when the spec of an available image changed).
async fn observe<P: EcsPort>(
    object: &ImageImport,
    status: &ImageImportStatus,
    credentials: &Arc<CredentialProvider>,
    context: &Context<P>,
    followed: Option<Lookup<ImageView>>,
) -> Result<Option<Observed>, EcsError> {
    let region = &object.spec.region_id;
    let Some(image_id) = &status.image_id else {
        // No status was ever written, and one is always written before `ImportImage`: nothing
        // can exist in ECS yet, so the tag lookup is saved. (A stale cache that hides a written
        // status only leads to a repeated import with the same ClientToken, which ECS answers
        // with the same image.)
        if status.phase.is_none() {
            return Ok(Some(Observed {
                image: Lookup::Missing,
                task: Lookup::NotAsked,
            }));
        }
        return find_by_uid(&*context.ecs, object, credentials)
            .await
            .map(Some);
    };
    let image = if status.phase == Some(Phase::Importing) {
        // What the poller last saw (`Context::follow` has just tracked the import).
        match followed {
            Some(image) => image,
            None => return Ok(None),
        }
    } else {
        lifecycle::describe_image(&*context.ecs, credentials, region, image_id).await?
    };
    let mut observed = Observed {
        image,
        task: Lookup::NotAsked,
    };
    // The failure detail of an import lives on its task.
    let failed = observed
        .image
        .found()
        .is_some_and(|image| matches!(image.status.as_str(), "CreateFailed" | "UnAvailable"));
    if let (true, Some(task_id)) = (failed, &status.import_task_id) {
        observed.task =
            lifecycle::describe_task(&*context.ecs, credentials, region, task_id).await?;
    }
    Ok(Some(observed))
}

/// Carries out the decided action; returns the IDs when an import was accepted.
/// Runs `work` (ECS calls); if it has not finished after `timing.waiting_notice`, writes `base`
/// with `Reconciling` saying which action is outstanding, then waits on: a slow or silent endpoint
/// shows in status at once, not only when the call's timeouts and retries have run out.
async fn patiently<P: EcsPort, T>(
    object: &ImageImport,
    base: &ImageImportStatus,
    action: &str,
    context: &Context<P>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    let notice = context.timing.waiting_notice;
    if action.is_empty() {
        return work.await;
    }
    tokio::select! {
        done = &mut work => return done,
        () = tokio::time::sleep(notice) => {}
    }
    let generation = object.metadata.generation.unwrap_or(0);
    let waiting = decision::waiting_for_ecs(base, generation, action, notice, Timestamp::now());
    if let Err(error) = context.write_status(object, &waiting).await {
        tracing::warn!(name = %object.name_any(), "failed to say that ECS is slow: {error}");
    }
    work.await
}

async fn cleanup<P: EcsPort>(object: &ImageImport, context: &Context<P>) -> Result<Cleaned, Error> {
    let key = ObjectRef::from_obj(object);
    context.poller.untrack(&key);
    let status = object.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let abandoned = object
        .annotations()
        .get(ABANDON_ANNOTATION)
        .map(String::as_str);
    let retain = object.spec.deletion_policy == DeletionPolicy::Retain;
    if abandoned == Some("true") || retain {
        // Nothing to do in ECS, on purpose; the decision says what stays there.
        let resource = decision_resource(object, &status, None, None);
        let decision = if abandoned == Some("true") {
            decision::abandon(&resource)
        } else {
            decision::cleanup(&resource, &Observed::default(), &context.timing, now)
        };
        context.publish(object, &decision).await;
        context.forget(object).await?;
        return Ok(Cleaned::Done);
    }
    let gone = deleting(&status);
    let (credentials, version, account) = match context.identity(object).await {
        Ok(found) => found,
        Err((failure, version)) => {
            let failed = context.failed(object, &gone, version.as_deref(), &failure);
            return context.pending(object, failed).await;
        }
    };
    let guarded = decision_resource(object, &gone, version.as_deref(), Some(&account));
    if let Some(decision) = decision::account_guard(&guarded, &context.timing, now) {
        return context.pending(object, decision).await;
    }
    let resource = decision_resource(object, &status, version.as_deref(), Some(&account));
    let observed = match observe_for_cleanup(&*context.ecs, object, &status, &credentials).await {
        Ok(observed) => observed,
        Err(error) => {
            let failed = context.failed(object, &gone, version.as_deref(), &failure_from(&error));
            return context.pending(object, failed).await;
        }
    };
    let decision = decision::cleanup(&resource, &observed, &context.timing, now);
    if decision.finalize != Finalize::Now {
        context.write_status(object, &decision.status).await?;
    }
    context.publish(object, &decision).await;
    let action = action_name(&decision.action);
    let acted = act(&*context.ecs, &resource, &decision.action, &credentials);
    match patiently(object, &decision.status, action, context, acted).await {
        Ok(_) if decision.finalize == Finalize::No => Ok(context.requeue(&decision)),
        Ok(_) => {
            context.reset_failures(&key);
            context.forget(object).await?;
            Ok(Cleaned::Done)
        }
        Err(error) => {
            let failure = failure_from(&error);
            let failed = context.failed(object, &decision.status, version.as_deref(), &failure);
            context.pending(object, failed).await
        }
    }
}

fn deleting(status: &ImageImportStatus) -> ImageImportStatus {
    ImageImportStatus {
        phase: Some(Phase::Deleting),
        ..status.clone()
    }
}
