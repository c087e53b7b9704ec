//! Watches of credentials Secret metadata, so a rotated Secret is used at once — started namespace
//! by namespace, only where the operator has just read a Secret, because Secret access is granted
//! per namespace (the chart's `credentials.secretNamespaces`, or a RoleBinding a namespace admin
//! makes by hand) and a cluster-wide Secret watch would need the cluster-wide access the chart no
//! longer grants.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

/// Where touched Secrets go: the scope a controller watches, and its channel.
type Route = (Option<String>, UnboundedSender<PartialObjectMeta<Secret>>);

/// What the watch of a namespace has seen: whether it has listed every Secret, and the metadata
/// of each, by name.
#[derive(Default)]
struct Seen {
    listed: bool,
    secrets: HashMap<String, PartialObjectMeta<Secret>>,
}

/// The Secret watches of one controller run, shared by the controllers of every watched scope.
pub struct SecretWatches {
    client: Client,
    started: Mutex<HashSet<String>>,
    /// By namespace: lets a reconcile skip the GET of a Secret whose metadata shows no change.
    seen: Mutex<HashMap<String, Seen>>,
    routes: Mutex<Vec<Route>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SecretWatches {
    /// No watch yet.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            started: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
            routes: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The Secrets touched in `scope` (a namespace, or every one for `None`), from the watches
    /// started so far and later.
    pub fn subscribe(&self, scope: Option<String>) -> UnboundedReceiver<PartialObjectMeta<Secret>> {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        lock(&self.routes).push((scope, sender));
        receiver
    }

    /// Starts watching Secret metadata in `namespace`, once; call it after a Secret there was
    /// read, which shows the operator may.
    pub fn ensure(self: &std::sync::Arc<Self>, namespace: &str) {
        if !lock(&self.started).insert(namespace.to_string()) {
            return;
        }
        tracing::debug!(namespace, "watching credentials Secrets");
        let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(self.client.clone(), namespace);
        let watches = std::sync::Arc::clone(self);
        let namespace = namespace.to_string();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Init) => {
                        // A fresh listing: what was seen may be gone; known again at InitDone.
                        lock(&watches.seen).insert(namespace.clone(), Seen::default());
                    }
                    Ok(watcher::Event::InitDone) => {
                        lock(&watches.seen)
                            .entry(namespace.clone())
                            .or_default()
                            .listed = true;
                    }
                    Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                        lock(&watches.seen)
                            .entry(namespace.clone())
                            .or_default()
                            .secrets
                            .insert(secret.name_any(), secret.clone());
                        watches.route(secret);
                    }
                    Ok(watcher::Event::Delete(secret)) => {
                        if let Some(seen) = lock(&watches.seen).get_mut(&namespace) {
                            seen.secrets.remove(&secret.name_any());
                        }
                        watches.route(secret);
                    }
                    // The watcher retries with backoff; until it lists again, trust nothing.
                    Err(_) => {
                        if let Some(seen) = lock(&watches.seen).get_mut(&namespace) {
                            seen.listed = false;
                        }
                    }
                }
            }
        });
        lock(&self.tasks).push(task);
    }

    /// The metadata of Secret `name` in `namespace` as its watch last saw it; `None` when no watch
    /// there has listed every Secret (then only a GET knows), or the watch has not seen it.
    pub fn seen(&self, namespace: &str, name: &str) -> Option<PartialObjectMeta<Secret>> {
        let seen = lock(&self.seen);
        let namespace = seen.get(namespace).filter(|seen| seen.listed)?;
        namespace.secrets.get(name).cloned()
    }

    fn route(&self, secret: PartialObjectMeta<Secret>) {
        let namespace = secret.namespace();
        for (scope, sender) in lock(&self.routes).iter() {
            if scope.is_none() || *scope == namespace {
                let _ = sender.unbounded_send(secret.clone());
            }
        }
    }

    /// Ends every watch.
    pub fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}
