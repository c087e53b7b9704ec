//! Shared helpers: a started double with the test CRD, a kube client, raw requests.

use std::future::Future;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use kube_double::{Server, ServerOptions};
use serde_json::{Value, json};

/// A CRD shaped like the operator's ImageImport CRD.
pub const CRD_YAML: &str = include_str!("fixtures/imageimports-crd.yaml");

pub const GROUP: &str = "ecs.image-import.dev";

/// Path of the ImageImport collection in `ns`.
pub fn collection_path(ns: &str) -> String {
    format!("/apis/{GROUP}/v1/namespaces/{ns}/imageimports")
}

pub async fn start_with(options: ServerOptions) -> Server {
    let server = Server::start(options).await.unwrap();
    server.apply_yaml(CRD_YAML).unwrap();
    server
}

pub async fn start() -> Server {
    start_with(ServerOptions::default()).await
}

pub async fn config(server: &Server) -> Config {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap()
}

/// A client configured as the operator's would be (kube-rs retries 429/503/504 by default).
pub async fn client(server: &Server) -> Client {
    Client::try_from(config(server).await).unwrap()
}

/// A client that shows every response as it comes, without kube-rs's retries.
pub async fn client_without_retries(server: &Server) -> Client {
    let mut config = config(server).await;
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "ImageImport"),
        "imageimports",
    )
}

pub fn imageimports(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource())
}

/// A valid ImageImport.
pub fn image_import(name: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "ImageImport",
        "metadata": {"name": name},
        "spec": {
            "imageName": "ubuntu-22",
            "source": {"bucket": "images-bucket", "object": "images/ubuntu.qcow2"},
            "osType": "linux",
        },
    })
}

pub fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

/// A raw request; returns the status code and the JSON body (Null when not JSON).
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(bytes))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The `Status` of a failed kube call.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bound on anything that should happen promptly.
pub const PROMPTLY: Duration = Duration::from_secs(10);
