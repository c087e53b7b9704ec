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
//! - errors: transient ones retry with backoff; invalid requests stall until the spec or the
//!   credentials Secret changes; errors fixed outside Kubernetes stall and retry slowly;
//! - deletion: cancel a running task, delete the image (with `deletionPolicy: Delete`), then let the
//!   finalizer go; a paused resource is never changed in ECS.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{self, reasons, types};
use crate::api::image_import::RetryRule;
use crate::api::image_import::{
    DeletionPolicy, ImageImportSpec, ImageImportStatus, LastError, NAME_TAG, NAMESPACE_TAG, Phase,
    UID_TAG,
};
use crate::ecs::ErrorClass;
use crate::ecs::api::TaskStatus;
use crate::ecs::retry::Backoff;

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
}

/// An image as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageView {
    /// `m-…`.
    pub id: String,
    /// `Creating`, `Waiting`, `Available`, `UnAvailable`, `CreateFailed`, `Deprecated`.
    pub status: String,
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

/// The result of looking something up in ECS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Lookup<T> {
    /// Not looked up (nothing to look for).
    #[default]
    NotAsked,
    /// Looked up; ECS does not know it.
    Missing,
    /// Found.
    Found(T),
}

impl<T> Lookup<T> {
    /// The found value.
    pub fn found(&self) -> Option<&T> {
        match self {
            Self::Found(value) => Some(value),
            _ => None,
        }
    }
}

/// What ECS reports about this resource's import, gathered before deciding.
///
/// When status records no image, `image` is the result of looking for an image tagged with the
/// resource's UID, and `task` the import task of that image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The image.
    pub image: Lookup<ImageView>,
    /// The import task.
    pub task: Lookup<TaskView>,
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

/// What to do in ECS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsAction {
    /// Nothing.
    None,
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
}

/// Whether the finalizer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalize {
    /// Keep it.
    No,
    /// Remove it now.
    Now,
    /// Remove it once the action has succeeded.
    AfterAction,
}

/// A Kubernetes Event to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// A Warning rather than a Normal event.
    pub warning: bool,
    /// CamelCase reason (the phase, or an ECS code).
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

/// The outcome of deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do in ECS.
    pub action: EcsAction,
    /// The status to write (the controller writes it only when it differs from the current one).
    pub status: ImageImportStatus,
    /// Look again after this long, if nothing else wakes the resource first; `None` waits for a change.
    pub requeue: Option<Duration>,
    /// Whether the finalizer goes (deletion only).
    pub finalize: Finalize,
    /// Events to emit: one for a phase change, and warnings for what blocks progress.
    pub events: Vec<EventNote>,
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

fn time(at: Timestamp) -> Time {
    Time(at)
}

fn elapsed_since(earlier: Option<&Time>, now: Timestamp) -> Option<Duration> {
    let earlier = earlier?.0;
    let span: SignedDuration = now.duration_since(earlier);
    Duration::try_from(span).ok()
}

/// Where the import stands, derived from task and image.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Importing(Option<u8>),
    Available,
    Failed { code: String, message: String },
}

fn import_progress(
    observed: &Observed,
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
        match image.status.as_str() {
            "Available" | "Deprecated" => return Progress::Available,
            "CreateFailed" | "UnAvailable" => {
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
/// `None` before its first look), still exists as the spec says. A stall before the import (no
/// image yet) is not settled: the decision retries errors fixed outside Kubernetes on a slow
/// schedule.
pub fn settled(resource: &Resource<'_>, latest: Option<&Lookup<ImageView>>) -> bool {
    let status = resource.status;
    let unchanged = status.image_id.is_some()
        && status.observed_generation == Some(resource.generation)
        && status.observed_credentials_version.as_deref() == resource.credentials_version
        && !resource.paused;
    let available = status.phase == Some(Phase::Available)
        && conditions::is_true(&status.conditions, types::READY);
    let as_specified = match latest {
        None => true,
        Some(Lookup::Found(image)) => {
            matches!(image.status.as_str(), "Available" | "Deprecated")
                && image_update(resource, image).is_empty()
        }
        Some(Lookup::Missing | Lookup::NotAsked) => false,
    };
    unchanged && (status.phase == Some(Phase::Failed) || (available && as_specified))
}

/// Decides what to do for a resource that is not being deleted.
pub fn apply(
    resource: &Resource<'_>,
    observed: &Observed,
    timing: &Timing,
    now: Timestamp,
) -> Decision {
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
            finish(resource, status, EcsAction::None, Some(timing.watchdog))
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
                Some((&code, &message)),
                now,
            );
            finish(resource, status, EcsAction::None, None)
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
                return finish(
                    resource,
                    status,
                    EcsAction::None,
                    Some(timing.resync_interval),
                );
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
                return finish(
                    resource,
                    status,
                    EcsAction::None,
                    Some(timing.resync_interval),
                );
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
                EcsAction::UpdateImage(update),
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
) -> Decision {
    status.image_id = None;
    status.import_task_id = None;
    status.start_time = None;
    status.completion_time = None;
    status.progress = None;
    status.last_error = None;
    status.reimports = Some(status.reimports.unwrap_or(0).saturating_add(1));
    let mut decision = before_import(resource, status, timing, now);
    decision.events.push(EventNote {
        warning: true,
        reason: IMAGE_MISSING.into(),
        message: format!(
            "image {image_id} no longer exists in ECS (deleted outside the operator): importing \
             it again"
        ),
    });
    decision
}

/// The reason of the Warning Event when an available image has disappeared from ECS.
pub const IMAGE_MISSING: &str = "ImageMissing";

fn before_import(
    resource: &Resource<'_>,
    mut status: ImageImportStatus,
    timing: &Timing,
    now: Timestamp,
) -> Decision {
    let generation = Some(resource.generation);
    // A stall stays until something that could fix it changes.
    if let Some(error) = status
        .last_error
        .clone()
        .filter(|_| conditions::is_true(&status.conditions, types::STALLED))
    {
        let same_spec = status.observed_generation == generation;
        let same_credentials =
            status.observed_credentials_version.as_deref() == resource.credentials_version;
        // The rule stored with the error, never re-derived from its code; a status from a
        // release that stored none is retried slowly, so it cannot stay stuck.
        if same_spec && same_credentials {
            match error.retry.unwrap_or(RetryRule::Slowly) {
                RetryRule::OnChange => {
                    return finish(resource, status, EcsAction::None, None);
                }
                RetryRule::Slowly => {
                    let waited = elapsed_since(error.time.as_ref(), now).unwrap_or(Duration::MAX);
                    if waited < timing.external_retry {
                        return finish(
                            resource,
                            status,
                            EcsAction::None,
                            Some(timing.external_retry - waited),
                        );
                    }
                }
                RetryRule::Backoff => {}
            }
        }
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
        return finish(resource, status, EcsAction::None, None);
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
        EcsAction::Import,
        Some(timing.poll_interval),
    )
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
) -> Decision {
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
    finish(resource, status, EcsAction::None, Some(timing.watchdog))
}

/// Decides what follows a failed ECS call: retry with backoff, stall until a change, or stall and
/// retry slowly. `failures` counts consecutive failures of this resource, this one included.
pub fn after_failure(
    resource: &Resource<'_>,
    status: &ImageImportStatus,
    failure: &Failure,
    failures: u32,
    timing: &Timing,
    now: Timestamp,
) -> Decision {
    let mut status = status.clone();
    status.last_error = Some(LastError {
        code: failure.code.clone(),
        message: failure.message.clone(),
        request_id: failure.request_id.clone(),
        time: Some(time(now)),
        retry: Some(retry_rule(failure.class)),
    });
    status.observed_generation = Some(resource.generation);
    status.observed_credentials_version = resource.credentials_version.map(String::from);
    let deleting = status.phase == Some(Phase::Deleting);
    match failure.class {
        ErrorClass::Retryable | ErrorClass::RefreshCredentials => {
            let wait = timing.backoff.delay(failures.max(1));
            status.message = Some(format!("{}: {} (retrying)", failure.code, failure.message));
            set_condition(
                &mut status,
                resource.generation,
                types::RECONCILING,
                true,
                reasons::RETRYING,
                &format!("{}: {}", failure.code, failure.message),
                now,
            );
            finish(resource, status, EcsAction::None, Some(wait))
        }
        ErrorClass::InvalidRequest | ErrorClass::External => {
            let slow = failure.class == ErrorClass::External;
            let mut retry_note = if slow {
                format!("; retrying every {}s", timing.external_retry.as_secs())
            } else {
                "; fix the spec or the credentials Secret".to_string()
            };
            if deleting {
                retry_note.push_str(&format!(
                    "; to let the resource go and leave the image in ECS, annotate it {}=true",
                    crate::api::image_import::ABANDON_ANNOTATION
                ));
            }
            if status.image_id.is_none() && !deleting {
                status.phase = Some(Phase::Failed);
            }
            status.message = Some(format!("{}: {}{retry_note}", failure.code, failure.message));
            set_all(
                &mut status,
                resource.generation,
                false,
                (false, &failure.code),
                Some((&failure.code, &failure.message)),
                now,
            );
            // A blocked deletion must not hang silently: keep trying, slowly.
            let requeue = (slow || deleting).then_some(timing.external_retry);
            let mut decision = finish(resource, status, EcsAction::None, requeue);
            decision.events.push(EventNote {
                warning: true,
                reason: failure.code.clone(),
                message: failure.message.clone(),
            });
            decision
        }
    }
}

/// Refuses to act with credentials of another account than the one that owns the recorded image:
/// in that account the image does not exist, so following it would import again and deleting it
/// would "succeed" and leave the real image behind. `None` when the account is the same, not yet
/// known, or no image is recorded (then the new account is simply the one to import in).
///
/// A deletion with the abandon annotation is let go without ECS, by [`abandon`].
pub fn account_guard(resource: &Resource<'_>, timing: &Timing, now: Timestamp) -> Option<Decision> {
    let owner = resource.status.account_id.as_deref()?;
    let current = resource.credentials_account?;
    let recorded = resource.status.image_id.is_some() || resource.status.import_task_id.is_some();
    if owner == current || !recorded {
        return None;
    }
    let image = resource
        .status
        .image_id
        .as_deref()
        .or(resource.status.import_task_id.as_deref())
        .unwrap_or_default();
    let deleting = resource.status.phase == Some(Phase::Deleting) || resource.abandon;
    let way_out = if deleting {
        format!("restore credentials of account {owner} to delete it")
    } else {
        format!(
            "point credentialsSecretRef back at credentials of account {owner} (a new AccessKey of \
             that account is fine); the image is not imported again"
        )
    };
    let failure = Failure::minted(
        CREDENTIALS_ACCOUNT_CHANGED,
        format!(
            "{image} belongs to account {owner}, but the credentials in use belong to account \
             {current}: {way_out}"
        ),
    );
    let mut decision = after_failure(resource, resource.status, &failure, 1, timing, now);
    // Nothing changes in ECS until the credentials point back: no retry on a timer.
    decision.requeue = None;
    Some(decision)
}

/// The code of a stall on credentials of another account.
pub const CREDENTIALS_ACCOUNT_CHANGED: &str = "CredentialsAccountChanged";

/// Lets a resource being deleted go without touching ECS, because the user asked for it with the
/// abandon annotation; the Warning Event names what stays behind.
pub fn abandon(resource: &Resource<'_>) -> Decision {
    let mut status = resource.status.clone();
    status.phase = Some(Phase::Deleting);
    let left = match (&status.image_id, &status.account_id) {
        (Some(image), Some(account)) => format!("image {image} stays in account {account}"),
        (Some(image), None) => format!("image {image} stays in ECS"),
        (None, _) => "nothing recorded in ECS is touched".to_string(),
    };
    let message = format!(
        "abandoned on request ({}=true): {left}",
        crate::api::image_import::ABANDON_ANNOTATION
    );
    status.message = Some(message.clone());
    let mut decision = finish_cleanup(resource, status, EcsAction::None, None, Finalize::Now);
    decision.events.push(EventNote {
        warning: true,
        reason: "Abandoned".into(),
        message,
    });
    decision
}

/// The status while an ECS call is still outstanding after `waited`: `Reconciling` says which
/// action, and since when; everything else stays as it was.
pub fn waiting_for_ecs(
    status: &ImageImportStatus,
    generation: i64,
    action: &str,
    waited: Duration,
    now: Timestamp,
) -> ImageImportStatus {
    let mut status = status.clone();
    let message = format!(
        "waiting for ECS: {action} has not answered for {}s",
        waited.as_secs()
    );
    set_condition(
        &mut status,
        generation,
        types::RECONCILING,
        true,
        reasons::WAITING_FOR_ECS,
        &message,
        now,
    );
    status.message = Some(message);
    status
}

/// How a failure of this class is retried, as stored in `lastError.retry`.
pub fn retry_rule(class: ErrorClass) -> RetryRule {
    match class {
        ErrorClass::Retryable | ErrorClass::RefreshCredentials => RetryRule::Backoff,
        ErrorClass::External => RetryRule::Slowly,
        ErrorClass::InvalidRequest => RetryRule::OnChange,
    }
}

/// Decides what to do for a resource that is being deleted.
pub fn cleanup(
    resource: &Resource<'_>,
    observed: &Observed,
    timing: &Timing,
    now: Timestamp,
) -> Decision {
    let mut status = resource.status.clone();
    status.phase = Some(Phase::Deleting);
    status.observed_generation = Some(resource.generation);
    if resource.spec.deletion_policy == DeletionPolicy::Retain {
        status.message =
            Some("deletionPolicy is Retain: leaving the task and the image in ECS".into());
        return finish_cleanup(resource, status, EcsAction::None, None, Finalize::Now);
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
        (Some(task), _) => EcsAction::CancelTask {
            task_id: task.id.clone(),
        },
        (None, Some(image_id)) if observed.image != Lookup::Missing => EcsAction::DeleteImage {
            image_id: image_id.clone(),
        },
        _ => EcsAction::None,
    };
    if action != EcsAction::None && resource.paused {
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
            EcsAction::None,
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
        EcsAction::CancelTask { ref task_id } => {
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
        EcsAction::DeleteImage { ref image_id } => {
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
            finish_cleanup(resource, status, EcsAction::None, None, Finalize::Now)
        }
    }
}

fn finish_cleanup(
    resource: &Resource<'_>,
    status: ImageImportStatus,
    action: EcsAction,
    requeue: Option<Duration>,
    finalize: Finalize,
) -> Decision {
    let mut decision = finish(resource, status, action, requeue);
    decision.finalize = finalize;
    decision
}

fn finish(
    resource: &Resource<'_>,
    status: ImageImportStatus,
    action: EcsAction,
    requeue: Option<Duration>,
) -> Decision {
    let events = phase_event(resource.status.phase, &status)
        .into_iter()
        .collect();
    Decision {
        action,
        status,
        requeue,
        finalize: Finalize::No,
        events,
    }
}

/// An Event for every phase change.
fn phase_event(before: Option<Phase>, after: &ImageImportStatus) -> Option<EventNote> {
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

fn set_condition(
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
fn set_all(
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
