//! Watches of credentials Secret metadata, so a rotated Secret is used at once — started namespace
//! by namespace, only where the operator has just read a Secret, because Secret access is granted
//! per namespace (the chart's `credentials.secretNamespaces`, or a RoleBinding a namespace admin
//! makes by hand) and a cluster-wide Secret watch would need the cluster-wide access the chart no
//! longer grants.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

/// Where touched Secrets go: the scope a controller watches, and its channel.
type Route = (Option<String>, UnboundedSender<PartialObjectMeta<Secret>>);

/// The Secret watches of one controller run, shared by the controllers of every watched scope.
pub struct SecretWatches {
    client: Client,
    started: Mutex<HashSet<String>>,
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
        let task = tokio::spawn(async move {
            let mut touched = watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .boxed();
            while let Some(event) = touched.next().await {
                if let Ok(secret) = event {
                    watches.route(secret);
                }
            }
        });
        lock(&self.tasks).push(task);
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
