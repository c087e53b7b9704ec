//! What the controller makes of ECS errors, end to end: every `ImportImage` code of the original
//! page ends in a condition naming it; invalid requests stall until the spec changes; errors fixed
//! outside Kubernetes are retried slowly; a failed import task fails the resource with its code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::api::conditions;
use ecs_image_operator::api::image_import::{ImageImport, Phase};
use ecs_image_operator::ecs::ErrorClass;
use ecs_image_operator::ecs::error::known_code;
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use ecs_image_operator::emulator::world::AccountPatch;
use operator_support::*;
use serde_json::json;

/// The error codes of the original (Japanese) `ImportImage` page, in its order.
const ORIGINAL_PAGE_CODES: &[&str] = &[
    "Forbbiden",
    "IncorrectImageStatus",
    "InvalidArchitecture.Malformed",
    "InvalidDescription.Malformed",
    "InvalidFormat.Malformed",
    "InvalidImageName.Duplicated",
    "InvalidImageName.Malformed",
    "InvalidImageSize",
    "InvalidOSType.Malformed",
    "InvalidPlatform.Malformed",
    "MissingParameter",
    "RegionId.NotFound",
    "ImageIsImporting",
    "InvalidRegion.NotSupport",
    "QuotaExceed.Image",
    "QuotaExceed.Snapshot",
];

fn last_error_code(object: &ImageImport) -> Option<String> {
    object
        .status
        .as_ref()?
        .last_error
        .as_ref()
        .map(|e| e.code.clone())
}

/// A condition that names `code`: `Stalled` with its reason (the code without dots) and the exact
/// code first in the message, or `Reconciling` (retrying) with it first in the message.
fn names(object: &ImageImport, code: &str) -> bool {
    condition(object, "Stalled").is_some_and(|(on, reason, message)| {
        on && reason == conditions::reason_of(code) && message.starts_with(&format!("{code}: "))
    }) || condition(object, "Reconciling")
        .is_some_and(|(on, _, message)| on && message.starts_with(&format!("{code}: ")))
}

fn answer_import_with(code: &str) -> FaultSettings {
    FaultSettings {
        actions: [(
            "ImportImage".to_string(),
            FaultSpec {
                answer_code: Some(code.into()),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_import_image_code_of_the_original_page_ends_in_a_condition_naming_it() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    for (n, code) in ORIGINAL_PAGE_CODES.iter().enumerate() {
        rig.emulator.set_faults(answer_import_with(code));
        let name = format!("code-{n}");
        rig.create_minimal(&name).await;
        let seen = rig
            .wait_for(&name, &format!("a condition naming {code}"), |o| {
                names(o, code)
            })
            .await;
        assert_eq!(last_error_code(&seen).as_deref(), Some(*code));
        let class = known_code(code).unwrap().class;
        if class == ErrorClass::Retryable {
            assert_eq!(phase(&seen), Some(Phase::Pending), "{code} retries");
        } else {
            assert_eq!(phase(&seen), Some(Phase::Failed), "{code} stalls");
            let (_, _, message) = condition(&seen, "Ready").unwrap();
            assert!(!message.is_empty());
        }
        rig.delete(&name).await;
        rig.wait_gone(&name).await;
    }
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_stalls_with_the_set_up_hint_and_imports_once_the_role_exists() {
    let mut rig = Rig::start(600.0).await;
    rig.emulator.patch_account(
        "default",
        AccountPatch {
            import_role: Some(false),
            ..Default::default()
        },
    );
    rig.start_controller().await;
    rig.create_minimal("no-role").await;
    let stalled = rig
        .wait_for("no-role", "Stalled on the missing role", |o| {
            names(o, "NoSetRoletoECSServiceAcount")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(
        message.contains("AliyunECSImageImportDefaultRole"),
        "the message tells how to fix it: {message}"
    );
    assert_eq!(phase(&stalled), Some(Phase::Failed));

    // Fixed outside Kubernetes: the slow retry (2 s here) picks it up without any spec change.
    rig.emulator.patch_account(
        "default",
        AccountPatch {
            import_role: Some(true),
            ..Default::default()
        },
    );
    let available = rig.wait_available("no-role").await;
    assert_eq!(condition(&available, "Stalled").map(|c| c.0), Some(false));
    assert!(available.status.unwrap().last_error.is_none());
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_stalls_without_retrying_until_the_spec_changes() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    rig.create(
        &minimal("wrong-group")
            .replace("  regionId:", "  resourceGroupId: rg-nowhere\n  regionId:"),
    )
    .await;
    let code = "InvalidResourceGroup.NotFound";
    assert_eq!(known_code(code).unwrap().class, ErrorClass::InvalidRequest);
    let stalled = rig
        .wait_for("wrong-group", "Stalled on the unknown group", |o| {
            names(o, code)
        })
        .await;
    assert_eq!(phase(&stalled), Some(Phase::Failed));
    assert_eq!(
        stalled.status.as_ref().unwrap().observed_generation,
        stalled.metadata.generation
    );
    // Longer than the slow retry of external errors (2 s here): still no new attempt.
    let calls = rig.emulator.stats().calls("ImportImage");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(
        rig.emulator.stats().calls("ImportImage"),
        calls,
        "an invalid request is not retried while the spec stays the same"
    );

    rig.patch(
        "wrong-group",
        json!({"spec": {"resourceGroupId": "rg-team"}}),
    )
    .await;
    let available = rig.wait_available("wrong-group").await;
    assert!(available.status.unwrap().last_error.is_none());
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_uploaded_after_the_stall_is_imported_without_a_spec_change() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    rig.create(&minimal("late-upload").replace("ubuntu-22.04.qcow2", "late.raw"))
        .await;
    let stalled = rig
        .wait_for("late-upload", "Stalled on the missing object", |o| {
            names(o, "InvalidOSSObject.NotFound")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(message.contains("upload"), "{message}");

    rig.emulator.add_object(
        serde_json::from_value(json!({
            "bucket": "images-hz", "key": "late.raw", "region": "cn-hangzhou", "size": 1_073_741_824u64
        }))
        .unwrap(),
    );
    let available = rig.wait_available("late-upload").await;
    assert_eq!(
        available.metadata.generation,
        Some(1),
        "no spec change was needed"
    );
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_task_fails_the_resource_with_the_task_code() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    // The object is QCOW2; declaring RAW makes ECS fail the task part-way.
    rig.create(&minimal("mislabelled").replace(
        "ossObject: ubuntu-22.04.qcow2",
        "ossObject: ubuntu-22.04.qcow2\n      format: RAW",
    ))
    .await;
    let failed = rig
        .wait_for("mislabelled", "Failed with the task's code", |o| {
            phase(o) == Some(Phase::Failed) && names(o, "InvalidImageFormat.Malformed")
        })
        .await;
    let status = failed.status.unwrap();
    assert!(status.image_id.is_some(), "the failed image is recorded");
    assert_eq!(
        status.last_error.unwrap().code,
        "InvalidImageFormat.Malformed"
    );
    // Deleting it removes the failed image too.
    let uid = failed.metadata.uid.unwrap();
    rig.delete("mislabelled").await;
    rig.wait_gone("mislabelled").await;
    assert!(rig.images_of(&uid).await.is_empty());
    rig.kill_controller().await;
}
