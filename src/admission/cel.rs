//! `x-kubernetes-validations` CEL rules, evaluated with the `kube-cel` crate (the Kubernetes CEL
//! function libraries on the `cel` interpreter).

use serde_json::Value;

use super::Cause;
use super::schema::type_name;

fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        node = node.get(key)?;
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            node = match index.parse::<usize>() {
                Ok(i) => node.get(i)?,
                Err(_) => node.get(index.trim_matches(['"', '\'']))?,
            };
        }
    }
    Some(node)
}

/// Evaluates every rule of the schema; transition rules (`oldSelf`) only when `old` is given.
pub(super) fn validate(
    validator: &kube_cel::Validator,
    compiled: &kube_cel::CompiledSchema,
    context: &kube_cel::RootContext,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    let result = validator.validate_compiled_with_context(compiled, obj, old, Some(context));
    let Err(errors) = result else {
        return Vec::new();
    };
    errors
        .into_iter()
        .map(|e| {
            let actual = value_at(obj, &e.field_path).map_or("object", type_name);
            let reason = e.reason.as_deref().unwrap_or("FieldValueInvalid");
            let message = match (reason, &e.kind) {
                (_, kube_cel::ErrorKind::ValidationFailure) => match reason {
                    "FieldValueForbidden" => format!("Forbidden: {}", e.message),
                    "FieldValueRequired" => format!("Required value: {}", e.message),
                    "FieldValueDuplicate" => format!("Duplicate value: {}", e.message),
                    _ => format!("Invalid value: \"{actual}\": {}", e.message),
                },
                _ => format!(
                    "Invalid value: \"{actual}\": rule could not be evaluated: {}",
                    e.message
                ),
            };
            // Kubernetes prints the root field path of a rule on the whole object as `<nil>`.
            let field = if e.field_path.is_empty() {
                "<nil>"
            } else {
                e.field_path.as_str()
            };
            Cause::new(reason, field, message)
        })
        .collect()
}

/// Why rules of a compiled schema (at `path`) did not compile, beyond the rules' own parse errors
/// (which [`crate::admission::crd_schema_causes`] reports): a `messageExpression` that does not
/// parse, a rule that is not one, a schema too deep.
pub(super) fn compilation_causes(
    compiled: &kube_cel::CompiledSchema,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for (i, result) in compiled.validations.iter().enumerate() {
        match result {
            Ok(_) | Err(kube_cel::CompilationError::Parse { .. }) => {}
            Err(error) => causes.push(Cause::new(
                "FieldValueInvalid",
                &format!("{path}.x-kubernetes-validations[{i}]"),
                format!("Invalid value: \"object\": {error}"),
            )),
        }
    }
    for (name, child) in &compiled.properties {
        compilation_causes(child, &format!("{path}.properties[{name}]"), causes);
    }
    if let Some(items) = &compiled.items {
        compilation_causes(items, &format!("{path}.items"), causes);
    }
    if let Some(additional) = &compiled.additional_properties {
        compilation_causes(additional, &format!("{path}.additionalProperties"), causes);
    }
    for (junctor, branches) in [
        ("allOf", &compiled.all_of),
        ("oneOf", &compiled.one_of),
        ("anyOf", &compiled.any_of),
    ] {
        for (i, branch) in branches.iter().enumerate() {
            compilation_causes(branch, &format!("{path}.{junctor}[{i}]"), causes);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let context = kube_cel::RootContext {
            api_version: "example.com/v1".into(),
            api_group: "example.com".into(),
            kind: "Example".into(),
        };
        let compiled = kube_cel::compile_schema(schema);
        validate(&kube_cel::Validator::new(), &compiled, &context, obj, old)
    }

    /// Every function the module documentation promises, one rule each.
    #[test]
    fn documented_functions_evaluate() {
        let rules = [
            "has(self.name) && size(self.name) == 5",
            "self.name.startsWith('he') && self.name.endsWith('lo') && self.name.contains('ll')",
            "self.name.matches('^h[a-z]+$')",
            "self.items.all(i, i > 0) && self.items.exists(i, i == 2) && self.items.exists_one(i, i == 3)",
            "self.items.map(i, i * 2) == [2, 4, 6] && self.items.filter(i, i > 1) == [2, 3]",
            "'HeLLo'.lowerAscii() == 'hello' && 'hello'.upperAscii() == 'HELLO'",
            "'a,b'.split(',') == ['a', 'b'] && ['a', 'b'].join('-') == 'a-b' && 'hello'.indexOf('l') == 2",
            "quantity('1Gi').isGreaterThan(quantity('1Mi'))",
            "isURL('https://example.com') && isIP('10.0.0.1')",
            "sets.contains([1, 2, 3], [1])",
        ];
        let validations: Vec<_> = rules.iter().map(|r| json!({"rule": r})).collect();
        let schema = json!({
            "type": "object",
            "x-kubernetes-validations": validations,
            "properties": {
                "name": {"type": "string"},
                "items": {"type": "array", "items": {"type": "integer"}},
            },
        });
        let obj = json!({"name": "hello", "items": [1, 2, 3]});
        assert_eq!(check(&schema, &obj, None), Vec::new());
    }

    #[test]
    fn transition_rules_need_an_old_object_and_message_expression_renders() {
        let schema = json!({
            "type": "object",
            "x-kubernetes-validations": [{
                "rule": "self.name == oldSelf.name",
                "messageExpression": "'name changed from ' + oldSelf.name",
                "reason": "FieldValueForbidden",
            }],
            "properties": {"name": {"type": "string"}},
        });
        let new = json!({"name": "b"});
        assert!(check(&schema, &new, None).is_empty());
        let causes = check(&schema, &new, Some(&json!({"name": "a"})));
        assert_eq!(
            causes,
            [Cause::new(
                "FieldValueForbidden",
                "<nil>",
                "Forbidden: name changed from a"
            )]
        );
    }
}
