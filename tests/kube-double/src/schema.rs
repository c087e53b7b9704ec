//! Admission of custom resources (pruning, defaulting, OpenAPI v3 validation, CEL rules): the main
//! crate's [`ecs_image_operator::admission`], the one `import -f` judges its files with, its
//! refusals answered as the double's API errors.

use std::cell::RefCell;
use std::collections::HashMap;

use ecs_image_operator::admission::{Admission, Refusal};
use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::resource::ResourceType;

thread_local! {
    /// Compiling the rules (and the function libraries) costs far more than evaluating them, and
    /// a schema changes only when its CRD does: admissions are kept per thread, keyed by the
    /// kind, its version and the schema.
    static CACHE: RefCell<HashMap<String, Admission>> = RefCell::default();
}

/// Prunes, defaults and validates a custom resource; the object is changed in place.
pub(crate) fn admit(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<(), ApiError> {
    let Some(schema) = rt.schema.as_ref().filter(|_| rt.custom) else {
        return Ok(());
    };
    let key = format!("{} {}\n{schema}", rt.api_version(), rt.kind);
    let result = CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let admission = cache
            .entry(key)
            .or_insert_with(|| Admission::new(schema.clone(), &rt.group, &rt.version, &rt.kind));
        admission.admit(obj, old, strict)
    });
    result.map_err(|refusal| match refusal {
        Refusal::UnknownFields { .. } => ApiError::bad_request(refusal.to_string()),
        Refusal::Invalid { name, causes, .. } => {
            let causes: Vec<Cause> = causes.into_iter().map(Cause::from).collect();
            rt.invalid(&name, &causes)
        }
    })
}

/// Why a CRD version's schema would be refused by the real server (see
/// [`ecs_image_operator::admission::crd_schema_causes`]).
pub(crate) fn crd_schema_causes(schema: &Value, path: &str) -> Vec<Cause> {
    ecs_image_operator::admission::crd_schema_causes(schema, path)
        .into_iter()
        .map(Cause::from)
        .collect()
}
