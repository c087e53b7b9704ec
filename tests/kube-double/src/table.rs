//! The `meta.k8s.io/v1` representations clients ask for in `Accept`: Tables, which `kubectl get`
//! prints, and PartialObjectMetadata, which kube-rs's metadata API and `metadata_watcher` use.

use serde_json::{Value, json};

use crate::resource::{PrinterColumn, ResourceType};

fn accepts_as(accept: &str, kind: &str) -> bool {
    let wanted = format!("as={kind}");
    accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.contains(&wanted.as_str())
    })
}

/// Whether the `Accept` header asks for a Table.
pub(crate) fn wants_table(accept: &str) -> bool {
    accepts_as(accept, "Table")
}

/// Whether the `Accept` header asks for PartialObjectMetadata (or its list).
pub(crate) fn wants_metadata(accept: &str) -> bool {
    accepts_as(accept, "PartialObjectMetadata") || accepts_as(accept, "PartialObjectMetadataList")
}

/// An object reduced to its metadata.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="Ready")].status`.
fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![obj.clone()];
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Vec::new();
            };
            let selector = &after[..end];
            rest = &after[end + 1..];
            current = current.iter().flat_map(|v| select(v, selector)).collect();
        } else {
            let trimmed = rest.trim_start_matches('.');
            let end = trimmed.find(['.', '[']).unwrap_or(trimmed.len());
            let key = &trimmed[..end];
            rest = &trimmed[end..];
            current = current.iter().filter_map(|v| v.get(key).cloned()).collect();
        }
    }
    current
}

fn select(value: &Value, selector: &str) -> Vec<Value> {
    let Some(items) = value.as_array() else {
        return Vec::new();
    };
    if selector == "*" {
        return items.clone();
    }
    if let Ok(index) = selector.parse::<usize>() {
        return items.get(index).cloned().into_iter().collect();
    }
    let Some(filter) = selector
        .strip_prefix("?(@.")
        .and_then(|f| f.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let Some((field, expected)) = filter.split_once("==") else {
        return Vec::new();
    };
    let expected = expected.trim().trim_matches(['"', '\'']);
    items
        .iter()
        .filter(|item| {
            json_path(item, &format!(".{}", field.trim()))
                .first()
                .is_some_and(|v| match v {
                    Value::String(s) => s == expected,
                    other => {
                        let rendered = other.to_string();
                        rendered == expected
                    }
                })
        })
        .cloned()
        .collect()
}

/// Age as kubectl prints it (`45s`, `3m2s`, `17m`, `5h`, `3d`).
fn human_age(timestamp: &str) -> Value {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return Value::String("<unknown>".into());
    };
    let secs = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    let text = match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    };
    Value::String(text)
}

fn cell(obj: &Value, column: &PrinterColumn) -> Value {
    let values = json_path(obj, &column.json_path);
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match column.type_.as_str() {
        "date" => first.as_str().map_or(Value::Null, human_age),
        "string" if values.len() > 1 => Value::String(
            values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => first.clone(),
    }
}

fn row_object(obj: &Value, include: &str) -> Value {
    match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => partial_metadata(obj),
    }
}

/// A Table of `items` with the kind's printer columns; `include` is the `includeObject` parameter.
pub(crate) fn render(rt: &ResourceType, items: &[Value], list_meta: Value, include: &str) -> Value {
    let mut columns = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    columns.extend(rt.printer_columns.iter().map(|c| {
        json!({
            "name": c.name, "type": c.type_, "format": c.format,
            "description": c.description, "priority": c.priority,
        })
    }));
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![
                obj.pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ];
            cells.extend(rt.printer_columns.iter().map(|c| cell(obj, c)));
            json!({"cells": cells, "object": row_object(obj, include)})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
