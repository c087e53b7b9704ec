//! Structural-schema handling of custom resources: pruning, OpenAPI v3 validation, and whether a
//! CRD's schema is structural.

use serde_json::Value;

use super::Cause;

/// Keys every object has at its root, which the CRD schema does not describe.
const ROOT_KEYS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Drops the fields `schema` does not declare from `object` (and nulls of non-nullable fields);
/// returns the dropped fields' paths, which strict field validation refuses.
pub(super) fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(schema, object, "", &mut unknown, true);
    unknown
}

/// The causes `object` breaks the OpenAPI v3 keywords of `schema` by (CEL rules aside).
pub(super) fn validate(schema: &Value, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_at(schema, object, "", &mut causes, true);
    causes
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Drops fields the schema does not declare (recording them) and nulls of non-nullable fields.
fn prune_at(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>, root: bool) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let here = child_path(path, &key);
                let declared = props.and_then(|p| p.get(&key)).or(additional);
                let implicit = (root || embedded) && ROOT_KEYS.contains(&key.as_str());
                match declared {
                    Some(child_schema) => {
                        let is_null = map.get(&key).is_some_and(Value::is_null);
                        if is_null && !flag(child_schema, "nullable") {
                            map.remove(&key);
                        } else if let Some(child) = map.get_mut(&key) {
                            prune_at(child_schema, child, &here, unknown, false);
                        }
                    }
                    None if implicit || keep_unknown => {}
                    None => {
                        map.remove(&key);
                        unknown.push(here);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(item_schema, item, &format!("{path}[{i}]"), unknown, false);
                }
            }
        }
        _ => {}
    }
}

/// The type name the real server reports for a value in validation messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, type_: &str) -> bool {
    match type_ {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

/// String formats the real server checks (a subset of its registry); others, and the integer
/// formats (`int32`, `int64`, ...), are not checked, as there.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "uuid" => {
            s.len() == 36
                && s.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                })
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "byte" => {
            s.len().is_multiple_of(4)
                && s.trim_end_matches('=')
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        }
        _ => true,
    }
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn invalid(path: &str, value: &Value, why: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {}: {path} in body {why}", render(value)),
    )
}

/// Checks `value` against the OpenAPI v3 keywords Kubernetes supports in structural schemas.
fn validate_at(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>, root: bool) {
    if value.is_null() && flag(schema, "nullable") {
        return;
    }
    let type_ = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let type_ok = if flag(schema, "x-kubernetes-int-or-string") {
        value.is_string() || value.is_i64() || value.is_u64()
    } else {
        type_.is_empty() || has_type(value, type_)
    };
    if !type_ok {
        let actual = type_name(value);
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{actual}\": {path} in body must be of type {type_}: \"{actual}\""
            ),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                render(value),
                list.join(", ")
            ),
        ));
    }
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = count("maxLength").filter(|m| len > *m) {
                causes.push(Cause::new(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = count("minLength").filter(|m| len < *m) {
                causes.push(invalid(
                    path,
                    value,
                    &format!("should be at least {min} chars long"),
                ));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(s)
            {
                causes.push(invalid(path, value, &format!("should match '{pattern}'")));
            }
            if let Some(format) = schema.get("format").and_then(Value::as_str)
                && !format_ok(format, s)
            {
                causes.push(Cause::new(
                    "FieldValueTypeInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body must be of type {format}: {}",
                        render(value),
                        render(value)
                    ),
                ));
            }
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(0.0);
            if let Some(min) = number("minimum") {
                if flag(schema, "exclusiveMinimum") && v <= min {
                    causes.push(invalid(
                        path,
                        value,
                        &format!("should be greater than {min}"),
                    ));
                } else if v < min {
                    causes.push(invalid(
                        path,
                        value,
                        &format!("should be greater than or equal to {min}"),
                    ));
                }
            }
            if let Some(max) = number("maximum") {
                if flag(schema, "exclusiveMaximum") && v >= max {
                    causes.push(invalid(path, value, &format!("should be less than {max}")));
                } else if v > max {
                    causes.push(invalid(
                        path,
                        value,
                        &format!("should be less than or equal to {max}"),
                    ));
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = count("maxItems").filter(|m| len > *m) {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                ));
            }
            if let Some(min) = count("minItems").filter(|m| len < *m) {
                causes.push(invalid(
                    path,
                    &Value::from(len),
                    &format!("should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"), causes, false);
                }
            }
        }
        Value::Object(map) => {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(required) {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        &child_path(path, required),
                        "Required value",
                    ));
                }
            }
            let len = map.len() as u64;
            if let Some(max) = count("maxProperties").filter(|m| len > *m) {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                ));
            }
            if let Some(min) = count("minProperties").filter(|m| len < *m) {
                causes.push(invalid(
                    path,
                    &Value::from(len),
                    &format!("should have at least {min} properties"),
                ));
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if root && ROOT_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if let Some(child_schema) = props.and_then(|p| p.get(key)).or(additional) {
                    validate_at(child_schema, child, &child_path(path, key), causes, false);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
    validate_combinators(schema, value, path, causes, root);
}

fn branch_ok(schema: &Value, value: &Value, path: &str, root: bool) -> bool {
    let mut causes = Vec::new();
    validate_at(schema, value, path, &mut causes, root);
    causes.is_empty()
}

fn validate_combinators(
    schema: &Value,
    value: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
    root: bool,
) {
    let list = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for branch in list("allOf") {
        validate_at(&branch, value, path, causes, root);
    }
    let any_of = list("anyOf");
    if !any_of.is_empty() && !any_of.iter().any(|b| branch_ok(b, value, path, root)) {
        causes.push(invalid(
            path,
            value,
            "must validate at least one schema (anyOf)",
        ));
    }
    let one_of = list("oneOf");
    if !one_of.is_empty()
        && one_of
            .iter()
            .filter(|b| branch_ok(b, value, path, root))
            .count()
            != 1
    {
        causes.push(invalid(
            path,
            value,
            "must validate one and only one schema (oneOf)",
        ));
    }
    if let Some(not) = schema.get("not")
        && branch_ok(not, value, path, root)
    {
        causes.push(invalid(path, value, "must not validate the schema (not)"));
    }
}

/// Keywords a structural schema may not set inside `allOf`, `anyOf`, `oneOf` or `not`.
const JUNCTOR_FORBIDDEN: [&str; 5] = [
    "type",
    "default",
    "additionalProperties",
    "nullable",
    "description",
];

/// Why a CRD version's schema (at `path`, e.g. `spec.versions[0].schema.openAPIV3Schema`) would
/// be refused by kube-apiserver: not structural (missing types, `items`, keywords inside
/// junctors) or a CEL rule that does not compile.
pub fn crd_schema_causes(schema: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {}
        Some(other) => causes.push(Cause::new(
            "FieldValueInvalid",
            &format!("{path}.type"),
            format!("Invalid value: \"{other}\": must be object at the root"),
        )),
        None => causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.type"),
            "Required value: must be object at the root",
        )),
    }
    structural(schema, path, &mut causes);
    causes
}

fn typed_or_exempt(schema: &Value) -> bool {
    schema
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
        || flag(schema, "x-kubernetes-int-or-string")
        || flag(schema, "x-kubernetes-preserve-unknown-fields")
}

fn structural(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        if schema
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        {
            causes.push(Cause::new(
                "FieldValueForbidden",
                &format!("{path}.additionalProperties"),
                "Forbidden: additionalProperties and properties are mutual exclusive",
            ));
        }
        for (name, child) in props {
            let here = format!("{path}.properties[{name}]");
            if !typed_or_exempt(child) {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &format!("{here}.type"),
                    "Required value: must not be empty for specified object fields",
                ));
            }
            structural(child, &here, causes);
        }
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let here = format!("{path}.additionalProperties");
        if !typed_or_exempt(additional) {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{here}.type"),
                "Required value: must not be empty for specified object fields",
            ));
        }
        structural(additional, &here, causes);
    }
    if schema.get("type").and_then(Value::as_str) == Some("array") {
        match schema.get("items") {
            Some(items) => {
                let here = format!("{path}.items");
                if !typed_or_exempt(items) {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        &format!("{here}.type"),
                        "Required value: must not be empty for specified array items",
                    ));
                }
                structural(items, &here, causes);
            }
            None => causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{path}.items"),
                "Required value: must be specified",
            )),
        }
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        for (i, branch) in schema
            .get(junctor)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            junctor_causes(branch, &format!("{path}.{junctor}[{i}]"), causes);
        }
    }
    if let Some(not) = schema.get("not") {
        junctor_causes(not, &format!("{path}.not"), causes);
    }
    for (i, rule) in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        if let Err(error) = kube_cel::cel::Program::compile(text) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                &format!("{path}.x-kubernetes-validations[{i}].rule"),
                format!("Invalid value: {text:?}: compilation failed: {error}"),
            ));
        }
    }
}

fn junctor_causes(branch: &Value, path: &str, causes: &mut Vec<Cause>) {
    // The one exception Kubernetes allows: `anyOf: [{type: integer}, {type: string}]` under
    // `x-kubernetes-int-or-string`.
    let int_or_string_branch = matches!(
        branch.get("type").and_then(Value::as_str),
        Some("integer" | "string")
    ) && branch.as_object().is_some_and(|m| m.len() == 1);
    for keyword in JUNCTOR_FORBIDDEN {
        if branch.get(keyword).is_some() && !(keyword == "type" && int_or_string_branch) {
            causes.push(Cause::new(
                "FieldValueForbidden",
                &format!("{path}.{keyword}"),
                "Forbidden: must be empty to be structural",
            ));
        }
    }
}
