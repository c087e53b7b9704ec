//! The watch wiring of `run`: one kube-runtime controller per watched scope (a namespace, or all),
//! fed by the ImageImport watch (through a slimmed cache and a predicate that ignores our own
//! status writes), the credentials Secret watches, the poller's wake-ups and the idle tick; and the
//! sweeper that takes the credentials-in-use finalizer off Secrets no resource names any more.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::poller::Poller;
use super::port::EcsPort;
use super::reconciler::{Context, Settings, error_policy, reconcile};
use super::secrets_in_use::{self, SecretKey};
use crate::api::image_import::{ImageImport, PAUSED_ANNOTATION};

/// Runs the controller until `shutdown` completes.
pub async fn run<P: EcsPort>(
    client: Client,
    ecs: Arc<P>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    let upload_wakes = settings
        .uploads
        .as_ref()
        .map(|uploads| tokio::spawn(forward_upload_wakes(Arc::clone(uploads), wake_tx.clone())));
    let poller = Arc::new(
        Poller::new(Arc::clone(&ecs), wake_tx, settings.timing.poll_interval)
            .with_resync(settings.timing.resync_interval),
    );
    let context = Arc::new(Context::new(
        client.clone(),
        ecs,
        Arc::clone(&poller),
        &settings,
    ));
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
    if let Some(task) = upload_wakes {
        task.abort();
    }
    // A replica that stops leading (or shuts down) uploads nothing more: the next leader resumes
    // from what status recorded, and two transfers of one resource never overlap.
    if let Some(uploads) = &settings.uploads {
        for key in uploads.running() {
            uploads.stop(&key).await;
        }
    }
    context.secret_watches.stop();
    probes.abort();
    ticks.iter().for_each(tokio::task::JoinHandle::abort);
    liveness.stopped();
    settings.watching.store(false, Ordering::SeqCst);
}

/// Wakes the resource whose transfer moved (a part done, finished, failed); after a lag, every
/// resource with a running transfer.
async fn forward_upload_wakes(
    uploads: Arc<crate::upload::Transfers>,
    wakes: UnboundedSender<ObjectRef<ImageImport>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut moved = uploads.wakes();
    loop {
        let keys = match moved.recv().await {
            Ok(key) => vec![key],
            Err(RecvError::Lagged(_)) => uploads.running(),
            Err(RecvError::Closed) => return,
        };
        for key in keys {
            if let Some((namespace, name)) = super::engine::upload::owner_of(&key) {
                let _ = wakes.unbounded_send(ObjectRef::new(name).within(namespace));
            }
        }
    }
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
