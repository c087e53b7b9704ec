//! The decision for a resource that is not being deleted: settled or not, adopt, import (again,
//! after drift), follow the import to `Available` or `Failed`, and update name, description and
//! tags in place.

use std::time::Duration;

use jiff::Timestamp;

use super::status::{elapsed_since, finish, set_all, time};
use super::*;
use crate::api::conditions::{self, reasons, types};
use crate::api::image_import::{ImageImportStatus, LastError, Phase, RetryRule};
use crate::ecs::api::TaskStatus;

/// Where the import stands, derived from task and image.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Importing(Option<u8>),
    Available,
    Failed { code: String, message: String },
}

fn import_progress(
    observed: &SourceObserved,
    status: &ImageImportStatus,
    timing: &Timing,
    now: Timestamp,
) -> Progress {
    let image = observed.image.found();
    let task = observed.task.found();
    let percent = image
        .and_then(|image| image.progress)
        .or_else(|| task.and_then(|task| task.progress));
    if let Some(image) = image {
        match &image.status {
            status if status.is_usable() => return Progress::Available,
            status if status.is_failed() => {
                let (code, message) =
                    task.and_then(|task| task.error.clone()).unwrap_or_else(|| {
                        (
                            reasons::IMPORT_FAILED.to_string(),
                            format!("ECS reports image {} as {}", image.id, image.status),
                        )
                    });
                return Progress::Failed { code, message };
            }
            _ => {}
        }
    }
    if let Some(task) = task {
        match &task.status {
            TaskStatus::Failed => {
                let (code, message) = task.error.clone().unwrap_or_else(|| {
                    (
                        reasons::IMPORT_FAILED.to_string(),
                        format!("import task {} failed", task.id),
                    )
                });
                return Progress::Failed { code, message };
            }
            TaskStatus::Cancelled => {
                return Progress::Failed {
                    code: reasons::TASK_CANCELLED.to_string(),
                    message: format!("import task {} was cancelled outside the operator", task.id),
                };
            }
            _ => return Progress::Importing(percent),
        }
    }
    if image.is_some() {
        return Progress::Importing(percent);
    }
    // Neither task nor image: right after the import ECS may not list them yet.
    let settling =
        elapsed_since(status.start_time.as_ref(), now).is_none_or(|age| age < timing.settle_time);
    if settling {
        Progress::Importing(percent)
    } else {
        Progress::Failed {
            code: reasons::IMAGE_NOT_FOUND.to_string(),
            message: format!(
                "image {} no longer exists in ECS; delete and re-create the ImageImport to import again",
                status.image_id.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// Whether a resource needs no ECS call at all: a failed import, or an available image whose
/// spec and credentials did not change and which, as the poller's resync last saw it (`latest`,
/// `NotAsked` before its first look), still exists as the spec says. A stall before the import
/// (no image yet) is not settled: the decision retries errors fixed outside Kubernetes on a slow
/// schedule.
pub fn settled(resource: &Resource<'_>, latest: &Lookup<ImageView>) -> bool {
    let ready = conditions::is_true(&resource.status.conditions, types::READY);
    as_recorded(resource, latest, ready)
}

/// Whether the source image needs no look-up of its own: [`settled`], or available as specified
/// while only its distribution is outstanding (the copies and shares are looked at on their own).
pub fn source_settled(resource: &Resource<'_>, latest: &Lookup<ImageView>) -> bool {
    let status = resource.status;
    let done = conditions::is_true(&status.conditions, types::READY)
        || super::distribution::outstanding(status);
    as_recorded(resource, latest, done)
}

fn as_recorded(resource: &Resource<'_>, latest: &Lookup<ImageView>, done: bool) -> bool {
    let status = resource.status;
    let unchanged = status.image_id.is_some()
        && status.observed_generation == Some(resource.generation)
        && status.observed_credentials_version.as_deref() == resource.credentials_version
        && !resource.paused;
    let available = status.phase == Some(Phase::Available) && done;
    let as_specified = match latest {
        Lookup::NotAsked => true,
        Lookup::Found(image) => {
            image.status.is_usable() && image_update(resource, image).is_empty()
        }
        Lookup::Missing | Lookup::Failed(_) => false,
    };
    unchanged && (status.phase == Some(Phase::Failed) || (available && as_specified))
}

/// Decides what to do for a resource that is not being deleted.
pub fn apply(
    resource: &Resource<'_>,
    observed: &SourceObserved,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let mut status = resource.status.clone();
    let generation = Some(resource.generation);
    // The account is recorded with the Pending status written before `ImportImage` (and, for a
    // status from an older release, on first sight); `account_guard` keeps it from changing.
    if (status.image_id.is_none() || status.account_id.is_none())
        && let Some(account) = resource.credentials_account
    {
        status.account_id = Some(account.to_string());
    }

    // A crash between ImportImage and the status write: the image carries our UID tag; adopt it.
    if status.image_id.is_none()
        && let Some(image) = observed.image.found()
    {
        status.image_id = Some(image.id.clone());
        status.import_task_id = observed.task.found().map(|task| task.id.clone());
        status.start_time.get_or_insert(time(now));
    }

    let Some(image_id) = status.image_id.clone() else {
        return before_import(resource, status, timing, now);
    };
    // Drift: an available image deleted outside the operator is imported again (as Terraform
    // re-creates what its plan finds missing), under a new ClientToken.
    if status.phase == Some(Phase::Available)
        && observed.image == Lookup::Missing
        && observed.task.found().is_none()
    {
        return reimport(resource, status, &image_id, timing, now);
    }
    // What follows describes the image as seen with these credentials (a rotation included), so
    // a settled resource is not looked at again for a Secret it has already used.
    status.observed_credentials_version = resource.credentials_version.map(String::from);

    let task_label = status
        .import_task_id
        .clone()
        .unwrap_or_else(|| image_id.clone());
    match import_progress(observed, &status, timing, now) {
        Progress::Importing(percent) => {
            status.phase = Some(Phase::Importing);
            status.progress = percent.or(status.progress).or(Some(0));
            status.message = Some(format!(
                "importing {task_label}: {}%",
                status.progress.unwrap_or(0)
            ));
            status.completion_time = None;
            status.last_error = None;
            status.observed_generation = generation;
            set_all(
                &mut status,
                resource.generation,
                false,
                (true, reasons::IMPORTING),
                None,
                now,
            );
            finish(resource, status, None, Some(timing.watchdog))
        }
        Progress::Failed { code, message } => {
            status.phase = Some(Phase::Failed);
            status.message = Some(format!("import of {image_id} failed: {code}: {message}"));
            status.completion_time.get_or_insert(time(now));
            status.last_error = Some(LastError {
                code: code.clone(),
                message: message.clone(),
                request_id: None,
                time: Some(time(now)),
                // ECS tried and failed: importing the same file again fails the same way.
                retry: Some(RetryRule::OnChange),
            });
            status.observed_generation = generation;
            set_all(
                &mut status,
                resource.generation,
                false,
                (false, reasons::IMPORT_FAILED),
                Some((&code, &format!("{code}: {message}"))),
                now,
            );
            finish(resource, status, None, None)
        }
        Progress::Available => {
            status.phase = Some(Phase::Available);
            status.progress = Some(100);
            status.completion_time.get_or_insert(time(now));
            status.observed_generation = generation;
            let update = observed
                .image
                .found()
                .map(|image| image_update(resource, image))
                .unwrap_or_default();
            if update.is_empty() {
                status.message = Some(format!("image {image_id} is available"));
                status.last_error = None;
                set_all(
                    &mut status,
                    resource.generation,
                    true,
                    (false, reasons::AVAILABLE),
                    None,
                    now,
                );
                return finish(resource, status, None, Some(timing.resync_interval));
            }
            if resource.paused {
                status.message = Some(format!(
                    "image {image_id} is available; paused, so name, description and tags are not updated"
                ));
                set_all(
                    &mut status,
                    resource.generation,
                    false,
                    (false, reasons::PAUSED),
                    None,
                    now,
                );
                return finish(resource, status, None, Some(timing.resync_interval));
            }
            status.message = Some(format!(
                "updating name, description or tags of image {image_id}"
            ));
            set_all(
                &mut status,
                resource.generation,
                false,
                (true, reasons::UPDATING),
                None,
                now,
            );
            finish(
                resource,
                status,
                Some(EcsAction::UpdateImage(update)),
                Some(timing.poll_interval),
            )
        }
    }
}

fn reimport(
    resource: &Resource<'_>,
    mut status: ImageImportStatus,
    image_id: &str,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    forget_image(&mut status);
    let mut decision = before_import(resource, status, timing, now);
    decision.events.push(image_missing(image_id));
    decision
}

/// Forgets an image deleted outside the operator, so it is imported again under a new
/// `ClientToken`.
pub(super) fn forget_image(status: &mut ImageImportStatus) {
    status.image_id = None;
    status.import_task_id = None;
    status.start_time = None;
    status.completion_time = None;
    status.progress = None;
    status.last_error = None;
    status.reimports = Some(status.reimports.unwrap_or(0).saturating_add(1));
}

/// The Warning Event of an image deleted outside the operator.
pub(super) fn image_missing(image_id: &str) -> EventNote {
    EventNote {
        warning: true,
        reason: IMAGE_MISSING.into(),
        message: format!(
            "image {image_id} no longer exists in ECS (deleted outside the operator): importing \
             it again"
        ),
    }
}

/// The reason of the Warning Event when an available image has disappeared from ECS.
pub const IMAGE_MISSING: &str = "ImageMissing";

fn before_import(
    resource: &Resource<'_>,
    mut status: ImageImportStatus,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let generation = Some(resource.generation);
    if let Some(held) = holding(resource, &status, timing, now) {
        return held;
    }
    status.phase = Some(Phase::Pending);
    status.observed_generation = generation;
    status.observed_credentials_version = resource.credentials_version.map(String::from);
    if resource.paused {
        status.message =
            Some("paused: the import will start when the pause annotation is removed".into());
        set_all(
            &mut status,
            resource.generation,
            false,
            (false, reasons::PAUSED),
            None,
            now,
        );
        return finish(resource, status, None, None);
    }
    status.message = Some(format!(
        "starting the import in {}",
        resource.spec.region_id
    ));
    // Keep a retryable error visible while retrying; a stall is cleared by trying again.
    let stalled_before = conditions::is_true(&status.conditions, types::STALLED);
    if stalled_before {
        status.last_error = None;
    }
    set_all(
        &mut status,
        resource.generation,
        false,
        (true, reasons::PENDING),
        None,
        now,
    );
    finish(
        resource,
        status,
        Some(EcsAction::Import),
        Some(timing.poll_interval),
    )
}

/// A stall stays until something that could fix it changes: the plan that keeps it, or `None`
/// when it is time to try again (or nothing is stalled).
pub(super) fn holding(
    resource: &Resource<'_>,
    status: &ImageImportStatus,
    timing: &Timing,
    now: Timestamp,
) -> Option<Plan> {
    let error = status
        .last_error
        .clone()
        .filter(|_| conditions::is_true(&status.conditions, types::STALLED))?;
    let same_spec = status.observed_generation == Some(resource.generation);
    let same_credentials =
        status.observed_credentials_version.as_deref() == resource.credentials_version;
    if !(same_spec && same_credentials) {
        return None;
    }
    // The rule stored with the error, never re-derived from its code; a status from a release
    // that stored none is retried slowly, so it cannot stay stuck.
    match error.retry.unwrap_or(RetryRule::Slowly) {
        RetryRule::OnChange => Some(finish(resource, status.clone(), None, None)),
        RetryRule::Slowly => {
            let waited = elapsed_since(error.time.as_ref(), now).unwrap_or(Duration::MAX);
            (waited < timing.external_retry).then(|| {
                finish(
                    resource,
                    status.clone(),
                    None,
                    Some(timing.external_retry - waited),
                )
            })
        }
        RetryRule::Backoff => None,
    }
}

/// The decision once ECS has accepted the import: the IDs are recorded before anything else can
/// fail, and the phase change to `Importing` is announced.
pub fn after_import(
    resource: &Resource<'_>,
    decided: &ImageImportStatus,
    image_id: &str,
    task_id: &str,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let mut status = decided.clone();
    status.image_id = Some(image_id.to_string());
    status.import_task_id = Some(task_id.to_string());
    status.phase = Some(Phase::Importing);
    status.progress = Some(0);
    status.start_time = Some(time(now));
    status.completion_time = None;
    status.last_error = None;
    status.message = Some(format!("importing {task_id}: 0%"));
    status.observed_generation = Some(resource.generation);
    set_all(
        &mut status,
        resource.generation,
        false,
        (true, reasons::IMPORTING),
        None,
        now,
    );
    finish(resource, status, None, Some(timing.watchdog))
}
