//! The Prometheus exposition: family names, label values, exact phase counts across transitions
//! and deletions, series that go with their resource, histogram counts, and the `/metrics` route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use std::time::Duration;

use ecs_image_operator::ecs::observe::{CallObserver, Observer};
use ecs_image_operator::metrics::{CONTENT_TYPE, Metrics};

/// The value of the sample line that starts with `series ` exactly, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.split(' ').next().unwrap().parse().unwrap())
}

fn phase(text: &str, phase: &str) -> f64 {
    sample(
        text,
        &format!("ecs_image_operator_imports{{phase=\"{phase}\"}}"),
    )
    .unwrap_or_else(|| panic!("no series for phase {phase} in\n{text}"))
}

#[test]
fn every_family_is_exported_in_openmetrics_text() {
    let metrics = Metrics::new();
    // Families whose series appear only with their first sample.
    metrics.record_ecs_call("DescribeImages", "ok", Duration::from_millis(10));
    metrics.set_progress("ns", "a", 1);
    let text = metrics.encode().unwrap();
    for family in [
        "# TYPE ecs_image_operator_reconciles counter",
        "# TYPE ecs_image_operator_ecs_calls counter",
        "# TYPE ecs_image_operator_ecs_call_duration_seconds histogram",
        "# UNIT ecs_image_operator_ecs_call_duration_seconds seconds",
        "# TYPE ecs_image_operator_imports gauge",
        "# TYPE ecs_image_operator_import_progress gauge",
        "# TYPE ecs_image_operator_import_duration_seconds histogram",
        "# TYPE ecs_image_operator_poll_rounds counter",
        "# TYPE ecs_image_operator_leader gauge",
        "# TYPE ecs_image_operator_ready gauge",
    ] {
        assert!(text.contains(family), "missing {family:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    for name in ["Pending", "Importing", "Available", "Failed", "Deleting"] {
        assert_eq!(phase(&text, name), 0.0);
    }
    assert_eq!(sample(&text, "ecs_image_operator_leader"), Some(0.0));
    assert_eq!(sample(&text, "ecs_image_operator_ready"), Some(0.0));
}

#[test]
fn a_fresh_registry_already_shows_zero_reconciles_phases_and_flags() {
    let text = Metrics::new().encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "ecs_image_operator_reconciles_total{result=\"ok\",error_kind=\"\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(phase(&text, "Pending"), 0.0);
    assert_eq!(
        sample(&text, "ecs_image_operator_import_duration_seconds_count"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "ecs_image_operator_leader"), Some(0.0));
    // No resource is importing, so no progress series exists.
    assert!(!text.contains("ecs_image_operator_import_progress{"));
}

#[test]
fn reconciles_are_counted_by_result_and_error_kind() {
    let metrics = Metrics::new();
    metrics.record_reconcile(Ok(()), Duration::from_millis(20));
    metrics.record_reconcile(Ok(()), Duration::from_millis(20));
    metrics.record_reconcile(Err("incomplete_object"), Duration::from_millis(20));
    metrics.record_reconcile(Err("kube"), Duration::from_millis(20));
    metrics.record_reconcile(Err("kube"), Duration::from_millis(20));
    let text = metrics.encode().unwrap();
    let count = |labels: &str| {
        sample(
            &text,
            &format!("ecs_image_operator_reconciles_total{{{labels}}}"),
        )
    };
    assert_eq!(count("result=\"ok\",error_kind=\"\""), Some(2.0));
    assert_eq!(count("result=\"error\",error_kind=\"kube\""), Some(2.0));
    assert_eq!(
        count("result=\"error\",error_kind=\"incomplete_object\""),
        Some(1.0)
    );
    // And timed, by result.
    let timed = |result: &str| {
        sample(
            &text,
            &format!("ecs_image_operator_reconcile_duration_seconds_count{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(timed("ok"), Some(2.0));
    assert_eq!(timed("error"), Some(3.0));
    assert_eq!(
        sample(
            &text,
            "ecs_image_operator_reconcile_duration_seconds_sum{result=\"ok\"}"
        ),
        Some(0.04)
    );
}

#[test]
fn ecs_calls_are_counted_by_outcome_and_timed_by_action() {
    let metrics = Metrics::new();
    metrics.record_ecs_call("DescribeTasks", "ok", Duration::from_millis(3));
    metrics.record_ecs_call(
        "DescribeTasks",
        "Throttling.User",
        Duration::from_millis(40),
    );
    metrics.record_ecs_call("DescribeTasks", "ok", Duration::from_secs(45));
    // Whatever a broken proxy answers, the label stays a short code.
    metrics.record_ecs_call(
        "ImportImage",
        "bad code\"}\n with spaces",
        Duration::from_secs(1),
    );
    let text = metrics.encode().unwrap();
    let calls = |labels: &str| {
        sample(
            &text,
            &format!("ecs_image_operator_ecs_calls_total{{{labels}}}"),
        )
    };
    assert_eq!(calls("action=\"DescribeTasks\",outcome=\"ok\""), Some(2.0));
    assert_eq!(
        calls("action=\"DescribeTasks\",outcome=\"Throttling.User\""),
        Some(1.0)
    );
    assert_eq!(
        calls("action=\"ImportImage\",outcome=\"badcodewithspaces\""),
        Some(1.0)
    );

    let bucket = |le: &str| {
        sample(
            &text,
            &format!(
                "ecs_image_operator_ecs_call_duration_seconds_bucket{{le=\"{le}\",action=\"DescribeTasks\"}}"
            ),
        )
    };
    assert_eq!(
        bucket("0.005"),
        Some(1.0),
        "3 ms falls in the first bucket\n{text}"
    );
    assert_eq!(bucket("0.05"), Some(2.0));
    assert_eq!(
        bucket("30.0"),
        Some(2.0),
        "45 s is beyond the last finite bucket"
    );
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        sample(
            &text,
            "ecs_image_operator_ecs_call_duration_seconds_count{action=\"DescribeTasks\"}"
        ),
        Some(3.0)
    );
}

#[test]
fn the_ecs_client_hook_reports_into_the_same_counters() {
    let metrics = Metrics::new();
    let observer = Observer::new(std::sync::Arc::new(metrics.clone()));
    assert_eq!(observer, observer.clone());
    assert_ne!(observer, Observer::new(std::sync::Arc::new(Metrics::new())));
    assert_eq!(Observer::none(), Observer::default());
    observer.observe::<()>("DeleteImage", &Ok(()), Duration::from_millis(20));
    CallObserver::observe(&metrics, "DeleteImage", "Timeout", Duration::from_secs(30));
    let text = metrics.encode().unwrap();
    let calls = |labels: &str| {
        sample(
            &text,
            &format!("ecs_image_operator_ecs_calls_total{{{labels}}}"),
        )
    };
    assert_eq!(calls("action=\"DeleteImage\",outcome=\"ok\""), Some(1.0));
    assert_eq!(
        calls("action=\"DeleteImage\",outcome=\"Timeout\""),
        Some(1.0)
    );
}

#[test]
fn phase_counts_stay_exact_across_transitions_repeats_and_deletions() {
    let metrics = Metrics::new();
    metrics.set_phase("ns", "a", Some("Pending"));
    metrics.set_phase("ns", "b", Some("Pending"));
    metrics.set_phase("other", "a", Some("Pending")); // same name, other namespace
    metrics.set_phase("ns", "a", Some("Importing"));
    metrics.set_phase("ns", "a", Some("Importing")); // a repeated report changes nothing
    metrics.set_phase("ns", "b", Some("Failed"));
    let text = metrics.encode().unwrap();
    assert_eq!(phase(&text, "Pending"), 1.0);
    assert_eq!(phase(&text, "Importing"), 1.0);
    assert_eq!(phase(&text, "Failed"), 1.0);

    metrics.set_phase("ns", "a", Some("Available"));
    metrics.set_phase("ns", "b", Some("Deleting"));
    metrics.set_phase("ns", "b", None);
    metrics.forget("other", "a");
    metrics.forget("ns", "never-seen"); // forgetting the unknown is harmless
    let text = metrics.encode().unwrap();
    assert_eq!(phase(&text, "Pending"), 0.0);
    assert_eq!(phase(&text, "Importing"), 0.0);
    assert_eq!(phase(&text, "Available"), 1.0);
    assert_eq!(phase(&text, "Failed"), 0.0);
    assert_eq!(phase(&text, "Deleting"), 0.0);

    metrics.forget_all();
    let text = metrics.encode().unwrap();
    assert_eq!(phase(&text, "Available"), 0.0);
}

#[test]
fn a_progress_series_goes_when_its_resource_does() {
    let metrics = Metrics::new();
    metrics.set_progress("ns", "a", 45);
    metrics.set_progress("ns", "b", 250); // clamped
    let series_a = "ecs_image_operator_import_progress{namespace=\"ns\",name=\"a\"}";
    let series_b = "ecs_image_operator_import_progress{namespace=\"ns\",name=\"b\"}";
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, series_a), Some(45.0));
    assert_eq!(sample(&text, series_b), Some(100.0));

    metrics.set_phase("ns", "a", Some("Importing"));
    metrics.forget("ns", "a");
    metrics.clear_progress("ns", "b");
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, series_a), None);
    assert_eq!(sample(&text, series_b), None);
    assert_eq!(phase(&text, "Importing"), 0.0);
}

#[test]
fn import_durations_leader_and_ready_are_recorded() {
    let metrics = Metrics::new();
    metrics.observe_import_duration(Duration::from_secs(30));
    metrics.observe_import_duration(Duration::from_secs(600));
    metrics.observe_import_duration(Duration::from_secs(8 * 3600));
    metrics.set_leader(true);
    metrics.set_ready(true);
    metrics.record_poll_round();
    metrics.record_poll_round();
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(&text, "ecs_image_operator_poll_rounds_total"),
        Some(2.0)
    );
    let bucket = |le: &str| {
        sample(
            &text,
            &format!("ecs_image_operator_import_duration_seconds_bucket{{le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("60.0"), Some(1.0), "\n{text}");
    assert_eq!(bucket("600.0"), Some(2.0));
    assert_eq!(bucket("21600.0"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        sample(&text, "ecs_image_operator_import_duration_seconds_count"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "ecs_image_operator_import_duration_seconds_sum"),
        Some(30.0 + 600.0 + 28800.0)
    );
    assert_eq!(sample(&text, "ecs_image_operator_leader"), Some(1.0));
    assert_eq!(sample(&text, "ecs_image_operator_ready"), Some(1.0));
    metrics.set_leader(false);
    assert_eq!(
        sample(&metrics.encode().unwrap(), "ecs_image_operator_leader"),
        Some(0.0)
    );
}

#[tokio::test]
async fn the_metrics_route_answers_with_the_openmetrics_content_type() {
    let metrics = Metrics::new();
    metrics.set_ready(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, metrics.router()).into_future());

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    server.abort();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("content-type: {CONTENT_TYPE}")),
        "{answer}"
    );
    assert!(answer.contains("ecs_image_operator_ready 1"), "{answer}");
}

#[test]
fn a_status_written_as_available_times_the_import_once() {
    use ecs_image_operator::api::{ImageImportStatus, Phase};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let metrics = Metrics::new();
    let start: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
    let done: jiff::Timestamp = "2026-12-01T10:12:00Z".parse().unwrap();
    let importing = ImageImportStatus {
        phase: Some(Phase::Importing),
        progress: Some(40),
        start_time: Some(Time(start)),
        ..Default::default()
    };
    metrics.record_status("prod", "web", &importing);
    let available = ImageImportStatus {
        phase: Some(Phase::Available),
        progress: Some(100),
        completion_time: Some(Time(done)),
        ..importing.clone()
    };
    metrics.record_written(Some(&importing), &available);
    // Written again (a resync, a restart): not timed again.
    metrics.record_written(Some(&available), &available);
    metrics.record_status("prod", "web", &available);
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(&text, "ecs_image_operator_import_duration_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ecs_image_operator_import_duration_seconds_sum"),
        Some(720.0)
    );
    assert_eq!(
        sample(&text, "ecs_image_operator_imports{phase=\"Available\"}"),
        Some(1.0)
    );
    assert!(
        !text.contains("ecs_image_operator_import_progress{"),
        "progress is only for running imports: {text}"
    );
}
