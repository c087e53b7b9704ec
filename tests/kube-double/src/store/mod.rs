//! The object store: one resource version counter for all kinds, a bounded event history, reads,
//! and the side effects of committed changes (CRD registration, terminating namespaces).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

mod write;

use crate::error::ApiError;

use crate::resource::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};

/// Namespaces every fresh cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history for watch resumption.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub kind: EventKind,
    pub storage: String,
    pub namespace: String,
    /// The stored object after the change (for DELETED: its last state).
    pub object: Value,
    /// The stored object before the change, so selector watches can turn changes into ADDED/DELETED.
    pub old: Option<Value>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subresource {
    Main,
    Status,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "",
            Self::Status => "status",
        }
    }
}

/// Request options shared by writes.
#[derive(Debug, Clone)]
pub(crate) struct WriteCtx {
    pub manager: String,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being pruned.
    pub strict: bool,
    pub dry_run: bool,
    pub subresource: Subresource,
}

/// How the managed fields of a write are recorded.
#[derive(Debug, Clone)]
pub(crate) enum Ownership {
    /// An update operation: the manager owns whatever it changed.
    Update,
    /// Server-side apply computed the entries already.
    Apply(Value),
}

/// A page of a list.
pub(crate) struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Result of a delete: the object (marked or removed) or, for built-ins removed at once, a Status.
pub(crate) enum Deleted {
    Object(Value),
    Status(Value),
}

/// The whole cluster state behind one lock; no `await` ever happens while it is held.
#[derive(Debug)]
pub(crate) struct State {
    rv: u64,
    types: Vec<Arc<ResourceType>>,
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Versions up to this one are no longer in the history: resuming from them is `410 Gone`.
    compacted: u64,
    watchers: Vec<mpsc::UnboundedSender<Arc<Event>>>,
}

/// Shared handle on the state.
#[derive(Debug)]
pub(crate) struct Store(Mutex<State>);

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self(Mutex::new(State::new(history_limit)))
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn uid() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| match i {
            6 => format!("{:02x}", (b & 0x0f) | 0x40),
            8 => format!("{:02x}", (b & 0x3f) | 0x80),
            _ => format!("{b:02x}"),
        })
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Current time as the API server writes timestamps (RFC 3339, seconds).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Turns `value` into an object if it is not one, and returns its map.
pub(crate) fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        // The assignment above makes this arm impossible; the borrow checker needs a diverging arm.
        _ => unreachable!("value was just made an object"),
    }
}

/// `metadata` of an object, created empty if missing.
pub(crate) fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    ensure_object(
        ensure_object(obj)
            .entry("metadata")
            .or_insert_with(|| json!({})),
    )
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    format!("{rv}|{ns}|{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.splitn(3, '|');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, parts.next()?.to_owned(), parts.next()?.to_owned()))
}

impl State {
    fn new(history_limit: usize) -> Self {
        let mut state = Self {
            rv: 0,
            types: resource::builtins().into_iter().map(Arc::new).collect(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            watchers: Vec::new(),
        };
        let created = now();
        for ns in INITIAL_NAMESPACES {
            state.rv += 1;
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns, "uid": uid(), "creationTimestamp": created,
                    "resourceVersion": state.rv.to_string(),
                    "labels": {"kubernetes.io/metadata.name": ns},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            let storage = state
                .find_type("", "v1", "namespaces")
                .map(|t| t.storage.clone())
                .unwrap_or_default();
            state
                .objects
                .entry(storage)
                .or_default()
                .insert((String::new(), ns.to_owned()), obj);
        }
        state
    }

    /// All served resource types.
    pub fn types(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// The type served at `group/version/plural`.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    fn type_for_storage(&self, storage: &str) -> Option<Arc<ResourceType>> {
        self.types.iter().find(|t| t.storage == storage).cloned()
    }

    /// The latest resource version.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Registers a watcher; every later change is sent to it until [`State::close_watches`].
    pub fn subscribe(&mut self) -> mpsc::UnboundedReceiver<Arc<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(tx);
        rx
    }

    /// Ends every open watch (their streams finish cleanly, as when the server closes them).
    pub fn close_watches(&mut self) {
        self.watchers.clear();
    }

    /// The retained events after `rv`, or `410 Gone` when some of them were compacted away.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                self.compacted + 1
            )));
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    fn bucket(&self, storage: &str) -> Option<&BTreeMap<(String, String), Value>> {
        self.objects.get(storage)
    }

    fn stored(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.bucket(&rt.storage)?
            .get(&(ns.to_owned(), name.to_owned()))
    }

    /// Records a change, notifies watchers and runs the side effects of CRDs and namespaces.
    fn commit(
        &mut self,
        rt: &ResourceType,
        kind: EventKind,
        mut obj: Value,
        old: Option<Value>,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        metadata_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let ns = meta_str(&obj, "namespace").to_owned();
        let key = (ns.clone(), meta_str(&obj, "name").to_owned());
        let bucket = self.objects.entry(rt.storage.clone()).or_default();
        match kind {
            EventKind::Added | EventKind::Modified => {
                bucket.insert(key, obj.clone());
            }
            EventKind::Deleted => {
                bucket.remove(&key);
            }
        }
        let event = Arc::new(Event {
            rv,
            kind,
            storage: rt.storage.clone(),
            namespace: ns,
            object: obj.clone(),
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        self.watchers.retain(|w| w.send(event.clone()).is_ok());
        if rt.kind == "CustomResourceDefinition" {
            self.crd_changed(kind, &obj);
        }
        if kind == EventKind::Deleted && rt.namespaced {
            self.reap_namespaces();
        }
        obj
    }

    fn crd_changed(&mut self, kind: EventKind, crd: &Value) {
        let storage = format!(
            "{}/{}",
            crd.pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or(""),
            crd.pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        let old_type = self.type_for_storage(&storage);
        self.types.retain(|t| t.storage != storage || !t.custom);
        match kind {
            EventKind::Deleted => {
                // Kubernetes deletes the CRs first; here they go at once, finalizers or not.
                if let Some(rt) = old_type {
                    let keys: Vec<Value> = self
                        .bucket(&storage)
                        .map(|b| b.values().cloned().collect())
                        .unwrap_or_default();
                    for obj in keys {
                        self.commit(&rt, EventKind::Deleted, obj.clone(), Some(obj));
                    }
                }
                self.objects.remove(&storage);
            }
            EventKind::Added | EventKind::Modified => {
                if let Ok(types) = resource::from_crd(crd) {
                    self.types.extend(types.into_iter().map(Arc::new));
                }
            }
        }
    }

    /// Removes namespaces being deleted once nothing is left in them.
    fn reap_namespaces(&mut self) {
        let Some(ns_type) = self.find_type("", "v1", "namespaces") else {
            return;
        };
        let terminating: Vec<Value> = self
            .bucket(&ns_type.storage)
            .map(|b| {
                b.values()
                    .filter(|n| n.pointer("/metadata/deletionTimestamp").is_some())
                    .filter(|n| finalizers(n).is_empty())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for ns in terminating {
            let name = meta_str(&ns, "name").to_owned();
            let empty = self
                .objects
                .iter()
                .all(|(_, bucket)| bucket.keys().all(|(n, _)| *n != name));
            if empty {
                self.commit(&ns_type, EventKind::Deleted, ns.clone(), Some(ns));
            }
        }
    }

    /// The served object, or `404`.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.stored(rt, ns, name)
            .map(|o| resource::present(rt, o))
            .ok_or_else(|| rt.not_found(name))
    }

    /// One page of the objects of `rt` (in `ns`, or everywhere for `None`).
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let mut resource_version = self.rv;
        let mut after: Option<(String, String)> = None;
        if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
            let (rv, t_ns, t_name) = decode_continue(token)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if rv < self.compacted {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            resource_version = rv;
            after = Some((t_ns, t_name));
        }
        let matching: Vec<(&(String, String), &Value)> = self
            .bucket(&rt.storage)
            .map(|b| {
                b.iter()
                    .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
                    .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
                    .filter(|(_, o)| {
                        let served = resource::present(rt, o);
                        labels.matches(&served) && fields.matches(&served)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<Value> = matching
            .iter()
            .take(limit)
            .map(|(_, o)| resource::present(rt, o))
            .collect();
        let (continue_token, remaining) = if matching.len() > limit {
            let last = matching.get(limit - 1).map(|(k, _)| (*k).clone());
            (
                last.map(|(n, name)| encode_continue(resource_version, &n, &name)),
                Some(matching.len() - limit),
            )
        } else {
            (None, None)
        };
        Ok(ListPage {
            items: page,
            resource_version,
            continue_token,
            remaining,
        })
    }

    /// The stored form of an object.
    pub fn stored_clone(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.stored(rt, ns, name).cloned()
    }

    /// The served form of an object, if it exists.
    pub fn current(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.stored(rt, ns, name).map(|o| resource::present(rt, o))
    }
}
