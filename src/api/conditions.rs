//! Status conditions in the kstatus convention, and the helper that sets them.
//!
//! `Ready` is True only when the image is available and the current generation is reconciled;
//! `Reconciling` is True while work is in progress; `Stalled` is True when progress needs a change by
//! the user, with a reason derived from the ECS error code ([`reason_of`]: `InvalidOSSObject.NotFound`
//! becomes `InvalidOSSObjectNotFound`, since the API conventions allow no dots in a reason) and the
//! exact code at the start of its message. `kubectl wait --for=condition=Ready` works.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Condition types.
pub mod types {
    /// The image is available and matches the current spec.
    pub const READY: &str = "Ready";
    /// The operator is working towards the spec.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot progress without a change by the user.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons of the operator's own (ECS error codes become reasons through [`reason_of`]).
pub mod reasons {
    /// The image is available.
    pub const AVAILABLE: &str = "Available";
    /// A mapping's source is being uploaded into OSS.
    pub const UPLOADING: &str = "Uploading";
    /// Waiting for ECS to accept the import.
    pub const PENDING: &str = "Pending";
    /// ECS is importing.
    pub const IMPORTING: &str = "Importing";
    /// Name, description or tags are being applied to the image.
    pub const UPDATING: &str = "Updating";
    /// The finalizer is cancelling or deleting in ECS.
    pub const DELETING: &str = "Deleting";
    /// The pause annotation is set: nothing is changed in ECS.
    pub const PAUSED: &str = "Paused";
    /// A transient error; retrying.
    pub const RETRYING: &str = "Retrying";
    /// An ECS call has been outstanding for a while (the message names it and for how long).
    pub const WAITING_FOR_ECS: &str = "WaitingForECS";
    /// Nothing is wrong.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// The import task failed in ECS (when ECS gives no more specific code).
    pub const IMPORT_FAILED: &str = "ImportFailed";
    /// The import task was cancelled outside the operator.
    pub const TASK_CANCELLED: &str = "TaskCancelled";
    /// The image named in status no longer exists in ECS.
    pub const IMAGE_NOT_FOUND: &str = "ImageNotFound";
    /// The generation changed; the new spec is not reconciled yet.
    pub const PROGRESSING: &str = "Progressing";
    /// The image is available; its copies or share permissions are being made.
    pub const DISTRIBUTING: &str = "Distributing";
    /// A copy failed in its region (the message names the region and the ECS code).
    pub const COPY_FAILED: &str = "CopyFailed";
    /// What [`super::reason_of`] gives for a code with no letter or digit in it.
    pub const UNKNOWN: &str = "Unknown";
}

/// The longest reason `metav1.Condition` allows.
pub const MAX_REASON_LEN: usize = 1024;

/// The pattern of `metav1.Condition.reason`, as the upstream type declares it.
pub const REASON_PATTERN: &str = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

/// The pattern of `metav1.Condition.type` (a CamelCase name, optionally `domain/` first).
const TYPE_PATTERN: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// Whether `reason` matches [`REASON_PATTERN`] within [`MAX_REASON_LEN`] characters.
pub fn is_valid_reason(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':');
    let last = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(end)) => {
            bytes.len() <= MAX_REASON_LEN
                && first.is_ascii_alphabetic()
                && last(end)
                && bytes.iter().all(inner)
        }
        _ => false,
    }
}

/// The condition or Event reason for `code` (an ECS code, or any text): itself when it is already
/// a valid reason; else its ASCII letters, digits and underscores, each run after a dropped
/// character (`.`, `-`, a space) starting with a capital so the CamelCase still reads
/// (`InvalidOSSObject.NotFound` → `InvalidOSSObjectNotFound`, `Throttling.user` →
/// `ThrottlingUser`), `Code` first when it would start with a digit or an underscore, cut to
/// [`MAX_REASON_LEN`]; [`reasons::UNKNOWN`] when nothing is left. The exact code belongs in
/// `lastError.code` and the message, which have no such rules.
pub fn reason_of(code: &str) -> String {
    if is_valid_reason(code) {
        return code.to_string();
    }
    let mut reason = String::with_capacity(code.len().min(MAX_REASON_LEN));
    let mut capital = false;
    for c in code.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            if reason.is_empty() && !c.is_ascii_alphabetic() {
                reason.push_str("Code");
            }
            reason.push(if capital { c.to_ascii_uppercase() } else { c });
            capital = false;
        } else {
            capital = !reason.is_empty();
        }
        if reason.len() >= MAX_REASON_LEN {
            break;
        }
    }
    // Only ASCII was pushed, so a byte cut is a character cut.
    reason.truncate(MAX_REASON_LEN);
    if reason.is_empty() {
        reasons::UNKNOWN.to_string()
    } else {
        reason
    }
}

/// Rewrites every reason that breaks the API conventions (a status stored by a release that used
/// ECS codes, dots included, as reasons): the API server validates the whole status on every
/// write, so one old reason left in place would have every later write refused.
pub fn conform(conditions: &mut [Condition]) {
    for condition in conditions {
        if !is_valid_reason(&condition.reason) {
            condition.reason = reason_of(&condition.reason);
        }
    }
}

/// The schema of `status.conditions`: `metav1.Condition` with the validations its Go type carries
/// (`type` pattern and length, `status` enum, `reason` pattern and length, `message` length,
/// `observedGeneration` not negative), as a list map keyed by `type`, so server-side apply merges
/// conditions by type as it does for built-in resources.
pub fn schema(generator: &mut SchemaGenerator) -> Schema {
    let mut item = Condition::json_schema(generator);
    let limits = [
        (
            "type",
            json_schema!({"maxLength": 316, "pattern": TYPE_PATTERN}),
        ),
        (
            "status",
            json_schema!({"enum": ["True", "False", "Unknown"]}),
        ),
        (
            "reason",
            json_schema!({"minLength": 1, "maxLength": MAX_REASON_LEN, "pattern": REASON_PATTERN}),
        ),
        ("message", json_schema!({"maxLength": 32768})),
        ("observedGeneration", json_schema!({"minimum": 0})),
    ];
    if let Some(properties) = item
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (name, limit) in limits {
            let (Some(property), Some(limit)) = (
                properties
                    .get_mut(name)
                    .and_then(serde_json::Value::as_object_mut),
                limit.as_object(),
            ) else {
                continue;
            };
            property.extend(limit.clone());
        }
    }
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// `True`, `False` or `Unknown`.
pub fn status_string(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Sets one condition (its reason made valid by [`reason_of`]), keeping `lastTransitionTime` when the status did not change, so watchers can
/// tell how long a condition has held.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    let status = status_string(status);
    let reason = if reason.is_empty() {
        reasons::AS_EXPECTED.to_string()
    } else {
        reason_of(reason)
    };
    match conditions
        .iter_mut()
        .find(|condition| condition.type_ == type_)
    {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status.to_string();
            existing.reason = reason;
            existing.message = message.to_string();
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason,
            message: message.to_string(),
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

/// Whether a condition is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|condition| condition.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).unwrap_or_default())
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            types::READY,
            false,
            reasons::IMPORTING,
            "a",
            Some(1),
            at(10),
        );
        set_condition(
            &mut conditions,
            types::READY,
            false,
            reasons::IMPORTING,
            "b",
            Some(2),
            at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(
            (
                conditions[0].message.as_str(),
                conditions[0].observed_generation
            ),
            ("b", Some(2))
        );
        set_condition(
            &mut conditions,
            types::READY,
            true,
            reasons::AVAILABLE,
            "c",
            Some(2),
            at(30),
        );
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert!(is_true(&conditions, types::READY));
        assert!(!is_true(&conditions, types::STALLED));
    }
}
