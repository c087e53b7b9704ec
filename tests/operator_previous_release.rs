//! An upgrade from the release that used ECS codes, dots included, as condition reasons: its CRD
//! let them in, the new one refuses them (the `metav1.Condition` pattern) and the API server
//! validates the whole status on every write. A resource stored by the old release is rewritten by
//! the next reconcile and goes on; none is left wedged with writes refused.
//!
//! One test in its own binary: it replaces the CRD, which on the real server
//! (`ECS_IMAGE_OPERATOR_TIER=envtest`) every test of a binary shares.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::time::Duration;

use ecs_image_operator::api::ImageImport;
use ecs_image_operator::api::image_import::{FINALIZER, Phase};
use ecs_image_operator::controller::status_writer::FIELD_MANAGER;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};
use operator_support::*;
use serde_json::{Value, json};

/// This release's CRD without what it adds to `status.conditions`: the previous release's.
fn previous_crd() -> Value {
    let mut crd = serde_json::to_value(ImageImport::crd()).unwrap();
    let conditions = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"]["conditions"];
    let conditions = conditions.as_object_mut().unwrap();
    conditions.remove("x-kubernetes-list-type");
    conditions.remove("x-kubernetes-list-map-keys");
    let fields = conditions["items"]["properties"].as_object_mut().unwrap();
    for field in fields.values_mut() {
        let field = field.as_object_mut().unwrap();
        for limit in ["pattern", "maxLength", "minLength", "enum", "minimum"] {
            field.remove(limit);
        }
    }
    crd
}

async fn install(rig: &Rig, crd: &Value) {
    let crds: Api<CustomResourceDefinition> = Api::all(rig.client.clone());
    crds.patch(
        "imageimports.ecs.image-import.dev",
        &PatchParams::apply("test-upgrade").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap();
}

fn condition_json(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"
    })
}

/// A failed import as the previous release stored it.
fn failed_status() -> Value {
    let said =
        "import of m-previous failed: InvalidImageFormat.Malformed: The image format is wrong.";
    json!({
        "phase": "Failed", "imageId": "m-previous", "importTaskId": "t-previous",
        "observedGeneration": 1, "message": said,
        "lastError": {"code": "InvalidImageFormat.Malformed", "message": "The image format is wrong.",
                      "retry": "OnChange"},
        "conditions": [
            condition_json("Ready", "False", "ImportFailed", said),
            condition_json("Reconciling", "False", "ImportFailed", said),
            condition_json("Stalled", "True", "InvalidImageFormat.Malformed", "The image format is wrong."),
        ]
    })
}

/// A stall on the image quota, retried slowly, as the previous release stored it.
fn quota_status() -> Value {
    let said = "QuotaExceed.Image: the image quota is used up; retrying every 2s";
    json!({
        "phase": "Failed", "observedGeneration": 1, "message": said,
        "lastError": {"code": "QuotaExceed.Image", "message": "the image quota is used up",
                      "retry": "Slowly"},
        "conditions": [
            condition_json("Ready", "False", "QuotaExceed.Image", said),
            condition_json("Reconciling", "False", "QuotaExceed.Image", said),
            condition_json("Stalled", "True", "QuotaExceed.Image", "the image quota is used up"),
        ]
    })
}

/// Applies `status` as the operator's field manager, as the previous release wrote it.
async fn write_status(rig: &Rig, name: &str, status: &Value) -> Result<(), kube::Error> {
    let patch = json!({
        "apiVersion": "ecs.image-import.dev/v1alpha1", "kind": "ImageImport", "status": status,
    });
    rig.imports()
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
}

/// Retries `write` until `accepted(result)`: a new CRD reaches the API server's handlers a moment
/// after the write that installs it.
async fn until_schema(
    rig: &Rig,
    name: &str,
    status: &Value,
    accepted: bool,
) -> Result<(), kube::Error> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let result = write_status(rig, name, status).await;
        if result.is_ok() == accepted || tokio::time::Instant::now() >= deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ImageImport the previous release had taken on (its finalizer set).
fn taken_on(name: &str) -> String {
    minimal(name).replace(
        "  namespace:",
        &format!("  finalizers: [{FINALIZER}]\n  namespace:"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotted_reasons_of_the_previous_release_are_rewritten_and_nothing_is_wedged() {
    let mut rig = Rig::start(600.0).await;
    install(&rig, &previous_crd()).await;
    for name in ["failed", "quota", "deleted", "probe"] {
        rig.create(&taken_on(name)).await;
    }
    until_schema(&rig, "failed", &failed_status(), true)
        .await
        .expect("the previous CRD takes dotted reasons");
    write_status(&rig, "quota", &quota_status()).await.unwrap();
    write_status(&rig, "deleted", &quota_status())
        .await
        .unwrap();

    let current = serde_json::to_value(ImageImport::crd()).unwrap();
    install(&rig, &current).await;
    let refused = until_schema(&rig, "probe", &quota_status(), false).await;
    let Err(kube::Error::Api(refusal)) = refused else {
        panic!("the new CRD still takes a dotted reason: {refused:?}");
    };
    assert_eq!(refusal.code, 422, "{refusal:?}");
    assert!(refusal.message.contains("reason"), "{}", refusal.message);
    // Without ratcheting (Kubernetes 1.28), the whole object is validated on every write: even a
    // label is refused while a dotted reason is stored.
    let labelled = rig
        .imports()
        .patch(
            "failed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "images"}}})),
        )
        .await;
    if labelled.is_ok() {
        // A server that ratchets lets unchanged values stand; nothing below depends on it.
        rig.patch("failed", json!({"metadata": {"labels": null}}))
            .await;
    }
    rig.delete("deleted").await;

    rig.start_controller().await;
    let failed = rig
        .wait_for("failed", "the stored Stalled reason rewritten", |o| {
            condition(o, "Stalled")
                .is_some_and(|(on, reason, _)| on && reason == "InvalidImageFormatMalformed")
        })
        .await;
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Failed), "nothing else changes");
    assert_eq!(
        status.last_error.as_ref().map(|e| e.code.as_str()),
        Some("InvalidImageFormat.Malformed"),
        "the exact code stays in lastError"
    );
    // The quota is there now: the stall of the previous release retries and imports.
    let quota = rig.wait_available("quota").await;
    for object in [&failed, &quota] {
        for c in &object.status.as_ref().unwrap().conditions {
            assert!(
                !c.reason.contains('.'),
                "{}: {c:?}",
                object.metadata.name.as_deref().unwrap_or("?")
            );
        }
    }
    // A deletion lets the finalizer go, although its status held a reason the schema refuses.
    rig.wait_gone("deleted").await;
    // Not wedged: a later spec change is accepted, reconciled and written as well.
    rig.patch("failed", json!({"spec": {"description": "fixed image"}}))
        .await;
    rig.wait_for("failed", "generation 2 reconciled", |o| {
        o.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == Some(2))
    })
    .await;
}
