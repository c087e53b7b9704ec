//! A status write the API server refuses never freezes a resource: it is tried again with a
//! compact status, and what still fails is a Warning Event and a metric, then retried.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::api::image_import::Phase;
use kube_double::{FaultAction, FaultRule};
use operator_support::*;

fn status_path(name: &str) -> String {
    format!("/apis/ecs.image-import.dev/v1alpha1/namespaces/{NS}/imageimports/{name}/status")
}

fn failures_metric(metrics: &ecs_image_operator::metrics::Metrics) -> u64 {
    let text = metrics.encode().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("ecs_image_operator_status_write_failures_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no status_write_failures_total in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_status_write_is_retried_compact_and_the_import_goes_on() {
    let mut rig = Rig::start(600.0).await;
    let settings = rig.settings();
    let metrics = settings.metrics.clone();
    rig.start_controller_with(settings).await;
    // The first status write (Pending, before ImportImage) is refused as invalid.
    rig.kube.faults().add(
        FaultRule::new(
            status_path("refused-once"),
            FaultAction::Status { code: 422 },
        )
        .method("PATCH")
        .times(1),
    );
    rig.create_minimal("refused-once").await;
    let done = rig.wait_available("refused-once").await;
    assert_eq!(phase(&done), Some(Phase::Available));
    let Kube::Double(double) = &rig.kube else {
        panic!("the request log exists only on the double");
    };
    let statuses: Vec<Option<u16>> = double
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == status_path("refused-once"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.first(),
        Some(&Some(422)),
        "the first write was refused: {statuses:?}"
    );
    assert_eq!(
        statuses.get(1),
        Some(&Some(200)),
        "the compact write followed at once: {statuses:?}"
    );
    assert_eq!(failures_metric(&metrics), 0, "the compact write succeeded");
    assert_eq!(
        rig.images_of(done.metadata.uid.as_deref().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_that_cannot_be_written_is_a_warning_event_and_a_metric_then_retried() {
    let mut rig = Rig::start(600.0).await;
    let settings = rig.settings();
    let metrics = settings.metrics.clone();
    rig.start_controller_with(settings).await;
    // Every status write is refused as too large, the compact one too.
    rig.kube.faults().add(
        FaultRule::new(
            status_path("never-written"),
            FaultAction::Status { code: 413 },
        )
        .method("PATCH"),
    );
    rig.create_minimal("never-written").await;
    let events = rig
        .wait_for_events("a StatusWriteFailed warning", |event| {
            event.reason.as_deref() == Some("StatusWriteFailed")
                && event.type_.as_deref() == Some("Warning")
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("never-written")
        })
        .await;
    assert!(
        events[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("failed to write status"),
        "{:?}",
        events[0].note
    );
    assert!(failures_metric(&metrics) >= 1);
    // Once the API server takes writes again, the resource catches up without a change.
    rig.kube.faults().clear();
    rig.wait_available("never-written").await;
}
