//! Tracing: each reconcile is a span carrying namespace, name, generation and UID, and each ECS
//! call it makes is a child span with the action, the attempt and ECS's request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod log_capture;
mod operator_support;

use kube::ResourceExt;
use operator_support::*;
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_is_a_span_and_its_ecs_calls_are_children_with_their_request_ids() {
    let logs = log_capture::LogBuffer::default();
    let writer = logs.clone();
    // Span closes are logged with the fields recorded by then (the request id comes last).
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("ecs_image_operator=debug,ecs_image_operator::emulator=off")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let created = rig.create_minimal("traced").await;
    rig.wait_available("traced").await;
    rig.kill_controller().await;
    let uid = created.uid().unwrap();

    let text = logs.text();
    let import_call = text
        .lines()
        .find(|line| line.contains("ecs_call{action=\"ImportImage\"") && line.contains("close"))
        .unwrap_or_else(|| panic!("no closed ImportImage span:\n{text}"));
    let reconcile = format!(
        "reconcile{{namespace=\"{}\" name=\"traced\" generation=1 uid=\"{uid}\"}}:ecs_call{{",
        rig.ns
    );
    assert!(import_call.contains(&reconcile), "{import_call}");
    assert!(import_call.contains("attempt=1"), "{import_call}");
    let request_id = import_call
        .split("request_id=")
        .nth(1)
        .and_then(|rest| rest.split(['}', ' ']).next())
        .unwrap_or_else(|| panic!("no request id: {import_call}"));
    assert!(request_id.trim_matches('"').len() >= 8, "{import_call}");
}
