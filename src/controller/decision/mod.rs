//! The reconcile decision: a pure function from (the resource, what ECS reports) to (what to do in
//! ECS, the status to write, when to look again). No I/O happens here, so every branch is a unit
//! test; the controller gathers the observation before and carries out the action after.
//!
//! The life cycle, in short:
//! - no image recorded: adopt an image that carries this resource's UID tag (a crash between
//!   `ImportImage` and the status write), else import (`ImportImage` with a `ClientToken` derived
//!   from the UID, so a retry can never create a second image; no separate dry run, since the
//!   import answers the same errors);
//! - image recorded: follow task and image to `Available` or `Failed`; once available, apply
//!   `imageName`, `description` and `tags` in place;
//! - image recorded and available: settled (no ECS call) until the resync sees drift; an image
//!   deleted outside the operator is imported again under a new `ClientToken`;
//! - errors: transient ones retry with backoff; invalid requests stall until the spec or the
//!   credentials Secret changes; errors fixed outside Kubernetes stall and retry slowly;
//! - deletion: cancel a running task, delete the image (with `deletionPolicy: Delete`), then let the
//!   finalizer go; a paused resource is never changed in ECS.
//!
//! - a mapping with a `source`: its file is uploaded into OSS before the import (phase
//!   `Uploading`, resumed from `status.upload`), removed from OSS once the image is available
//!   (`cleanup: Delete`), and aborted or removed first when the resource is deleted.
//!
//! Here: the types the decision reads and returns, tokens and tags. `engine` holds `decide` and
//! `conclude`, which every shell runs; they put the parts in order. By concern: `apply`
//! (`settled`, `apply`, `after_import`), `cleanup`, `failure` (`after_failure`, `account_guard`,
//! `abandon`, `waiting_for_ecs`, `retry_rule`), `status` (conditions and phase Events), `upload`
//! (the uploads of the sources) with what the transfer reports of them in `transfer`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::image_import::{
    ImageImportSpec, ImageImportStatus, NAME_TAG, NAMESPACE_TAG, UID_TAG,
};
use crate::ecs::ErrorClass;
use crate::ecs::api::{ImageStatus, TaskStatus};
use crate::ecs::retry::Backoff;

mod apply;
mod cleanup;
mod distribution;
mod engine;
mod failure;
mod status;
mod transfer;
mod upload;

pub use apply::{IMAGE_MISSING, after_import, apply, settled, source_settled};
pub use cleanup::cleanup;
pub use distribution::{
    COPY_MISSING, copies_settled, copy_token, distribute, involved as distribution_involved,
    next_copy_token, sharing, undistribute,
};
pub use engine::{conclude, decide, needs_ecs};
pub use failure::{
    CREDENTIALS_ACCOUNT_CHANGED, abandon, account_changed, account_guard, after_failure,
    retry_rule, waiting_for_ecs,
};
pub use transfer::{UploadDone, UploadObserved, UploadProgress};
pub use upload::{
    SOURCE_CHECKSUM_MISMATCH, SOURCE_FILE_UNSUPPORTED, SOURCE_FORMAT_MISMATCH, SOURCE_REFUSED,
    SOURCE_SIZE_MISMATCH, pending_upload,
};

/// The resource as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    /// `metadata.uid`.
    pub uid: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// The spec.
    pub spec: &'a ImageImportSpec,
    /// The current status (default when none).
    pub status: &'a ImageImportStatus,
    /// The pause annotation is `"true"`.
    pub paused: bool,
    /// `resourceVersion` of the credentials Secret in use, when the resource names one.
    pub credentials_version: Option<&'a str>,
    /// The account the credentials in use belong to, once known.
    pub credentials_account: Option<&'a str>,
    /// The abandon annotation is `"true"`.
    pub abandon: bool,
    /// Kubernetes is deleting the resource (`metadata.deletionTimestamp` is set).
    pub deleting: bool,
}

/// An image as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageView {
    /// `m-…`.
    pub id: String,
    /// Its status.
    pub status: ImageStatus,
    /// Import progress, when ECS gives one.
    pub progress: Option<u8>,
    /// Current name.
    pub name: String,
    /// Current description.
    pub description: String,
    /// Current tags.
    pub tags: BTreeMap<String, String>,
}

/// An import task as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// `t-…`.
    pub id: String,
    /// Task status.
    pub status: TaskStatus,
    /// Progress, when ECS gives one.
    pub progress: Option<u8>,
    /// The error of a failed task, as (code, message).
    pub error: Option<(String, String)>,
}

/// The result of looking something up in ECS; a failed look-up is a value the decision reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Lookup<T> {
    /// Not looked up (nothing to look for, or not yet seen by the poller).
    #[default]
    NotAsked,
    /// Looked up; ECS does not know it.
    Missing,
    /// Found.
    Found(T),
    /// The look-up failed.
    Failed(Failure),
}

impl<T> Lookup<T> {
    /// The found value.
    pub fn found(&self) -> Option<&T> {
        match self {
            Self::Found(value) => Some(value),
            _ => None,
        }
    }

    /// The failure of a failed look-up.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// What ECS reports about the resource's own image (the source of every copy) and its import
/// task.
///
/// When status records no image, `image` is the result of looking for an image tagged with the
/// resource's UID, and `task` the import task of that image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceObserved {
    /// The image.
    pub image: Lookup<ImageView>,
    /// The import task.
    pub task: Lookup<TaskView>,
}

impl SourceObserved {
    /// The first failed look-up.
    pub fn failure(&self) -> Option<&Failure> {
        self.image.failure().or_else(|| self.task.failure())
    }
}

/// A copy in another region as ECS reports it: by its recorded ID, or by the UID tag while
/// status records none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyObserved {
    /// The region of the copy.
    pub region_id: String,
    /// The copy.
    pub image: Lookup<ImageView>,
}

/// The accounts one image (the source or a copy) is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareObserved {
    /// The image's region.
    pub region_id: String,
    /// The image.
    pub image_id: String,
    /// The accounts, sorted.
    pub accounts: Lookup<Vec<String>>,
}

/// Everything the decision reads about one resource's external objects, failures included:
/// each kind of external object has its own field (the source image and its task, the copies in
/// other regions, the share permissions of each image).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Why ECS could not be asked at all (the credentials or their account could not be had).
    pub blocked: Option<Failure>,
    /// The resource's own image and its import task.
    pub source: SourceObserved,
    /// The copies, when they were looked at (empty otherwise).
    pub copies: Vec<CopyObserved>,
    /// The share permissions of the source and of each copy, when they were looked at.
    pub shares: Vec<ShareObserved>,
    /// Consecutive failed reconciles of this resource before this one (the backoff grows with it).
    pub failures: u32,
    /// The upload of the first mapping with a `source` whose upload is not complete (one disk
    /// uploads at a time per resource); `NotAsked` when the shell did not look.
    pub upload: UploadObserved,
    /// The shell can read a local `source.file` (the one-shot `import -f`); false in the
    /// cluster, where such a source stalls with `SourceFileUnsupported`.
    pub local_files: bool,
}

/// What carrying out a plan's steps brought back, as the next decision needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The IDs of an import ECS accepted.
    pub imported: Option<Accepted>,
    /// Copies ECS accepted, as (region, copy ID).
    pub copied: Vec<(String, String)>,
    /// Copies ECS refused, as (region, failure): the other regions carry on.
    pub copy_failures: Vec<(String, Failure)>,
    /// The failure that stopped the steps (those after it did not run).
    pub failure: Option<Failure>,
}

/// IDs ECS returned for an accepted import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `m-…`.
    pub image_id: String,
    /// `t-…`.
    pub task_id: String,
}

/// Name, description and tag changes to apply to an available image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageUpdate {
    /// The image.
    pub image_id: String,
    /// New name (`ModifyImageAttribute`).
    pub name: Option<String>,
    /// New description (`ModifyImageAttribute`).
    pub description: Option<String>,
    /// Tags to add or overwrite (`TagResources`).
    pub set_tags: BTreeMap<String, String>,
    /// Tag keys to remove (`UntagResources`).
    pub remove_tags: Vec<String>,
}

impl ImageUpdate {
    /// Whether anything differs.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.set_tags.is_empty()
            && self.remove_tags.is_empty()
    }

    /// Whether `ModifyImageAttribute` is needed.
    pub fn modifies_attributes(&self) -> bool {
        self.name.is_some() || self.description.is_some()
    }
}

/// One thing to do in ECS; a plan holds them in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsAction {
    /// `ImportImage` with the resource's client token and tags.
    Import,
    /// Bring name, description and tags of the image in line with the spec.
    UpdateImage(ImageUpdate),
    /// `CancelTask`.
    CancelTask {
        /// `t-…`.
        task_id: String,
    },
    /// `DeleteImage` (a missing image counts as deleted).
    DeleteImage {
        /// `m-…`.
        image_id: String,
    },
    /// `CopyImage` of the source into `region_id`, under the copy's `ClientToken`.
    Copy {
        /// The destination region.
        region_id: String,
    },
    /// Bring name, description and tags of a copy in line with the spec.
    UpdateCopy {
        /// The copy's region.
        region_id: String,
        /// What to change.
        update: ImageUpdate,
    },
    /// `CancelCopyImage` (which deletes the copy).
    CancelCopy {
        /// The copy's region.
        region_id: String,
        /// `m-…`.
        image_id: String,
    },
    /// `DeleteImage` of a copy.
    DeleteCopy {
        /// The copy's region.
        region_id: String,
        /// `m-…`.
        image_id: String,
    },
    /// `ModifyImageSharePermission` of the source or a copy.
    Share {
        /// The image's region.
        region_id: String,
        /// `m-…`.
        image_id: String,
        /// Accounts to share with.
        add: Vec<String>,
        /// Accounts to unshare from.
        remove: Vec<String>,
    },
    /// Start (or resume from `status.upload.disks[disk]`) the transfer of a mapping's source into
    /// its OSS object; it runs in the background and wakes the resource as parts complete.
    Upload {
        /// The mapping's index.
        disk: u32,
    },
    /// Stop a running transfer of the disk and abort its multipart upload (its parts removed).
    AbortUpload {
        /// The mapping's index.
        disk: u32,
        /// The multipart upload.
        upload_id: String,
    },
    /// Remove the uploaded OSS object of a mapping (`cleanup: Delete`).
    DeleteObject {
        /// The mapping's index.
        disk: u32,
    },
}

impl EcsAction {
    /// Whether the step is the source image's own (import, update, cancel its task, delete it),
    /// rather than the distribution's.
    pub fn is_source(&self) -> bool {
        matches!(
            self,
            Self::Import
                | Self::UpdateImage(_)
                | Self::CancelTask { .. }
                | Self::DeleteImage { .. }
        )
    }

    /// Whether the step is an upload's (into OSS, not ECS).
    pub fn is_upload(&self) -> bool {
        matches!(
            self,
            Self::Upload { .. } | Self::AbortUpload { .. } | Self::DeleteObject { .. }
        )
    }

    /// The ECS or OSS action behind it, as people know it (named in `WaitingForECS`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Import => "ImportImage",
            Self::UpdateImage(_) => "ModifyImageAttribute",
            Self::CancelTask { .. } => "CancelTask",
            Self::DeleteImage { .. } | Self::DeleteCopy { .. } => "DeleteImage",
            Self::Copy { .. } => "CopyImage",
            Self::UpdateCopy { .. } => "ModifyImageAttribute",
            Self::CancelCopy { .. } => "CancelCopyImage",
            Self::Share { .. } => "ModifyImageSharePermission",
            Self::Upload { .. } => "UploadPart",
            Self::AbortUpload { .. } => "AbortMultipartUpload",
            Self::DeleteObject { .. } => "DeleteObject",
        }
    }
}

/// Whether the finalizer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalize {
    /// Keep it.
    No,
    /// Remove it now.
    Now,
    /// Remove it once the steps have succeeded.
    AfterAction,
}

/// A Kubernetes Event to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// A Warning rather than a Normal event.
    pub warning: bool,
    /// CamelCase reason (the phase, or an ECS code through `conditions::reason_of`).
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

/// The outcome of deciding: what to do in ECS, the status to write, when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What to do in ECS, in order; the status is written before they run (so that after a crash
    /// during `ImportImage` the next run looks for the image by its UID tag).
    pub steps: Vec<EcsAction>,
    /// The status to write (the controller writes it only when it differs from the current one).
    pub status: ImageImportStatus,
    /// Look again after this long, if nothing else wakes the resource first; `None` waits for a change.
    pub requeue: Option<Duration>,
    /// Whether the finalizer goes (deletion only).
    pub finalize: Finalize,
    /// Events to emit: one for a phase change, and warnings for what blocks progress.
    pub events: Vec<EventNote>,
    /// The plan follows a failure (the shell counts consecutive ones for the backoff).
    pub failed: bool,
}

/// How often to look, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often ECS is asked about running work (the batched poller's round; a cancellation is
    /// confirmed at most this late).
    pub poll_interval: Duration,
    /// While an import runs, how long to wait before looking even without a wake-up: the batched
    /// poller wakes the resource whenever its import changes, so this only guards against a
    /// stalled poller, and is kept longer than `poll_interval` so that thousands of running imports
    /// are not all reconciled every round. The one-shot `import`, which has no poller, sets it to
    /// its poll interval.
    pub watchdog: Duration,
    /// When everything is done: look again this often to notice drift (an image deleted in ECS).
    pub resync_interval: Duration,
    /// Errors fixed outside Kubernetes (quota, RAM role, a missing OSS object) are retried this often.
    pub external_retry: Duration,
    /// Right after ECS accepts an import, a "not found" may be eventual consistency: wait this long
    /// before believing it.
    pub settle_time: Duration,
    /// Backoff for transient errors.
    pub backoff: Backoff,
    /// An ECS call outstanding this long is shown in status (`Reconciling`, `WaitingForECS`), so a
    /// slow or silent endpoint is visible long before the call's timeouts and retries run out.
    pub waiting_notice: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(30),
            watchdog: Duration::from_secs(120),
            resync_interval: Duration::from_secs(600),
            external_retry: Duration::from_secs(300),
            settle_time: Duration::from_secs(120),
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            waiting_notice: Duration::from_secs(5),
        }
    }
}

/// An ECS call that failed, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// ECS code, or the operator's own.
    pub code: String,
    /// Message, with the operator's hint appended where it has one.
    pub message: String,
    /// ECS request ID.
    pub request_id: Option<String>,
    /// What can be done about it.
    pub class: ErrorClass,
}

impl Failure {
    /// A failure under one of the operator's own codes, classed by the one table of them
    /// ([`crate::ecs::error::OPERATOR_CODES`]).
    pub fn minted(code: &str, message: String) -> Self {
        Self {
            code: code.to_string(),
            message,
            request_id: None,
            class: crate::ecs::error::operator_code_class(code),
        }
    }
}

/// The `ClientToken` of a resource's import: its UID, which ECS accepts (ASCII, ≤ 64 characters).
///
/// The UID never changes and never repeats, so every attempt of every operator replica, before and
/// after any crash, asks ECS for the same import.
pub fn client_token(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii)
        .take(crate::ecs::api::MAX_CLIENT_TOKEN_LEN)
        .collect()
}

/// The `ClientToken` of the resource's import after `reimports` re-imports: the UID for the
/// first, then the UID with the count, so importing again an image deleted outside the operator
/// is a new import, not an answer replayed from the first.
pub fn import_token(uid: &str, reimports: u32) -> String {
    let token = client_token(uid);
    if reimports == 0 {
        return token;
    }
    let suffix = format!("-r{reimports}");
    let keep = crate::ecs::api::MAX_CLIENT_TOKEN_LEN.saturating_sub(suffix.len());
    format!("{}{suffix}", token.chars().take(keep).collect::<String>())
}

/// The tags every image of this resource carries, values cut to ECS's 128-character limit.
pub fn operator_tags(resource: &Resource<'_>) -> BTreeMap<String, String> {
    let cut = |value: &str| value.chars().take(128).collect::<String>();
    BTreeMap::from([
        (UID_TAG.to_string(), cut(resource.uid)),
        (NAMESPACE_TAG.to_string(), cut(resource.namespace)),
        (NAME_TAG.to_string(), cut(resource.name)),
    ])
}

/// All tags the image should carry: the user's and the operator's.
pub fn desired_tags(resource: &Resource<'_>) -> BTreeMap<String, String> {
    let mut tags: BTreeMap<String, String> = resource
        .spec
        .tags
        .iter()
        .map(|(key, value)| (key.clone(), value.0.clone()))
        .collect();
    tags.extend(operator_tags(resource));
    tags
}

/// What must change on an image to match the spec. The operator owns the image's tags: keys that
/// are neither in the spec nor the operator's are removed, except ECS's own `acs:` tags.
pub fn image_update(resource: &Resource<'_>, image: &ImageView) -> ImageUpdate {
    let spec = resource.spec;
    let desired = desired_tags(resource);
    ImageUpdate {
        image_id: image.id.clone(),
        name: spec.image_name.clone().filter(|name| *name != image.name),
        description: spec
            .description
            .clone()
            .filter(|description| *description != image.description),
        set_tags: desired
            .iter()
            .filter(|(key, value)| image.tags.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        remove_tags: image
            .tags
            .keys()
            .filter(|key| !desired.contains_key(*key) && !key.starts_with("acs:"))
            .cloned()
            .collect(),
    }
}
