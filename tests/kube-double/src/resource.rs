//! Resource types: the built-in kinds the operator uses and those a CRD installs.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};

/// The verbs every resource of the double supports, as discovery lists them.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// How a resource's served form relates to its stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// Stored as served (only `apiVersion` changes between CRD versions).
    None,
    /// `events.k8s.io/v1` Events share storage with core v1 Events, converted field by field.
    EventsV1,
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub(crate) struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// A served group/version/resource.
#[derive(Debug, Clone)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// Defined by a CRD: generation tracking, `resourceVersion` required on update, schema.
    pub custom: bool,
    /// The version's `openAPIV3Schema`.
    pub schema: Option<Value>,
    pub printer_columns: Vec<PrinterColumn>,
    pub conversion: Conversion,
    /// Objects of all versions of one resource share this key.
    pub storage: String,
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub selectable_fields: Vec<String>,
}

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this is the core v1 Namespace resource.
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// Whether the kind tracks `metadata.generation` (custom resources and CRDs, as in Kubernetes).
    pub fn tracks_generation(&self) -> bool {
        self.custom || self.kind == "CustomResourceDefinition"
    }

    /// The `Invalid` error for this kind.
    pub fn invalid(&self, name: &str, causes: &[Cause]) -> ApiError {
        ApiError::invalid(&self.kind, &self.group, name, causes)
    }

    /// The `NotFound` error for this kind.
    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.group, &self.plural, name)
    }

    /// The `Conflict` error for this kind.
    pub fn conflict(&self, name: &str, why: &str) -> ApiError {
        ApiError::conflict(&self.group, &self.plural, name, why)
    }

    /// The discovery entry (`APIResource`) of the main resource.
    pub fn discovery_entry(&self) -> Value {
        json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": VERBS,
            "shortNames": self.short_names,
            "categories": self.categories,
        })
    }

    /// The discovery entry of the status subresource.
    pub fn status_discovery_entry(&self) -> Value {
        json!({
            "name": format!("{}/status", self.plural),
            "singularName": "",
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["get", "patch", "update"],
        })
    }
}

fn column(name: &str, type_: &str, json_path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.to_owned(),
        type_: type_.to_owned(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: json_path.to_owned(),
    }
}

fn age() -> PrinterColumn {
    column("Age", "date", ".metadata.creationTimestamp")
}

struct Builtin {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
}

impl Builtin {
    fn into_type(self, columns: Vec<PrinterColumn>, conversion: Conversion) -> ResourceType {
        let storage = if self.plural == "events" {
            "events".to_owned()
        } else {
            format!("{}/{}", self.group, self.plural)
        };
        ResourceType {
            group: self.group.to_owned(),
            version: "v1".to_owned(),
            kind: self.kind.to_owned(),
            plural: self.plural.to_owned(),
            singular: self.kind.to_lowercase(),
            namespaced: self.namespaced,
            short_names: self.short_names.iter().map(|s| (*s).to_owned()).collect(),
            categories: self.categories.iter().map(|s| (*s).to_owned()).collect(),
            status_subresource: self.status,
            custom: false,
            schema: None,
            printer_columns: columns,
            conversion,
            storage,
            selectable_fields: Vec::new(),
        }
    }
}

/// The built-in kinds: those this operator touches, plus what `kubectl` needs to manage CRDs.
pub(crate) fn builtins() -> Vec<ResourceType> {
    let mut core_events = Builtin {
        group: "",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status: false,
    }
    .into_type(
        vec![
            column("Type", "string", ".type"),
            column("Reason", "string", ".reason"),
            column("Message", "string", ".message"),
            age(),
        ],
        Conversion::None,
    );
    core_events.selectable_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut events_v1 = Builtin {
        group: "events.k8s.io",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status: false,
    }
    .into_type(
        vec![
            column("Type", "string", ".type"),
            column("Reason", "string", ".reason"),
            column("Note", "string", ".note"),
            age(),
        ],
        Conversion::EventsV1,
    );
    events_v1.selectable_fields = vec!["reason".into(), "type".into()];
    let mut secrets = Builtin {
        group: "",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
    }
    .into_type(
        vec![column("Type", "string", ".type"), age()],
        Conversion::None,
    );
    secrets.selectable_fields = vec!["type".into()];
    vec![
        Builtin {
            group: "",
            kind: "Namespace",
            plural: "namespaces",
            namespaced: false,
            short_names: &["ns"],
            categories: &[],
            status: true,
        }
        .into_type(
            vec![column("Status", "string", ".status.phase"), age()],
            Conversion::None,
        ),
        secrets,
        Builtin {
            group: "",
            kind: "ConfigMap",
            plural: "configmaps",
            namespaced: true,
            short_names: &["cm"],
            categories: &[],
            status: false,
        }
        .into_type(vec![age()], Conversion::None),
        core_events,
        events_v1,
        Builtin {
            group: "coordination.k8s.io",
            kind: "Lease",
            plural: "leases",
            namespaced: true,
            short_names: &[],
            categories: &[],
            status: false,
        }
        .into_type(
            vec![column("Holder", "string", ".spec.holderIdentity"), age()],
            Conversion::None,
        ),
        Builtin {
            group: "apiextensions.k8s.io",
            kind: "CustomResourceDefinition",
            plural: "customresourcedefinitions",
            namespaced: false,
            short_names: &["crd", "crds"],
            categories: &["api-extensions"],
            status: true,
        }
        .into_type(
            vec![column(
                "Created At",
                "string",
                ".metadata.creationTimestamp",
            )],
            Conversion::None,
        ),
    ]
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The resource types a CRD defines (one per served version), or the causes why it is invalid.
pub(crate) fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, Vec<Cause>> {
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let kind = str_at(crd, "/spec/names/kind");
    let scope = str_at(crd, "/spec/scope");
    let name = str_at(crd, "/metadata/name");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    if name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage_versions = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage_versions != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {storage_versions}: must have exactly one version marked as storage version"
            ),
        ));
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let singular = match str_at(&names, "/singular") {
        "" => kind.to_lowercase(),
        s => s.to_owned(),
    };
    for (i, version) in versions.iter().enumerate() {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            causes.extend(crate::schema::crd_schema_causes(schema, &path));
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    let mut types = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| cols.iter().map(printer_column).collect())
            .unwrap_or_else(|| vec![age()]);
        types.push(ResourceType {
            group: group.to_owned(),
            version: str_at(&version, "/name").to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: singular.clone(),
            namespaced: scope == "Namespaced",
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status_subresource: version.pointer("/subresources/status").is_some(),
            custom: true,
            schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            printer_columns: columns,
            conversion: Conversion::None,
            storage: format!("{group}/{plural}"),
            selectable_fields: version
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(|s| s.get("jsonPath").and_then(Value::as_str))
                        .map(|p| p.trim_start_matches('.').to_owned())
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(types)
}

fn printer_column(col: &Value) -> PrinterColumn {
    PrinterColumn {
        name: str_at(col, "/name").to_owned(),
        type_: str_at(col, "/type").to_owned(),
        format: str_at(col, "/format").to_owned(),
        description: str_at(col, "/description").to_owned(),
        priority: col.get("priority").and_then(Value::as_i64).unwrap_or(0),
        json_path: str_at(col, "/jsonPath").to_owned(),
    }
}

/// The status a CRD gets once the double has installed it (names accepted, established).
pub(crate) fn crd_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let condition = |type_: &str, reason: &str, message: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

/// Maps between the stored core v1 Event and the served `events.k8s.io/v1` Event.
const EVENT_FIELDS: [(&str, &str); 8] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
    ("related", "related"),
];

fn rename(obj: &Value, forward: bool, api_version: &str) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = EVENT_FIELDS.iter().find_map(|(core, v1)| {
            let (from, to) = if forward { (core, v1) } else { (v1, core) };
            (key == from).then(|| (*to).to_owned())
        });
        out.insert(renamed.unwrap_or_else(|| key.clone()), value.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    Value::Object(out)
}

/// The stored form of an object written through `rt`.
pub(crate) fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    match rt.conversion {
        Conversion::None => obj,
        Conversion::EventsV1 => rename(&obj, false, "v1"),
    }
}

/// The served form of a stored object, as `rt` presents it.
pub(crate) fn present(rt: &ResourceType, obj: &Value) -> Value {
    match rt.conversion {
        Conversion::None => {
            let mut out = obj.clone();
            if let Some(map) = out.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(rt.api_version()));
                map.insert("kind".into(), Value::String(rt.kind.clone()));
            }
            out
        }
        Conversion::EventsV1 => rename(obj, true, &rt.api_version()),
    }
}
