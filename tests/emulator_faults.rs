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
