//! What ECS sends back is made safe to show: a wrong secret's `SignatureDoesNotMatch` quotes ECS's
//! string to sign, which carries the security token; neither it nor any secret may reach an
//! error's `Display` or `Debug`, the `ecs …` and `import -f` output, debug logs or `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod log_capture;
mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use ecs_image_operator::ecs::api::DescribeRegionsRequest;
use ecs_image_operator::ecs::error::ApiError;
use ecs_image_operator::ecs::observe::Observer;
use ecs_image_operator::ecs::params::{Params, percent_encode};
use ecs_image_operator::ecs::redact::{Secrets, UNUSABLE_CODE, WRONG_SECRET_HINT};
use ecs_image_operator::ecs::{ClientConfig, CredentialProvider, Credentials, EcsClient, sign};
use ecs_image_operator::metrics::Metrics;
use emulator_support::*;
use support::{Canned, ScriptedServer, ecs_error};

/// A wrong secret with characters that percent-encoding changes.
const WRONG_SECRET: &str = "Wrong/Secret+Value==9876";

/// Every shape a value could take in a message: raw, percent-encoded once and twice (either hex
/// case), form-encoded.
fn forms(value: &str) -> Vec<String> {
    let once = percent_encode(value);
    let twice = percent_encode(&once);
    vec![
        value.to_string(),
        once.to_lowercase(),
        twice.to_lowercase(),
        once.replace("%20", "+").to_lowercase(),
    ]
}

/// Fails when `text` holds the token or a secret in any form.
fn assert_clean(text: &str, what: &str) {
    let lowered = text.to_lowercase();
    for value in [WRONG_SECRET, STS_TOKEN, STS_SECRET, AK_SECRET] {
        for form in forms(value) {
            assert!(
                !lowered.contains(&form),
                "{what} holds {form:?} (a form of a secret or token):\n{text}"
            );
        }
    }
    assert!(
        !lowered.contains("string to sign"),
        "{what} quotes ECS's string to sign:\n{text}"
    );
}

fn wrong_sts_creds() -> CredentialProvider {
    CredentialProvider::fixed(Credentials::new(STS_ID, WRONG_SECRET).with_security_token(STS_TOKEN))
}

fn regions() -> DescribeRegionsRequest {
    DescribeRegionsRequest {
        region_id: REGION.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_v1_wrong_secret_with_a_security_token_shows_neither() {
    let logs = log_capture::LogBuffer::default();
    let writer = logs.clone();
    // Everything at TRACE (reqwest and hyper included) except the emulator, which plays ECS.
    // Global, not per thread: callsites first hit by another test's thread without a subscriber
    // would otherwise stay disabled here. The other tests of this file then log into it as well,
    // which they must do cleanly too.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace,ecs_image_operator::emulator=off")
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let emulator = start().await;
    let metrics = Metrics::new();
    let client = EcsClient::new(ClientConfig {
        observer: Observer::new(Arc::new(metrics.clone())),
        ..client(&emulator).config().clone()
    })
    .unwrap();
    let error = client
        .call(&wrong_sts_creds(), &regions())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "SignatureDoesNotMatch");
    let shown = error.to_string();
    assert!(shown.contains(WRONG_SECRET_HINT), "{shown}");
    assert!(
        shown.contains("Specified signature is not matched with our calculation."),
        "{shown}"
    );
    assert_clean(&shown, "Display");
    assert_clean(&format!("{error:?}"), "Debug");
    assert_clean(&format!("{error:#?}"), "Debug");
    let api = error.api().unwrap();
    for field in [&api.host_id, &api.recommend, &api.request_id]
        .into_iter()
        .flatten()
    {
        assert_clean(field, "a field of ApiError");
    }
    assert_clean(&metrics.encode().unwrap(), "/metrics");
    let logged = logs.text();
    assert!(
        logged.contains("ECS call failed"),
        "no debug log:\n{logged}"
    );
    assert_clean(&logged, "TRACE logs");
    emulator.shutdown().await;
}

/// The V3 request of `tests/emulator_auth.rs`, as an STS key with the given secret.
fn v3_request(
    emulator: &ecs_image_operator::emulator::EmulatorHandle,
    secret: &str,
) -> (reqwest::RequestBuilder, String) {
    let query = Params::new();
    let headers: Vec<(String, String)> = vec![
        ("host".into(), emulator.addr().to_string()),
        ("x-acs-action".into(), "DescribeRegions".into()),
        ("x-acs-date".into(), now_stamp()),
        ("x-acs-security-token".into(), STS_TOKEN.into()),
        ("x-acs-signature-nonce".into(), nonce()),
        ("x-acs-content-sha256".into(), sign::sha256_hex(b"")),
        ("x-acs-version".into(), "2014-05-26".into()),
    ];
    let canonical = sign::v3_canonical_request(&sign::V3Input {
        http_method: "POST",
        query: &query,
        signed_headers: &headers,
        hashed_payload: &sign::sha256_hex(b""),
    });
    let signature = sign::v3_signature(secret, &sign::v3_string_to_sign(&canonical));
    let mut names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let authorization = format!(
        "ACS3-HMAC-SHA256 Credential={STS_ID},SignedHeaders={},Signature={signature}",
        names.join(";")
    );
    let mut request = reqwest::Client::new()
        .post(format!("{}/", emulator.url()))
        .header("authorization", &authorization)
        .header("accept", "application/json");
    for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
        request = request.header(name, value);
    }
    (request, authorization)
}

#[tokio::test]
async fn a_v3_wrong_secret_answer_is_shown_without_the_string_to_sign_or_the_authorization() {
    ecs_image_operator::ecs::ensure_tls_provider();
    let emulator = start().await;
    let (request, authorization) = v3_request(&emulator, WRONG_SECRET);
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    // The emulator echoes its string to sign, as ECS does.
    assert!(body.contains("string to sign is:"), "{body}");
    let secrets = Secrets::none()
        .with(WRONG_SECRET)
        .with(STS_TOKEN)
        .with(&authorization);
    let error = ApiError::parse_redacted("DescribeRegions", status, &body, &secrets).unwrap();
    assert_eq!(error.code, "SignatureDoesNotMatch");
    assert!(error.message.contains(WRONG_SECRET_HINT), "{error}");
    assert_clean(&error.to_string(), "Display");
    assert_clean(&format!("{error:?}"), "Debug");
    assert!(!format!("{error:?}").contains(&authorization));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_message_quoting_the_token_and_a_hostile_code_are_redacted_and_labels_stay_fixed() {
    let signature_echo = format!(
        "The request carried SecurityToken={} and {}.",
        percent_encode(STS_TOKEN),
        percent_encode(&percent_encode(STS_TOKEN)),
    );
    let long_code = "A".repeat(10_000);
    let server = ScriptedServer::start(
        vec![
            Canned::new(400, ecs_error("InvalidParameter", &signature_echo)),
            Canned::new(400, ecs_error(&format!("Bad{STS_TOKEN}"), "x")),
            Canned::new(400, ecs_error(&long_code, "y")),
        ],
        |_| None,
    )
    .await;
    let metrics = Metrics::new();
    let client = EcsClient::new(ClientConfig {
        endpoint: ecs_image_operator::ecs::endpoint::EcsEndpoint::override_url(&server.url())
            .unwrap(),
        max_attempts: 1,
        rate_limit: None,
        observer: Observer::new(Arc::new(metrics.clone())),
        ..ClientConfig::default()
    })
    .unwrap();
    let creds = CredentialProvider::fixed(
        Credentials::new(STS_ID, STS_SECRET).with_security_token(STS_TOKEN),
    );
    let first = client.call(&creds, &regions()).await.unwrap_err();
    assert_eq!(first.code(), "InvalidParameter");
    assert!(first.to_string().contains("[redacted]"), "{first}");
    assert_clean(&format!("{first} {first:?}"), "an echo of the token");
    for _ in 0..2 {
        let error = client.call(&creds, &regions()).await.unwrap_err();
        assert_eq!(error.code(), UNUSABLE_CODE);
        assert_clean(&format!("{error} {error:?}"), "a hostile code");
        assert!(error.to_string().chars().count() < 2_000, "{error}");
    }
    let text = metrics.encode().unwrap();
    assert_clean(&text, "/metrics");
    assert!(!text.contains("AAAAAAAAAA"), "{text}");
    assert!(text.contains(UNUSABLE_CODE), "{text}");
}

fn run_binary(args: &[&str], endpoint: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(args)
        .env("ECS_IMAGE_OPERATOR_ECS_ENDPOINT", endpoint)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", STS_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", WRONG_SECRET)
        .env("ALIBABA_CLOUD_SECURITY_TOKEN", STS_TOKEN)
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("ECS_IMAGE_OPERATOR_LOG", "trace")
        .env_remove("ALIBABA_CLOUD_ROLE_ARN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_and_import_commands_print_neither_token_nor_secret() {
    let emulator = start().await;
    let url = emulator.url();

    let endpoint = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        run_binary(
            &[
                "ecs",
                "describe-regions",
                "--region",
                REGION,
                "--max-attempts",
                "1",
            ],
            &endpoint,
        )
    })
    .await
    .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("SignatureDoesNotMatch"), "{all}");
    assert!(all.contains(WRONG_SECRET_HINT), "{all}");
    assert_clean(&all, "`ecs describe-regions` output");

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("import.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: leak\n\
         spec:\n  regionId: cn-hangzhou\n  imageName: leak\n  diskDeviceMappings:\n\
         \x20   - ossBucket: images-hz\n      ossObject: ubuntu-22.04.qcow2\n",
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap().to_string();
    let output =
        tokio::task::spawn_blocking(move || run_binary(&["import", "-f", &manifest], &url))
            .await
            .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("SignatureDoesNotMatch"), "{all}");
    assert_clean(&all, "`import -f` output");
    emulator.shutdown().await;
}
