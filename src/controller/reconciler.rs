//! The kube-runtime controller around the pure decision: `reconcile` adds the finalizer
//! (`finalizers`), then dispatches to `apply` or `cleanup`; each gathers what ECS reports,
//! decides, carries out the ECS action, and writes status with server-side apply when it changed.
//! A cleanup still in progress is a requeue; the finalizer goes when the decision says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::decision::{
    self, Decision, EcsAction, Failure, Finalize, ImageUpdate, Lookup, Observed,
    Resource as DecisionResource, TaskView, Timing,
};
use super::events::{EventPublisher, Note};
use super::finalizers::{self, Stage};
use super::poller::{GroupKey, Poller, image_view};
use super::port::EcsPort;
use super::secret_watches::SecretWatches;
use super::secrets_in_use::{self, SecretKey, SecretsInUse};
use super::status_writer;
use crate::api::conditions;
use crate::api::image_import::{
    ABANDON_ANNOTATION, CREDENTIALS_FINALIZER, ImageImport, ImageImportStatus, PAUSED_ANNOTATION,
    Phase, UID_TAG,
};
use crate::ecs::api::{
    ALL_IMAGE_STATUSES, CancelTaskRequest, DeleteImageRequest, DescribeImagesRequest,
    DescribeTaskAttributeRequest, DescribeTasksRequest, DiskDeviceMapping, ImageFeatures,
    ImportImageRequest, ModifyImageAttributeRequest, RESOURCE_TYPE_IMAGE, Tag, TagFilter,
    TagResourcesRequest, UntagResourcesRequest,
};
use crate::ecs::{CredentialProvider, Credentials, CredentialsError, EcsError};
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

/// What the controller needs, shared by every reconcile.
pub struct Context<P: EcsPort> {
    client: Client,
    ecs: Arc<P>,
    poller: Arc<Poller<ObjectRef<ImageImport>, P>>,
    default_credentials: Option<Arc<CredentialProvider>>,
    secret_credentials: Mutex<HashMap<SecretKey, (String, Arc<CredentialProvider>)>>,
    failures: Mutex<HashMap<ObjectRef<ImageImport>, u32>>,
    /// Account ids by AccessKey ID: an AccessKey belongs to one account for good, so STS is asked
    /// once per key, not per reconcile.
    accounts: Mutex<HashMap<String, String>>,
    secret_watches: Arc<SecretWatches>,
    secrets_in_use: SecretsInUse,
    secret_access: SecretAccess,
    events: EventPublisher,
    timing: Timing,
    metrics: Metrics,
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

/// What a namespace admin binds so the operator may read credentials Secrets in that namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAccess {
    /// The ClusterRole with the Secret access the operator needs (the chart's
    /// `<release>-secret-reader`).
    pub cluster_role: String,
    /// The operator's ServiceAccount as `namespace:name`.
    pub service_account: String,
}

impl Default for SecretAccess {
    fn default() -> Self {
        Self {
            cluster_role: "ecs-image-operator-secret-reader".into(),
            service_account: "ecs-image-operator:ecs-image-operator".into(),
        }
    }
}

impl SecretAccess {
    /// Why the operator may not `verb` the Secret (read it, or put its finalizer on), and the one
    /// command that opts the namespace in.
    pub fn forbidden_message(&self, verb: &str, namespace: &str, name: &str) -> String {
        if self.cluster_role.is_empty() {
            return format!(
                "the operator may not {verb} Secret {namespace}/{name}: list {namespace} in the chart's \
                 credentials.secretNamespaces (a Role and RoleBinding there); the import starts on \
                 its own once they exist"
            );
        }
        format!(
            "the operator may not {verb} Secret {namespace}/{name}: a namespace admin opts the namespace \
             in with `kubectl -n {namespace} create rolebinding ecs-image-operator-secrets \
             --clusterrole={} --serviceaccount={}` (or the chart's credentials.secretNamespaces lists \
             it); the import starts on its own once the RoleBinding exists",
            self.cluster_role, self.service_account
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the controller until `shutdown` completes.
pub async fn run<P: EcsPort>(
    client: Client,
    ecs: Arc<P>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    let poller = Arc::new(Poller::new(
        Arc::clone(&ecs),
        wake_tx,
        settings.timing.poll_interval,
    ));
    let context = Arc::new(Context {
        client: client.clone(),
        ecs,
        poller: Arc::clone(&poller),
        default_credentials: settings.default_credentials.clone(),
        secret_credentials: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        accounts: Mutex::new(HashMap::new()),
        secret_watches: Arc::new(SecretWatches::new(client.clone())),
        secrets_in_use: SecretsInUse::new(client.clone()),
        secret_access: settings.secret_access.clone(),
        events: EventPublisher::new(
            client.clone(),
            &settings.reporter,
            std::env::var("POD_NAME").ok(),
        ),
        timing: settings.timing,
        metrics: settings.metrics.clone(),
    });
    let metrics = settings.metrics.clone();
    let poll_task = tokio::spawn(async move {
        poller
            .run(|stats| {
                if stats.calls > 0 {
                    metrics.record_poll_round();
                }
            })
            .await;
    });
    // One controller per watched namespace (or one for all), sharing the context and the poller:
    // the API server cannot list a chosen set of namespaces in one watch.
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let flags: Arc<Vec<AtomicBool>> =
        Arc::new(scopes.iter().map(|_| AtomicBool::new(false)).collect());
    let mut routes: HashMap<Option<String>, UnboundedSender<ObjectRef<ImageImport>>> =
        HashMap::new();
    let shutdown = shutdown.shared();
    let mut controllers = Vec::new();
    // Liveness: heartbeats count from now; idle ticks wake each controller's runner, and probe
    // watches show that an idle watch still works.
    let liveness = settings.liveness.clone();
    liveness.started();
    let probes = tokio::spawn(
        liveness
            .clone()
            .probe_watches(client.clone(), scopes.clone()),
    );
    let mut ticks = Vec::new();
    for (index, scope) in scopes.into_iter().enumerate() {
        let (route_tx, route_rx) = futures::channel::mpsc::unbounded();
        routes.insert(scope.clone(), route_tx.clone());
        let ready = Readiness {
            flags: Arc::clone(&flags),
            index,
            aggregate: Arc::clone(&settings.watching),
            liveness: liveness.clone(),
        };
        ticks.push(spawn_tick(
            route_tx.clone(),
            super::liveness::Liveness::tick_ref(scope.as_deref()),
            liveness.tick_interval(),
        ));
        controllers.push(controller(
            &client,
            scope,
            route_rx,
            Arc::clone(&context),
            ready,
            settings.concurrency,
            shutdown.clone(),
        ));
    }
    // The poller wakes by object; each wake goes to the controller watching its namespace.
    let router = tokio::spawn(async move {
        let mut wakes = wake_rx;
        while let Some(key) = wakes.next().await {
            let route = routes.get(&key.namespace).or_else(|| routes.get(&None));
            if let Some(route) = route {
                let _ = route.unbounded_send(key);
            }
        }
    });
    futures::future::join_all(controllers).await;
    router.abort();
    poll_task.abort();
    context.secret_watches.stop();
    probes.abort();
    ticks.iter().for_each(tokio::task::JoinHandle::abort);
    liveness.stopped();
    settings.watching.store(false, Ordering::SeqCst);
}

/// Wakes the runner for the idle tick's object every tick interval, until aborted.
fn spawn_tick(
    route: UnboundedSender<ObjectRef<ImageImport>>,
    reference: ObjectRef<ImageImport>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if route.unbounded_send(reference.clone()).is_err() {
                break;
            }
        }
    })
}

/// `/readyz` follows the watches: ready once every watched namespace has been listed, not ready
/// while any watch fails.
struct Readiness {
    flags: Arc<Vec<AtomicBool>>,
    index: usize,
    aggregate: Arc<AtomicBool>,
    liveness: super::liveness::Liveness,
}

impl Readiness {
    fn set(&self, listed: bool) {
        if let Some(flag) = self.flags.get(self.index) {
            flag.store(listed, Ordering::SeqCst);
        }
        let all = self.flags.iter().all(|flag| flag.load(Ordering::SeqCst));
        self.aggregate.store(all, Ordering::SeqCst);
    }
}

/// The controller of one scope: a namespace, or every namespace (`None`).
async fn controller<P: EcsPort>(
    client: &Client,
    scope: Option<String>,
    wakes: UnboundedReceiver<ObjectRef<ImageImport>>,
    context: Arc<Context<P>>,
    ready: Readiness,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let imports: Api<ImageImport> = match &scope {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let (watch_beat, loop_beat) = (ready.liveness.clone(), ready.liveness.clone());
    // Resources gone from the cache, for the sweeper (after the cache dropped them).
    let (gone_tx, gone_rx) = futures::channel::mpsc::unbounded();
    // Only changes that can alter a decision wake a resource: our own status writes do not.
    let trigger = watcher(imports, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(slim_for_cache)
        .reflect(writer)
        .inspect(move |event| match event {
            Ok(watcher::Event::InitDone) => {
                watch_beat.watch_beat();
                ready.set(true);
            }
            Err(_) => ready.set(false),
            Ok(watcher::Event::Delete(object)) => {
                watch_beat.watch_beat();
                if let Some(secret) = secrets_in_use::secret_of(object) {
                    let _ = gone_tx.unbounded_send((object.uid(), secret));
                }
            }
            Ok(_) => watch_beat.watch_beat(),
        })
        .applied_objects()
        .predicate_filter(wake_predicate, PredicateConfig::default());
    let store = reader.clone();
    context
        .secrets_in_use
        .register(scope.clone(), reader.clone());
    let sweeper = sweep_secrets(Arc::clone(&context), scope.clone(), gone_rx);
    // Secrets are watched only in namespaces where one was read (see `SecretWatches`).
    let secret_trigger = context
        .secret_watches
        .subscribe(scope.clone())
        .map(Ok::<_, watcher::Error>);
    let run = Controller::for_stream(trigger, reader)
        .watches_stream(secret_trigger, move |secret: PartialObjectMeta<Secret>| {
            referencing(&store, &secret)
        })
        .reconcile_on(wakes)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            // Anything the runner finishes, the idle tick's "not found" included, is progress.
            loop_beat.loop_beat();
            async move {
                match result {
                    Err(kube::runtime::controller::Error::ObjectNotFound(reference))
                        if reference.name == super::liveness::TICK_NAME => {}
                    Err(error) => tracing::debug!("reconcile loop: {error}"),
                    Ok(_) => {}
                }
            }
        });
    // The sweeper never ends on its own: it goes with the controller.
    futures::future::select(std::pin::pin!(run), std::pin::pin!(sweeper)).await;
}

/// What may leave a Secret named by no resource.
enum Unnamed {
    /// A watched Secret changed (or was listed when its watch started).
    Secret(Box<PartialObjectMeta<Secret>>),
    /// A resource (by UID) that named this Secret left the cache.
    Gone(Option<String>, SecretKey),
}

/// Lets go of the Secrets of `scope` that hold the credentials-in-use finalizer while no resource
/// names them any more (see `SecretsInUse`).
async fn sweep_secrets<P: EcsPort>(
    context: Arc<Context<P>>,
    scope: Option<String>,
    gone: UnboundedReceiver<(Option<String>, SecretKey)>,
) {
    let secrets = context
        .secret_watches
        .subscribe(scope)
        .map(|secret| Unnamed::Secret(Box::new(secret)));
    let mut causes = futures::stream::select(
        secrets,
        gone.map(|(uid, secret)| Unnamed::Gone(uid, secret)),
    );
    while let Some(cause) = causes.next().await {
        let (namespace, name, result) = match &cause {
            Unnamed::Secret(secret) => (
                secret.namespace(),
                secret.name_any(),
                context.secrets_in_use.sweep(secret).await,
            ),
            Unnamed::Gone(uid, secret) => (
                Some(secret.0.clone()),
                secret.1.clone(),
                context
                    .secrets_in_use
                    .resource_gone(uid.as_deref(), secret)
                    .await,
            ),
        };
        if let Err(error) = result {
            tracing::warn!(
                namespace,
                secret = name,
                "could not take the credentials-in-use finalizer off a Secret no resource names: {error}"
            );
        }
    }
}

/// Drops what no decision reads before an object enters the cache: `managedFields` and kubectl's
/// last-applied copy of the whole object are most of a cached resource's size, and with 10,000
/// resources they decide whether the operator fits its memory target.
fn slim_for_cache(object: &mut ImageImport) {
    object.managed_fields_mut().clear();
    object
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Hash of what may change a decision: generation, the pause annotation, deletion and finalizers.
fn wake_predicate(object: &ImageImport) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    object.metadata.generation.hash(&mut hasher);
    object
        .annotations()
        .get(PAUSED_ANNOTATION)
        .hash(&mut hasher);
    object
        .metadata
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    object.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

/// The resources that use a Secret for credentials.
fn referencing(
    store: &reflector::Store<ImageImport>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<ImageImport>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|import| import.namespace() == namespace)
        .filter(|import| {
            import
                .spec
                .credentials_secret_ref
                .as_ref()
                .is_some_and(|r| r.name == name)
        })
        .map(|import| ObjectRef::from_obj(import.as_ref()))
        .collect()
}

/// How a cleanup ended.
enum Cleaned {
    /// Nothing is left in ECS (or left there on purpose): the finalizer may go.
    Done,
    /// More to do in ECS (or a stall): look again as the action says; the finalizer stays.
    Pending(Action),
}

/// Adds the finalizer first; then applies, or cleans up and lets the finalizer go when nothing
/// is left in ECS.
pub async fn reconcile<P: EcsPort>(
    object: Arc<ImageImport>,
    context: Arc<Context<P>>,
) -> Result<Action, Error> {
    let namespace = object.namespace().ok_or(Error::Incomplete("namespace"))?;
    let api: Api<ImageImport> = Api::namespaced(context.client.clone(), &namespace);
    let result = match finalizers::stage(&object) {
        // Adding it changes the resource, which wakes it again.
        Stage::AddFinalizer => finalizers::add(&api, &object)
            .await
            .map(|()| Action::await_change())
            .map_err(Error::from),
        Stage::Apply => apply(&object, &context).await,
        Stage::Cleanup(index) => match cleanup(&object, &context).await {
            Ok(Cleaned::Done) => finalizers::remove(&api, &object, index)
                .await
                .map(|()| Action::await_change())
                .map_err(Error::from),
            Ok(Cleaned::Pending(action)) => Ok(action),
            Err(error) => Err(error),
        },
        Stage::Gone => Ok(Action::await_change()),
    };
    context
        .metrics
        .record_reconcile(result.as_ref().map(|_| ()).map_err(Error::metric_label));
    result
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
    fn count_failure(&self, key: &ObjectRef<ImageImport>) -> u32 {
        let mut failures = lock(&self.failures);
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn reset_failures(&self, key: &ObjectRef<ImageImport>) {
        lock(&self.failures).remove(key);
    }

    /// The account the credentials belong to, asked of STS once per AccessKey.
    async fn account_of(&self, credentials: &CredentialProvider) -> Result<String, Failure> {
        let key_id = credentials
            .credentials()
            .await
            .map_err(|error| failure_from(&EcsError::from(error)))?
            .access_key_id()
            .to_string();
        if let Some(account) = lock(&self.accounts).get(&key_id) {
            return Ok(account.clone());
        }
        // STS judges the credentials as ECS would (an unknown key, a wrong secret): the failure
        // keeps its own code and class.
        let account = self.ecs.account_id(credentials).await.map_err(|error| {
            let mut failure = failure_from(&error);
            failure.message = format!(
                "failed to learn the account of the credentials (STS GetCallerIdentity): {}",
                failure.message
            );
            failure
        })?;
        lock(&self.accounts).insert(key_id, account.clone());
        Ok(account)
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

    /// The resource names no Secret: lets go of the one it named before. Known from memory while
    /// the operator runs; after a restart the Secret watch of the namespace finds it, so it is
    /// started here when the status shows credentials from a Secret were used.
    async fn let_go_of_old_secret(&self, object: &ImageImport) {
        let used_secret = object
            .status
            .as_ref()
            .is_some_and(|status| status.observed_credentials_version.is_some());
        if let (true, Some(namespace)) = (used_secret, object.namespace()) {
            self.secret_watches.ensure(&namespace);
        }
        if let Err(error) = self.secrets_in_use.hold_none(object).await {
            tracing::warn!(
                namespace = object.namespace(),
                name = object.name_any(),
                "could not take the credentials-in-use finalizer off the Secret this resource \
                 named before: {error}"
            );
        }
    }

    /// The resource's credentials: its Secret (re-read every time, cached by resourceVersion), or the
    /// operator's own. Returns the Secret's resourceVersion with them.
    async fn credentials(
        &self,
        object: &ImageImport,
    ) -> Result<(Arc<CredentialProvider>, Option<String>), Failure> {
        let Some(reference) = &object.spec.credentials_secret_ref else {
            self.let_go_of_old_secret(object).await;
            return self
                .default_credentials
                .clone()
                .map(|provider| (provider, None))
                .ok_or_else(|| {
                    let error = CredentialsError::NotConfigured;
                    Failure::minted(error.code(), error.to_string())
                });
        };
        let namespace = object.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let secret = match secrets.get_opt(&reference.name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Failure::minted(
                    "CredentialsSecretNotFound",
                    format!("Secret {namespace}/{} does not exist", reference.name),
                ));
            }
            Err(kube::Error::Api(status)) if status.is_forbidden() => {
                return Err(Failure::minted(
                    "CredentialsSecretForbidden",
                    self.secret_access
                        .forbidden_message("read", &namespace, &reference.name),
                ));
            }
            Err(error) => {
                return Err(Failure::minted(
                    "CredentialsSecretUnreadable",
                    format!(
                        "failed to read Secret {namespace}/{}: {error}",
                        reference.name
                    ),
                ));
            }
        };
        self.secret_watches.ensure(&namespace);
        let secret = match self.secrets_in_use.hold(object, secret).await {
            Ok(secret) => secret,
            Err(kube::Error::Api(status)) if status.is_forbidden() => {
                return Err(Failure::minted(
                    "CredentialsSecretForbidden",
                    self.secret_access.forbidden_message(
                        "put its finalizer on",
                        &namespace,
                        &reference.name,
                    ),
                ));
            }
            Err(error) => {
                return Err(Failure::minted(
                    "CredentialsSecretNotHeld",
                    format!(
                        "failed to put the finalizer {CREDENTIALS_FINALIZER} on Secret \
                         {namespace}/{} (it keeps the Secret while this resource needs it): {error}",
                        reference.name
                    ),
                ));
            }
        };
        let version = secret.resource_version().unwrap_or_default();
        let key = (namespace.clone(), reference.name.clone());
        if let Some((cached_version, provider)) = lock(&self.secret_credentials).get(&key)
            && *cached_version == version
        {
            return Ok((Arc::clone(provider), Some(version)));
        }
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect();
        let credentials = Credentials::from_secret_data(&data).map_err(|error| {
            Failure::minted(
                error.code(),
                format!("Secret {namespace}/{}: {error}", reference.name),
            )
        })?;
        let provider = Arc::new(CredentialProvider::fixed(credentials));
        lock(&self.secret_credentials).insert(key, (version.clone(), Arc::clone(&provider)));
        Ok((provider, Some(version)))
    }

    async fn write_status(
        &self,
        object: &ImageImport,
        status: &ImageImportStatus,
    ) -> Result<(), Error> {
        // Counted even when nothing changes, so a restarted operator knows every phase again.
        if let (Some(namespace), Some(name)) = (
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref(),
        ) {
            self.metrics
                .set_phase(namespace, name, status.phase.map(Phase::as_str));
            match (status.phase, status.progress) {
                (Some(Phase::Importing), Some(percent)) => {
                    self.metrics.set_progress(namespace, name, percent);
                }
                _ => self.metrics.clear_progress(namespace, name),
            }
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
        let was = object.status.as_ref().and_then(|s| s.phase);
        if was != Some(Phase::Available)
            && status.phase == Some(Phase::Available)
            && let (Some(start), Some(done)) = (&status.start_time, &status.completion_time)
            && let Ok(took) = Duration::try_from(done.0.duration_since(start.0))
        {
            self.metrics.observe_import_duration(took);
        }
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

/// The decision's view of a failed ECS call, with the operator's hint appended.
pub(crate) fn failure_from(error: &EcsError) -> Failure {
    let api = error.api();
    let mut message = api.map_or_else(|| error.to_string(), |api| api.message.clone());
    if let Some(hint) = api.and_then(|api| api.hint()) {
        message = format!("{message} ({hint})");
    }
    Failure {
        code: error.code().to_string(),
        message,
        request_id: api.and_then(|api| api.request_id.clone()),
        class: error.class(),
    }
}

/// The decision's view of a resource.
pub(crate) fn decision_resource<'a>(
    object: &'a ImageImport,
    status: &'a ImageImportStatus,
    credentials_version: Option<&'a str>,
    credentials_account: Option<&'a str>,
) -> DecisionResource<'a> {
    let annotated = |key: &str| {
        object
            .annotations()
            .get(key)
            .is_some_and(|value| value == "true")
    };
    DecisionResource {
        uid: object.metadata.uid.as_deref().unwrap_or_default(),
        namespace: object.metadata.namespace.as_deref().unwrap_or_default(),
        name: object.metadata.name.as_deref().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
        spec: &object.spec,
        status,
        paused: annotated(PAUSED_ANNOTATION),
        credentials_version,
        credentials_account,
        abandon: annotated(ABANDON_ANNOTATION),
    }
}

async fn apply<P: EcsPort>(object: &ImageImport, context: &Context<P>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(object);
    let status = object.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    // The credentials, and the account they belong to: the one failure of either is decided on.
    let found = async {
        let (credentials, version) = context.credentials(object).await.map_err(|f| (f, None))?;
        let account = context
            .account_of(&credentials)
            .await
            .map_err(|f| (f, version.clone()))?;
        Ok::<_, (Failure, Option<String>)>((credentials, version, account))
    }
    .await;
    let (credentials, version, account) = match found {
        Ok(found) => found,
        Err((failure, version)) => {
            let resource = decision_resource(object, &status, version.as_deref(), None);
            let failures = context.count_failure(&key);
            let decision = decision::after_failure(
                &resource,
                &status,
                &failure,
                failures,
                &context.timing,
                now,
            );
            return finish(object, context, decision).await;
        }
    };
    let resource = decision_resource(object, &status, version.as_deref(), Some(&account));
    if let Some(decision) = decision::account_guard(&resource, &context.timing, now) {
        context.poller.untrack(&key);
        return finish(object, context, decision).await;
    }

    // Finished imports whose spec and credentials did not change need no ECS call at all.
    // A stall before the import (no image yet) still goes through the decision, which retries
    // errors fixed outside Kubernetes on a slow schedule.
    let settled = (status.phase == Some(Phase::Failed)
        || (status.phase == Some(Phase::Available)
            && conditions::is_true(&status.conditions, conditions::types::READY)))
        && status.image_id.is_some()
        && status.observed_generation == object.metadata.generation
        && status.observed_credentials_version == version
        && !resource.paused;
    if settled {
        context.poller.untrack(&key);
        return Ok(Action::await_change());
    }

    let observed = match patiently(
        object,
        &status,
        "DescribeImages",
        context,
        observe(object, &status, &credentials, context, &key),
    )
    .await
    {
        Ok(Some(observed)) => observed,
        // The poller has not seen this import yet; it wakes the resource after its first round.
        Ok(None) => return Ok(Action::requeue(context.timing.watchdog)),
        Err(error) => {
            let failures = context.count_failure(&key);
            let decision = decision::after_failure(
                &resource,
                &status,
                &failure_from(&error),
                failures,
                &context.timing,
                now,
            );
            return finish(object, context, decision).await;
        }
    };
    let decision = decision::apply(&resource, &observed, &context.timing, now);
    if matches!(
        decision.status.phase,
        Some(Phase::Available | Phase::Failed)
    ) && decision.action == EcsAction::None
    {
        context.poller.untrack(&key);
    }
    if decision.action == EcsAction::Import {
        // Recorded first, so that after a crash during the import the next run looks for the
        // image by its UID tag.
        context.write_status(object, &decision.status).await?;
        context.publish(object, &decision).await;
    }
    let outcome = patiently(
        object,
        &decision.status,
        action_name(&decision.action),
        context,
        execute(object, &resource, &decision, &credentials, context),
    )
    .await;
    match outcome {
        Ok(Some(accepted)) => {
            // Record the IDs before anything else can fail.
            let decision = decision::after_import(
                &resource,
                &decision.status,
                &accepted.image_id,
                &accepted.task_id,
                &context.timing,
                now,
            );
            context.reset_failures(&key);
            context.write_status(object, &decision.status).await?;
            let group = group_key(object, &credentials).await;
            context
                .poller
                .track(key, group, credentials, &accepted.image_id);
            context.publish(object, &decision).await;
            Ok(decision
                .requeue
                .map_or_else(Action::await_change, Action::requeue))
        }
        Ok(None) => {
            context.reset_failures(&key);
            finish(object, context, decision).await
        }
        Err(error) => {
            let failures = context.count_failure(&key);
            let failed = decision::after_failure(
                &resource,
                &decision.status,
                &failure_from(&error),
                failures,
                &context.timing,
                now,
            );
            finish(object, context, failed).await
        }
    }
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
    key: &ObjectRef<ImageImport>,
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
        return find_by_uid(object, credentials, context).await.map(Some);
    };
    let image = if status.phase == Some(Phase::Importing) {
        let group = group_key(object, credentials).await;
        match context
            .poller
            .track(key.clone(), group, Arc::clone(credentials), image_id)
        {
            Some(image) => image,
            None => return Ok(None),
        }
    } else {
        describe_image(&*context.ecs, credentials, region, image_id).await?
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
        observed.task = describe_task(&*context.ecs, credentials, region, task_id).await?;
    }
    Ok(Some(observed))
}

/// One image by ID, in any status.
pub(crate) async fn describe_image<P: EcsPort>(
    ecs: &P,
    credentials: &CredentialProvider,
    region: &str,
    image_id: &str,
) -> Result<Lookup<decision::ImageView>, EcsError> {
    let request = DescribeImagesRequest {
        region_id: region.to_string(),
        image_ids: vec![image_id.to_string()],
        statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
        ..Default::default()
    };
    let response = ecs.describe_images(credentials, &request).await?;
    Ok(response
        .images
        .iter()
        .find(|image| image.image_id == image_id)
        .map_or(Lookup::Missing, |image| Lookup::Found(image_view(image))))
}

/// One task with its progress and the error of a failed task.
pub(crate) async fn describe_task<P: EcsPort>(
    ecs: &P,
    credentials: &CredentialProvider,
    region: &str,
    task_id: &str,
) -> Result<Lookup<TaskView>, EcsError> {
    let request = DescribeTaskAttributeRequest {
        region_id: region.to_string(),
        task_id: task_id.to_string(),
    };
    match ecs.describe_task_attribute(credentials, &request).await {
        Ok(task) => Ok(Lookup::Found(TaskView {
            id: task.task_id.clone(),
            status: task.status(),
            progress: task.progress_percent(),
            error: task
                .first_error()
                .map(|(code, message)| (code.to_string(), message.to_string())),
        })),
        Err(error) if error.code() == "InvalidTaskId.NotFound" => Ok(Lookup::Missing),
        Err(error) => Err(error),
    }
}

/// Looks for an image carrying this resource's UID tag, and its import task.
async fn find_by_uid<P: EcsPort>(
    object: &ImageImport,
    credentials: &CredentialProvider,
    context: &Context<P>,
) -> Result<Observed, EcsError> {
    let region = &object.spec.region_id;
    let request = DescribeImagesRequest {
        region_id: region.clone(),
        image_owner_alias: Some("self".into()),
        statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
        tags: vec![TagFilter {
            key: UID_TAG.to_string(),
            value: object.metadata.uid.clone(),
        }],
        ..Default::default()
    };
    let response = context.ecs.describe_images(credentials, &request).await?;
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    let Some(image) = response
        .images
        .iter()
        .find(|image| image.tag(UID_TAG) == Some(uid))
    else {
        return Ok(Observed {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        });
    };
    let tasks = DescribeTasksRequest {
        region_id: region.clone(),
        task_action: Some("ImportImage".into()),
        resource_ids: vec![image.image_id.clone()],
        page_size: Some(10),
        ..Default::default()
    };
    let task = context
        .ecs
        .describe_tasks(credentials, &tasks)
        .await?
        .tasks
        .into_iter()
        .find(|task| task.resource_id == image.image_id)
        .map_or(Lookup::NotAsked, |task| {
            Lookup::Found(TaskView {
                id: task.task_id.clone(),
                status: task.status(),
                progress: None,
                error: None,
            })
        });
    Ok(Observed {
        image: Lookup::Found(image_view(image)),
        task,
    })
}

/// IDs ECS returned for an accepted import.
struct Accepted {
    image_id: String,
    task_id: String,
}

/// The `ImportImage` request a resource stands for.
pub fn import_request(resource: &DecisionResource<'_>) -> ImportImageRequest {
    let spec = resource.spec;
    let arm64 = spec.architecture == Some(crate::api::image_import::Architecture::Arm64);
    ImportImageRequest {
        region_id: spec.region_id.clone(),
        image_name: spec.image_name.clone(),
        description: spec.description.clone(),
        architecture: spec.architecture.map(|v| v.as_str().to_string()),
        os_type: spec.os_type.map(|v| v.as_str().to_string()),
        platform: spec.platform.map(|v| v.as_str().to_string()),
        // arm64 boots with UEFI only; say so rather than rely on ECS's default.
        boot_mode: spec
            .boot_mode
            .map(|v| v.as_str().to_string())
            .or_else(|| arm64.then(|| "UEFI".to_string())),
        license_type: spec.license_type.map(|v| v.as_str().to_string()),
        role_name: spec.role_name.clone(),
        resource_group_id: spec.resource_group_id.clone(),
        detection_strategy: spec.detection_strategy.map(|v| v.as_str().to_string()),
        storage_location_arn: None,
        features: ImageFeatures {
            nvme_support: spec
                .features
                .as_ref()
                .and_then(|f| f.nvme_support)
                .map(|v| v.as_str().to_string()),
            imds_support: spec
                .features
                .as_ref()
                .and_then(|f| f.imds_support)
                .map(|v| v.as_str().to_string()),
        },
        disk_device_mappings: spec
            .disk_device_mappings
            .iter()
            .map(|disk| DiskDeviceMapping {
                oss_bucket: disk.oss_bucket.clone(),
                oss_object: disk.oss_object.clone(),
                format: disk.format.map(|v| v.as_str().to_string()),
                disk_image_size: disk.disk_image_size,
                device: disk.device.clone(),
            })
            .collect(),
        tags: decision::desired_tags(resource)
            .into_iter()
            .map(|(key, value)| Tag::new(key, value))
            .collect(),
        client_token: Some(decision::client_token(resource.uid)),
        dry_run: false,
    }
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

/// The ECS action behind a decided action, as people know it.
fn action_name(action: &EcsAction) -> &'static str {
    match action {
        EcsAction::None => "",
        EcsAction::Import => "ImportImage",
        EcsAction::UpdateImage(_) => "ModifyImageAttribute",
        EcsAction::CancelTask { .. } => "CancelTask",
        EcsAction::DeleteImage { .. } => "DeleteImage",
    }
}

async fn execute<P: EcsPort>(
    object: &ImageImport,
    resource: &DecisionResource<'_>,
    decision: &Decision,
    credentials: &CredentialProvider,
    context: &Context<P>,
) -> Result<Option<Accepted>, EcsError> {
    let region = object.spec.region_id.clone();
    match &decision.action {
        EcsAction::None => Ok(None),
        EcsAction::Import => {
            // No dry run first: ImportImage answers the same errors, and the ClientToken makes a
            // retry (an answer lost to a crash or the network) return the same image.
            let request = import_request(resource);
            let accepted = context.ecs.import_image(credentials, &request).await?;
            tracing::info!(name = %object.name_any(), image = %accepted.image_id, task = %accepted.task_id, "ECS accepted the import");
            Ok(Some(Accepted {
                image_id: accepted.image_id,
                task_id: accepted.task_id,
            }))
        }
        EcsAction::UpdateImage(update) => update_image(&region, update, credentials, &*context.ecs)
            .await
            .map(|()| None),
        EcsAction::CancelTask { task_id } => {
            let request = CancelTaskRequest {
                region_id: region,
                task_id: task_id.clone(),
            };
            context
                .ecs
                .cancel_task(credentials, &request)
                .await
                .map(|_| None)
        }
        EcsAction::DeleteImage { image_id } => {
            let request = DeleteImageRequest {
                region_id: region,
                image_id: image_id.clone(),
                force: false,
            };
            context
                .ecs
                .delete_image(credentials, &request)
                .await
                .map(|_| None)
        }
    }
}

/// Applies name, description and tag changes to an image.
pub(crate) async fn update_image<P: EcsPort>(
    region: &str,
    update: &ImageUpdate,
    credentials: &CredentialProvider,
    ecs: &P,
) -> Result<(), EcsError> {
    if update.modifies_attributes() {
        let request = ModifyImageAttributeRequest {
            region_id: region.to_string(),
            image_id: update.image_id.clone(),
            image_name: update.name.clone(),
            description: update.description.clone(),
        };
        ecs.modify_image_attribute(credentials, &request).await?;
    }
    if !update.set_tags.is_empty() {
        let request = TagResourcesRequest {
            region_id: region.to_string(),
            resource_type: RESOURCE_TYPE_IMAGE.into(),
            resource_ids: vec![update.image_id.clone()],
            tags: update
                .set_tags
                .iter()
                .map(|(key, value)| Tag::new(key.clone(), value.clone()))
                .collect(),
        };
        ecs.tag_resources(credentials, &request).await?;
    }
    if !update.remove_tags.is_empty() {
        let request = UntagResourcesRequest {
            region_id: region.to_string(),
            resource_type: RESOURCE_TYPE_IMAGE.into(),
            resource_ids: vec![update.image_id.clone()],
            tag_keys: update.remove_tags.clone(),
            all: false,
        };
        ecs.untag_resources(credentials, &request).await?;
    }
    Ok(())
}

async fn cleanup<P: EcsPort>(object: &ImageImport, context: &Context<P>) -> Result<Cleaned, Error> {
    let key = ObjectRef::from_obj(object);
    context.poller.untrack(&key);
    let status = object.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let pending = |decision: &Decision| {
        Cleaned::Pending(Action::requeue(
            decision.requeue.unwrap_or(context.timing.poll_interval),
        ))
    };
    if object
        .annotations()
        .get(ABANDON_ANNOTATION)
        .is_some_and(|value| value == "true")
    {
        let resource = decision_resource(object, &status, None, None);
        let decision = decision::abandon(&resource);
        context.publish(object, &decision).await;
        context.forget(object).await?;
        return Ok(Cleaned::Done);
    }
    let retain = object.spec.deletion_policy == crate::api::image_import::DeletionPolicy::Retain;
    let credentials = if retain {
        None
    } else {
        Some(context.credentials(object).await)
    };
    let (credentials, version) = match credentials {
        None => {
            let resource = decision_resource(object, &status, None, None);
            let decision = decision::cleanup(&resource, &Observed::default(), &context.timing, now);
            context.publish(object, &decision).await;
            context.forget(object).await?;
            return Ok(Cleaned::Done);
        }
        Some(Ok(found)) => found,
        Some(Err(failure)) => {
            let resource = decision_resource(object, &status, None, None);
            let decision = decision::after_failure(
                &resource,
                &deleting(&status),
                &failure,
                1,
                &context.timing,
                now,
            );
            context.write_status(object, &decision.status).await?;
            context.publish(object, &decision).await;
            return Ok(pending(&decision));
        }
    };
    let account = match context.account_of(&credentials).await {
        Ok(account) => account,
        Err(failure) => {
            let resource = decision_resource(object, &status, version.as_deref(), None);
            let decision = decision::after_failure(
                &resource,
                &deleting(&status),
                &failure,
                context.count_failure(&key),
                &context.timing,
                now,
            );
            context.write_status(object, &decision.status).await?;
            context.publish(object, &decision).await;
            return Ok(pending(&decision));
        }
    };
    let deleting_status = deleting(&status);
    let guarded = decision_resource(object, &deleting_status, version.as_deref(), Some(&account));
    if let Some(decision) = decision::account_guard(&guarded, &context.timing, now) {
        context.write_status(object, &decision.status).await?;
        context.publish(object, &decision).await;
        return Ok(pending(&decision));
    }
    let resource = decision_resource(object, &status, version.as_deref(), Some(&account));
    let observed = match observe_for_cleanup(object, &status, &credentials, context).await {
        Ok(observed) => observed,
        Err(error) => {
            let failures = context.count_failure(&key);
            let decision = decision::after_failure(
                &resource,
                &deleting(&status),
                &failure_from(&error),
                failures,
                &context.timing,
                now,
            );
            context.write_status(object, &decision.status).await?;
            context.publish(object, &decision).await;
            return Ok(pending(&decision));
        }
    };
    let decision = decision::cleanup(&resource, &observed, &context.timing, now);
    if decision.finalize != Finalize::Now {
        context.write_status(object, &decision.status).await?;
    }
    context.publish(object, &decision).await;
    let outcome = patiently(
        object,
        &decision.status,
        action_name(&decision.action),
        context,
        execute(object, &resource, &decision, &credentials, context),
    )
    .await;
    match outcome {
        Ok(_) => match decision.finalize {
            Finalize::Now | Finalize::AfterAction => {
                context.reset_failures(&key);
                context.forget(object).await?;
                Ok(Cleaned::Done)
            }
            Finalize::No => Ok(pending(&decision)),
        },
        Err(error) => {
            let failures = context.count_failure(&key);
            let failed = decision::after_failure(
                &resource,
                &decision.status,
                &failure_from(&error),
                failures,
                &context.timing,
                now,
            );
            context.write_status(object, &failed.status).await?;
            context.publish(object, &failed).await;
            Ok(pending(&failed))
        }
    }
}

fn deleting(status: &ImageImportStatus) -> ImageImportStatus {
    ImageImportStatus {
        phase: Some(Phase::Deleting),
        ..status.clone()
    }
}

/// Gathers what ECS reports for `cleanup`: the image (by ID, or by UID tag) and its task.
async fn observe_for_cleanup<P: EcsPort>(
    object: &ImageImport,
    status: &ImageImportStatus,
    credentials: &CredentialProvider,
    context: &Context<P>,
) -> Result<Observed, EcsError> {
    let region = &object.spec.region_id;
    let Some(image_id) = &status.image_id else {
        return find_by_uid(object, credentials, context).await;
    };
    let image = describe_image(&*context.ecs, credentials, region, image_id).await?;
    let task = match &status.import_task_id {
        Some(task_id) => {
            let request = DescribeTasksRequest {
                region_id: region.clone(),
                task_ids: vec![task_id.clone()],
                ..Default::default()
            };
            let tasks = context.ecs.describe_tasks(credentials, &request).await?;
            tasks
                .tasks
                .into_iter()
                .find(|task| task.task_id == *task_id)
                .map_or(Lookup::Missing, |task| {
                    Lookup::Found(TaskView {
                        id: task.task_id.clone(),
                        status: task.status(),
                        progress: None,
                        error: None,
                    })
                })
        }
        None => Lookup::NotAsked,
    };
    Ok(Observed { image, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_import::FINALIZER;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::api::ObjectMeta;

    #[test]
    fn the_cache_keeps_what_decisions_read_and_drops_the_rest() -> Result<(), serde_json::Error> {
        let mut object: ImageImport = serde_json::from_value(serde_json::json!({
            "apiVersion": "ecs.image-import.dev/v1alpha1",
            "kind": "ImageImport",
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "generation": 3},
            "spec": {
                "regionId": "cn-hangzhou",
                "diskDeviceMappings": [{"ossBucket": "b", "ossObject": "o.qcow2"}]
            }
        }))?;
        object.metadata = ObjectMeta {
            annotations: Some(
                [
                    (PAUSED_ANNOTATION.to_owned(), "true".to_owned()),
                    (
                        "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                        "{\"spec\":{}}".to_owned(),
                    ),
                ]
                .into(),
            ),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("kubectl".to_owned()),
                ..ManagedFieldsEntry::default()
            }]),
            finalizers: Some(vec![FINALIZER.to_owned()]),
            ..object.metadata
        };
        slim_for_cache(&mut object);
        assert!(object.managed_fields().is_empty());
        assert_eq!(
            object.annotations().keys().collect::<Vec<_>>(),
            vec![PAUSED_ANNOTATION]
        );
        assert_eq!(object.finalizers(), [FINALIZER.to_owned()]);
        assert_eq!(object.metadata.generation, Some(3));
        assert_eq!(object.spec.region_id, "cn-hangzhou");
        Ok(())
    }
}
