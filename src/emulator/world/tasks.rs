//! Import tasks: their records, the state computed from timestamps at any instant, look-ups and
//! `CancelTask`.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::{DiskRec, World, among};
use crate::emulator::actions::EcsFault;

/// An injected import failure strikes at this share of the import's duration, so a poller sees
/// progress first and then the failure, as with a real corrupt file.
const FAILURE_AT_FRACTION: f64 = 0.4;

/// Why a task will fail, decided when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFailure {
    /// ECS error code shown in the task's `OperationProgressSet`.
    pub code: &'static str,
    /// Its message.
    pub message: String,
}

/// An import task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRec {
    /// `t-…`.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// The image it fills.
    pub image_id: String,
    /// Disks being imported (copied from the image, which may be deleted before the task ends).
    pub disks: Vec<DiskRec>,
    /// Start (emulated time).
    pub created: Timestamp,
    /// How long the import takes (emulated time).
    pub duration: SignedDuration,
    /// Set when the import is doomed.
    pub failure: Option<PlannedFailure>,
    /// When `CancelTask` stopped it.
    pub cancelled_at: Option<Timestamp>,
}

/// A task's state at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status")]
pub enum TaskState {
    /// Running, with progress 0–99.
    Processing {
        /// Percent done.
        progress: u8,
    },
    /// Done; the image is `Available`.
    Finished {
        /// When it finished.
        at: Timestamp,
    },
    /// Failed; the image is `CreateFailed`.
    Failed {
        /// When it failed.
        at: Timestamp,
        /// Progress reached.
        progress: u8,
        /// Error code.
        code: &'static str,
        /// Error message.
        message: String,
    },
    /// Stopped by `CancelTask`; the image is `CreateFailed`.
    Cancelled {
        /// When it was cancelled.
        at: Timestamp,
        /// Progress reached.
        progress: u8,
    },
}

/// ECS's spelling of a cancelled task. Unconfirmed (api-reference §11.1); `Cancelled` is the
/// spelling the project's client parses, and it is terminal.
pub const TASK_STATUS_CANCELLED: &str = "Cancelled";

impl TaskState {
    /// `TaskStatus` as ECS shows it.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Processing { .. } => "Processing",
            Self::Finished { .. } => "Finished",
            Self::Failed { .. } => "Failed",
            Self::Cancelled { .. } => TASK_STATUS_CANCELLED,
        }
    }

    /// Percent done.
    pub fn progress(&self) -> u8 {
        match self {
            Self::Processing { progress }
            | Self::Failed { progress, .. }
            | Self::Cancelled { progress, .. } => *progress,
            Self::Finished { .. } => 100,
        }
    }

    /// When the task stopped, if it has.
    pub fn finished_at(&self) -> Option<Timestamp> {
        match self {
            Self::Processing { .. } => None,
            Self::Finished { at } | Self::Failed { at, .. } | Self::Cancelled { at, .. } => {
                Some(*at)
            }
        }
    }

    /// Whether `CancelTask` applies.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Processing { .. })
    }

    /// The image status this task state implies.
    pub fn image_status(&self) -> &'static str {
        match self {
            Self::Processing { .. } => "Creating",
            Self::Finished { .. } => "Available",
            Self::Failed { .. } | Self::Cancelled { .. } => "CreateFailed",
        }
    }
}

/// How far along work started at `start` and lasting `duration` is at `at`, in whole percents;
/// 100 only for work that takes no time (running work shows at most 99).
pub(super) fn percent_done(start: Timestamp, duration: SignedDuration, at: Timestamp) -> u8 {
    let total = duration.as_secs_f64();
    if total <= 0.0 {
        return 100;
    }
    let done = at.duration_since(start).as_secs_f64() / total;
    // Truncation is intended: progress shows whole percents and reaches 100 only when done.
    (done * 100.0).clamp(0.0, 99.0) as u8
}

impl TaskRec {
    /// The state at `now`, from the timestamps alone.
    pub fn state(&self, now: Timestamp) -> TaskState {
        let progress_at = |at: Timestamp| percent_done(self.created, self.duration, at);
        let failure_at = self
            .failure
            .as_ref()
            .map(|_| self.created + self.duration.mul_f64(FAILURE_AT_FRACTION));
        let finish_at = self.created + self.duration;
        let stop = [self.cancelled_at, failure_at, Some(finish_at)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(finish_at);
        if now < stop {
            return TaskState::Processing {
                progress: progress_at(now),
            };
        }
        match (&self.failure, self.cancelled_at) {
            (_, Some(at)) if at == stop => TaskState::Cancelled {
                at,
                progress: progress_at(at),
            },
            (Some(failure), _) if Some(stop) == failure_at => TaskState::Failed {
                at: stop,
                progress: progress_at(stop),
                code: failure.code,
                message: failure.message.clone(),
            },
            _ => TaskState::Finished { at: finish_at },
        }
    }
}

impl World {
    /// One task, if the account owns it in that region.
    pub fn task(&self, account: &str, region: &str, id: &str) -> Option<&TaskRec> {
        self.tasks
            .get(id)
            .filter(|task| task.account == account && task.region == region)
    }

    /// Tasks of an account in a region, oldest first: those named in `ids` (looked up), or all of
    /// them when `ids` is empty.
    pub fn tasks_among<'a>(
        &'a self,
        account: &str,
        region: &str,
        ids: &[&str],
    ) -> Vec<&'a TaskRec> {
        among(&self.tasks, ids, |task| {
            task.account == account && task.region == region
        })
    }

    /// Every task of every account (admin view).
    pub fn all_tasks(&self) -> impl Iterator<Item = &TaskRec> {
        self.tasks.values()
    }

    /// `CancelTask`: stops a running import; its image becomes `CreateFailed`.
    pub fn cancel(
        &mut self,
        account: &str,
        region: &str,
        task_id: &str,
        now: Timestamp,
    ) -> Result<(), EcsFault> {
        let task = self
            .tasks
            .get_mut(task_id)
            .filter(|task| task.account == account && task.region == region)
            .ok_or_else(EcsFault::task_not_found)?;
        if !task.state(now).is_running() {
            return Err(EcsFault::new(
                "InvalidTaskId.IncorrectTaskStatus",
                "The specified task status is not invalid.",
            ));
        }
        task.cancelled_at = Some(now);
        Ok(())
    }
}
