//! Status conditions in the kstatus convention, and the helper that sets them.
//!
//! `Ready` is True only when the image is available and the current generation is reconciled;
//! `Reconciling` is True while work is in progress; `Stalled` is True when progress needs a change by
//! the user, with the ECS error code as its reason. `kubectl wait --for=condition=Ready` works.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    /// The image is available and matches the current spec.
    pub const READY: &str = "Ready";
    /// The operator is working towards the spec.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot progress without a change by the user.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons of the operator's own (ECS error codes are used as reasons too).
pub mod reasons {
    /// The image is available.
    pub const AVAILABLE: &str = "Available";
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
}

/// `True`, `False` or `Unknown`.
pub fn status_string(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Sets one condition, keeping `lastTransitionTime` when the status did not change, so watchers can
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
    // The design wants ECS codes as reasons, dots included (`InvalidOSSObject.NotFound`): the CRD
    // schema does not restrict reasons, and users search for the code as ECS spells it.
    let reason = if reason.is_empty() {
        reasons::AS_EXPECTED.to_string()
    } else {
        reason.to_string()
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
