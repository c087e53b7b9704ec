//! The uploads' parts of the engine: what the process's transfers (`crate::upload::Transfers`)
//! report of the disk being uploaded (`observe`), and carrying out the upload steps (`act`: start
//! or resume a transfer, abort a multipart upload, remove an uploaded object). What to do is
//! decided in `decision::upload`; the transfer itself runs in the background, so `act` returns at
//! once and the transfer wakes the resource as its parts complete.

use std::path::PathBuf;
use std::sync::Arc;

use crate::api::image_import::{DiskDeviceMapping, ImageImport};
use crate::controller::decision::{
    EcsAction, Failure, Resource, UploadDone, UploadObserved, UploadProgress, pending_upload,
};
use crate::ecs::CredentialProvider;
use crate::ecs::redact::{Secrets, shown_text};
use crate::upload::{self, Job, Progress, ResumePoint, Source, Transfers, UploadError, View};

/// Characters of a transfer's error message kept in status.
const MESSAGE_CHARS: usize = 1024;

/// The key of a disk's transfer: the resource's namespace, name and UID (a resource made again
/// under the same name never meets the old one's transfer) and the disk's index.
pub fn key(object: &ImageImport, disk: u32) -> String {
    let meta = &object.metadata;
    format!(
        "{}/{}/{}/{disk}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    )
}

/// The namespace and name a transfer's key belongs to.
pub fn owner_of(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.splitn(3, '/');
    Some((parts.next()?, parts.next()?))
}

/// What the transfers report of the disk to upload next (the recorded one while deleting: a
/// transfer may still run for it). `NotAsked` when there is none, the shell cannot upload, or
/// the transfer is still waiting for its turn (it wakes the resource once it has news).
pub fn observe(
    transfers: Option<&Transfers>,
    object: &ImageImport,
    resource: &Resource<'_>,
) -> UploadObserved {
    let Some(transfers) = transfers else {
        return UploadObserved::NotAsked;
    };
    let disk = match pending_upload(resource.spec, resource.status) {
        Some(disk) => disk,
        None if resource.deleting => match running_disk(transfers, object) {
            Some(disk) => disk,
            None => return UploadObserved::NotAsked,
        },
        None => return UploadObserved::NotAsked,
    };
    match transfers.view(&key(object, disk)) {
        None => UploadObserved::Idle { disk },
        Some(View::Starting) => UploadObserved::NotAsked,
        Some(View::Running(progress)) => UploadObserved::Running {
            disk,
            progress: progress_of(&progress),
        },
        Some(View::Finished(done)) => UploadObserved::Finished {
            disk,
            done: UploadDone {
                size: done.size,
                sha256: done.sha256,
                format: done.format,
            },
        },
        Some(View::Failed { error, restart, .. }) => UploadObserved::Failed {
            disk,
            failure: failure_of(&error),
            restart,
        },
    }
}

/// The disk of this resource whose transfer still runs, if any.
fn running_disk(transfers: &Transfers, object: &ImageImport) -> Option<u32> {
    let running = transfers.running();
    (0u32..)
        .take(object.spec.disk_device_mappings.len())
        .find(|disk| running.contains(&key(object, *disk)))
}

/// Forgets a finished or failed transfer once its report is recorded in status.
pub fn recorded(transfers: Option<&Transfers>, object: &ImageImport, observed: &UploadObserved) {
    if let (Some(transfers), Some(disk)) = (transfers, observed.disk())
        && matches!(
            observed,
            UploadObserved::Finished { .. } | UploadObserved::Failed { .. }
        )
    {
        transfers.forget(&key(object, disk));
    }
}

/// Stops every transfer of the resource (a deletion that leaves OSS alone).
pub async fn stop_all(transfers: Option<&Transfers>, object: &ImageImport) {
    if let Some(transfers) = transfers {
        for disk in (0u32..).take(object.spec.disk_device_mappings.len()) {
            transfers.stop(&key(object, disk)).await;
        }
    }
}

/// The decision's view of a transfer's progress.
fn progress_of(progress: &Progress) -> UploadProgress {
    UploadProgress {
        upload_id: progress.upload_id.clone(),
        part_size: progress.part_size,
        parts_done: progress.parts_done,
        bytes_done: progress.bytes_done,
        bytes_total: progress.bytes_total,
        bytes_per_second: progress.bytes_per_second,
        sha256_state: progress.sha256_state.clone(),
        validator: progress.validator.clone(),
        restarted: progress.restarted.clone(),
    }
}

/// The decision's view of a failed transfer or OSS call.
pub fn failure_of(error: &UploadError) -> Failure {
    let request_id = match error {
        UploadError::Oss { request_id, .. } => request_id.clone(),
        _ => None,
    };
    Failure {
        code: error.code().to_string(),
        message: shown_text(&error.to_string(), &Secrets::none(), MESSAGE_CHARS),
        request_id,
        class: error.class(),
    }
}

/// What the upload steps need from the shell beyond the transfers.
pub struct Uploading<'a> {
    /// The process's transfers.
    pub transfers: &'a Transfers,
    /// The resource.
    pub object: &'a ImageImport,
    /// The resource's credentials (OSS takes the same AccessKey as ECS).
    pub credentials: &'a Arc<CredentialProvider>,
    /// The request headers of the source's headers Secret, when the mapping names one.
    pub headers: Vec<(String, secrecy::SecretString)>,
}

/// Carries out an upload step: starts (or resumes from status) the transfer of a disk, aborts a
/// multipart upload after stopping its transfer, or removes an uploaded object.
pub async fn act(
    uploading: &Uploading<'_>,
    resource: &Resource<'_>,
    step: &EcsAction,
) -> Result<(), Failure> {
    let transfers = uploading.transfers;
    let settings = transfers.settings();
    let credentials = uploading.credentials;
    let region = resource.spec.region_id.as_str();
    match step {
        EcsAction::Upload { disk } => {
            let job = job(uploading, resource, *disk)?;
            transfers.start(job);
            Ok(())
        }
        EcsAction::AbortUpload { disk, upload_id } => {
            transfers.stop(&key(uploading.object, *disk)).await;
            let mapping = mapping(resource, *disk)?;
            // Where the upload went when it started: the mapping may have changed since.
            let recorded = resource.status.upload.as_ref().and_then(|u| u.disk(*disk));
            let bucket = recorded
                .and_then(|r| r.oss_bucket.as_ref())
                .unwrap_or(&mapping.oss_bucket);
            let object = recorded
                .and_then(|r| r.oss_object.as_ref())
                .unwrap_or(&mapping.oss_object);
            upload::abort(settings, credentials, region, bucket, object, upload_id)
                .await
                .map_err(|error| failure_of(&error))
        }
        EcsAction::DeleteObject { disk } => {
            let mapping = mapping(resource, *disk)?;
            let (bucket, object) = (&mapping.oss_bucket, &mapping.oss_object);
            upload::delete_object(settings, credentials, region, bucket, object)
                .await
                .map_err(|error| failure_of(&error))
        }
        _ => Ok(()),
    }
}

fn mapping<'a>(resource: &Resource<'a>, disk: u32) -> Result<&'a DiskDeviceMapping, Failure> {
    usize::try_from(disk)
        .ok()
        .and_then(|index| resource.spec.disk_device_mappings.get(index))
        .ok_or_else(|| invalid(format!("spec.diskDeviceMappings has no disk {disk}")))
}

fn invalid(message: String) -> Failure {
    failure_of(&UploadError::InvalidJob(message))
}

/// The transfer of a disk, resumed from what status recorded of it.
fn job(uploading: &Uploading<'_>, resource: &Resource<'_>, disk: u32) -> Result<Job, Failure> {
    let mapping = mapping(resource, disk)?;
    let source_spec = mapping
        .source
        .as_ref()
        .ok_or_else(|| invalid(format!("disk {disk} has no source")))?;
    let source = match (&source_spec.url, &source_spec.file) {
        (Some(url), _) => Source::Url(url.clone()),
        (None, Some(file)) => Source::File(PathBuf::from(file)),
        (None, None) => return Err(invalid(format!("the source of disk {disk} names no url"))),
    };
    let recorded = resource.status.upload.as_ref().and_then(|u| u.disk(disk));
    let resume = recorded.and_then(|entry| {
        Some(ResumePoint {
            upload_id: entry.upload_id.clone()?,
            part_size: entry.part_size?,
            parts_done: entry.parts_done,
            bytes_done: entry.bytes_done,
            sha256_state: entry.sha256_state.clone(),
            validator: entry.validator.clone(),
        })
    });
    Ok(Job {
        key: key(uploading.object, disk),
        source,
        headers: uploading.headers.clone(),
        expected_sha256: source_spec.sha256.clone(),
        expected_size: source_spec.size,
        declared_format: mapping.format.map(|format| format.as_str().to_string()),
        region: resource.spec.region_id.clone(),
        bucket: mapping.oss_bucket.clone(),
        object: mapping.oss_object.clone(),
        credentials: Arc::clone(uploading.credentials),
        resume,
    })
}
