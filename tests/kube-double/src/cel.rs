//! `x-kubernetes-validations` CEL rules, evaluated with the `kube-cel` crate (the Kubernetes CEL
//! function libraries on the `cel` interpreter).

use serde_json::Value;

use crate::error::Cause;
use crate::resource::ResourceType;
use crate::schema::type_name;

type Compiled = (kube_cel::Validator, kube_cel::CompiledSchema);

thread_local! {
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, Compiled>> =
        std::cell::RefCell::default();
}

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
pub(crate) fn validate(
    rt: &ResourceType,
    schema: &Value,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    let context = kube_cel::RootContext {
        api_version: rt.api_version(),
        api_group: rt.group.clone(),
        kind: rt.kind.clone(),
    };
    // Compiling the rules (and the function libraries) costs far more than evaluating them, and
    // a schema changes only when its CRD does: both are kept per thread, keyed by the schema.
    let result = CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let (validator, compiled) = cache
            .entry(schema.to_string())
            .or_insert_with(|| (kube_cel::Validator::new(), kube_cel::compile_schema(schema)));
        validator.validate_compiled_with_context(compiled, obj, old, Some(&context))
    });
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resource::builtins;

    fn rt() -> ResourceType {
        let mut rt = builtins().remove(0);
        rt.custom = true;
        rt
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
        assert_eq!(validate(&rt(), &schema, &obj, None), Vec::new());
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
        assert!(validate(&rt(), &schema, &new, None).is_empty());
        let causes = validate(&rt(), &schema, &new, Some(&json!({"name": "a"})));
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
