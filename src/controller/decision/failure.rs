//! What follows a failure: the retry rule of its class (backoff, slowly, on change), the stall
//! and its Warning Event; the refusal to act with another account's credentials; abandoning on
//! request; and the status while an ECS call is outstanding.

use std::time::Duration;

use jiff::Timestamp;

use super::status::{finish, finish_cleanup, set_all, set_condition, time};
use super::*;
use crate::api::conditions::{self, reasons, types};
use crate::api::image_import::{ImageImportStatus, LastError, Phase, RetryRule};
use crate::ecs::ErrorClass;

/// Decides what follows a failed ECS call: retry with backoff, stall until a change, or stall and
/// retry slowly. `failures` counts consecutive failures of this resource, this one included.
pub fn after_failure(
    resource: &Resource<'_>,
    status: &ImageImportStatus,
    failure: &Failure,
    failures: u32,
    timing: &Timing,
    now: Timestamp,
) -> Plan {
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
            let mut plan = finish(resource, status, None, Some(wait));
            plan.failed = true;
            plan
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
            // The reasons lose the code's dots (`reason_of`); the messages keep it exact, first.
            let said = format!("{}: {}", failure.code, failure.message);
            set_all(
                &mut status,
                resource.generation,
                false,
                (false, &failure.code),
                Some((&failure.code, &said)),
                now,
            );
            // A blocked deletion must not hang silently: keep trying, slowly.
            let requeue = (slow || deleting).then_some(timing.external_retry);
            let mut decision = finish(resource, status, None, requeue);
            decision.failed = true;
            decision.events.push(EventNote {
                warning: true,
                reason: conditions::reason_of(&failure.code),
                message: said,
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
pub fn account_guard(resource: &Resource<'_>, timing: &Timing, now: Timestamp) -> Option<Plan> {
    if !account_changed(resource) {
        return None;
    }
    let owner = resource.status.account_id.as_deref()?;
    let current = resource.credentials_account?;
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

/// Whether the credentials in use belong to another account than the one that owns the recorded
/// image or task (then nothing of it is looked up or changed).
pub fn account_changed(resource: &Resource<'_>) -> bool {
    let recorded = resource.status.image_id.is_some() || resource.status.import_task_id.is_some();
    match (
        resource.status.account_id.as_deref(),
        resource.credentials_account,
    ) {
        (Some(owner), Some(current)) => recorded && owner != current,
        _ => false,
    }
}

/// The code of a stall on credentials of another account.
pub const CREDENTIALS_ACCOUNT_CHANGED: &str = "CredentialsAccountChanged";

/// Lets a resource being deleted go without touching ECS, because the user asked for it with the
/// abandon annotation; the Warning Event names what stays behind.
pub fn abandon(resource: &Resource<'_>) -> Plan {
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
    let mut decision = finish_cleanup(resource, status, None, None, Finalize::Now);
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
    // Written as it is, outside the decision: reasons of an older release must not stay.
    conditions::conform(&mut status.conditions);
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
