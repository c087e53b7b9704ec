//! The source image's parts of the engine: what ECS reports about the resource's own image and
//! its import task (`observe`), and carrying out its steps (`act`: import, update, cancel,
//! delete). What to look up and what to do are decided in `decision`.

use super::Identity;
use crate::api::image_import::{ImageImport, Phase, UID_TAG};
use crate::controller::decision::{
    self, Accepted, EcsAction, Failure, ImageUpdate, ImageView, Lookup,
    Resource as DecisionResource, SourceObserved, TaskView,
};
use crate::controller::poller::image_view;
use crate::controller::port::EcsPort;
use crate::ecs::api::{DiskDeviceMapping, ImageFeatures, ImportImageRequest, Tag, TaskSummary};
use crate::ecs::{CredentialProvider, EcsError};

/// What ECS reports about the source, each look-up's failure kept as its value: nothing before
/// the first status write (nothing can exist yet), the image carrying the UID tag while status
/// records none, the poller's view of a running import or a settled image, else the image by ID;
/// and the task of a failed image (its error) or of one being deleted (to cancel it).
pub(crate) async fn observe<P: EcsPort>(
    ecs: &P,
    object: &ImageImport,
    resource: &DecisionResource<'_>,
    identity: &Identity,
    latest: Lookup<ImageView>,
) -> SourceObserved {
    let credentials = identity.credentials.as_ref();
    let status = resource.status;
    let region = resource.spec.region_id.as_str();
    if decision::account_changed(resource) {
        // In this account the image does not exist: the decision stops before it.
        return SourceObserved::default();
    }
    let Some(image_id) = &status.image_id else {
        // A status is always written before `ImportImage`. (A stale cache that hides a written
        // status only leads to a repeated import with the same ClientToken, which ECS answers
        // with the same image.)
        // Before every source is uploaded, nothing was imported: the decision imports only
        // after the last upload.
        let uploading = decision::pending_upload(resource.spec, status).is_some();
        if (status.phase.is_none() || uploading) && !resource.deleting {
            return SourceObserved {
                image: Lookup::Missing,
                task: Lookup::NotAsked,
            };
        }
        return find_by_uid(ecs, object, credentials)
            .await
            .unwrap_or_else(|error| SourceObserved {
                image: Lookup::Failed(failure_from(&error)),
                task: Lookup::NotAsked,
            });
    };
    let followed =
        status.phase == Some(Phase::Importing) || decision::source_settled(resource, &latest);
    let image = if followed && !resource.deleting {
        latest
    } else {
        looked(describe_image(ecs, credentials, region, image_id).await)
    };
    let failed = image.found().is_some_and(|image| image.status.is_failed());
    let task = match &status.import_task_id {
        // A running task is cancelled before its image is deleted.
        Some(task_id) if resource.deleting => looked(
            ecs.task(credentials, region, task_id)
                .await
                .map(|task| task.map_or(Lookup::Missing, |task| Lookup::Found(task_view(&task)))),
        ),
        // The failure detail of an import lives on its task.
        Some(task_id) if failed => looked(describe_task(ecs, credentials, region, task_id).await),
        _ => Lookup::NotAsked,
    };
    SourceObserved { image, task }
}

fn looked<T>(result: Result<Lookup<T>, EcsError>) -> Lookup<T> {
    result.unwrap_or_else(|error| Lookup::Failed(failure_from(&error)))
}

/// The decision's view of a failed ECS call, with the operator's hint appended.
pub(crate) fn failure_from(error: &EcsError) -> Failure {
    let api = error.api();
    let mut message = api.map_or_else(|| error.to_string(), |api| api.message.clone());
    if let Some(hint) = api.and_then(|api| api.hint()) {
        message = format!("{message} ({hint})");
    }
    Failure {
        code: error.code().to_string(),
        message,
        request_id: api.and_then(|api| api.request_id.clone()),
        class: error.class(),
    }
}

/// One image by ID, in any status.
pub(crate) async fn describe_image<P: EcsPort>(
    ecs: &P,
    credentials: &CredentialProvider,
    region: &str,
    image_id: &str,
) -> Result<Lookup<ImageView>, EcsError> {
    let images = ecs
        .images(credentials, region, &[image_id.to_string()])
        .await?;
    Ok(images
        .iter()
        .find(|image| image.image_id == image_id)
        .map_or(Lookup::Missing, |image| Lookup::Found(image_view(image))))
}

/// One task with its progress and the error of a failed task.
pub(crate) async fn describe_task<P: EcsPort>(
    ecs: &P,
    credentials: &CredentialProvider,
    region: &str,
    task_id: &str,
) -> Result<Lookup<TaskView>, EcsError> {
    let task = ecs.task_detail(credentials, region, task_id).await?;
    Ok(task.map_or(Lookup::Missing, |task| {
        Lookup::Found(TaskView {
            id: task.task_id.clone(),
            status: task.status(),
            progress: task.progress_percent(),
            error: task
                .first_error()
                .map(|(code, message)| (code.to_string(), message.to_string())),
        })
    }))
}

/// The decision's view of a listed task (no progress or error: `DescribeTasks` has neither).
fn task_view(task: &TaskSummary) -> TaskView {
    TaskView {
        id: task.task_id.clone(),
        status: task.status(),
        progress: None,
        error: None,
    }
}

/// Looks for an image carrying this resource's UID tag, and its import task.
pub(crate) async fn find_by_uid<P: EcsPort>(
    ecs: &P,
    object: &ImageImport,
    credentials: &CredentialProvider,
) -> Result<SourceObserved, EcsError> {
    let region = &object.spec.region_id;
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    let Some(image) = ecs.image_tagged(credentials, region, UID_TAG, uid).await? else {
        return Ok(SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        });
    };
    let task = ecs
        .import_task_of(credentials, region, &image.image_id)
        .await?
        .map_or(Lookup::NotAsked, |task| Lookup::Found(task_view(&task)));
    Ok(SourceObserved {
        image: Lookup::Found(image_view(&image)),
        task,
    })
}

/// The `ImportImage` request a resource stands for.
pub fn import_request(resource: &DecisionResource<'_>) -> ImportImageRequest {
    let spec = resource.spec;
    let arm64 = spec.architecture == Some(crate::api::image_import::Architecture::Arm64);
    ImportImageRequest {
        region_id: spec.region_id.clone(),
        image_name: spec.image_name.clone(),
        description: spec.description.clone(),
        architecture: spec.architecture.map(|v| v.as_str().to_string()),
        os_type: spec.os_type.map(|v| v.as_str().to_string()),
        platform: spec.platform.map(|v| v.as_str().to_string()),
        // arm64 boots with UEFI only; say so rather than rely on ECS's default.
        boot_mode: spec
            .boot_mode
            .map(|v| v.as_str().to_string())
            .or_else(|| arm64.then(|| "UEFI".to_string())),
        license_type: spec.license_type.map(|v| v.as_str().to_string()),
        role_name: spec.role_name.clone(),
        resource_group_id: spec.resource_group_id.clone(),
        detection_strategy: spec.detection_strategy.map(|v| v.as_str().to_string()),
        storage_location_arn: None,
        features: ImageFeatures {
            nvme_support: spec
                .features
                .as_ref()
                .and_then(|f| f.nvme_support)
                .map(|v| v.as_str().to_string()),
            imds_support: spec
                .features
                .as_ref()
                .and_then(|f| f.imds_support)
                .map(|v| v.as_str().to_string()),
        },
        disk_device_mappings: spec
            .disk_device_mappings
            .iter()
            .map(|disk| DiskDeviceMapping {
                oss_bucket: disk.oss_bucket.clone(),
                oss_object: disk.oss_object.clone(),
                format: disk.format.map(|v| v.as_str().to_string()),
                disk_image_size: disk.disk_image_size,
                device: disk.device.clone(),
            })
            .collect(),
        tags: decision::desired_tags(resource)
            .into_iter()
            .map(|(key, value)| Tag::new(key, value))
            .collect(),
        client_token: Some(decision::import_token(
            resource.uid,
            resource.status.reimports.unwrap_or(0),
        )),
        dry_run: false,
    }
}

/// Carries out a decided action; returns the IDs when an import was accepted.
pub(crate) async fn act<P: EcsPort>(
    ecs: &P,
    resource: &DecisionResource<'_>,
    action: &EcsAction,
    credentials: &CredentialProvider,
) -> Result<Option<Accepted>, EcsError> {
    let region = resource.spec.region_id.as_str();
    match action {
        EcsAction::Import => {
            // No dry run first: ImportImage answers the same errors, and the ClientToken makes a
            // retry (an answer lost to a crash or the network) return the same image.
            let accepted = ecs.import(credentials, &import_request(resource)).await?;
            tracing::info!(name = %resource.name, image = %accepted.image_id, task = %accepted.task_id, "ECS accepted the import");
            Ok(Some(Accepted {
                image_id: accepted.image_id,
                task_id: accepted.task_id,
            }))
        }
        EcsAction::UpdateImage(update) => update_image(region, update, credentials, ecs)
            .await
            .map(|()| None),
        EcsAction::CancelTask { task_id } => {
            ecs.cancel(credentials, region, task_id).await.map(|_| None)
        }
        EcsAction::DeleteImage { image_id } => ecs
            .delete(credentials, region, image_id)
            .await
            .map(|_| None),
        // The distribution's steps are carried out by its own part.
        EcsAction::Copy { .. }
        | EcsAction::UpdateCopy { .. }
        | EcsAction::CancelCopy { .. }
        | EcsAction::DeleteCopy { .. }
        | EcsAction::Share { .. }
        | EcsAction::Upload { .. }
        | EcsAction::AbortUpload { .. }
        | EcsAction::DeleteObject { .. } => Ok(None),
    }
}

/// Applies name, description and tag changes to an image.
pub(crate) async fn update_image<P: EcsPort>(
    region: &str,
    update: &ImageUpdate,
    credentials: &CredentialProvider,
    ecs: &P,
) -> Result<(), EcsError> {
    let image = update.image_id.as_str();
    if update.modifies_attributes() {
        let (name, description) = (update.name.as_deref(), update.description.as_deref());
        ecs.update_attributes(credentials, region, image, name, description)
            .await?;
    }
    if !update.set_tags.is_empty() {
        let tags: Vec<Tag> = update
            .set_tags
            .iter()
            .map(|(key, value)| Tag::new(key.clone(), value.clone()))
            .collect();
        ecs.tag(credentials, region, image, &tags).await?;
    }
    if !update.remove_tags.is_empty() {
        ecs.untag(credentials, region, image, &update.remove_tags)
            .await?;
    }
    Ok(())
}
