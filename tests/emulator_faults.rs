//! Fault injection is honoured, counted, and overcome by the client's retries; the admin API is
//! never faulted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::time::{Duration, Instant};

use ecs_image_operator::ecs::api::{DescribeRegionsRequest, DescribeTasksRequest};
use ecs_image_operator::emulator::{FaultSettings, FaultSpec};
use emulator_support::*;

fn regions() -> DescribeRegionsRequest {
    DescribeRegionsRequest {
        region_id: REGION.into(),
        ..Default::default()
    }
}

fn everywhere(spec: FaultSpec) -> FaultSettings {
    FaultSettings {
        default: spec,
        seed: Some(7),
        ..Default::default()
    }
}

#[tokio::test]
async fn retries_overcome_heavy_throttling_and_the_stats_show_it() {
    let emulator = start().await;
    emulator.set_faults(everywhere(FaultSpec {
        throttle_rate: 0.5,
        ..Default::default()
    }));
    let client = client_with(&emulator, 30);
    for _ in 0..20 {
        client.call(&creds(), &regions()).await.unwrap();
    }
    let stats = emulator.stats();
    let throttled = stats.code("Throttling.User");
    assert!(throttled >= 5, "only {throttled} throttled answers");
    assert_eq!(stats.faults.throttled, throttled);
    let describe = &stats.actions["DescribeRegions"];
    assert_eq!(describe.ok, 20);
    assert_eq!(describe.calls, 20 + throttled);
    emulator.shutdown().await;
}

#[tokio::test]
async fn retries_overcome_server_errors_and_dropped_connections() {
    let emulator = start().await;
    emulator.set_faults(everywhere(FaultSpec {
        error_rate: 0.3,
        drop_rate: 0.2,
        ..Default::default()
    }));
    let client = client_with(&emulator, 30);
    for _ in 0..20 {
        client.call(&creds(), &regions()).await.unwrap();
    }
    let stats = emulator.stats();
    assert!(
        stats.faults.server_errors > 0 && stats.faults.dropped > 0,
        "{stats:?}"
    );
    assert_eq!(
        stats.faults.server_errors,
        stats.code("InternalError") + stats.code("ServiceUnavailable")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_gets_no_http_answer() {
    let emulator = start().await;
    emulator.set_faults(everywhere(FaultSpec {
        drop_rate: 1.0,
        ..Default::default()
    }));
    let params = signed("POST", "DescribeRegions", &[("RegionId", REGION)]);
    let error = http()
        .post(format!("{}/", emulator.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(params.to_form())
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    // The client, with a single attempt, reports a network error.
    let failure = client(&emulator)
        .call(&creds(), &regions())
        .await
        .unwrap_err();
    assert_eq!(failure.code(), "NetworkError");
    // The admin API is never faulted.
    let stats = http()
        .get(format!("{}/stats", emulator.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    let stats = emulator.stats();
    assert_eq!(stats.faults.dropped, 2);
    // Both ECS requests are counted by arrival second; the admin request is not.
    assert_eq!(
        stats.per_second.iter().sum::<u64>(),
        2,
        "{:?}",
        stats.per_second
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn faults_for_one_action_leave_the_others_alone_and_latency_is_added() {
    let emulator = start().await;
    emulator.set_faults(FaultSettings {
        actions: [
            (
                "DescribeTasks".to_string(),
                FaultSpec {
                    throttle_rate: 1.0,
                    ..Default::default()
                },
            ),
            (
                "DescribeRegions".to_string(),
                FaultSpec {
                    latency_ms: 150,
                    ..Default::default()
                },
            ),
        ]
        .into(),
        ..Default::default()
    });
    let client = client(&emulator);
    let throttled = client
        .call(
            &creds(),
            &DescribeTasksRequest {
                region_id: REGION.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), "Throttling.User");
    let started = Instant::now();
    client.call(&creds(), &regions()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(emulator.stats().faults.delayed, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn faults_can_be_set_over_the_admin_api_and_are_reproducible_by_seed() {
    let emulator = start().await;
    let http = http();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let answer = http
            .put(format!("{}/faults", emulator.admin_url()))
            .body(r#"{"default":{"throttle_rate":0.5},"seed":99}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let mut codes = Vec::new();
        for _ in 0..16 {
            let params = signed("POST", "DescribeRegions", &[("RegionId", REGION)]);
            codes.push(post_form(&emulator, &params).await.0);
        }
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&400) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
    let cleared = http
        .put(format!("{}/faults", emulator.admin_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let params = signed("POST", "DescribeRegions", &[("RegionId", REGION)]);
    assert_eq!(post_form(&emulator, &params).await.0, 200);
    emulator.shutdown().await;
}

// Hostile answers: what a gateway, a proxy or a broken ECS front end sends. Each is counted, and the
// client reports it in a class a caller can act on. The client's side is asserted as it is on this
// branch (see each test).

/// One fault kind for `ImportImage` only, so the other actions stay healthy.
fn on_import(spec: FaultSpec) -> FaultSettings {
    FaultSettings {
        actions: [("ImportImage".to_string(), spec)].into(),
        ..Default::default()
    }
}

/// The raw answer to one signed `ImportImage`: status, content type, body (lossy UTF-8).
async fn raw_import(
    emulator: &ecs_image_operator::emulator::EmulatorHandle,
) -> (u16, String, String) {
    let params = signed(
        "POST",
        "ImportImage",
        &[
            ("RegionId", REGION),
            ("Format", "JSON"),
            ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
            ("DiskDeviceMapping.1.OSSObject", "ubuntu-22.04.qcow2"),
        ],
    );
    let response = http()
        .post(format!("{}/", emulator.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(params.to_form())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
    (status, content_type, body)
}

#[tokio::test]
async fn an_html_502_page_from_a_gateway_is_unreadable_and_retryable() {
    use ecs_image_operator::ecs::ErrorClass;
    let emulator = start().await;
    emulator.set_faults(on_import(FaultSpec {
        html_502_rate: 1.0,
        ..Default::default()
    }));
    let (status, content_type, body) = raw_import(&emulator).await;
    assert_eq!(status, 502);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("502 Bad Gateway"), "{body}");
    let error = client(&emulator)
        .import_image(&creds(), &import("gw", "ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "UnreadableResponse", "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    let stats = emulator.stats();
    assert_eq!(stats.faults.html_bad_gateway, 2);
    assert_eq!(stats.actions["ImportImage"].calls, 2);
    assert_eq!(stats.actions["ImportImage"].ok, 0);
    assert!(
        stats.import_calls.is_empty(),
        "a faulted import is not carried out"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_200_that_is_not_json_is_an_unreadable_response() {
    let emulator = start().await;
    emulator.set_faults(on_import(FaultSpec {
        invalid_json_rate: 1.0,
        ..Default::default()
    }));
    let (status, _, body) = raw_import(&emulator).await;
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_err(),
        "{body}"
    );
    let error = client(&emulator)
        .import_image(&creds(), &import("bad-json", "ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    // On this branch a 2xx that cannot be read is `External`; after the merge with the client's
    // changes it becomes retryable.
    assert_eq!(error.code(), "UnreadableResponse", "{error}");
    assert_eq!(emulator.stats().faults.invalid_json, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_200_without_the_image_id_is_an_unreadable_response() {
    let emulator = start().await;
    emulator.set_faults(on_import(FaultSpec {
        missing_fields_rate: 1.0,
        ..Default::default()
    }));
    let (status, _, body) = raw_import(&emulator).await;
    assert_eq!(status, 200);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        value.get("RequestId").is_some() && value.get("ImageId").is_none(),
        "{body}"
    );
    let error = client(&emulator)
        .import_image(&creds(), &import("no-id", "ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "UnreadableResponse", "{error}");
    assert!(error.to_string().contains("ImageId"), "{error}");
    assert_eq!(emulator.stats().faults.missing_fields, 2);
    // Only ImportImage is faulted: another action is answered normally.
    client(&emulator).call(&creds(), &regions()).await.unwrap();
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_truncated_body_is_a_network_error() {
    use ecs_image_operator::ecs::ErrorClass;
    let emulator = start().await;
    emulator.set_faults(on_import(FaultSpec {
        truncated_rate: 1.0,
        ..Default::default()
    }));
    let params = signed(
        "POST",
        "ImportImage",
        &[("RegionId", REGION), ("Format", "JSON")],
    );
    let response = http()
        .post(format!("{}/", emulator.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(params.to_form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let promised = response.content_length().unwrap();
    assert!(promised > 10, "{promised}");
    assert!(response.bytes().await.is_err(), "the body ends early");
    let error = client(&emulator)
        .import_image(&creds(), &import("cut", "ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "NetworkError", "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(emulator.stats().faults.truncated, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_oversized_body_has_the_configured_size_and_is_streamed() {
    let emulator = start().await;
    let size: u64 = 20 * 1024 * 1024;
    emulator.set_faults(on_import(FaultSpec {
        oversized_rate: 1.0,
        oversized_bytes: Some(size),
        ..Default::default()
    }));
    let (status, _, body) = raw_import(&emulator).await;
    assert_eq!(status, 200);
    assert_eq!(body.len() as u64, size);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(value.get("RequestId").is_some());
    let error = client(&emulator)
        .import_image(&creds(), &import("huge", "ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    // The client stops reading at its cap (4 MiB) instead of taking all 20 MiB: a retryable error.
    assert_eq!(error.code(), "ResponseTooLarge", "{error}");
    assert_eq!(
        error.class(),
        ecs_image_operator::ecs::ErrorClass::Retryable
    );
    assert_eq!(emulator.stats().faults.oversized, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_hung_request_is_never_answered_and_the_client_times_out() {
    use ecs_image_operator::ecs::ErrorClass;
    let emulator = start().await;
    emulator.set_faults(on_import(FaultSpec {
        hang_rate: 1.0,
        ..Default::default()
    }));
    let client = ecs_image_operator::ecs::EcsClient::new(ecs_image_operator::ecs::ClientConfig {
        request_timeout: Duration::from_millis(500),
        max_attempts: 1,
        ..client(&emulator).config().clone()
    })
    .unwrap();
    let started = Instant::now();
    let error = client
        .import_image(&creds(), &import("hang", "ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(error.code(), "Timeout", "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(emulator.stats().faults.hung, 1);
    assert!(emulator.stats().import_calls.is_empty());
    // The emulator itself is not stuck: other actions are answered.
    client.call(&creds(), &regions()).await.unwrap();
    emulator.shutdown().await;
}

#[tokio::test]
async fn hostile_faults_are_set_over_the_admin_api_and_shown_in_the_stats() {
    let emulator = start().await;
    let answer = http()
        .put(format!("{}/faults", emulator.admin_url()))
        .body(r#"{"actions":{"DescribeRegions":{"html_502_rate":1.0}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let params = signed("POST", "DescribeRegions", &[("RegionId", REGION)]);
    assert_eq!(post_form(&emulator, &params).await.0, 502);
    let text = http()
        .get(format!("{}/stats", emulator.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stats["faults"]["html_bad_gateway"], 1, "{stats}");
    for key in [
        "invalid_json",
        "missing_fields",
        "truncated",
        "oversized",
        "hung",
    ] {
        assert_eq!(stats["faults"][key], 0, "{key}: {stats}");
    }
    emulator.shutdown().await;
}
