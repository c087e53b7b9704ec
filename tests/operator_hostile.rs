//! A hostile ECS never wedges a resource: answers that cannot be read are retried with backoff
//! (never a stall), and once the endpoint heals the import finishes with exactly one image and no
//! spec change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::api::image_import::RetryRule;
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use operator_support::*;

fn hostile(spec: FaultSpec) -> FaultSettings {
    FaultSettings {
        actions: [("ImportImage".to_string(), spec)].into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_answers_are_retried_and_the_import_finishes_once_the_endpoint_heals() {
    let kinds = [
        (
            "invalid-json",
            FaultSpec {
                invalid_json_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "missing-fields",
            FaultSpec {
                missing_fields_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "html-502",
            FaultSpec {
                html_502_rate: 1.0,
                ..Default::default()
            },
        ),
    ];
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    for (name, spec) in kinds {
        rig.emulator.set_faults(hostile(spec));
        rig.create_minimal(name).await;
        let retrying = rig
            .wait_for(name, "a retry of the unreadable answer", |o| {
                o.status
                    .as_ref()
                    .and_then(|s| s.last_error.as_ref())
                    .is_some_and(|e| e.code == "UnreadableResponse")
            })
            .await;
        let error = retrying
            .status
            .as_ref()
            .unwrap()
            .last_error
            .clone()
            .unwrap();
        assert_eq!(error.retry, Some(RetryRule::Backoff), "{name}: {error:?}");
        assert!(
            !condition(&retrying, "Stalled").is_some_and(|(on, _, _)| on),
            "{name}: an unreadable answer is not a stall"
        );
        // The endpoint heals: no spec change, no restart.
        rig.emulator.set_faults(FaultSettings::default());
        let done = rig.wait_available(name).await;
        assert_eq!(done.metadata.generation, Some(1));
        let uid = done.metadata.uid.clone().unwrap();
        assert_eq!(rig.images_of(&uid).await.len(), 1, "{name}: one image");
    }
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_call_that_does_not_answer_shows_in_status_at_once() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    rig.emulator.set_faults(hostile(FaultSpec {
        hang_rate: 1.0,
        ..Default::default()
    }));
    rig.create_minimal("silent").await;
    let waiting = rig
        .wait_for("silent", "Reconciling with WaitingForECS", |o| {
            condition(o, "Reconciling").is_some_and(|(on, reason, message)| {
                on && reason == "WaitingForECS" && message.contains("ImportImage")
            })
        })
        .await;
    // Seen during the first attempt: after it times out, the retry keeps lastError (Timeout).
    let status = waiting.status.as_ref().unwrap();
    assert!(status.last_error.is_none(), "{:?}", status.last_error);
    assert!(waiting.status.as_ref().unwrap().image_id.is_none());
    rig.emulator.set_faults(FaultSettings::default());
    let done = rig.wait_available("silent").await;
    let uid = done.metadata.uid.clone().unwrap();
    assert_eq!(rig.images_of(&uid).await.len(), 1);
    rig.kill_controller().await;
}
