//! The distribution part of the decision: copies of the available source in other regions and
//! the share permissions of the source and every copy (`distribute`), and taking them all down
//! before the source goes (`undistribute`). Each copy carries on on its own: one region failing
//! on quota does not hold the others.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::failure::retry_rule;
use super::status::{elapsed_since, set_all, time};
use super::*;
use crate::api::conditions::{self, reasons, types};
use crate::api::distribution::{CopyStatus, RegionCopy};
use crate::api::image_import::{DeletionPolicy, ImageImportStatus, LastError, Phase, RetryRule};

use reasons::{COPY_FAILED, DISTRIBUTING};

/// The Warning Event of a copy that is gone from its region and is made again.
pub const COPY_MISSING: &str = "CopyMissing";

/// The `ClientToken` of the first copy of a region: the UID and a digest of the region and the
/// generation that asked for it, so that a plan made again on a stale view of the status asks
/// for the same copy, and a region removed and added again (a later generation) gets a new one.
pub fn copy_token(uid: &str, region_id: &str, generation: i64) -> String {
    token_of(uid, &format!("{region_id}|{generation}"))
}

/// The `ClientToken` of a copy made again after `previous` (gone from its region, or refused):
/// derived from the previous token, so a stale view of the status derives the same one.
pub fn next_copy_token(uid: &str, previous: &str) -> String {
    token_of(uid, &format!("{previous}|again"))
}

fn token_of(uid: &str, basis: &str) -> String {
    // FNV-1a: stable across releases and platforms, which a token must be.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in basis.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let uid = client_token(uid);
    format!("{}-c{hash:016x}", uid.chars().take(40).collect::<String>())
}

fn wanted(resource: &Resource<'_>) -> (Vec<RegionCopy>, Vec<String>) {
    resource
        .spec
        .distribution
        .as_ref()
        .map(|d| (d.regions.clone(), d.accounts()))
        .unwrap_or_default()
}

/// Whether the resource has anything to distribute or to take down.
pub fn involved(resource: &Resource<'_>) -> bool {
    let (regions, accounts) = wanted(resource);
    !(regions.is_empty()
        && accounts.is_empty()
        && resource.status.copies.is_empty()
        && resource.status.shared_with.is_empty())
}

/// Whether share permissions are wanted or were made, so that they need looking at.
pub fn sharing(resource: &Resource<'_>) -> bool {
    let (_, accounts) = wanted(resource);
    !(accounts.is_empty() && resource.status.shared_with.is_empty())
}

/// Whether the available source's own part is done and only its distribution is outstanding
/// (the copies and shares are then looked at on their own, not the source).
pub fn outstanding(status: &ImageImportStatus) -> bool {
    let reason_is = |type_: &str, reason: &str| {
        conditions::find(&status.conditions, type_)
            .is_some_and(|c| c.status == "True" && c.reason == reason)
    };
    status.phase == Some(Phase::Available)
        && (reason_is(types::RECONCILING, DISTRIBUTING) || reason_is(types::STALLED, COPY_FAILED))
}

/// Whether every copy, as last seen (`NotAsked` before the poller's first look), is there as the
/// spec says: a copy gone or renamed outside the operator unsettles the resource.
pub fn copies_settled(resource: &Resource<'_>, copies: &[CopyObserved]) -> bool {
    let (regions, _) = wanted(resource);
    copies.iter().all(|copy| match &copy.image {
        Lookup::NotAsked => true,
        Lookup::Found(image) => {
            image.status.is_usable()
                && regions
                    .iter()
                    .find(|r| r.region_id == copy.region_id)
                    .is_some_and(|region| copy_update(resource, region, image).is_empty())
        }
        Lookup::Missing | Lookup::Failed(_) => false,
    })
}

/// A copy followed by the poller (recorded, running) that it has not reported yet.
fn awaiting_poller(copy: &CopyStatus) -> bool {
    copy.image_id.is_some() && copy.phase == Some(Phase::Importing)
}

fn seen<'a>(observed: &'a Observed, region: &str) -> &'a Lookup<ImageView> {
    static NOT_ASKED: Lookup<ImageView> = Lookup::NotAsked;
    observed
        .copies
        .iter()
        .find(|copy| copy.region_id == region)
        .map_or(&NOT_ASKED, |copy| &copy.image)
}

fn shares_of<'a>(observed: &'a Observed, image_id: &str) -> Option<&'a Lookup<Vec<String>>> {
    observed
        .shares
        .iter()
        .find(|share| share.image_id == image_id)
        .map(|share| &share.accounts)
}

/// Whether a failed copy may be tried again now, by the rule stored with its error.
fn may_retry(error: &LastError, timing: &Timing, now: Timestamp) -> bool {
    match error.retry.unwrap_or(RetryRule::Slowly) {
        RetryRule::Backoff => true,
        RetryRule::Slowly | RetryRule::OnChange => elapsed_since(error.time.as_ref(), now)
            .is_none_or(|waited| waited >= timing.external_retry),
    }
}

/// Adds the copies and shares to the plan of a resource whose source is available: copies
/// started, adopted (found by the UID tag after a crash), followed, updated and, for regions no
/// longer wanted, deleted by `deletionPolicy`; permissions brought in line with `shareWith`.
pub fn distribute(
    resource: &Resource<'_>,
    observed: &Observed,
    mut plan: Plan,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    if !involved(resource) || plan.status.phase != Some(Phase::Available) || resource.paused {
        return plan;
    }
    let (regions, accounts) = wanted(resource);
    let status = &mut plan.status;
    let mut copies = Vec::new();
    let mut unknown = false;
    for region in &regions {
        let mut copy = status
            .copies
            .iter()
            .find(|copy| copy.region_id == region.region_id)
            .cloned()
            .unwrap_or_else(|| CopyStatus {
                region_id: region.region_id.clone(),
                ..CopyStatus::default()
            });
        match (copy.image_id.clone(), seen(observed, &region.region_id)) {
            (_, Lookup::Failed(failure)) => copy.last_error = Some(error_of(failure, now)),
            (None, Lookup::Found(image)) | (Some(_), Lookup::Found(image)) => {
                copy.image_id = Some(image.id.clone());
                follow_copy(resource, region, &mut copy, image, &mut plan.steps, now);
            }
            // Right after ECS accepted the copy, "not found" may be eventual consistency.
            (Some(_), Lookup::Missing)
                if elapsed_since(copy.start_time.as_ref(), now)
                    .is_some_and(|age| age < timing.settle_time) =>
            {
                unknown = true;
            }
            (_, Lookup::Missing) => {
                let blocked = copy
                    .last_error
                    .as_ref()
                    .is_some_and(|error| copy.image_id.is_none() && !may_retry(error, timing, now));
                if let Some(gone) = copy.image_id.as_ref().filter(|_| !blocked) {
                    plan.events.push(EventNote {
                        warning: true,
                        reason: COPY_MISSING.into(),
                        message: format!(
                            "copy {gone} in {} is gone from ECS (deleted outside the operator?); \
                             copying again",
                            region.region_id
                        ),
                    });
                }
                if !blocked {
                    // Never made, or gone from its region: (re)start it. A copy recorded as
                    // started (and not refused) may have been asked for already: same token.
                    let asked = copy.image_id.is_none() && copy.last_error.is_none();
                    copy.client_token = Some(match copy.client_token.take() {
                        Some(token) if asked => token,
                        Some(previous) => next_copy_token(resource.uid, &previous),
                        None => copy_token(resource.uid, &region.region_id, resource.generation),
                    });
                    copy.image_id = None;
                    copy.phase = Some(Phase::Pending);
                    copy.progress = Some(0);
                    copy.last_error = None;
                    copy.start_time = Some(time(now));
                    plan.steps.push(EcsAction::Copy {
                        region_id: region.region_id.clone(),
                    });
                }
            }
            // The poller wakes the resource when it has seen the running copy.
            (_, Lookup::NotAsked) if awaiting_poller(&copy) => {}
            (_, Lookup::NotAsked) => unknown = true,
        }
        copies.push(copy);
    }
    // Regions no longer wanted: their copies go (or stay, by deletionPolicy).
    for copy in &status.copies {
        if regions.iter().any(|r| r.region_id == copy.region_id) {
            continue;
        }
        let retain = resource.spec.deletion_policy == DeletionPolicy::Retain;
        let gone = matches!(seen(observed, &copy.region_id), Lookup::Missing);
        if retain || gone || copy.image_id.is_none() {
            continue;
        }
        let steps = take_down(resource, observed, copy, &mut plan.steps);
        unknown |= !steps;
        copies.push(CopyStatus {
            phase: Some(Phase::Deleting),
            ..copy.clone()
        });
    }
    // Share the source and every available copy with exactly the wanted accounts.
    let mut images: Vec<(String, String)> = Vec::new();
    if let Some(source) = &status.image_id {
        images.push((resource.spec.region_id.clone(), source.clone()));
    }
    for copy in copies.iter().filter(|c| c.phase == Some(Phase::Available)) {
        if let Some(id) = &copy.image_id {
            images.push((copy.region_id.clone(), id.clone()));
        }
    }
    let mut shared = true;
    // Permissions are looked at once no copy is running (the poller wakes the resource then).
    let running = copies
        .iter()
        .any(|c| matches!(c.phase, Some(Phase::Pending | Phase::Importing)));
    for (region_id, image_id) in images {
        match shares_of(observed, &image_id) {
            Some(Lookup::Found(current)) => {
                let have: BTreeSet<&String> = current.iter().collect();
                let want: BTreeSet<&String> = accounts.iter().collect();
                let add: Vec<String> = want.difference(&have).map(|a| (*a).clone()).collect();
                let remove: Vec<String> = have.difference(&want).map(|a| (*a).clone()).collect();
                if !(add.is_empty() && remove.is_empty()) {
                    shared = false;
                    plan.steps.push(EcsAction::Share {
                        region_id,
                        image_id,
                        add,
                        remove,
                    });
                }
            }
            _ if accounts.is_empty() && status.shared_with.is_empty() => {}
            _ => {
                shared = false;
                unknown |= !running;
            }
        }
    }
    let copies_all = copies.iter().filter(|c| c.phase != Some(Phase::Deleting));
    let done = copies_all
        .clone()
        .filter(|c| c.phase == Some(Phase::Available))
        .count();
    status.copies = copies;
    if shared {
        status.shared_with = accounts.clone();
    }
    status.copies_ready = (!regions.is_empty()).then(|| format!("{done}/{}", regions.len()));
    summarize(
        resource,
        &mut plan,
        regions.len(),
        done,
        shared,
        timing,
        now,
    );
    let soon = if unknown || !plan.steps.is_empty() {
        // What was not looked at, or is being changed, is looked at again soon.
        Some(timing.poll_interval)
    } else if running {
        // The poller wakes the resource as its copies move; this only guards against a stall.
        Some(timing.watchdog)
    } else {
        None
    };
    if let Some(soon) = soon {
        plan.requeue = Some(plan.requeue.map_or(soon, |r| r.min(soon)));
    }
    plan
}

/// Follows one copy that ECS lists: its phase and progress, and name, description and tag
/// changes once it is available.
fn follow_copy(
    resource: &Resource<'_>,
    region: &RegionCopy,
    copy: &mut CopyStatus,
    image: &ImageView,
    steps: &mut Vec<EcsAction>,
    now: Timestamp,
) {
    if image.status.is_usable() {
        copy.phase = Some(Phase::Available);
        copy.progress = Some(100);
        copy.last_error = None;
        let update = copy_update(resource, region, image);
        if !update.is_empty() {
            steps.push(EcsAction::UpdateCopy {
                region_id: region.region_id.clone(),
                update,
            });
        }
    } else if image.status.is_failed() {
        copy.phase = Some(Phase::Failed);
        copy.last_error.get_or_insert_with(|| LastError {
            code: COPY_FAILED.into(),
            message: format!("ECS reports copy {} as {}", image.id, image.status),
            request_id: None,
            time: Some(time(now)),
            retry: Some(RetryRule::OnChange),
        });
    } else {
        copy.phase = Some(Phase::Importing);
        copy.progress = image.progress.or(copy.progress).or(Some(0));
    }
}

/// Name, description and tags a copy should carry: its own name and description when the
/// region says, else the source's.
fn copy_update(resource: &Resource<'_>, region: &RegionCopy, image: &ImageView) -> ImageUpdate {
    let mut spec = resource.spec.clone();
    spec.image_name = region.image_name.clone().or(spec.image_name);
    spec.description = region.description.clone().or(spec.description);
    image_update(
        &Resource {
            spec: &spec,
            ..*resource
        },
        image,
    )
}

/// The steps that take one copy down: unshare it (ECS refuses to delete a shared image), then
/// cancel it while it is being made, else delete it. False when its permissions are unknown.
fn take_down(
    resource: &Resource<'_>,
    observed: &Observed,
    copy: &CopyStatus,
    steps: &mut Vec<EcsAction>,
) -> bool {
    let (Some(image_id), region_id) = (copy.image_id.clone(), copy.region_id.clone()) else {
        return true;
    };
    let creating = matches!(seen(observed, &region_id), Lookup::Found(image)
        if !image.status.is_usable() && !image.status.is_failed());
    if creating {
        steps.push(EcsAction::CancelCopy {
            region_id,
            image_id,
        });
        return true;
    }
    match shares_of(observed, &image_id) {
        Some(Lookup::Found(current)) if !current.is_empty() => steps.push(EcsAction::Share {
            region_id: region_id.clone(),
            image_id: image_id.clone(),
            add: Vec::new(),
            remove: current.clone(),
        }),
        Some(Lookup::Found(_)) | Some(Lookup::Missing) => {}
        // Never shared: its permissions were not looked at.
        None if !sharing(resource) => {}
        _ => return false,
    }
    steps.push(EcsAction::DeleteCopy {
        region_id,
        image_id,
    });
    true
}

/// For a resource being deleted: the steps that take every copy down and unshare the source,
/// or `None` when nothing of the distribution is left (the source's own cleanup goes next).
pub fn undistribute(resource: &Resource<'_>, observed: &Observed) -> Option<Vec<EcsAction>> {
    if !involved(resource) {
        return None;
    }
    let mut steps = Vec::new();
    let mut unknown = false;
    for copy in &resource.status.copies {
        let found = match seen(observed, &copy.region_id) {
            Lookup::Found(image) => Some(image.id.clone()),
            Lookup::Missing => None,
            _ => {
                unknown = true;
                None
            }
        };
        if let Some(image_id) = found {
            let copy = CopyStatus {
                image_id: Some(image_id),
                ..copy.clone()
            };
            unknown |= !take_down(resource, observed, &copy, &mut steps);
        }
    }
    if let Some(source) = &resource.status.image_id {
        match shares_of(observed, source) {
            Some(Lookup::Found(current)) if !current.is_empty() => steps.push(EcsAction::Share {
                region_id: resource.spec.region_id.clone(),
                image_id: source.clone(),
                add: Vec::new(),
                remove: current.clone(),
            }),
            Some(Lookup::Found(_) | Lookup::Missing) | None => {}
            Some(_) => unknown = true,
        }
    }
    (unknown || !steps.is_empty()).then_some(steps)
}

/// The conditions of an available source with its distribution: Ready only when every copy and
/// share is done; Reconciling names what is running; a failed copy names its region and code.
fn summarize(
    resource: &Resource<'_>,
    plan: &mut Plan,
    wanted: usize,
    done: usize,
    shared: bool,
    timing: &Timing,
    now: Timestamp,
) {
    let status = &mut plan.status;
    let image = status.image_id.clone().unwrap_or_default();
    let failed: Vec<String> = status
        .copies
        .iter()
        .filter_map(|copy| {
            let error = copy.last_error.as_ref()?;
            Some(format!(
                "copy to {} failed: {}: {}",
                copy.region_id, error.code, error.message
            ))
        })
        .collect();
    let running: Vec<String> = status
        .copies
        .iter()
        .filter(|c| matches!(c.phase, Some(Phase::Pending | Phase::Importing)))
        .map(|c| format!("{} {}%", c.region_id, c.progress.unwrap_or(0)))
        .collect();
    let leaving = status
        .copies
        .iter()
        .any(|c| c.phase == Some(Phase::Deleting));
    let complete =
        done == wanted && shared && failed.is_empty() && plan.steps.is_empty() && !leaving;
    if complete {
        status.message = Some(match wanted {
            0 => format!("image {image} is available"),
            _ => format!("image {image} is available, with copies in {wanted} regions"),
        });
        set_all(
            status,
            resource.generation,
            true,
            (false, reasons::AVAILABLE),
            None,
            now,
        );
        return;
    }
    let mut parts = Vec::new();
    if !running.is_empty() {
        parts.push(format!("copying to {}", running.join(", ")));
    }
    if !shared {
        parts.push("updating share permissions".to_string());
    }
    parts.extend(failed.iter().cloned());
    status.message = Some(format!(
        "image {image} is available; {done}/{wanted} copies done; {}",
        parts.join("; ")
    ));
    let stalled = running.is_empty() && shared && !failed.is_empty() && plan.steps.is_empty();
    if stalled {
        let message = failed.join("; ");
        set_all(
            status,
            resource.generation,
            false,
            (false, COPY_FAILED),
            Some((COPY_FAILED, &message)),
            now,
        );
        plan.requeue = Some(timing.external_retry);
    } else {
        set_all(
            status,
            resource.generation,
            false,
            (true, DISTRIBUTING),
            None,
            now,
        );
    }
}

/// The plan after copy steps ran: accepted copies recorded with their IDs, refused ones failed
/// in their region (with a Warning Event naming region and code) while the others carry on.
pub(super) fn conclude_copies(
    status: &mut ImageImportStatus,
    outcome: &Outcome,
    events: &mut Vec<EventNote>,
    now: Timestamp,
) {
    for (region, image_id) in &outcome.copied {
        if let Some(copy) = status.copies.iter_mut().find(|c| &c.region_id == region) {
            copy.image_id = Some(image_id.clone());
            copy.phase = Some(Phase::Importing);
        }
    }
    for (region, failure) in &outcome.copy_failures {
        if let Some(copy) = status.copies.iter_mut().find(|c| &c.region_id == region) {
            copy.phase = Some(Phase::Failed);
            copy.progress = None;
            copy.last_error = Some(error_of(failure, now));
        }
        events.push(EventNote {
            warning: true,
            reason: COPY_FAILED.into(),
            message: format!(
                "copy to {region} failed: {}: {}; the other regions carry on",
                failure.code, failure.message
            ),
        });
    }
}

fn error_of(failure: &Failure, now: Timestamp) -> LastError {
    LastError {
        code: failure.code.clone(),
        message: failure.message.clone(),
        request_id: failure.request_id.clone(),
        time: Some(time(now)),
        retry: Some(retry_rule(failure.class)),
    }
}
