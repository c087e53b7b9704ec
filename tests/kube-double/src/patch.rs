//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch (treated as a
//! merge patch) and server-side apply.

use serde_json::Value;

use crate::error::ApiError;
use crate::managed;
use crate::resource::ResourceType;
use crate::store::{Ownership, State, Subresource, WriteCtx, meta_str};

/// The patch media types, strategic merge last (custom resources do not take it).
const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

/// The patch formats, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    /// The kind for a `Content-Type` header, or `415`.
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media_type(&PATCH_TYPES)),
        }
    }
}

/// Removes strategic-merge directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...),
/// which only make sense with per-field merge strategies the double does not model.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Applies RFC 6902 operations one by one. Like the Go library the real server uses, a `test`
/// for `null` passes on a missing path (kube-runtime's finalizer helper relies on it). The caller
/// works on a copy, so a failure part-way leaves nothing behind.
fn apply_json_patch(doc: &mut Value, ops: &json_patch::Patch) -> Result<(), ApiError> {
    for op in ops.iter() {
        if let json_patch::PatchOperation::Test(test) = op
            && test.value.is_null()
            && doc.pointer(test.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(doc, std::slice::from_ref(op)).map_err(|e| {
            ApiError::unprocessable(format!(
                "the server rejected our request due to an error in our request: {e}"
            ))
        })?;
    }
    Ok(())
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Patches one object (or, for apply, creates it when missing).
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    state: &mut State,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    ctx: &WriteCtx,
    force: bool,
) -> Result<Value, ApiError> {
    if kind == PatchKind::Strategic && rt.custom {
        // Custom resources have no Go struct tags to drive a strategic merge: the real server
        // refuses it, so a client sending one would fail against a cluster too.
        return Err(ApiError::unsupported_media_type(&PATCH_TYPES[..3]));
    }
    let existing = state.current(rt, ns, name);
    if kind == PatchKind::Apply {
        return apply(state, rt, ns, name, existing, body, ctx, force);
    }
    let Some(existing) = existing else {
        return Err(rt.not_found(name));
    };
    let mut candidate = existing.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            apply_json_patch(&mut candidate, &ops)?;
        }
        PatchKind::Merge | PatchKind::Strategic => {
            let mut doc = parse_json(body)?;
            if kind == PatchKind::Strategic {
                strip_directives(&mut doc);
            }
            if !doc.is_object() {
                return Err(ApiError::bad_request("patch body must be a JSON object"));
            }
            json_patch::merge(&mut candidate, &doc);
        }
        PatchKind::Apply => {}
    }
    if meta_str(&candidate, "name") != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&candidate, "name")
        )));
    }
    let old = state
        .stored_clone(rt, ns, name)
        .ok_or_else(|| rt.not_found(name))?;
    // A patch carrying `resourceVersion` is a precondition; one without it never conflicts.
    let candidate_rv = meta_str(&candidate, "resourceVersion").to_owned();
    if candidate_rv.is_empty()
        && let Some(meta) = candidate.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert(
            "resourceVersion".into(),
            Value::String(meta_str(&old, "resourceVersion").to_owned()),
        );
    }
    state.finish_update(rt, old, candidate, ctx, Ownership::Update)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    state: &mut State,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    existing: Option<Value>,
    body: &[u8],
    ctx: &WriteCtx,
    force: bool,
) -> Result<Value, ApiError> {
    if ctx.manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH apply requires fieldManager to be set",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("apply patch is not valid UTF-8"))?;
    let mut applied: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request("apply patch must be an object"));
    }
    for field in ["apiVersion", "kind"] {
        if applied
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {field} must be set in an apply configuration"
            )));
        }
    }
    // An apply configuration may leave the name out (kube-rs's controller-rs writes status that
    // way); the real server takes it from the URL.
    if meta_str(&applied, "name").is_empty() {
        crate::store::metadata_mut(&mut applied)
            .insert("name".into(), Value::String(name.to_owned()));
    }
    let applied_name = meta_str(&applied, "name");
    if applied_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({applied_name}) does not match the name on the URL ({name})"
        )));
    }
    let api_version = rt.api_version();
    let conflict = |causes: Vec<_>| ApiError::apply_conflict(&rt.group, &rt.plural, name, &causes);
    match existing {
        None => {
            if ctx.subresource == Subresource::Status {
                return Err(rt.not_found(name));
            }
            let result = managed::apply(
                None,
                &applied,
                ctx,
                force,
                &api_version,
                rt.status_subresource,
            )
            .map_err(conflict)?;
            state.create(
                rt,
                ns,
                result.object,
                ctx,
                Ownership::Apply(result.managed_fields),
            )
        }
        Some(current) => {
            let result = managed::apply(
                Some(&current),
                &applied,
                ctx,
                force,
                &api_version,
                rt.status_subresource,
            )
            .map_err(conflict)?;
            let old = state
                .stored_clone(rt, ns, name)
                .ok_or_else(|| rt.not_found(name))?;
            state.finish_update(
                rt,
                old,
                result.object,
                ctx,
                Ownership::Apply(result.managed_fields),
            )
        }
    }
}
