//! Watch streams: newline-delimited JSON events, resumable from any retained resource version.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::resource::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventKind, Store};
use crate::table;

/// Query parameters of a watch.
pub(crate) struct WatchParams {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
    /// `includeObject` when the client asked for Tables (`kubectl get -w`).
    pub table: Option<String>,
    /// The client asked for PartialObjectMetadata (kube-rs's `metadata_watcher`).
    pub metadata_only: bool,
    pub bookmark_interval: Duration,
}

/// Lines buffered per watch before the writer waits for the client.
const WATCH_BUFFER: usize = 256;

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end && let Some(map) = metadata.as_object_mut() {
        map.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    line(
        "BOOKMARK",
        &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}),
    )
}

struct Filter {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    table: Option<String>,
    metadata_only: bool,
    /// Column definitions go with the first Table event only, as the real server sends them.
    headers_sent: AtomicBool,
}

impl Filter {
    fn encode(&self, kind: &str, served: &Value) -> Bytes {
        let Some(include) = &self.table else {
            if self.metadata_only {
                return line(kind, &table::partial_metadata(served));
            }
            return line(kind, served);
        };
        let meta = json!({"resourceVersion": served.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
        let mut rendered = table::render(&self.rt, std::slice::from_ref(served), meta, include);
        if self.headers_sent.swap(true, Ordering::Relaxed)
            && let Some(map) = rendered.as_object_mut()
        {
            map.insert("columnDefinitions".into(), json!([]));
        }
        line(kind, &rendered)
    }

    fn matches(&self, served: &Value) -> bool {
        self.labels.matches(served) && self.fields.matches(served)
    }

    /// The event as this watcher sees it: a change into or out of its selection becomes
    /// ADDED or DELETED, as in Kubernetes.
    fn translate(&self, event: &Event) -> Option<Bytes> {
        if event.storage != self.rt.storage
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != event.namespace)
        {
            return None;
        }
        let served = resource::present(&self.rt, &event.object);
        let now_matches = self.matches(&served);
        let kind = match event.kind {
            EventKind::Added | EventKind::Deleted => now_matches.then_some(event.kind),
            EventKind::Modified => {
                let was = event
                    .old
                    .as_ref()
                    .is_some_and(|o| self.matches(&resource::present(&self.rt, o)));
                match (was, now_matches) {
                    (true, true) => Some(EventKind::Modified),
                    (false, true) => Some(EventKind::Added),
                    (true, false) => Some(EventKind::Deleted),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.encode(kind.as_str(), &served))
    }
}

/// Starts a watch; the response body streams until the timeout, the client leaves, or the
/// watches are closed.
pub(crate) fn start(
    store: Arc<Store>,
    rt: Arc<ResourceType>,
    params: WatchParams,
) -> Result<Body, ApiError> {
    let filter = Filter {
        rt: rt.clone(),
        namespace: params.namespace.clone(),
        labels: params.labels.clone(),
        fields: params.fields.clone(),
        table: params.table.clone(),
        metadata_only: params.metadata_only,
        headers_sent: AtomicBool::new(false),
    };
    if params.send_initial_events {
        if !params.bookmarks {
            return Err(ApiError::unprocessable(
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        if params.resource_version_match.as_deref() != Some("NotOlderThan") {
            return Err(ApiError::unprocessable(
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
    }
    let mut initial: Vec<Bytes> = Vec::new();
    let events = {
        let mut state = store.lock();
        let from = params
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0");
        let replay_from = match (from, params.send_initial_events) {
            (Some(rv), false) => Some(rv.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: \"{rv}\": must be a positive integer"
                ))
            })?),
            _ => None,
        };
        match replay_from {
            Some(rv) => match state.events_since(rv) {
                Ok(events) => {
                    initial.extend(events.iter().filter_map(|e| filter.translate(e)));
                }
                Err(gone) => {
                    let body = line("ERROR", &gone.to_status());
                    return Ok(Body::from(body));
                }
            },
            None => {
                let page = state.list(
                    &rt,
                    params.namespace.as_deref(),
                    &params.labels,
                    &params.fields,
                    None,
                    None,
                )?;
                initial.extend(page.items.iter().map(|o| filter.encode("ADDED", o)));
                if params.send_initial_events {
                    initial.push(bookmark(&rt, page.resource_version, true));
                }
            }
        }
        state.subscribe()
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(WATCH_BUFFER);
    tokio::spawn(pump(store, filter, events, tx, initial, params));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Body::from_stream(stream))
}

async fn pump(
    store: Arc<Store>,
    filter: Filter,
    mut events: mpsc::UnboundedReceiver<Arc<Event>>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    initial: Vec<Bytes>,
    params: WatchParams,
) {
    for bytes in initial {
        if tx.send(Ok(bytes)).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(params.timeout);
    tokio::pin!(deadline);
    let start = tokio::time::Instant::now() + params.bookmark_interval;
    let mut ticks = tokio::time::interval_at(start, params.bookmark_interval);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                if let Some(bytes) = filter.translate(&event)
                    && tx.send(Ok(bytes)).await.is_err()
                {
                    return;
                }
            }
            _ = ticks.tick(), if params.bookmarks => {
                // Every event up to `rv` is already queued (both happen under the store lock), so
                // draining the queue first keeps the bookmark after the events it covers.
                let rv = store.lock().resource_version();
                loop {
                    match events.try_recv() {
                        Ok(event) => {
                            if let Some(bytes) = filter.translate(&event)
                                && tx.send(Ok(bytes)).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                if tx.send(Ok(bookmark(&filter.rt, rv, false))).await.is_err() {
                    return;
                }
            }
            () = &mut deadline => return,
            () = tx.closed() => return,
        }
    }
}
