//! The decision for a resource being deleted: cancel a running task, delete the image (by
//! `deletionPolicy`), then let the finalizer go; a paused deletion waits and says so.

use std::time::Duration;

use jiff::Timestamp;

use super::status::{finish_cleanup, set_all};
use super::*;
use crate::api::conditions::reasons;
use crate::api::image_import::{DeletionPolicy, Phase};

/// Decides what to do for a resource that is being deleted.
pub fn cleanup(
    resource: &Resource<'_>,
    observed: &SourceObserved,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let mut status = resource.status.clone();
    status.phase = Some(Phase::Deleting);
    status.observed_generation = Some(resource.generation);
    if resource.spec.deletion_policy == DeletionPolicy::Retain {
        status.message =
            Some("deletionPolicy is Retain: leaving the task and the image in ECS".into());
        return finish_cleanup(resource, status, None, None, Finalize::Now);
    }
    let image_id = status
        .image_id
        .clone()
        .or_else(|| observed.image.found().map(|image| image.id.clone()));
    let running_task = observed
        .task
        .found()
        .filter(|task| !task.status.is_terminal());
    let action = match (running_task, &image_id) {
        (Some(task), _) => Some(EcsAction::CancelTask {
            task_id: task.id.clone(),
        }),
        (None, Some(image_id)) if observed.image != Lookup::Missing => {
            Some(EcsAction::DeleteImage {
                image_id: image_id.clone(),
            })
        }
        _ => None,
    };
    if action.is_some() && resource.paused {
        status.message =
            Some("paused: deletion waits until the pause annotation is removed".into());
        set_all(
            &mut status,
            resource.generation,
            false,
            (false, reasons::PAUSED),
            Some((reasons::PAUSED, "deletion is paused")),
            now,
        );
        let mut decision = finish_cleanup(
            resource,
            status,
            None,
            Some(timing.resync_interval),
            Finalize::No,
        );
        decision.events.push(EventNote {
            warning: true,
            reason: reasons::PAUSED.to_string(),
            message: "deletion waits until the pause annotation is removed; nothing is changed in ECS meanwhile".into(),
        });
        return decision;
    }
    match action {
        Some(EcsAction::CancelTask { ref task_id }) => {
            status.message = Some(format!("cancelling import task {task_id}"));
            set_all(
                &mut status,
                resource.generation,
                false,
                (true, reasons::DELETING),
                None,
                now,
            );
            // Confirm the cancellation before deleting the image: ECS refuses to delete while importing.
            finish_cleanup(
                resource,
                status,
                action,
                Some(timing.poll_interval.min(Duration::from_secs(5))),
                Finalize::No,
            )
        }
        Some(EcsAction::DeleteImage { ref image_id }) => {
            status.message = Some(format!("deleting image {image_id}"));
            set_all(
                &mut status,
                resource.generation,
                false,
                (true, reasons::DELETING),
                None,
                now,
            );
            finish_cleanup(
                resource,
                status,
                action,
                Some(timing.poll_interval),
                Finalize::AfterAction,
            )
        }
        _ => {
            status.message = Some("nothing left in ECS".into());
            finish_cleanup(resource, status, None, None, Finalize::Now)
        }
    }
}
