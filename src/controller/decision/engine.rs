//! The one decision every shell runs: `decide` reads what was observed of each external object,
//! failures included, and returns the plan; `conclude` reads what carrying out the plan's steps
//! brought back. Each kind of external object has its own part (the uploads of the mappings'
//! sources in `upload`, the source image and its task in `apply` and `cleanup`, the copies and
//! shares in `distribution`); this file only puts them in order.

use jiff::Timestamp;

use super::distribution;
use super::failure::after_failure;
use super::upload;
use super::*;
use crate::api::conditions;
use crate::api::image_import::{DeletionPolicy, ImageImportStatus, Phase};

/// Whether ECS needs to be asked at all: not for a deletion that leaves everything in ECS on
/// purpose (`deletionPolicy: Retain`, the abandon annotation), which needs no credentials either.
pub fn needs_ecs(resource: &Resource<'_>) -> bool {
    !(resource.deleting
        && (resource.abandon || resource.spec.deletion_policy == DeletionPolicy::Retain))
}

/// Decides what to do for a resource from what was observed of it: a failure to observe (the
/// credentials, a look-up) is decided like any other failure; a resource whose image belongs to
/// another account is left alone; then the source image's own part decides. Condition reasons a
/// previous release stored (ECS codes with dots) are rewritten, even when nothing else changes,
/// since the API server refuses every status write that still holds one.
pub fn decide(
    resource: &Resource<'_>,
    observed: &Observed,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let mut plan = decide_by_part(resource, observed, timing, now);
    conditions::conform(&mut plan.status.conditions);
    plan
}

fn decide_by_part(
    resource: &Resource<'_>,
    observed: &Observed,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    if resource.deleting && resource.abandon {
        return failure::abandon(resource);
    }
    if !needs_ecs(resource) {
        return cleanup(resource, &SourceObserved::default(), timing, now);
    }
    let base = if resource.deleting {
        ImageImportStatus {
            phase: Some(Phase::Deleting),
            ..resource.status.clone()
        }
    } else {
        resource.status.clone()
    };
    let failures = observed.failures.saturating_add(1);
    let guarded = Resource {
        status: &base,
        ..*resource
    };
    let mut plan = if let Some(failure) = &observed.blocked {
        after_failure(resource, &base, failure, failures, timing, now)
    } else if let Some(guard) = failure::account_guard(&guarded, timing, now) {
        guard
    } else if let Some(failure) = observed.source.failure() {
        after_failure(resource, &base, failure, failures, timing, now)
    } else if resource.deleting {
        // The uploads go first: an unfinished multipart upload or a leftover object is no use
        // once the resource is gone, and nothing else depends on them.
        let uploads = upload::taking_down(resource, observed, base.clone(), timing, now);
        match (
            uploads,
            undistribute(resource, observed).filter(|_| !resource.paused),
        ) {
            (Some(plan), _) => plan,
            (None, Some(steps)) => taking_down(resource, base, steps, timing),
            (None, None) => cleanup(resource, &observed.source, timing, now),
        }
    } else if let Some(plan) = upload::before_import(resource, observed, timing, now) {
        plan
    } else if settled(resource, &observed.source.image)
        && copies_settled(resource, &observed.copies)
    {
        unchanged(resource, None)
    } else if awaiting_poller(resource, &observed.source) {
        // The poller has not seen this import yet; it wakes the resource after its first round.
        unchanged(resource, Some(timing.watchdog))
    } else {
        let plan = apply(resource, &observed.source, timing, now);
        distribute(resource, observed, plan, timing, now)
    };
    if !resource.deleting {
        upload::remove_objects(resource, observed, &mut plan);
    }
    if resource.deleting && plan.finalize != Finalize::Now {
        // A deletion never waits for a change that may not come.
        plan.requeue.get_or_insert(timing.poll_interval);
    }
    plan
}

/// The plan once its steps have run: the IDs of an accepted import are recorded before anything
/// else can fail; a failure is decided on the status the plan wrote; a finalizer that waited for
/// the steps may go. Events already published with the plan are not repeated.
pub fn conclude(
    resource: &Resource<'_>,
    plan: &Plan,
    outcome: &Outcome,
    failures: u32,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let mut next = match &outcome.imported {
        Some(accepted) => after_import(
            resource,
            &plan.status,
            &accepted.image_id,
            &accepted.task_id,
            timing,
            now,
        ),
        None => Plan {
            steps: Vec::new(),
            events: Vec::new(),
            finalize: match plan.finalize {
                Finalize::AfterAction => Finalize::Now,
                kept => kept,
            },
            ..plan.clone()
        },
    };
    distribution::conclude_copies(&mut next.status, outcome, &mut next.events, now);
    upload::conclude(resource, plan, outcome, &mut next);
    if let Some(failure) = &outcome.failure {
        let failures = failures.saturating_add(1);
        next = after_failure(resource, &next.status, failure, failures, timing, now);
        if resource.deleting {
            next.requeue.get_or_insert(timing.poll_interval);
        }
    }
    conditions::conform(&mut next.status.conditions);
    next
}

/// A deletion that takes the copies and share permissions down before the source.
fn taking_down(
    resource: &Resource<'_>,
    mut status: ImageImportStatus,
    steps: Vec<EcsAction>,
    timing: &Timing,
) -> Plan {
    status.message = Some("deleting copies and share permissions before the image".into());
    let mut plan = status::finish(resource, status, None, Some(timing.poll_interval));
    plan.steps = steps;
    plan
}

/// Nothing to do and nothing to write: the stored status stands.
fn unchanged(resource: &Resource<'_>, requeue: Option<std::time::Duration>) -> Plan {
    Plan {
        steps: Vec::new(),
        status: resource.status.clone(),
        requeue,
        finalize: Finalize::No,
        events: Vec::new(),
        failed: false,
    }
}

/// A running import whose image the poller has not reported yet.
fn awaiting_poller(resource: &Resource<'_>, source: &SourceObserved) -> bool {
    resource.status.phase == Some(Phase::Importing)
        && resource.status.image_id.is_some()
        && source.image == Lookup::NotAsked
}
