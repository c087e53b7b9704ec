//! The write pipeline: server-set fields, namespaces, optimistic concurrency, status isolation,
//! generation, finalizers and deletion.

use serde_json::{Value, json};

use super::{
    Deleted, EventKind, Ownership, State, Subresource, WriteCtx, ensure_object, finalizers,
    meta_str, metadata_mut, now, uid,
};
use crate::error::{ApiError, Cause};
use crate::managed;
use crate::resource::{self, ResourceType};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// etcd's default request limit (`--max-request-bytes`, 1.5 MiB): the real API server cannot store
/// a larger object and answers `500` with etcd's own words.
pub const MAX_OBJECT_BYTES: usize = 1_572_864;

fn fits_in_etcd(obj: &Value) -> Result<(), ApiError> {
    let size = serde_json::to_vec(obj).map_or(0, |bytes| bytes.len());
    if size > MAX_OBJECT_BYTES {
        let mut error = ApiError::internal("etcdserver: request is too large");
        error.details = None;
        return Err(error);
    }
    Ok(())
}

/// Characters the real server uses for `generateName` suffixes (no vowels, no look-alikes).
const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn name_suffix() -> String {
    (0..5)
        .map(|_| {
            let i = rand::random_range(0..NAME_SUFFIX_ALPHABET.len());
            char::from(NAME_SUFFIX_ALPHABET[i])
        })
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn name_causes(rt: &ResourceType, name: &str) -> Vec<Cause> {
    if rt.is_namespace() {
        if !is_dns_label(name) {
            return vec![Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                ),
            )];
        }
    } else if !is_dns_subdomain(name) {
        return vec![Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        )];
    }
    Vec::new()
}

/// A label name or value: up to 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
fn is_label_token(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Label keys and values as Kubernetes validates them on every object.
fn label_causes(obj: &Value) -> Vec<Cause> {
    let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    for (key, value) in labels {
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let key_ok = is_label_token(name) && (prefix.is_empty() || is_dns_subdomain(prefix));
        if !key_ok || key.matches('/').count() > 1 {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "metadata.labels",
                format!("Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
            ));
        }
        let text = value.as_str().unwrap_or("");
        if !value.is_string() || !(text.is_empty() || is_label_token(text)) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                &format!("metadata.labels[{key}]"),
                format!("Invalid value: {text:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
            ));
        }
    }
    causes
}

/// The object without the fields that change on every write, to detect no-op updates.
fn comparable(obj: &Value) -> Value {
    let mut out = obj.clone();
    let meta = metadata_mut(&mut out);
    meta.remove("resourceVersion");
    meta.remove("managedFields");
    out
}

/// The part of an object whose change bumps `metadata.generation`.
fn generation_relevant(obj: &Value, status_subresource: bool) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if status_subresource {
            map.remove("status");
        }
    }
    out
}

/// `stringData` of a Secret is write-only: the server merges it into `data`, base64-encoded.
fn fold_string_data(rt: &ResourceType, obj: &mut Value) {
    if rt.kind != "Secret" || !rt.group.is_empty() {
        return;
    }
    let map = ensure_object(obj);
    if map
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        map.insert("type".into(), Value::String("Opaque".into()));
    }
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = ensure_object(map.entry("data").or_insert_with(|| json!({})));
    for (key, value) in strings {
        let text = value.as_str().unwrap_or("").as_bytes().to_vec();
        data.insert(key, Value::String(crate::protobuf::base64(&text)));
    }
}

impl State {
    fn check_namespace(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let Some(ns_type) = self.find_type("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.stored(&ns_type, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                let resource = if rt.group.is_empty() {
                    rt.plural.clone()
                } else {
                    format!("{}.{}", rt.plural, rt.group)
                };
                Err(ApiError::forbidden(
                    format!(
                        "{resource} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                    ),
                    Some(
                        json!({"name": ns, "kind": "namespaces", "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Fills `metadata.namespace` from the URL and refuses a mismatch, as the real server does.
    fn settle_namespace(rt: &ResourceType, obj: &mut Value, ns: &str) -> Result<(), ApiError> {
        let meta = metadata_mut(obj);
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if !given.is_empty() && given != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), Value::String(ns.to_owned()));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn check_kind(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        };
        let api_version = rt.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
            _ => {
                map.insert("apiVersion".into(), Value::String(api_version));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            Some(k) if k != rt.kind => Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            ))),
            _ => {
                map.insert("kind".into(), Value::String(rt.kind.clone()));
                Ok(())
            }
        }
    }

    /// Creates an object (POST, or an apply that finds nothing).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut body: Value,
        ctx: &WriteCtx,
        ownership: Ownership,
    ) -> Result<Value, ApiError> {
        Self::check_kind(rt, &mut body)?;
        Self::settle_namespace(rt, &mut body, ns)?;
        let mut obj = resource::to_storage(rt, body);
        let meta = metadata_mut(&mut obj);
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if prefix.is_empty() {
                return Err(rt.invalid(
                    "",
                    &[Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            name = format!("{prefix}{}", name_suffix());
            meta.insert("name".into(), Value::String(name.clone()));
        }
        let causes = name_causes(rt, &name);
        if !causes.is_empty() {
            return Err(rt.invalid(&name, &causes));
        }
        for field in [
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        let created = now();
        meta.insert("uid".into(), Value::String(uid()));
        meta.insert("creationTimestamp".into(), Value::String(created.clone()));
        if rt.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        }
        let causes = label_causes(&obj);
        if !causes.is_empty() {
            return Err(rt.invalid(&name, &causes));
        }
        if self.stored(rt, ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        self.check_namespace(rt, ns, &name)?;
        if rt.status_subresource
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        if rt.is_namespace() {
            if let Some(map) = obj.as_object_mut() {
                map.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
                map.insert("status".into(), json!({"phase": "Active"}));
            }
            let labels = metadata_mut(&mut obj)
                .entry("labels")
                .or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(name.clone()),
                );
            }
        }
        if rt.kind == "CustomResourceDefinition" {
            resource::from_crd(&obj).map_err(|causes| rt.invalid(&name, &causes))?;
            let status = resource::crd_status(&obj, &created);
            if let Some(map) = obj.as_object_mut() {
                map.insert("status".into(), status);
            }
        }
        fold_string_data(rt, &mut obj);
        schema::admit(rt, &mut obj, None, ctx.strict)?;
        match ownership {
            Ownership::Update => managed::record_update(None, &mut obj, ctx, &rt.api_version()),
            Ownership::Apply(entries) => {
                metadata_mut(&mut obj).insert("managedFields".into(), entries);
            }
        }
        fits_in_etcd(&obj)?;
        if ctx.dry_run {
            return Ok(resource::present(rt, &obj));
        }
        let stored = self.commit(rt, EventKind::Added, obj, None);
        Ok(resource::present(rt, &stored))
    }

    /// Replaces an object (PUT), with optimistic concurrency on `metadata.resourceVersion`.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut body: Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        Self::check_kind(rt, &mut body)?;
        Self::settle_namespace(rt, &mut body, ns)?;
        let given_name = meta_str(&body, "name");
        if given_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given_name}) does not match the name on the URL ({name})"
            )));
        }
        let old = self
            .stored(rt, ns, name)
            .cloned()
            .ok_or_else(|| rt.not_found(name))?;
        let given_rv = meta_str(&body, "resourceVersion");
        if given_rv.is_empty() && rt.custom {
            return Err(rt.invalid(
                name,
                &[Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        self.finish_update(rt, old, body, ctx, Ownership::Update)
    }

    /// Completes an update of `old` (stored form) to `candidate` (served form).
    pub fn finish_update(
        &mut self,
        rt: &ResourceType,
        old: Value,
        candidate: Value,
        ctx: &WriteCtx,
        ownership: Ownership,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&old, "name").to_owned();
        let given_rv = meta_str(&candidate, "resourceVersion");
        if !given_rv.is_empty() && given_rv != meta_str(&old, "resourceVersion") {
            return Err(rt.conflict(
                &name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let candidate = resource::to_storage(rt, candidate);
        let mut new = match ctx.subresource {
            Subresource::Status => {
                let mut merged = old.clone();
                if let Some(map) = merged.as_object_mut() {
                    match candidate.get("status") {
                        Some(status) => {
                            map.insert("status".into(), status.clone());
                        }
                        None => {
                            map.remove("status");
                        }
                    }
                }
                merged
            }
            Subresource::Main => {
                let mut merged = candidate;
                if let Some(map) = merged.as_object_mut() {
                    let keep_status = rt.status_subresource || (rt.is_namespace());
                    if keep_status {
                        match old.get("status") {
                            Some(status) => {
                                map.insert("status".into(), status.clone());
                            }
                            None => {
                                map.remove("status");
                            }
                        }
                    }
                }
                merged
            }
        };
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = metadata_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            match old_meta.get(field) {
                Some(v) => {
                    meta.insert(field.into(), v.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                return Err(rt.invalid(
                    &name,
                    &[Cause::new(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            list.join(", ")
                        ),
                    )],
                ));
            }
        }
        if rt.kind == "CustomResourceDefinition" {
            resource::from_crd(&new).map_err(|causes| rt.invalid(&name, &causes))?;
            if ctx.subresource == Subresource::Main {
                let status = resource::crd_status(&new, &now());
                if let Some(map) = new.as_object_mut() {
                    map.insert("status".into(), status);
                }
            }
        }
        let causes = label_causes(&new);
        if !causes.is_empty() {
            return Err(rt.invalid(&name, &causes));
        }
        fold_string_data(rt, &mut new);
        schema::admit(rt, &mut new, Some(&old), ctx.strict)?;
        if rt.tracks_generation()
            && generation_relevant(&new, rt.status_subresource)
                != generation_relevant(&old, rt.status_subresource)
        {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        match ownership {
            Ownership::Update => {
                managed::record_update(Some(&old), &mut new, ctx, &rt.api_version());
            }
            Ownership::Apply(entries) => {
                metadata_mut(&mut new).insert("managedFields".into(), entries);
            }
        }
        if comparable(&new) == comparable(&old) {
            return Ok(resource::present(rt, &old));
        }
        fits_in_etcd(&new)?;
        if ctx.dry_run {
            return Ok(resource::present(rt, &new));
        }
        let done =
            new.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new).is_empty();
        let kind = if done {
            EventKind::Deleted
        } else {
            EventKind::Modified
        };
        let stored = self.commit(rt, kind, new, Some(old));
        Ok(resource::present(rt, &stored))
    }

    /// Deletes an object: at once without finalizers, otherwise by marking `deletionTimestamp`.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let old = self
            .stored(rt, ns, name)
            .cloned()
            .ok_or_else(|| rt.not_found(name))?;
        if let Some(uid) = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            && uid != meta_str(&old, "uid")
        {
            return Err(rt.conflict(
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(rt.conflict(
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
        let is_namespace = rt.is_namespace();
        if !finalizers(&old).is_empty() || is_namespace {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Deleted::Object(resource::present(rt, &old)));
            }
            let mut marked = old.clone();
            let meta = metadata_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), Value::String(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(generation) = meta.get("generation").and_then(Value::as_i64) {
                meta.insert("generation".into(), json!(generation + 1));
            }
            if is_namespace && let Some(map) = marked.as_object_mut() {
                map.insert("status".into(), json!({"phase": "Terminating"}));
            }
            if dry_run {
                return Ok(Deleted::Object(resource::present(rt, &marked)));
            }
            let stored = self.commit(rt, EventKind::Modified, marked, Some(old));
            if is_namespace {
                self.empty_namespace(name);
            }
            let current = self.stored(rt, ns, name).cloned().unwrap_or(stored);
            return Ok(Deleted::Object(resource::present(rt, &current)));
        }
        let served = resource::present(rt, &old);
        if dry_run {
            return Ok(Deleted::Object(served));
        }
        let uid = meta_str(&old, "uid").to_owned();
        let stored = self.commit(rt, EventKind::Deleted, old.clone(), Some(old));
        if rt.custom || rt.kind == "CustomResourceDefinition" {
            Ok(Deleted::Object(resource::present(rt, &stored)))
        } else {
            Ok(Deleted::Status(json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": uid},
            })))
        }
    }

    /// Deletes everything in a namespace being deleted (objects with finalizers are only marked).
    fn empty_namespace(&mut self, ns: &str) {
        let mut targets = Vec::new();
        for (storage, bucket) in &self.objects {
            for (key, _) in bucket.iter().filter(|(k, _)| k.0 == ns) {
                targets.push((storage.clone(), key.1.clone()));
            }
        }
        for (storage, name) in targets {
            if let Some(rt) = self.type_for_storage(&storage) {
                let _ = self.delete(&rt, ns, &name, &Value::Null, false);
            }
        }
        self.reap_namespaces();
    }

    /// Deletes every object matching the selectors (DELETE on a collection).
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        dry_run: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(rt, ns, labels, fields, None, None)?;
        let mut out = Vec::new();
        for item in page.items {
            let item_ns = meta_str(&item, "namespace").to_owned();
            let name = meta_str(&item, "name").to_owned();
            match self.delete(rt, &item_ns, &name, &Value::Null, dry_run)? {
                Deleted::Object(o) => out.push(o),
                Deleted::Status(_) => out.push(item),
            }
        }
        Ok(out)
    }
}
