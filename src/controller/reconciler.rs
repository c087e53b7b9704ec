//! The kube-runtime controller's reconcile: it adds the finalizer (`finalizers`), runs one pass
//! of the life-cycle engine (`engine::step`, with this controller as its shell: `shell.rs`), and
//! removes the finalizer when the plan says so. A deletion still in progress is a requeue.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tracing::Instrument;

use super::credentials::SecretAccess;
use super::decision::{Finalize, Timing};
use super::engine;
use super::events::EventPublisher;
use super::finalizers::{self, Stage};
use super::freshness::Freshness;
use super::poller::Poller;
use super::port::EcsPort;
use super::secret_watches::SecretWatches;
use super::secrets_in_use::{SecretKey, SecretsInUse};
use crate::api::image_import::ImageImport;
use crate::ecs::CredentialProvider;
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
    /// The statuses written that the watch cache may not show yet.
    pub(super) freshness: Freshness<ObjectRef<ImageImport>>,
    /// The process's transfers of sources into OSS.
    pub(super) uploads: Option<Arc<crate::upload::Transfers>>,
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
    /// The process's transfers of sources into OSS (`None`: mappings with a `source` wait).
    pub uploads: Option<Arc<crate::upload::Transfers>>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds the finalizer first; then runs the engine, and lets the finalizer go when the plan says
/// nothing is left in ECS. Each reconcile is a span carrying the resource's identity; the ECS
/// calls it makes are its children (`ecs_call`, with the action, the attempt and the request id).
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
    let index = match finalizers::stage(object) {
        // Adding it changes the resource, which wakes it again.
        Stage::AddFinalizer => {
            finalizers::add(&api, object).await?;
            return Ok(Action::await_change());
        }
        Stage::Gone => return Ok(Action::await_change()),
        Stage::Apply => None,
        Stage::Cleanup(index) => Some(index),
    };
    let key = ObjectRef::from_obj(object);
    if context
        .freshness
        .behind(&key, object.status.as_ref(), Instant::now())
    {
        // The watch event of the status just written wakes the resource again.
        return Ok(Action::requeue(context.timing.poll_interval));
    }
    let plan = engine::step(context, object).await?;
    match (plan.finalize, index) {
        (Finalize::Now, Some(index)) => {
            context.forget(object).await?;
            finalizers::remove(&api, object, index).await?;
            Ok(Action::await_change())
        }
        _ => Ok(plan
            .requeue
            .map_or_else(Action::await_change, Action::requeue)),
    }
}

/// Requeues after failed reconciles (the Kubernetes API failed) with backoff.
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
            freshness: Freshness::default(),
            uploads: settings.uploads.clone(),
        }
    }

    pub(super) fn count_failure(&self, key: &ObjectRef<ImageImport>) -> u32 {
        let mut failures = lock(&self.failures);
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    pub(super) fn reset_failures(&self, key: &ObjectRef<ImageImport>) {
        lock(&self.failures).remove(key);
    }

    /// Lets go of the resource's credentials Secret (unless another resource names it) and drops
    /// what is kept about it; called just before its finalizer goes, and failing keeps it.
    async fn forget(&self, object: &ImageImport) -> Result<(), Error> {
        self.secrets_in_use.let_go(object).await?;
        self.freshness.forget(&ObjectRef::from_obj(object));
        if let (Some(namespace), Some(name)) = (
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref(),
        ) {
            self.metrics.forget(namespace, name);
        }
        Ok(())
    }
}
