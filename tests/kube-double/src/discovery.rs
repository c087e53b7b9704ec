//! Discovery documents in the classic (unaggregated) format.

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resource::ResourceType;
use crate::store::State;

/// Whether the `Accept` header allows a plain `application/json` answer. kubectl asks for the
/// aggregated discovery formats first and lists plain JSON as a fallback, which the double uses.
pub(crate) fn accepts_plain_json(accept: &str) -> bool {
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let plain = parts.all(|p| !p.starts_with("as=") && !p.starts_with("g="));
        plain && matches!(media, "application/json" | "*/*" | "application/*")
    })
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first.
fn version_priority(a: &str, b: &str) -> Ordering {
    fn key(v: &str) -> (u8, u64, u64) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0);
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major = digits.parse().unwrap_or(0);
        let tail = &rest[digits.len()..];
        let minor = |s: &str| s.parse().unwrap_or(0);
        if tail.is_empty() {
            (3, major, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (2, major, minor(n))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, major, minor(n))
        } else {
            (0, major, 0)
        }
    }
    key(b).cmp(&key(a))
}

/// `GET /version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-double",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(crate) fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn group_versions(state: &State, group: &str) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    for t in state.types().iter().filter(|t| t.group == group) {
        if !versions.contains(&t.version) {
            versions.push(t.version.clone());
        }
    }
    versions.sort_by(|a, b| version_priority(a, b));
    versions
}

fn group_document(state: &State, group: &str) -> Value {
    let versions: Vec<Value> = group_versions(state, group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// `GET /apis`.
pub(crate) fn groups(state: &State) -> Value {
    let mut names: Vec<String> = Vec::new();
    for t in state.types().iter().filter(|t| !t.group.is_empty()) {
        if !names.contains(&t.group) {
            names.push(t.group.clone());
        }
    }
    let groups: Vec<Value> = names.iter().map(|g| group_document(state, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`.
pub(crate) fn group(state: &State, group: &str) -> Result<Value, ApiError> {
    if group_versions(state, group).is_empty() {
        return Err(ApiError::no_route());
    }
    let mut doc = group_document(state, group);
    if let Some(map) = doc.as_object_mut() {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Ok(doc)
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`.
pub(crate) fn resources(state: &State, group: &str, version: &str) -> Result<Value, ApiError> {
    let types: Vec<&ResourceType> = state
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .map(AsRef::as_ref)
        .collect();
    if types.is_empty() {
        return Err(ApiError::no_route());
    }
    let mut resources = Vec::new();
    for t in types {
        resources.push(t.discovery_entry());
        if t.status_subresource {
            resources.push(t.status_discovery_entry());
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// `GET /openapi/v3`: one entry per group version. kubectl reads it to learn that the server
/// validates fields itself (`fieldValidation`), which spares it client-side schema validation.
pub(crate) fn openapi_root(state: &State) -> Value {
    let mut paths = serde_json::Map::new();
    for t in state.types().iter() {
        let key = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        let url = format!("/openapi/v3/{key}?hash={}", state.resource_version());
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<api/v1|apis/group/version>`: the PATCH operations with their
/// `x-kubernetes-group-version-kind` and the `fieldValidation` parameter; no schemas.
pub(crate) fn openapi_group_version(
    state: &State,
    group: &str,
    version: &str,
) -> Result<Value, ApiError> {
    let mut paths = serde_json::Map::new();
    let mut found = false;
    for t in state
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        found = true;
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let operation = json!({
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": t.kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": operation}));
    }
    if !found {
        return Err(ApiError::no_route());
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
