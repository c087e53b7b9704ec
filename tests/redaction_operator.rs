//! The controller's status and Events show neither the security token nor the wrong secret of a
//! credentials Secret ECS refuses with `SignatureDoesNotMatch` (whose raw message quotes ECS's
//! string to sign, token included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::ecs::params::percent_encode;
use ecs_image_operator::ecs::redact::WRONG_SECRET_HINT;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use operator_support::*;

const WRONG_SECRET: &str = "Wrong/Secret+Value==9876";

fn assert_clean(text: &str, what: &str) {
    let lowered = text.to_lowercase();
    for value in [WRONG_SECRET, emulator_support::STS_TOKEN] {
        let once = percent_encode(value);
        for form in [value.to_string(), once.clone(), percent_encode(&once)] {
            assert!(
                !lowered.contains(&form.to_lowercase()),
                "{what} holds {form:?}:\n{text}"
            );
        }
    }
    assert!(!lowered.contains("string to sign"), "{what}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_with_a_security_token_reaches_neither_status_nor_events() {
    let mut rig = Rig::start(600.0).await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    let secrets: Api<Secret> = Api::namespaced(rig.client.clone(), NS);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sts-key", "namespace": NS},
        "stringData": {
            "accessKeyId": emulator_support::STS_ID,
            "accessKeySecret": WRONG_SECRET,
            "securityToken": emulator_support::STS_TOKEN,
        },
    }))
    .unwrap();
    secrets
        .patch(
            "sts-key",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
    rig.create(&minimal("leaky").replace(
        "  regionId:",
        "  credentialsSecretRef:\n    name: sts-key\n  regionId:",
    ))
    .await;
    let stalled = rig
        .wait_for("leaky", "Stalled on the wrong secret", |o| {
            condition(o, "Stalled").is_some_and(|c| c.0 && c.1 == "SignatureDoesNotMatch")
        })
        .await;
    let status = serde_json::to_string_pretty(&stalled.status).unwrap();
    assert!(status.contains(WRONG_SECRET_HINT), "{status}");
    assert_clean(&status, "status");

    rig.wait_for_events("a Warning Event", |event| {
        event.type_.as_deref() == Some("Warning")
    })
    .await;
    let events: Api<Event> = Api::namespaced(rig.client.clone(), NS);
    let all = events.list(&ListParams::default()).await.unwrap();
    let text = serde_json::to_string_pretty(&all.items).unwrap();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert_clean(&text, "Events");
    rig.kill_controller().await;
}
