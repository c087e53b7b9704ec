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
