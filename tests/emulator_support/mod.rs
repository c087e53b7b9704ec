//! Shared set-up for the emulator tests: a world as a YAML literal, keys, the project's client,
//! and a raw V1 signer for requests the client would never send (replays, tampering, skew).
#![allow(dead_code)] // each test crate uses its own subset

use std::num::NonZeroU32;
use std::time::Duration;

use ecs_image_operator::ecs::api::{DiskDeviceMapping, ImportImageRequest, Tag};
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::params::Params;
use ecs_image_operator::ecs::retry::Backoff;
use ecs_image_operator::ecs::{ClientConfig, CredentialProvider, Credentials, EcsClient, sign};
use ecs_image_operator::emulator::config::WorldFile;
use ecs_image_operator::emulator::{AccessKey, Emulator, EmulatorConfig, EmulatorHandle};

pub const AK_ID: &str = "LTAI5tEmulatorTestKey01";
pub const AK_SECRET: &str = "EmulatorTestSecret0123456789ab";
pub const OTHER_ID: &str = "LTAI5tOtherAccountKey01";
pub const OTHER_SECRET: &str = "OtherAccountSecret0123456789a";
pub const STS_ID: &str = "STS.EmulatorTemporaryKey";
pub const STS_SECRET: &str = "EmulatorStsSecret/with+slash==";
pub const STS_TOKEN: &str = "CAISemulator+token/value==";
pub const REGION: &str = "cn-hangzhou";

/// The world every test starts with.
pub const WORLD: &str = r#"
objects:
  - bucket: images-hz
    key: ubuntu-22.04.qcow2
    region: cn-hangzhou
    size: 2147483648
    virtual_size_gib: 20
    format: QCOW2
  - bucket: images-hz
    key: images/CentOS 7.raw
    region: cn-hangzhou
    size: 1073741824
    virtual_size_gib: 40
    format: RAW
  - bucket: images-hz
    key: empty.raw
    region: cn-hangzhou
    size: 0
  - bucket: images-hz
    key: cold.raw
    region: cn-hangzhou
    size: 1073741824
    storage_class: Archive
  - bucket: images-hz
    key: secret.raw
    region: cn-hangzhou
    size: 1073741824
    readable: false
  - bucket: images-sh
    key: disk.raw
    region: cn-shanghai
    size: 1073741824
  - bucket: images-vault
    key: disk.raw
    region: cn-hangzhou
    size: 1073741824
    encrypted: true
resource_groups: [rg-team]
"#;

pub fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        keys: vec![
            AccessKey::new(AK_ID, AK_SECRET),
            AccessKey::new(OTHER_ID, OTHER_SECRET).in_account("other"),
            AccessKey::new(STS_ID, STS_SECRET).with_security_token(STS_TOKEN),
        ],
        // 600×: the one-minute base of an import passes in 0.1 s of real time.
        time_scale: 600.0,
        seed: 42,
        ..EmulatorConfig::default()
    };
    WorldFile::parse(WORLD, "WORLD").unwrap().apply(&mut config);
    config
}

pub async fn start() -> EmulatorHandle {
    start_with(config()).await
}

pub async fn start_with(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config).await.unwrap()
}

pub fn client(handle: &EmulatorHandle) -> EcsClient {
    client_with(handle, 1)
}

pub fn client_with(handle: &EmulatorHandle, max_attempts: u32) -> EcsClient {
    EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&handle.url()).unwrap(),
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        },
        max_attempts,
        rate_limit: NonZeroU32::new(10_000),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    })
    .unwrap()
}

pub fn creds() -> CredentialProvider {
    CredentialProvider::fixed(Credentials::new(AK_ID, AK_SECRET))
}

pub fn sts_creds() -> CredentialProvider {
    CredentialProvider::fixed(Credentials::new(STS_ID, STS_SECRET).with_security_token(STS_TOKEN))
}

pub fn import(name: &str, object: &str) -> ImportImageRequest {
    ImportImageRequest {
        region_id: REGION.into(),
        image_name: Some(name.into()),
        disk_device_mappings: vec![DiskDeviceMapping {
            oss_bucket: "images-hz".into(),
            oss_object: object.into(),
            ..Default::default()
        }],
        tags: vec![Tag::new("ecs-image-operator/uid", name)],
        ..Default::default()
    }
}

/// A V1 request signed by hand, for raw HTTP.
pub struct Signed {
    pub params: Params,
}

pub fn now_stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Common V1 parameters plus `params`, signed for `method` with the test key.
pub fn signed(method: &str, action: &str, params: &[(&str, &str)]) -> Params {
    signed_as(
        method,
        action,
        params,
        AK_ID,
        AK_SECRET,
        &now_stamp(),
        &nonce(),
    )
}

pub fn signed_as(
    method: &str,
    action: &str,
    params: &[(&str, &str)],
    key_id: &str,
    secret: &str,
    timestamp: &str,
    nonce: &str,
) -> Params {
    let mut all: Params = params.iter().copied().collect();
    all.set("Action", action);
    all.set("Version", "2014-05-26");
    if !all.contains("Format") {
        all.set("Format", "JSON");
    }
    all.set("AccessKeyId", key_id);
    all.set("SignatureMethod", "HMAC-SHA1");
    all.set("SignatureVersion", "1.0");
    all.set("SignatureNonce", nonce);
    all.set("Timestamp", timestamp);
    resign(&mut all, method, secret);
    all
}

/// Replaces `Signature` with a fresh one over the current parameters.
pub fn resign(params: &mut Params, method: &str, secret: &str) {
    params.remove("Signature");
    let string_to_sign = sign::v1_string_to_sign(method, params);
    params.set("Signature", sign::v1_signature(secret, &string_to_sign));
}

/// One HTTP client per test binary, so connections are reused between requests.
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            ecs_image_operator::ecs::ensure_tls_provider();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap()
        })
        .clone()
}

/// POSTs the parameters as a form body; returns status and body.
pub async fn post_form(handle: &EmulatorHandle, params: &Params) -> (u16, String) {
    let response = http()
        .post(format!("{}/", handle.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(params.to_form())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GETs with every parameter in the query.
pub async fn get_query(handle: &EmulatorHandle, params: &Params) -> (u16, String) {
    let response = http()
        .get(format!("{}/?{}", handle.url(), params.to_form()))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The `Code` of a JSON error body.
pub fn code_of(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["Code"].as_str().unwrap_or_default().to_string()
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
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
