//! The status every decision ends with: conditions set together so they never contradict each
//! other, and an Event for every phase change.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::conditions::{self, reasons, types};
use crate::api::image_import::{ImageImportStatus, Phase};

pub(super) fn time(at: Timestamp) -> Time {
    Time(at)
}

pub(super) fn elapsed_since(earlier: Option<&Time>, now: Timestamp) -> Option<Duration> {
    let earlier = earlier?.0;
    let span: SignedDuration = now.duration_since(earlier);
    Duration::try_from(span).ok()
}

pub(super) fn finish(
    resource: &Resource<'_>,
    status: ImageImportStatus,
    action: Option<EcsAction>,
    requeue: Option<Duration>,
) -> Plan {
    let events = phase_event(resource.status.phase, &status)
        .into_iter()
        .collect();
    Plan {
        steps: action.into_iter().collect(),
        status,
        requeue,
        finalize: Finalize::No,
        events,
        failed: false,
    }
}

/// An Event for every phase change.
pub(super) fn phase_event(before: Option<Phase>, after: &ImageImportStatus) -> Option<EventNote> {
    let phase = after.phase?;
    if before == Some(phase) {
        return None;
    }
    Some(EventNote {
        warning: phase == Phase::Failed,
        reason: phase.as_str().to_string(),
        message: after
            .message
            .clone()
            .unwrap_or_else(|| phase.as_str().to_string()),
    })
}

pub(super) fn set_condition(
    status: &mut ImageImportStatus,
    generation: i64,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    conditions::set_condition(
        &mut status.conditions,
        type_,
        value,
        reason,
        message,
        Some(generation),
        time(now),
    );
}

/// Sets Ready, Reconciling and Stalled together, so they never contradict each other.
pub(super) fn set_all(
    status: &mut ImageImportStatus,
    generation: i64,
    ready: bool,
    (reconciling, reason): (bool, &str),
    stalled: Option<(&str, &str)>,
    now: Timestamp,
) {
    let message = status.message.clone().unwrap_or_default();
    let ready_reason = if ready { reasons::AVAILABLE } else { reason };
    set_condition(
        status,
        generation,
        types::READY,
        ready,
        ready_reason,
        &message,
        now,
    );
    set_condition(
        status,
        generation,
        types::RECONCILING,
        reconciling,
        reason,
        &message,
        now,
    );
    match stalled {
        Some((code, stall_message)) => set_condition(
            status,
            generation,
            types::STALLED,
            true,
            code,
            stall_message,
            now,
        ),
        None => set_condition(
            status,
            generation,
            types::STALLED,
            false,
            reasons::AS_EXPECTED,
            "",
            now,
        ),
    }
}

/// A cleanup decision: [`finish`] with whether the finalizer goes.
pub(super) fn finish_cleanup(
    resource: &Resource<'_>,
    status: ImageImportStatus,
    action: Option<EcsAction>,
    requeue: Option<Duration>,
    finalize: Finalize,
) -> Plan {
    let mut decision = finish(resource, status, action, requeue);
    decision.finalize = finalize;
    decision
}
