//! A Secret in use cannot disappear from under its resources: while an ImageImport names it, the
//! Secret carries the operator's `ecs.image-import.dev/credentials-in-use` finalizer, which comes
//! off when no resource names it any more — the last one finalized, or moved to another Secret
//! (also while the operator was not running). A namespace deletion then cleans up every
//! ImageImport by its `deletionPolicy` and finishes. (Also on the real API server, with its
//! namespace controller: `ECS_IMAGE_OPERATOR_TIER=envtest`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::time::Duration;

use ecs_image_operator::api::image_import::{CREDENTIALS_FINALIZER, ImageImport};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use operator_support::*;
use serde_json::json;

fn with_secret(name: &str, secret: &str) -> String {
    minimal(name).replace(
        "  regionId:",
        &format!("  credentialsSecretRef:\n    name: {secret}\n  regionId:"),
    )
}

/// The Secret's finalizers, or `None` once it is gone.
async fn finalizers(client: &Client, namespace: &str, name: &str) -> Option<Vec<String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt(name).await.unwrap()?;
    Some(secret.finalizers().to_vec())
}

fn held(finalizers: &Option<Vec<String>>) -> bool {
    finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == CREDENTIALS_FINALIZER))
}

/// Polls the Secret until `done` holds for its finalizers (`None`: gone).
async fn wait_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    done: impl Fn(&Option<Vec<String>>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = finalizers(client, namespace, name).await;
        if done(&seen) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Secret {namespace}/{name}: waited {PATIENCE:?} for {what}; finalizers {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_use_outlives_its_deletion_until_the_last_resource_naming_it_is_gone() {
    let mut rig = Rig::start(600.0).await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    let ns = rig.ns.clone();
    rig.put_secret(
        "team-key",
        emulator_support::AK_ID,
        emulator_support::AK_SECRET,
    )
    .await;
    rig.create(&with_secret("first", "team-key")).await;
    rig.create(&with_secret("second", "team-key")).await;
    rig.wait_available("first").await;
    rig.wait_available("second").await;
    wait_secret(&rig.client, &ns, "team-key", "the finalizer", held).await;

    // Deleted while in use: it stays, terminating, and the resources still work with it.
    let secrets: Api<Secret> = Api::namespaced(rig.client.clone(), &ns);
    secrets
        .delete("team-key", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = secrets.get("team-key").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    rig.patch("first", json!({"spec": {"description": "still managed"}}))
        .await;
    rig.wait_for("first", "the description change applied", |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
            && condition(o, "Ready").is_some_and(|c| c.0)
    })
    .await;

    let second = rig.imports().get("second").await.unwrap();
    let second_uid = second.metadata.uid.clone().unwrap();
    rig.delete("first").await;
    rig.wait_gone("first").await;
    // `second` still names it.
    assert!(held(&finalizers(&rig.client, &ns, "team-key").await));
    rig.delete("second").await;
    rig.wait_gone("second").await;
    wait_secret(
        &rig.client,
        &ns,
        "team-key",
        "the Secret gone",
        Option::is_none,
    )
    .await;
    assert!(
        rig.images_of(&second_uid).await.is_empty(),
        "deleted in ECS with the Secret's credentials"
    );
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_another_secret_lets_go_of_the_old_one_also_across_a_restart() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let ns = rig.ns.clone();
    for name in ["key-a", "key-b", "key-c"] {
        rig.put_secret(name, emulator_support::AK_ID, emulator_support::AK_SECRET)
            .await;
    }
    rig.create(&with_secret("moving", "key-a")).await;
    rig.wait_available("moving").await;
    wait_secret(&rig.client, &ns, "key-a", "the finalizer", held).await;

    // A rotation that renames the Secret (kustomize's secretGenerator does).
    rig.patch(
        "moving",
        json!({"spec": {"credentialsSecretRef": {"name": "key-b"}}}),
    )
    .await;
    wait_secret(&rig.client, &ns, "key-b", "the finalizer", held).await;
    wait_secret(&rig.client, &ns, "key-a", "the finalizer off", |f| {
        f.is_some() && !held(f)
    })
    .await;

    // Changed while the operator is not running: the Secret watch finds the unnamed one after.
    rig.kill_controller().await;
    rig.patch(
        "moving",
        json!({"spec": {"credentialsSecretRef": {"name": "key-c"}}}),
    )
    .await;
    rig.start_controller().await;
    wait_secret(&rig.client, &ns, "key-c", "the finalizer", held).await;
    wait_secret(&rig.client, &ns, "key-b", "the finalizer off", |f| {
        f.is_some() && !held(f)
    })
    .await;

    // Back to the operator's own credentials, again while it is not running.
    rig.kill_controller().await;
    rig.patch("moving", json!({"spec": {"credentialsSecretRef": null}}))
        .await;
    rig.start_controller().await;
    wait_secret(&rig.client, &ns, "key-c", "the finalizer off", |f| {
        f.is_some() && !held(f)
    })
    .await;
    let moved = rig.imports().get("moving").await.unwrap();
    assert_eq!(
        rig.images_of(&moved.metadata.uid.clone().unwrap())
            .await
            .len(),
        1,
        "one image through every move"
    );
    rig.kill_controller().await;
}

async fn import_in(client: &Client, namespace: &str, yaml: &str) {
    let mut object: ImageImport = serde_saphyr::from_str(yaml).unwrap();
    object.metadata.namespace = Some(namespace.to_string());
    Api::<ImageImport>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_cleans_up_every_import_by_its_policy_and_finishes() {
    let mut rig = Rig::start(600.0).await;
    if let Kube::Envtest(envtest) = &rig.kube {
        // Namespace deletion is the namespace controller's, in kube-controller-manager.
        envtest.start_controller_manager();
    }
    let doomed = rig.sibling_namespace("doomed").await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    if !settings.namespaces.is_empty() {
        settings.namespaces.push(doomed.clone());
    }
    rig.start_controller_with(settings).await;
    let secrets: Api<Secret> = Api::namespaced(rig.client.clone(), &doomed);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "team-key", "namespace": doomed},
        "stringData": {
            "accessKeyId": emulator_support::AK_ID,
            "accessKeySecret": emulator_support::AK_SECRET,
        },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    import_in(&rig.client, &doomed, &with_secret("deleted", "team-key")).await;
    import_in(
        &rig.client,
        &doomed,
        &with_secret("retained", "team-key")
            .replace("spec:\n", "spec:\n  deletionPolicy: Retain\n"),
    )
    .await;
    let imports: Api<ImageImport> = Api::namespaced(rig.client.clone(), &doomed);
    let mut uids = Vec::new();
    for name in ["deleted", "retained"] {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let object = imports.get(name).await.unwrap();
            if condition(&object, "Ready").is_some_and(|c| c.0) {
                uids.push(object.metadata.uid.clone().unwrap());
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} not Ready: {:#?}",
                object.status
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    wait_secret(&rig.client, &doomed, "team-key", "the finalizer", held).await;

    let namespaces: Api<Namespace> = Api::all(rig.client.clone());
    namespaces
        .delete(&doomed, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while namespaces.get_opt(&doomed).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace {doomed} still there after {PATIENCE:?}: imports {:?}, Secret finalizers {:?}",
            imports.list(&Default::default()).await.map(|l| l
                .items
                .iter()
                .map(|o| (o.name_any(), o.status.clone()))
                .collect::<Vec<_>>()),
            finalizers(&rig.client, &doomed, "team-key").await,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        rig.images_of(&uids[0]).await.is_empty(),
        "deletionPolicy Delete: the image is deleted"
    );
    assert_eq!(
        rig.images_of(&uids[1]).await.len(),
        1,
        "deletionPolicy Retain: the image stays"
    );
    rig.kill_controller().await;
}
