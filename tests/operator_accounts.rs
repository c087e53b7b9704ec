//! The account is part of the image's identity, end to end: credentials of another account stall
//! the resource instead of importing again or deleting in the wrong account, and a deletion whose
//! credentials are gone waits until they come back or the user abandons the image on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::api::image_import::ImageImport;
use ecs_image_operator::emulator::auth::AccessKey;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use operator_support::*;
use serde_json::json;

fn with_secret(name: &str, secret: &str) -> String {
    minimal(name).replace(
        "  regionId:",
        &format!("  credentialsSecretRef:\n    name: {secret}\n  regionId:"),
    )
}

fn stalled_on(object: &ImageImport, reason: &str) -> bool {
    condition(object, "Stalled").is_some_and(|(on, r, _)| on && r == reason)
}

fn account(object: &ImageImport) -> Option<String> {
    object.status.as_ref()?.account_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_of_another_account_never_reimport_nor_delete_in_the_wrong_account() {
    let mut rig = Rig::start(600.0).await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    rig.put_secret("acct", emulator_support::AK_ID, emulator_support::AK_SECRET)
        .await;
    rig.create(&with_secret("owned", "acct")).await;
    let available = rig.wait_available("owned").await;
    assert_eq!(account(&available).as_deref(), Some("default"));
    let uid = available.metadata.uid.clone().unwrap();

    // A new AccessKey of the same account is simply used.
    rig.emulator.add_key(AccessKey::new(
        "LTAI5tSecondDefaultKey1",
        "SecondDefaultSecret0123456",
    ));
    rig.put_secret(
        "acct",
        "LTAI5tSecondDefaultKey1",
        "SecondDefaultSecret0123456",
    )
    .await;
    let rotated = rig
        .wait_for("owned", "the rotated Secret observed", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.observed_credentials_version.as_ref())
                != available
                    .status
                    .as_ref()
                    .and_then(|s| s.observed_credentials_version.as_ref())
        })
        .await;
    assert!(!stalled_on(&rotated, "CredentialsAccountChanged"));

    // Credentials of another account: stalled, naming both, nothing imported there.
    rig.put_secret(
        "acct",
        emulator_support::OTHER_ID,
        emulator_support::OTHER_SECRET,
    )
    .await;
    let stalled = rig
        .wait_for("owned", "a stall on the changed account", |o| {
            stalled_on(o, "CredentialsAccountChanged")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(
        message.contains("default") && message.contains("other"),
        "{message}"
    );
    assert_eq!(
        account(&stalled).as_deref(),
        Some("default"),
        "the owner stays"
    );
    assert_eq!(rig.images_of(&uid).await.len(), 1);
    let imports = rig
        .emulator
        .stats()
        .actions
        .get("ImportImage")
        .map_or(0, |a| a.ok);
    assert_eq!(imports, 1, "no second ImportImage");

    // Deleting now would "succeed" in the other account and leave the image: it stalls instead.
    rig.delete("owned").await;
    let blocked = rig
        .wait_for("owned", "a deletion stalled on the account", |o| {
            o.metadata.deletion_timestamp.is_some()
                && stalled_on(o, "CredentialsAccountChanged")
                && o.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .is_some_and(|m| m.contains("ecs.image-import.dev/abandon=true"))
        })
        .await;
    assert!(
        blocked
            .finalizers()
            .iter()
            .any(|f| f == "ecs.image-import.dev/cleanup")
    );
    assert_eq!(
        rig.images_of(&uid).await.len(),
        1,
        "the image is still there"
    );

    // The credentials point back: the deletion finishes, in the right account.
    rig.put_secret("acct", emulator_support::AK_ID, emulator_support::AK_SECRET)
        .await;
    rig.wait_gone("owned").await;
    assert!(
        rig.images_of(&uid).await.is_empty(),
        "deleted where it lived"
    );
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_without_credentials_waits_until_the_image_is_abandoned_on_purpose() {
    let mut rig = Rig::start(600.0).await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    rig.put_secret("gone", emulator_support::AK_ID, emulator_support::AK_SECRET)
        .await;
    rig.create(&with_secret("orphan", "gone")).await;
    let available = rig.wait_available("orphan").await;
    let uid = available.metadata.uid.clone().unwrap();

    // The Secret is kept while the resource names it: gone for good only when someone forces its
    // finalizer off, as `kubectl patch secret gone -p '{"metadata":{"finalizers":null}}'` does.
    let secrets: Api<Secret> = Api::namespaced(rig.client.clone(), NS);
    secrets
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    secrets
        .patch(
            "gone",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(secrets.get_opt("gone").await.unwrap().is_none());
    rig.delete("orphan").await;
    rig.wait_for("orphan", "a deletion stalled with the way out", |o| {
        stalled_on(o, "CredentialsSecretNotFound")
            && o.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|m| m.contains("ecs.image-import.dev/abandon=true"))
    })
    .await;

    rig.patch(
        "orphan",
        json!({"metadata": {"annotations": {"ecs.image-import.dev/abandon": "true"}}}),
    )
    .await;
    rig.wait_gone("orphan").await;
    assert_eq!(
        rig.images_of(&uid).await.len(),
        1,
        "an abandoned image stays in ECS"
    );
    rig.wait_for_events("an Abandoned warning", |event| {
        event.reason.as_deref() == Some("Abandoned")
            && event.type_.as_deref() == Some("Warning")
            && event
                .note
                .as_deref()
                .is_some_and(|n| n.contains("stays in account default"))
    })
    .await;
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_imports_asks_sts_once_for_their_one_key() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let names: Vec<String> = (0..12).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        rig.create_minimal(name).await;
    }
    for name in &names {
        rig.wait_available(name).await;
    }
    assert_eq!(
        rig.emulator.stats().calls("GetCallerIdentity"),
        1,
        "one AccessKey, one account lookup"
    );
    rig.kill_controller().await;
}
