//! A simplified model of `metadata.managedFields` and server-side apply.
//!
//! Fields are tracked as leaf paths through maps; lists are atomic (owned and replaced whole,
//! even those Kubernetes treats as `x-kubernetes-list-type: map` or `set`).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::Cause;
use crate::store::{WriteCtx, ensure_object, metadata_mut, now};

type Path = Vec<String>;

/// Metadata fields that field managers can own; the rest of `metadata` belongs to the server.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    paths: BTreeSet<Path>,
}

fn leaf_paths(value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                leaf_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

/// The paths a manager can own in `obj`.
fn tracked_paths(obj: &Value) -> BTreeSet<Path> {
    let mut filtered = obj.clone();
    let map = ensure_object(&mut filtered);
    map.remove("apiVersion");
    map.remove("kind");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.retain(|k, _| OWNED_METADATA.contains(&k.as_str()));
        if meta.is_empty() {
            map.remove("metadata");
        }
    }
    let mut out = BTreeSet::new();
    leaf_paths(&filtered, &mut Vec::new(), &mut out);
    out
}

fn restrict(paths: BTreeSet<Path>, subresource: &str, status_subresource: bool) -> BTreeSet<Path> {
    let is_status = |p: &Path| p.first().is_some_and(|f| f == "status");
    paths
        .into_iter()
        .filter(|p| match subresource {
            "status" => is_status(p),
            _ => !(status_subresource && is_status(p)),
        })
        .collect()
}

fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn to_fields(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for key in path {
            node = ensure_object(node.entry(format!("f:{key}")).or_insert_with(|| json!({})));
        }
    }
    Value::Object(root)
}

fn from_fields(fields: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    for (key, child) in map {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        prefix.push(name.to_owned());
        if child.as_object().is_some_and(Map::is_empty) {
            out.insert(prefix.clone());
        } else {
            from_fields(child, prefix, out);
        }
        prefix.pop();
    }
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let mut paths = BTreeSet::new();
            if let Some(fields) = e.get("fieldsV1") {
                from_fields(fields, &mut Vec::new(), &mut paths);
            }
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: text("subresource"),
                paths,
            }
        })
        .collect()
}

fn render(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .filter(|e| !e.paths.is_empty())
            .map(|e| {
                let mut out = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": to_fields(&e.paths),
                });
                if !e.subresource.is_empty() {
                    ensure_object(&mut out)
                        .insert("subresource".into(), Value::String(e.subresource.clone()));
                }
                out
            })
            .collect(),
    )
}

fn own_entry<'a>(
    entries: &'a mut Vec<Entry>,
    manager: &str,
    operation: &str,
    subresource: &str,
    api_version: &str,
) -> &'a mut Entry {
    let found = entries.iter().position(|e| {
        e.manager == manager && e.operation == operation && e.subresource == subresource
    });
    let index = match found {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.to_owned(),
                operation: operation.to_owned(),
                api_version: api_version.to_owned(),
                time: String::new(),
                subresource: subresource.to_owned(),
                paths: BTreeSet::new(),
            });
            entries.len() - 1
        }
    };
    let entry = &mut entries[index];
    entry.api_version = api_version.to_owned();
    entry.time = now();
    entry
}

/// Records an update operation: the manager takes the fields whose value it changed.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    ctx: &WriteCtx,
    api_version: &str,
) {
    let mut list = entries(old);
    let new_paths = tracked_paths(new);
    let old_paths = old.map(tracked_paths).unwrap_or_default();
    let changed: BTreeSet<Path> = new_paths
        .iter()
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    for entry in &mut list {
        entry.paths.retain(|p| {
            new_paths.contains(p)
                && !(old_paths.contains(p) && changed.iter().any(|c| overlaps(c, p)))
        });
    }
    if !changed.is_empty() {
        let subresource = ctx.subresource.name();
        own_entry(&mut list, &ctx.manager, "Update", subresource, api_version)
            .paths
            .extend(changed);
    }
    list.retain(|e| !e.paths.is_empty());
    metadata_mut(new).insert("managedFields".into(), render(&list));
}

fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (key, value) in o {
                if value.is_null() {
                    b.remove(key);
                } else if let Some(existing) = b.get_mut(key) {
                    deep_merge(existing, value);
                } else {
                    b.insert(key.clone(), value.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = &mut *value;
    for key in parents {
        match node.get_mut(key) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
    // Maps left empty by the removal go too, except top-level ones like `spec` and `status`.
    if parents.len() > 1
        && get_path(value, parents)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        remove_path(value, parents);
    }
}

/// Result of a server-side apply: the merged object and its new `managedFields`.
pub(crate) struct Applied {
    pub object: Value,
    pub managed_fields: Value,
}

/// Server-side apply of `applied` onto `existing` (both in served form).
///
/// Returns the `FieldManagerConflict` causes when another manager owns a field set to a different
/// value and `force` is false.
pub(crate) fn apply(
    existing: Option<&Value>,
    applied: &Value,
    ctx: &WriteCtx,
    force: bool,
    api_version: &str,
    status_subresource: bool,
) -> Result<Applied, Vec<Cause>> {
    let subresource = ctx.subresource.name();
    let applied_paths = restrict(tracked_paths(applied), subresource, status_subresource);
    let mut base = existing.cloned().unwrap_or_else(|| json!({}));
    let mut list = entries(existing);
    let is_own = |e: &Entry| {
        e.manager == ctx.manager && e.operation == "Apply" && e.subresource == subresource
    };
    let mut conflicts = Vec::new();
    for entry in list.iter().filter(|e| e.manager != ctx.manager) {
        for path in &applied_paths {
            let clash = entry.paths.iter().any(|q| overlaps(path, q));
            if clash && get_path(&base, path) != get_path(applied, path) {
                let using = if entry.operation == "Update" {
                    format!(" using {}", entry.api_version)
                } else {
                    String::new()
                };
                conflicts.push(Cause::new(
                    "FieldManagerConflict",
                    &format!(".{}", path.join(".")),
                    format!("conflict with \"{}\"{using}", entry.manager),
                ));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    if force {
        for entry in list.iter_mut().filter(|e| e.manager != ctx.manager) {
            entry
                .paths
                .retain(|q| !applied_paths.iter().any(|p| overlaps(p, q)));
        }
    }
    let previous: BTreeSet<Path> = list
        .iter()
        .filter(|e| is_own(e))
        .flat_map(|e| e.paths.iter().cloned())
        .collect();
    for removed in previous.difference(&applied_paths) {
        let still_applied = applied_paths.iter().any(|p| overlaps(p, removed));
        let owned_by_other = list
            .iter()
            .filter(|e| !is_own(e))
            .any(|e| e.paths.iter().any(|q| overlaps(q, removed)));
        if !still_applied && !owned_by_other {
            remove_path(&mut base, removed);
        }
    }
    deep_merge(&mut base, applied);
    own_entry(&mut list, &ctx.manager, "Apply", subresource, api_version).paths = applied_paths;
    list.retain(|e| !e.paths.is_empty());
    Ok(Applied {
        object: base,
        managed_fields: render(&list),
    })
}
