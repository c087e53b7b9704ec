//! Secrets only where a namespace allows it: a resource naming a Secret the operator may not read
//! stalls with `CredentialsSecretForbidden` and the command that opts the namespace in, and imports
//! without a restart once access is granted. (Real RBAC is the real-API-server tier's; here the
//! API double answers 403 as RBAC would.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use kube_double::{FaultAction, FaultRule};
use operator_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_secret_stalls_with_the_opt_in_command_and_imports_once_granted() {
    let mut rig = Rig::start(600.0).await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    rig.put_secret(
        "team-key",
        emulator_support::AK_ID,
        emulator_support::AK_SECRET,
    )
    .await;
    let secret_path = format!("/api/v1/namespaces/{NS}/secrets/team-key");
    rig.kube
        .faults()
        .add(FaultRule::new(secret_path, FaultAction::Status { code: 403 }).method("GET"));
    rig.create(&minimal("guarded").replace(
        "  regionId:",
        "  credentialsSecretRef:\n    name: team-key\n  regionId:",
    ))
    .await;
    let stalled = rig
        .wait_for("guarded", "a CredentialsSecretForbidden stall", |o| {
            condition(o, "Stalled")
                .is_some_and(|(on, r, _)| on && r == "CredentialsSecretForbidden")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(
        message.contains(&format!("kubectl -n {NS} create rolebinding"))
            && message.contains("--clusterrole=ecs-image-operator-secret-reader")
            && message.contains("--serviceaccount=ecs-image-operator:ecs-image-operator"),
        "{message}"
    );
    assert!(stalled.status.as_ref().unwrap().image_id.is_none());

    // The namespace admin grants access: the slow retry imports without a restart or a change.
    rig.kube.faults().clear();
    let available = rig.wait_available("guarded").await;
    assert_eq!(available.metadata.generation, Some(1));
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_secret_is_not_read_again_on_every_reconcile() {
    let mut rig = Rig::start(600.0).await;
    if !rig.kube.is_double() {
        return; // counts requests in the double's log
    }
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    rig.put_secret(
        "team-key",
        emulator_support::AK_ID,
        emulator_support::AK_SECRET,
    )
    .await;
    rig.create(&minimal("cached").replace(
        "  regionId:",
        "  credentialsSecretRef:\n    name: team-key\n  regionId:",
    ))
    .await;
    rig.wait_available("cached").await;
    let Kube::Double(server) = &rig.kube else {
        unreachable!()
    };
    let secret_path = format!("/api/v1/namespaces/{NS}/secrets/team-key");
    let gets = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == secret_path)
            .count()
    };
    let before = gets();
    // Five spec changes: five reconciles, each needing the credentials.
    for generation in 2..=6 {
        rig.patch(
            "cached",
            serde_json::json!({"spec": {"description": format!("change {generation}")}}),
        )
        .await;
        rig.wait_for("cached", "the change applied", |o| {
            o.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
                && condition(o, "Ready").is_some_and(|c| c.0)
        })
        .await;
    }
    assert_eq!(
        gets() - before,
        0,
        "the watched Secret metadata showed no change: no GET needed"
    );
    // A changed Secret is read again.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(rig.client.clone(), NS);
    secrets
        .patch(
            "team-key",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"labels": {"rotated": "yes"}}}),
            ),
        )
        .await
        .unwrap();
    rig.patch(
        "cached",
        serde_json::json!({"spec": {"description": "after"}}),
    )
    .await;
    rig.wait_for("cached", "the last change applied", |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == Some(7)
    })
    .await;
    assert!(gets() > before, "a changed Secret is read again");
    rig.kill_controller().await;
}
