//! The parts of the life cycle that talk to ECS, shared by `run` and `import`: what ECS reports
//! about a resource's image and task (`describe_image`, `describe_task`, `find_by_uid`,
//! `observe_for_cleanup`), and carrying out a decided action (`act`, with `import_request` and
//! `update_image`). The decisions themselves are in `decision`.

use super::decision::{
    self, EcsAction, Failure, ImageUpdate, Lookup, Observed, Resource as DecisionResource, TaskView,
};
use super::poller::image_view;
use super::port::EcsPort;
use crate::api::image_import::{
    ABANDON_ANNOTATION, ImageImport, ImageImportStatus, PAUSED_ANNOTATION, UID_TAG,
};
use crate::ecs::api::{DiskDeviceMapping, ImageFeatures, ImportImageRequest, Tag, TaskSummary};
use crate::ecs::{CredentialProvider, EcsError};
use kube::ResourceExt;

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

/// The decision's view of a resource.
pub(crate) fn decision_resource<'a>(
    object: &'a ImageImport,
    status: &'a ImageImportStatus,
    credentials_version: Option<&'a str>,
    credentials_account: Option<&'a str>,
) -> DecisionResource<'a> {
    let annotated = |key: &str| {
        object
            .annotations()
            .get(key)
            .is_some_and(|value| value == "true")
    };
    DecisionResource {
        uid: object.metadata.uid.as_deref().unwrap_or_default(),
        namespace: object.metadata.namespace.as_deref().unwrap_or_default(),
        name: object.metadata.name.as_deref().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
        spec: &object.spec,
        status,
        paused: annotated(PAUSED_ANNOTATION),
        credentials_version,
        credentials_account,
        abandon: annotated(ABANDON_ANNOTATION),
    }
}

/// One image by ID, in any status.
pub(crate) async fn describe_image<P: EcsPort>(
    ecs: &P,
    credentials: &CredentialProvider,
    region: &str,
    image_id: &str,
) -> Result<Lookup<decision::ImageView>, EcsError> {
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
) -> Result<Observed, EcsError> {
    let region = &object.spec.region_id;
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    let Some(image) = ecs.image_tagged(credentials, region, UID_TAG, uid).await? else {
        return Ok(Observed {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        });
    };
    let task = ecs
        .import_task_of(credentials, region, &image.image_id)
        .await?
        .map_or(Lookup::NotAsked, |task| Lookup::Found(task_view(&task)));
    Ok(Observed {
        image: Lookup::Found(image_view(&image)),
        task,
    })
}

/// Gathers what ECS reports for `cleanup`: the image (by ID, or by UID tag) and its task.
pub(crate) async fn observe_for_cleanup<P: EcsPort>(
    ecs: &P,
    object: &ImageImport,
    status: &ImageImportStatus,
    credentials: &CredentialProvider,
) -> Result<Observed, EcsError> {
    let region = &object.spec.region_id;
    let Some(image_id) = &status.image_id else {
        return find_by_uid(ecs, object, credentials).await;
    };
    let image = describe_image(ecs, credentials, region, image_id).await?;
    let task = match &status.import_task_id {
        Some(task_id) => ecs
            .task(credentials, region, task_id)
            .await?
            .map_or(Lookup::Missing, |task| Lookup::Found(task_view(&task))),
        None => Lookup::NotAsked,
    };
    Ok(Observed { image, task })
}

/// IDs ECS returned for an accepted import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `m-…`.
    pub image_id: String,
    /// `t-…`.
    pub task_id: String,
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

/// The ECS action behind a decided action, as people know it.
pub(crate) fn action_name(action: &EcsAction) -> &'static str {
    match action {
        EcsAction::None => "",
        EcsAction::Import => "ImportImage",
        EcsAction::UpdateImage(_) => "ModifyImageAttribute",
        EcsAction::CancelTask { .. } => "CancelTask",
        EcsAction::DeleteImage { .. } => "DeleteImage",
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
        EcsAction::None => Ok(None),
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
