//! The crate's error type and the Kubernetes `Status` failures the double answers with.

use serde_json::{Value, json};

/// Errors of the double itself (start-up, files, manifests) and the API failures it serves.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The loopback listener could not be bound.
    #[error("failed to bind the loopback listener")]
    Bind(#[source] std::io::Error),
    /// A file (kubeconfig, manifest) could not be read or written.
    #[error("failed to access {path}")]
    File {
        /// The file involved.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A YAML manifest could not be parsed.
    #[error("failed to parse yaml")]
    Yaml(#[source] serde_saphyr::Error),
    /// The standalone process could not wait for SIGTERM or SIGINT.
    #[error("failed to wait for a shutdown signal")]
    Signal(#[source] std::io::Error),
    /// A fault rule asked for the connection to be dropped.
    #[error("connection dropped by an injected fault")]
    InjectedDrop,
    /// A manifest was not a Kubernetes object the double accepts.
    #[error("the API refused an object of the manifest")]
    Api(#[source] ApiError),
}

/// A failure answered to a client as a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The `reason` field (`NotFound`, `Conflict`, `Invalid`, ...).
    pub reason: String,
    /// The human readable message.
    pub message: String,
    /// The `details` field, when the real server fills it.
    pub details: Option<Value>,
}

/// One entry of `details.causes[]` in an `Invalid` status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: String,
    /// The message as the real server words it (`Required value`, `Invalid value: ...`).
    pub message: String,
    /// The field path, e.g. `spec.source.bucket`.
    pub field: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub(crate) fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            message: message.into(),
            field: field.to_owned(),
        }
    }
}

impl From<ecs_image_operator::admission::Cause> for Cause {
    fn from(cause: ecs_image_operator::admission::Cause) -> Self {
        Self {
            reason: cause.reason,
            message: cause.message,
            field: cause.field,
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>, details: Option<Value>) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details,
        }
    }

    /// The `Status` object the real server sends for this failure.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(details), Some(map)) = (&self.details, status.as_object_mut()) {
            map.insert("details".into(), details.clone());
        }
        status
    }

    /// `404 NotFound` for a named object; `resource` is `plural` or `plural.group`.
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
            Some(json!({"name": name, "group": group, "kind": plural})),
        )
    }

    /// `404 NotFound` for a path the double does not serve.
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    /// `409 AlreadyExists`.
    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
            Some(json!({"name": name, "group": group, "kind": plural})),
        )
    }

    /// `409 Conflict` for a stale `resourceVersion` or a failed precondition.
    pub(crate) fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
            Some(json!({"name": name, "group": group, "kind": plural})),
        )
    }

    /// `409 Conflict` from server-side apply, with `FieldManagerConflict` causes.
    pub(crate) fn apply_conflict(group: &str, plural: &str, name: &str, causes: &[Cause]) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.message, c.field))
            .collect();
        let message = format!(
            "Apply failed with {} conflict{}: {}",
            causes.len(),
            if causes.len() == 1 { "" } else { "s" },
            list.join("\n")
        );
        Self::new(
            409,
            "Conflict",
            message,
            Some(
                json!({"name": name, "group": group, "kind": plural, "causes": causes_json(causes)}),
            ),
        )
    }

    /// `422 Invalid` with `details.causes[]`; `kind_group` is `Kind` or `Kind.group`.
    pub(crate) fn invalid(kind: &str, group: &str, name: &str, causes: &[Cause]) -> Self {
        let kind_group = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let body = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        Self::new(
            422,
            "Invalid",
            format!("{kind_group} \"{name}\" is invalid: {body}"),
            Some(
                json!({"name": name, "group": group, "kind": kind, "causes": causes_json(causes)}),
            ),
        )
    }

    /// `400 BadRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// `403 Forbidden`, e.g. creating in a namespace that is being deleted.
    pub(crate) fn forbidden(message: impl Into<String>, details: Option<Value>) -> Self {
        Self::new(403, "Forbidden", message, details)
    }

    /// `405 MethodNotAllowed`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    /// `406 NotAcceptable`.
    pub(crate) fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message, None)
    }

    /// `410 Gone` for a compacted resource version.
    pub(crate) fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    /// `415 UnsupportedMediaType`; `accepted` lists the media types that would have worked.
    pub(crate) fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// `422` for a JSON patch that cannot be applied or an unprocessable body.
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message, None)
    }

    /// `429 TooManyRequests`, injected by a fault.
    pub(crate) fn too_many_requests(retry_after: u64) -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
            Some(json!({"retryAfterSeconds": retry_after})),
        )
    }

    /// `500 InternalError`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            message,
            Some(json!({"causes": [{"message": "injected by kube-double"}]})),
        )
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect(),
    )
}
