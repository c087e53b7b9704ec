//! What `import -f` says when it ends: the status it prints on standard output, and the lines
//! on standard error that tell what a person can do now (never that something will be retried:
//! the command has ended).

use super::one_shot::{Ending, GIVE_UP_AFTER};
use crate::api::conditions::types;
use crate::api::image_import::{ImageImportStatus, Phase};

/// What the run prints on standard output for one import, in this order: its `name`
/// (namespace/name) when the file held several imports, the image and its region when there is
/// one, then the status without the conditions that only say something is not the case
/// (`Stalled` or `Reconciling` False): `Ready` always stays, the others only while True.
#[derive(Debug, serde::Serialize)]
pub struct Printed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<PrintedImage<'a>>,
    status: ImageImportStatus,
}

#[derive(Debug, serde::Serialize)]
struct PrintedImage<'a> {
    id: &'a str,
    region: &'a str,
}

/// The document printed for `status`.
pub fn printed<'a>(
    status: &'a ImageImportStatus,
    region: &'a str,
    name: Option<&'a str>,
) -> Printed<'a> {
    let mut shown = status.clone();
    shown
        .conditions
        .retain(|c| c.status == "True" || c.type_ == types::READY);
    Printed {
        name,
        image: status
            .image_id
            .as_deref()
            .map(|id| PrintedImage { id, region }),
        status: shown,
    }
}

/// The status a one-shot run prints: its message says what a person can do now, never that
/// something will be retried (the command has ended).
pub fn one_shot_message(status: &mut ImageImportStatus) {
    let Some(message) = status.message.as_mut() else {
        return;
    };
    let mut text = message.clone();
    for promise in ["; fix the spec or the credentials Secret", " (retrying)"] {
        text = text.replace(promise, "");
    }
    if let Some(at) = text.find("; retrying every ") {
        let rest = &text[at + 2..];
        let end = rest.find(';').map_or(text.len(), |i| at + 2 + i);
        text.replace_range(at..end, "");
    }
    *message = text;
}

/// What to say after the bar when the run did not end in `Available`, and the exit code.
pub fn ending_lines(
    status: &ImageImportStatus,
    ending: Ending,
    region: &str,
    cancelled: Option<Result<(), String>>,
) -> Vec<String> {
    let task = status.import_task_id.as_deref();
    let running = task.filter(|_| status.phase == Some(Phase::Importing));
    let cancel_hint = |task: &str| {
        format!("cancel it with: ecs-image-operator ecs cancel-task {task} --region {region}")
    };
    let error = status
        .last_error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message));
    match ending {
        Ending::Done if status.phase == Some(Phase::Available) => Vec::new(),
        Ending::Done => vec![format!(
            "refused: {}; change the manifest (or the credentials) and run again",
            error.unwrap_or_else(|| "the import did not succeed".into())
        )],
        Ending::GaveUp => {
            let mut line = format!(
                "gave up after {} failed attempts in a row: {}",
                GIVE_UP_AFTER + 1,
                error.unwrap_or_else(|| "unknown error".into())
            );
            if let Some(task) = running {
                line.push_str(&format!("; import task {task} is still running in ECS: run the same command again to follow it, or {}", cancel_hint(task)));
            }
            vec![line]
        }
        Ending::TimedOut(after) => vec![match running {
            Some(task) => format!(
                "stopped waiting after {}s; import task {task} is still running in ECS ({region}): run the same command again to follow it, or {}",
                after.as_secs(),
                cancel_hint(task)
            ),
            None => format!(
                "stopped waiting after {}s; nothing is running in ECS",
                after.as_secs()
            ),
        }],
        Ending::Interrupted => vec![match (running, cancelled) {
            (Some(task), Some(Ok(()))) => {
                format!("interrupted: cancelled import task {task} in {region}")
            }
            (Some(task), Some(Err(why))) => format!(
                "interrupted: cancelling import task {task} failed ({why}); {}",
                cancel_hint(task)
            ),
            (Some(task), None) => format!(
                "interrupted: import task {task} keeps running (--keep-on-interrupt): run the same command again to follow it, or {}",
                cancel_hint(task)
            ),
            (None, _) if status.phase == Some(Phase::Uploading) => {
                "interrupted: the upload stopped; nothing was imported".to_string()
            }
            (None, _) => "interrupted: no import task was running".to_string(),
        }],
    }
}
