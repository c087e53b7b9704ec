//! Admission of a custom resource as kube-apiserver does it on create and update, from the CRD
//! version's `openAPIV3Schema` alone: unknown fields pruned (or refused, as with
//! `fieldValidation=Strict`, which `kubectl apply` sends), defaults applied, the structural schema
//! checked (types, enums, patterns, formats, lengths, counts, required fields) and then the
//! `x-kubernetes-validations` CEL rules.
//!
//! `import -f` judges its ImageImports with [`ImageImportAdmission`] before any ECS call, so a file
//! `kubectl apply` would refuse is refused the same way, with the same words. The Kubernetes API
//! double of the tests admits every custom resource with [`Admission`].
//!
//! Not checked, as far as kube-apiserver would: string formats other than `date-time`, `date`,
//! `uuid`, `ipv4`, `ipv6` and `byte`; `uniqueItems`; the uniqueness of `x-kubernetes-list-type:
//! map|set` lists; CEL cost limits; the `metadata` of the object (its name's syntax included).
//! CEL gaps are those of `kube-cel`.

mod cel;
mod schema;

use std::fmt;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::ImageImport;

pub use schema::crd_schema_causes;

/// One reason an object is refused, as an entry of an `Invalid` status's `details.causes[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: String,
    /// The field path, e.g. `spec.diskDeviceMappings[0].format`; `<nil>` for a rule on the whole
    /// object, as kube-apiserver prints it.
    pub field: String,
    /// The message as kube-apiserver words it (`Required value`, `Invalid value: ...`).
    pub message: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Cause {
    /// `field: message`, as kubectl prints each cause.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why an object was not admitted; the Display is what `kubectl apply` prints for it (without
/// kubectl's `Error from server (...)` prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Fields the schema does not declare, under strict field validation: kube-apiserver's
    /// `400 BadRequest`.
    #[error(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        unknown_fields(fields)
    )]
    UnknownFields {
        /// The object's kind.
        kind: String,
        /// The API version's version part (`v1alpha1`).
        version: String,
        /// The undeclared fields' paths (`spec.foo`), in the order found.
        fields: Vec<String>,
    },
    /// The schema or a CEL rule refused the object: kube-apiserver's `422 Invalid`.
    #[error("The {kind} \"{name}\" is invalid: {}", kubectl_causes(causes))]
    Invalid {
        /// The object's kind.
        kind: String,
        /// The object's `metadata.name`.
        name: String,
        /// Every cause, in kube-apiserver's order.
        causes: Vec<Cause>,
    },
}

impl Refusal {
    /// The field paths the refusal names: the unknown fields, or each cause's field.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Self::UnknownFields { fields, .. } => fields.iter().map(String::as_str).collect(),
            Self::Invalid { causes, .. } => causes.iter().map(|c| c.field.as_str()).collect(),
        }
    }
}

fn unknown_fields(fields: &[String]) -> String {
    let list: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    list.join(", ")
}

/// kubectl's rendering of an `Invalid` status's causes: one inline, several as a list on the
/// lines after the colon; a repeated `field: message` is printed once.
fn kubectl_causes(causes: &[Cause]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for cause in causes {
        let line = cause.to_string();
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    match lines.as_slice() {
        [one] => one.clone(),
        many => many
            .iter()
            .fold(String::new(), |out, line| format!("{out}\n* {line}")),
    }
}

/// Why a CRD version's schema cannot be used for admission: kube-apiserver would refuse the CRD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The CRD has no version of that name with an `openAPIV3Schema`.
    #[error("the CRD has no version {0} with an openAPIV3Schema")]
    NoSchema(String),
    /// The schema is not structural, or a CEL rule or message expression does not compile.
    #[error("the CRD's schema would be refused: {}", kubectl_causes(.0))]
    Invalid(Vec<Cause>),
}

/// The admission of one version of a custom resource: its schema and its compiled CEL rules.
///
/// Compiling the rules costs far more than evaluating them: build this once per schema.
pub struct Admission {
    schema: Value,
    compiled: kube_cel::CompiledSchema,
    validator: kube_cel::Validator,
    context: kube_cel::RootContext,
    version: String,
    status_subresource: bool,
    /// The schema has CEL rules somewhere (skipped, and said to be, when the schema refuses).
    has_rules: bool,
}

/// Whether `schema` has an `x-kubernetes-validations` rule anywhere.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "x-kubernetes-validations" && value.as_array().is_some_and(|r| !r.is_empty()))
                || has_rules(value)
        }),
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// The schema errors after which kube-apiserver does not evaluate the CEL rules.
/// (An unsupported enum value is not one: seen on kube-apiserver 1.28.7, `tests/envtest_crd.rs`.)
const BLOCKING: [&str; 4] = [
    "FieldValueTypeInvalid",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
];

/// What kube-apiserver adds when schema errors kept it from evaluating the CEL rules.
const RULES_NOT_CHECKED: &str = "Invalid value: \"null\": some validation rules were not checked \
    because the object was invalid; correct the existing errors to complete validation";

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("api_version", &self.context.api_version)
            .field("kind", &self.context.kind)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// The admission of `kind` in `group`/`version` by the version's `openAPIV3Schema`, taken as
    /// it is: rules that do not compile fail each object they apply to (see [`Admission::checked`]).
    pub fn new(schema: Value, group: &str, version: &str, kind: &str) -> Self {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Self {
            compiled: kube_cel::compile_schema(&schema),
            has_rules: has_rules(&schema),
            schema,
            validator: kube_cel::Validator::new(),
            context: kube_cel::RootContext {
                api_version,
                api_group: group.to_owned(),
                kind: kind.to_owned(),
            },
            version: version.to_owned(),
            status_subresource: false,
        }
    }

    /// The version has the status subresource: a create ignores the object's `status` (after
    /// unknown fields are looked for), as kube-apiserver does.
    pub fn with_status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// Like [`Admission::new`], but a schema kube-apiserver would refuse in a CRD (not structural,
    /// a rule or message expression that does not compile) is an error.
    pub fn checked(
        schema: Value,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Self, SchemaError> {
        let mut causes = crd_schema_causes(&schema, "openAPIV3Schema");
        let admission = Self::new(schema, group, version, kind);
        cel::compilation_causes(&admission.compiled, "openAPIV3Schema", &mut causes);
        if causes.is_empty() {
            Ok(admission)
        } else {
            Err(SchemaError::Invalid(causes))
        }
    }

    /// Admits `object` (changed in place: pruned and defaulted) as kube-apiserver would on a
    /// create (`old` absent) or an update (`old` the stored object, for transition rules).
    /// `strict` refuses unknown fields instead of dropping them (`fieldValidation=Strict`).
    pub fn admit(
        &self,
        object: &mut Value,
        old: Option<&Value>,
        strict: bool,
    ) -> Result<(), Refusal> {
        let unknown = schema::prune(&self.schema, object);
        if strict && !unknown.is_empty() {
            return Err(Refusal::UnknownFields {
                kind: self.context.kind.clone(),
                version: self.version.clone(),
                fields: unknown,
            });
        }
        if self.status_subresource
            && old.is_none()
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        *object = kube_cel::apply_defaults(&self.schema, object);
        let mut causes = schema::validate(&self.schema, object);
        // As kube-apiserver: after a blocking schema error (a wrong type, a missing value, too
        // long, too many) the rules are not evaluated, and the refusal says so; after other
        // schema errors (a pattern, an enum, a minimum) they are, and add theirs.
        let blocked = causes
            .iter()
            .any(|cause| BLOCKING.contains(&cause.reason.as_str()));
        if !blocked {
            causes.extend(cel::validate(
                &self.validator,
                &self.compiled,
                &self.context,
                object,
                old,
            ));
        } else if self.has_rules {
            causes.push(Cause::new("FieldValueInvalid", "<nil>", RULES_NOT_CHECKED));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(Refusal::Invalid {
                kind: self.context.kind.clone(),
                name: name.to_owned(),
                causes,
            })
        }
    }
}

/// Why [`ImageImportAdmission`] could not be built: the generated CRD is not one kube-apiserver
/// would take.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The generated CRD did not convert to JSON.
    #[error("the generated ImageImport CRD did not convert to JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Its schema cannot be used.
    #[error("the generated ImageImport CRD: {0}")]
    Schema(#[source] SchemaError),
}

/// The admission of ImageImports by the generated CRD (`ImageImport::crd()`), the one
/// `ecs-image-operator crd` prints and the cluster serves.
#[derive(Debug)]
pub struct ImageImportAdmission {
    admission: Admission,
}

impl ImageImportAdmission {
    /// Compiles the generated CRD's schema and rules once.
    pub fn new() -> Result<Self, AdmissionError> {
        let crd = serde_json::to_value(ImageImport::crd()).map_err(AdmissionError::Json)?;
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = crd
            .pointer("/spec/names/kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let version = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true));
        let name = version
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let schema = version
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
            .cloned()
            .ok_or_else(|| AdmissionError::Schema(SchemaError::NoSchema(name.clone())))?;
        let mut admission =
            Admission::checked(schema, &group, &name, &kind).map_err(AdmissionError::Schema)?;
        if version
            .and_then(|v| v.pointer("/subresources/status"))
            .is_some()
        {
            admission = admission.with_status_subresource();
        }
        Ok(Self { admission })
    }

    /// Admits one ImageImport document as `kubectl apply` would have kube-apiserver create it
    /// (strict field validation, no old object): defaulted in place (its `status` dropped), or
    /// refused. Its `apiVersion` and `kind` are the caller's to check.
    pub fn admit(&self, object: &mut Value) -> Result<(), Refusal> {
        self.admission.admit(object, None, true)
    }
}
