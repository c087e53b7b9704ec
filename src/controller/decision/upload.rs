//! The decision for the mappings with a `source`: each is uploaded into its OSS object before the
//! import (one disk at a time), resumed from `status.upload` after a failure or a restart,
//! removed from OSS once the image is `Available` (`cleanup: Delete`), and aborted or removed when
//! the resource is deleted. A mapping with a source is never imported before its upload is
//! complete: without a report of the transfer (`UploadObserved::NotAsked`) nothing is started
//! and nothing imported, since a transfer may still run.

use jiff::Timestamp;

use super::apply::{apply, forget_image, holding, image_missing};
use super::failure::after_failure;
use super::status::{finish, finish_cleanup, set_all};
use super::*;
use crate::api::conditions::reasons;
use crate::api::image_import::{ImageImportSpec, ImageImportStatus, Phase};
use crate::api::source::{DiskUpload, SourceCleanup, UploadStatus};

/// The file's SHA-256 is not `source.sha256` (both digests in the message).
pub const SOURCE_CHECKSUM_MISMATCH: &str = "SourceChecksumMismatch";
/// The file's size is not `source.size`.
pub const SOURCE_SIZE_MISMATCH: &str = "SourceSizeMismatch";
/// The file's bytes show another format than the mapping's `format`.
pub const SOURCE_FORMAT_MISMATCH: &str = "SourceFormatMismatch";
/// The URL is refused (a private or link-local address, too many redirects, over the size cap).
pub const SOURCE_REFUSED: &str = "SourceRefused";
/// `source.file` in the cluster, where only `import -f` reads local files.
pub const SOURCE_FILE_UNSUPPORTED: &str = "SourceFileUnsupported";

/// The Event reasons of an upload.
const STARTED: &str = "UploadStarted";
const RESUMED: &str = "UploadResumed";
const RESTARTED: &str = "UploadRestarted";
const FINISHED: &str = "UploadFinished";
const ABORTED: &str = "UploadAborted";
const OBJECT_REMOVED: &str = "SourceObjectRemoved";
const SOURCE_CHANGED: &str = "UploadSourceChanged";

/// What an upload is of: the mapping's source (url or file, sha256, size), its format, bucket
/// and object, as 16 hex digits of their SHA-256. A URL's query (a signature) goes into the
/// digest, never into status.
pub fn mapping_digest(mapping: &crate::api::image_import::DiskDeviceMapping) -> String {
    use sha2::Digest as _;
    let source = mapping.source.as_ref();
    let fields = serde_json::json!([
        source.and_then(|s| s.url.as_deref()),
        source.and_then(|s| s.file.as_deref()),
        source.and_then(|s| s.sha256.as_deref()),
        source.and_then(|s| s.size),
        mapping.format.map(|f| f.as_str()),
        mapping.oss_bucket,
        mapping.oss_object,
    ]);
    let digest = sha2::Sha256::digest(fields.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// The first mapping whose recorded upload is of something else than the mapping now says
/// (a record of the previous release, with no digest, is taken as it is).
fn changed_mapping(spec: &ImageImportSpec, status: &ImageImportStatus) -> Option<u32> {
    if status.image_id.is_some() {
        return None;
    }
    sources(spec).find(|&disk| {
        let recorded = entry(status, disk).and_then(|e| e.mapping_digest.as_deref());
        let now = usize::try_from(disk)
            .ok()
            .and_then(|at| spec.disk_device_mappings.get(at))
            .map(mapping_digest);
        recorded.is_some_and(|recorded| Some(recorded) != now.as_deref())
    })
}

/// The mapping whose source is to be uploaded next: the first with a `source` whose object is
/// not complete in OSS (or was removed), while no image is recorded; `None` once the import can
/// start (or has).
pub fn pending_upload(spec: &ImageImportSpec, status: &ImageImportStatus) -> Option<u32> {
    if status.image_id.is_some() {
        return None;
    }
    sources(spec).find(|&disk| !in_oss(status, disk))
}

/// The indexes of the mappings with a source.
fn sources(spec: &ImageImportSpec) -> impl Iterator<Item = u32> + '_ {
    spec.disk_device_mappings
        .iter()
        .zip(0u32..)
        .filter(|(mapping, _)| mapping.source.is_some())
        .map(|(_, disk)| disk)
}

fn entry(status: &ImageImportStatus, disk: u32) -> Option<&DiskUpload> {
    status.upload.as_ref().and_then(|upload| upload.disk(disk))
}

fn entry_mut(status: &mut ImageImportStatus, disk: u32) -> &mut DiskUpload {
    status
        .upload
        .get_or_insert_with(UploadStatus::default)
        .disk_mut(disk)
}

fn in_oss(status: &ImageImportStatus, disk: u32) -> bool {
    entry(status, disk).is_some_and(|entry| entry.uploaded && !entry.removed)
}

fn cleanup_of(spec: &ImageImportSpec, disk: u32) -> Option<SourceCleanup> {
    let mapping = spec.disk_device_mappings.get(usize::try_from(disk).ok()?)?;
    mapping.source.as_ref().map(|source| source.cleanup)
}

/// `oss://bucket/object` of a mapping, for messages.
fn target(spec: &ImageImportSpec, disk: u32) -> String {
    usize::try_from(disk)
        .ok()
        .and_then(|at| spec.disk_device_mappings.get(at))
        .map_or_else(
            || format!("disk {disk}"),
            |mapping| format!("oss://{}/{}", mapping.oss_bucket, mapping.oss_object),
        )
}

/// Uploaded objects that `cleanup: Delete` removes and that are still there.
fn removable(resource: &Resource<'_>, status: &ImageImportStatus) -> Vec<u32> {
    sources(resource.spec)
        .filter(|&disk| cleanup_of(resource.spec, disk) == Some(SourceCleanup::Delete))
        .filter(|&disk| in_oss(status, disk))
        .collect()
}

/// Forgets where an upload stood: the next attempt starts a new multipart upload at byte 0.
fn clear_resume_point(entry: &mut DiskUpload) {
    entry.upload_id = None;
    entry.part_size = None;
    entry.parts_done = 0;
    entry.bytes_done = 0;
    entry.sha256_state = None;
    entry.validator = None;
}

/// Records a complete OSS object.
fn record_finished(entry: &mut DiskUpload, done: &UploadDone) {
    entry.uploaded = true;
    entry.removed = false;
    entry.bytes_done = done.size;
    entry.bytes_total = Some(done.size);
    entry.sha256 = Some(done.sha256.clone());
    entry.format.clone_from(&done.format);
    entry.sha256_state = None;
}

/// Recomputes the totals over every mapping with a source, and the phase's progress.
fn totals(spec: &ImageImportSpec, status: &mut ImageImportStatus, bytes_per_second: Option<u64>) {
    let mut done: u64 = 0;
    let mut total: Option<u64> = Some(0);
    for disk in sources(spec).collect::<Vec<_>>() {
        let recorded = entry(status, disk).cloned().unwrap_or_default();
        let size = recorded.bytes_total.or_else(|| {
            let at = usize::try_from(disk).ok()?;
            spec.disk_device_mappings.get(at)?.source.as_ref()?.size
        });
        done = done.saturating_add(match (recorded.uploaded, size) {
            (true, Some(size)) => size,
            _ => recorded.bytes_done,
        });
        total = total.zip(size).map(|(sum, size)| sum.saturating_add(size));
    }
    let upload = status.upload.get_or_insert_with(UploadStatus::default);
    upload.bytes_done = done;
    upload.bytes_total = total;
    upload.percent = total.filter(|&total| total > 0).map(|total| {
        let percent = u128::from(done.min(total)) * 100 / u128::from(total);
        u8::try_from(percent).unwrap_or(100)
    });
    upload.bytes_per_second = bytes_per_second;
    status.progress = Some(upload.percent.unwrap_or(0));
}

/// The upload's part of a decision for a resource that is not being deleted, before the import:
/// `Some` while a source is to be uploaded (or uploaded again, after the image was deleted
/// outside and its object removed), `None` when the import's own part decides.
pub(super) fn before_import(
    resource: &Resource<'_>,
    observed: &Observed,
    timing: &Timing,
    now: Timestamp,
) -> Option<Plan> {
    let status = resource.status;
    // A crash between ImportImage and the status write: the import's part adopts the image.
    if status.image_id.is_none() && observed.source.image.found().is_some() {
        return None;
    }
    if let Some(disk) = changed_mapping(resource.spec, status) {
        return Some(changed(resource, observed, disk, timing, now));
    }
    if let Some(disk) = pending_upload(resource.spec, status) {
        return Some(uploading(
            resource,
            observed,
            status.clone(),
            disk,
            &observed.upload,
            timing,
            now,
        ));
    }
    reupload(resource, observed, timing, now)
}

/// A mapping changed since its upload started: the record starts over, and a multipart upload
/// of the old mapping (recorded, or reported by the running transfer) is aborted, which also
/// stops its transfer; the next pass uploads the mapping as it is now. An object the old
/// mapping completed is left in OSS (the new upload overwrites it when the object is the same).
fn changed(
    resource: &Resource<'_>,
    observed: &Observed,
    disk: u32,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let mut status = resource.status.clone();
    let old = entry(&status, disk).cloned().unwrap_or_default();
    let running = match &observed.upload {
        UploadObserved::Running { disk: at, progress } if *at == disk => {
            Some(progress.upload_id.clone())
        }
        _ => None,
    };
    let upload_id = running.or_else(|| old.upload_id.clone().filter(|_| !old.uploaded));
    // Where the old upload went stays: its abort goes there.
    *entry_mut(&mut status, disk) = DiskUpload {
        disk,
        oss_bucket: old.oss_bucket.clone(),
        oss_object: old.oss_object.clone(),
        ..DiskUpload::default()
    };
    totals(resource.spec, &mut status, None);
    status.phase = Some(Phase::Uploading);
    status.observed_generation = Some(resource.generation);
    let said = format!(
        "the mapping of disk {disk} changed while it was uploaded: uploading it afresh to {}",
        target(resource.spec, disk)
    );
    status.message = Some(said.clone());
    set_all(
        &mut status,
        resource.generation,
        false,
        (true, reasons::UPLOADING),
        None,
        now,
    );
    let step = upload_id.map(|upload_id| EcsAction::AbortUpload { disk, upload_id });
    let mut plan = finish(resource, status, step, Some(timing.watchdog));
    plan.events.push(EventNote {
        warning: false,
        reason: SOURCE_CHANGED.into(),
        message: said,
    });
    plan
}

/// An available image deleted outside the operator whose object `cleanup` removed: the object
/// is uploaded again (its disk entries reset) before the image is imported again.
fn reupload(
    resource: &Resource<'_>,
    observed: &Observed,
    timing: &Timing,
    now: Timestamp,
) -> Option<Plan> {
    let status = resource.status;
    let image_id = status.image_id.clone()?;
    let drifted = status.phase == Some(Phase::Available)
        && observed.source.image == Lookup::Missing
        && observed.source.task.found().is_none();
    let removed: Vec<u32> = sources(resource.spec)
        .filter(|&disk| entry(status, disk).is_some_and(|entry| entry.removed))
        .collect();
    if !drifted || removed.is_empty() {
        return None;
    }
    let mut status = status.clone();
    forget_image(&mut status);
    for &disk in &removed {
        *entry_mut(&mut status, disk) = DiskUpload {
            disk,
            ..DiskUpload::default()
        };
    }
    let disk = pending_upload(resource.spec, &status)?;
    // The object was removed, so no transfer of it can be running.
    let idle = UploadObserved::Idle { disk };
    let mut plan = uploading(resource, observed, status, disk, &idle, timing, now);
    plan.events.push(image_missing(&image_id));
    Some(plan)
}

/// The plan while `disk` is the one to upload, by what the transfer reports of it.
fn uploading(
    resource: &Resource<'_>,
    observed: &Observed,
    mut status: ImageImportStatus,
    disk: u32,
    report: &UploadObserved,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
    let generation = resource.generation;
    if (status.image_id.is_none() || status.account_id.is_none())
        && let Some(account) = resource.credentials_account
    {
        status.account_id = Some(account.to_string());
    }
    let report = match report.disk() {
        Some(reported) if reported == disk => report,
        _ => &UploadObserved::NotAsked,
    };
    let failures = observed.failures.saturating_add(1);
    let waiting = matches!(
        report,
        UploadObserved::NotAsked | UploadObserved::Idle { .. }
    );
    if waiting && let Some(held) = holding(resource, &status, timing, now) {
        return held;
    }
    let wants_file = usize::try_from(disk)
        .ok()
        .and_then(|at| resource.spec.disk_device_mappings.get(at))
        .and_then(|mapping| mapping.source.as_ref())
        .is_some_and(|source| source.file.is_some());
    if wants_file && !observed.local_files {
        let failure = Failure::minted(
            SOURCE_FILE_UNSUPPORTED,
            format!(
                "disk {disk} names source.file, which only the one-shot `ecs-image-operator \
                 import -f` reads: in the cluster, serve the file over https and set source.url"
            ),
        );
        status.phase = Some(Phase::Uploading);
        return after_failure(resource, &status, &failure, failures, timing, now);
    }
    status.phase = Some(Phase::Uploading);
    status.observed_generation = Some(generation);
    status.observed_credentials_version = resource.credentials_version.map(String::from);
    let to = target(resource.spec, disk);
    match report {
        UploadObserved::Failed {
            failure, restart, ..
        } => {
            if *restart {
                clear_resume_point(entry_mut(&mut status, disk));
            }
            totals(resource.spec, &mut status, None);
            after_failure(resource, &status, failure, failures, timing, now)
        }
        UploadObserved::Finished { done, .. } => {
            record_finished(entry_mut(&mut status, disk), done);
            totals(resource.spec, &mut status, None);
            let finished = EventNote {
                warning: false,
                reason: FINISHED.into(),
                message: format!(
                    "disk {disk} uploaded to {to}: {} bytes, sha256 {}",
                    done.size, done.sha256
                ),
            };
            let mut plan = match pending_upload(resource.spec, &status) {
                // One disk at a time: no transfer of the next one runs yet.
                Some(next) => {
                    let idle = UploadObserved::Idle { disk: next };
                    uploading(resource, observed, status, next, &idle, timing, now)
                }
                None => {
                    status.progress = None;
                    status.message = None;
                    let uploaded = Resource {
                        status: &status,
                        ..*resource
                    };
                    apply(&uploaded, &observed.source, timing, now)
                }
            };
            plan.events.insert(0, finished);
            plan
        }
        UploadObserved::Running { progress, .. } => {
            let recorded = entry_mut(&mut status, disk);
            recorded.upload_id = Some(progress.upload_id.clone());
            recorded.part_size = Some(progress.part_size);
            recorded.parts_done = progress.parts_done;
            recorded.bytes_done = progress.bytes_done;
            recorded.bytes_total = progress.bytes_total.or(recorded.bytes_total);
            recorded.sha256_state.clone_from(&progress.sha256_state);
            recorded.validator.clone_from(&progress.validator);
            totals(resource.spec, &mut status, progress.bytes_per_second);
            let of = progress
                .bytes_total
                .map_or_else(String::new, |total| format!(" of {total}"));
            status.message = Some(format!(
                "uploading disk {disk} to {to}: {}% ({} bytes{of})",
                status.progress.unwrap_or(0),
                progress.bytes_done
            ));
            status.last_error = None;
            set_all(
                &mut status,
                generation,
                false,
                (true, reasons::UPLOADING),
                None,
                now,
            );
            // The transfer wakes the resource as parts complete; the watchdog guards it.
            let mut plan = finish(resource, status, None, Some(timing.watchdog));
            if let Some(why) = &progress.restarted {
                plan.events.push(EventNote {
                    warning: true,
                    reason: RESTARTED.into(),
                    message: format!("the upload of disk {disk} started over from byte 0: {why}"),
                });
            }
            plan
        }
        UploadObserved::Idle { .. } if resource.paused => {
            status.message =
                Some("paused: the upload will start when the pause annotation is removed".into());
            set_all(
                &mut status,
                generation,
                false,
                (false, reasons::PAUSED),
                None,
                now,
            );
            finish(resource, status, None, None)
        }
        UploadObserved::Idle { .. } => {
            if crate::api::conditions::is_true(
                &status.conditions,
                crate::api::conditions::types::STALLED,
            ) {
                status.last_error = None;
            }
            let recorded = entry_mut(&mut status, disk);
            // What this upload is of, so a change of the mapping is seen while it runs.
            if let Some(mapping) = usize::try_from(disk)
                .ok()
                .and_then(|at| resource.spec.disk_device_mappings.get(at))
            {
                recorded.mapping_digest = Some(mapping_digest(mapping));
                recorded.oss_bucket = Some(mapping.oss_bucket.clone());
                recorded.oss_object = Some(mapping.oss_object.clone());
            }
            let resumed = recorded
                .upload_id
                .clone()
                .map(|id| (id, recorded.bytes_done));
            totals(resource.spec, &mut status, None);
            let (reason, said) = match resumed {
                Some((id, at)) => (
                    RESUMED,
                    format!(
                        "resuming the upload of disk {disk} to {to} at byte {at} (upload {id})"
                    ),
                ),
                None => (STARTED, format!("uploading disk {disk} to {to}")),
            };
            status.message = Some(said.clone());
            set_all(
                &mut status,
                generation,
                false,
                (true, reasons::UPLOADING),
                None,
                now,
            );
            let mut plan = finish(
                resource,
                status,
                Some(EcsAction::Upload { disk }),
                Some(timing.watchdog),
            );
            plan.events.push(EventNote {
                warning: false,
                reason: reason.into(),
                message: said,
            });
            plan
        }
        UploadObserved::NotAsked => {
            totals(resource.spec, &mut status, None);
            status.message = Some(format!("waiting to upload disk {disk} to {to}"));
            set_all(
                &mut status,
                generation,
                false,
                (true, reasons::UPLOADING),
                None,
                now,
            );
            finish(resource, status, None, Some(timing.watchdog))
        }
    }
}

/// Once the image is `Available`: the uploaded objects with `cleanup: Delete` are removed,
/// after the plan's other steps (each removal is recorded by [`conclude`]).
pub(super) fn remove_objects(resource: &Resource<'_>, observed: &Observed, plan: &mut Plan) {
    let available = plan.status.phase == Some(Phase::Available)
        && plan.status.image_id.is_some()
        && !matches!(observed.source.image, Lookup::Missing | Lookup::Failed(_));
    if !available || plan.failed || resource.paused {
        return;
    }
    for disk in removable(resource, &plan.status) {
        plan.steps.push(EcsAction::DeleteObject { disk });
    }
}

/// The upload's part of a deletion, before the image's: running or unfinished multipart uploads
/// are aborted, uploaded objects with `cleanup: Delete` removed. `None` when nothing is left.
pub(super) fn taking_down(
    resource: &Resource<'_>,
    observed: &Observed,
    mut status: ImageImportStatus,
    timing: &Timing,
    now: Timestamp,
) -> Option<Plan> {
    // What the transfer reports and status does not record yet: a finished object is removed
    // (not aborted, which would leave it), an upload the transfer aborted has nothing to abort.
    let running = match &observed.upload {
        UploadObserved::Running { disk, progress } => Some((*disk, progress.upload_id.clone())),
        UploadObserved::Finished { disk, done } => {
            record_finished(entry_mut(&mut status, *disk), done);
            None
        }
        UploadObserved::Failed {
            disk,
            restart: true,
            ..
        } => {
            clear_resume_point(entry_mut(&mut status, *disk));
            None
        }
        _ => None,
    };
    let mut steps: Vec<EcsAction> = sources(resource.spec)
        .filter_map(|disk| {
            let recorded = entry(&status, disk);
            if recorded.is_some_and(|entry| entry.uploaded) {
                return None;
            }
            let upload_id = recorded
                .and_then(|entry| entry.upload_id.clone())
                .or_else(|| {
                    running
                        .clone()
                        .filter(|(at, _)| *at == disk)
                        .map(|(_, id)| id)
                })?;
            Some(EcsAction::AbortUpload { disk, upload_id })
        })
        .collect();
    steps.extend(
        removable(resource, &status)
            .into_iter()
            .map(|disk| EcsAction::DeleteObject { disk }),
    );
    if steps.is_empty() {
        return None;
    }
    status.phase = Some(Phase::Deleting);
    status.observed_generation = Some(resource.generation);
    if resource.paused {
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
        return Some(finish_cleanup(
            resource,
            status,
            None,
            Some(timing.resync_interval),
            Finalize::No,
        ));
    }
    status.message = Some(format!(
        "removing the uploads of disks {} from OSS before the image",
        steps
            .iter()
            .filter_map(|step| match step {
                EcsAction::AbortUpload { disk, .. } | EcsAction::DeleteObject { disk } => {
                    Some(disk.to_string())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    set_all(
        &mut status,
        resource.generation,
        false,
        (true, reasons::DELETING),
        None,
        now,
    );
    let mut plan = finish_cleanup(
        resource,
        status,
        None,
        Some(timing.poll_interval),
        Finalize::No,
    );
    plan.steps = steps;
    Some(plan)
}

/// Records what the upload steps of a plan did once they all succeeded: an aborted upload loses
/// its resume point, a removed object is marked `removed` (each announced by an Event). After a
/// failure nothing is recorded: both steps may run again (an upload already aborted or an
/// object already gone counts as done).
pub(super) fn conclude(resource: &Resource<'_>, plan: &Plan, outcome: &Outcome, next: &mut Plan) {
    if outcome.failure.is_some() {
        return;
    }
    for step in &plan.steps {
        match step {
            EcsAction::AbortUpload { disk, upload_id } => {
                clear_resume_point(entry_mut(&mut next.status, *disk));
                next.events.push(EventNote {
                    warning: false,
                    reason: ABORTED.into(),
                    message: format!(
                        "aborted the multipart upload {upload_id} of disk {disk}; its parts are removed"
                    ),
                });
            }
            EcsAction::DeleteObject { disk } => {
                entry_mut(&mut next.status, *disk).removed = true;
                next.events.push(EventNote {
                    warning: false,
                    reason: OBJECT_REMOVED.into(),
                    message: format!(
                        "removed the uploaded object {} of disk {disk} (cleanup: Delete)",
                        target(resource.spec, *disk)
                    ),
                });
            }
            _ => {}
        }
    }
}
