//! Fault hooks: injected 500, 429, dropped connections, delays, over the API and in-process.

use std::time::{Duration, Instant};

use kube::api::PostParams;
use kube_double::{FaultAction, FaultRule};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn next_requests_fail_then_recover() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let item = format!("{}/a", collection_path("default"));
    server.faults().fail_next(2, &collection_path("default"));
    for _ in 0..2 {
        let (code, status) = raw(&client, "GET", &item, "application/json", None).await;
        assert_eq!(code, 500);
        assert_eq!(status["reason"], "InternalError");
    }
    assert!(api.get("a").await.is_ok());
    assert!(server.faults().rules().is_empty());
}

#[tokio::test]
async fn throttling_sets_retry_after() {
    let server = start().await;
    let client = client_without_retries(&server).await;
    server.faults().throttle_next(1, "/apis/", 7);
    let request = http::Request::builder()
        .uri(collection_path("default"))
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
}

#[tokio::test]
async fn kube_client_retries_honour_retry_after() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    server.faults().throttle_next(1, "/apis/", 1);
    let started = Instant::now();
    api.list(&Default::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn method_filter_and_dropped_connections() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    server.faults().add(
        FaultRule::new(collection_path("default"), FaultAction::Drop)
            .method("POST")
            .times(1),
    );
    // GETs pass; the POST loses its connection.
    assert!(api.list(&Default::default()).await.is_ok());
    let dropped = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await;
    assert!(
        matches!(
            dropped,
            Err(kube::Error::HyperError(_) | kube::Error::Service(_))
        ),
        "{dropped:?}"
    );
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    // The request log shows what happened.
    let posts: Vec<Option<u16>> = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == collection_path("default"))
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [None, Some(201)]);
}

#[tokio::test]
async fn delays_and_the_admin_path() {
    let server = start().await;
    let client = client_without_retries(&server).await;
    let rule = json!({
        "pathPrefix": "/apis/ecs.image-import.dev",
        "count": 1,
        "action": {"kind": "delay", "millis": 300},
    });
    let (code, _) = raw(
        &client,
        "POST",
        "/_double/faults",
        "application/json",
        Some(rule),
    )
    .await;
    assert_eq!(code, 201);
    let (_, rules) = raw(&client, "GET", "/_double/faults", "application/json", None).await;
    assert_eq!(rules[0]["action"]["millis"], 300);
    let started = Instant::now();
    let (code, _) = raw(
        &client,
        "GET",
        &collection_path("default"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let status =
        json!({"pathPrefix": "/api/v1/namespaces", "action": {"kind": "status", "code": 503}});
    raw(
        &client,
        "POST",
        "/_double/faults",
        "application/json",
        Some(status),
    )
    .await;
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 503);
    let (code, _) = raw(
        &client,
        "DELETE",
        "/_double/faults",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
}
