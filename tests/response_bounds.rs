//! Everything that comes from outside is bounded: answer bodies are read up to a cap (refused from
//! `Content-Length`, or cut off while streaming), and the texts ECS, STS or the metadata service
//! send are cut to documented lengths before anything can show them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod support;

use std::time::Duration;

use ecs_image_operator::ecs::api::{DescribeRegionsRequest, DescribeTaskAttributeRequest};
use ecs_image_operator::ecs::credentials::{CredentialSource, MetadataConfig, OidcConfig};
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::redact::{
    CUT_MARKER, MAX_FIELD_CHARS, MAX_MESSAGE_CHARS, UNUSABLE_CODE,
};
use ecs_image_operator::ecs::retry::Backoff;
use ecs_image_operator::ecs::{
    ClientConfig, CredentialProvider, Credentials, CredentialsError, EcsClient, EcsError,
    ErrorClass,
};
use support::{Canned, ScriptedServer, ecs_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: usize = 64 * 1024;

fn client(url: &str, max_attempts: u32) -> EcsClient {
    EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(url).unwrap(),
        max_attempts,
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        },
        rate_limit: None,
        max_response_bytes: LIMIT,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn creds() -> CredentialProvider {
    CredentialProvider::fixed(Credentials::new("LTAI-test", "test-secret-value"))
}

fn regions() -> DescribeRegionsRequest {
    DescribeRegionsRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    }
}

/// A loopback server that answers every request with `total` bytes of `x`, chunked (no
/// `Content-Length`, so only a streaming cap stops the client), and counts connections.
async fn endless_server(total: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    let frame = format!("{:x}\r\n", chunk.len());
                    if socket.write_all(frame.as_bytes()).await.is_err()
                        || socket.write_all(&chunk).await.is_err()
                        || socket.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                    sent += chunk.len();
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (url, served)
}

#[tokio::test]
async fn a_chunked_answer_past_the_cap_is_refused_and_retried() {
    let (url, served) = endless_server(10 * 1024 * 1024).await;
    let error = client(&url, 2)
        .call(&creds(), &regions())
        .await
        .unwrap_err();
    assert!(
        matches!(error, EcsError::ResponseTooLarge { limit: LIMIT, .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "ResponseTooLarge");
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_announced_length_over_the_cap_is_refused_and_one_under_it_is_read() {
    let big = format!(
        r#"{{"RequestId":"R","Regions":{{"Region":[]}},"Pad":"{}"}}"#,
        "p".repeat(LIMIT)
    );
    let fits = format!(
        r#"{{"RequestId":"R","Regions":{{"Region":[]}},"Pad":"{}"}}"#,
        "p".repeat(LIMIT - 100)
    );
    let server = ScriptedServer::start(vec![Canned::new(200, big), Canned::new(200, fits)], |_| {
        None
    })
    .await;
    let client = client(&server.url(), 1);
    let error = client.call(&creds(), &regions()).await.unwrap_err();
    assert!(
        matches!(error, EcsError::ResponseTooLarge { .. }),
        "{error:?}"
    );
    client.call(&creds(), &regions()).await.unwrap();
}

#[tokio::test]
async fn huge_error_texts_are_cut_on_character_boundaries() {
    let message = "エラー".repeat(5_000);
    let body = format!(
        r#"{{"RequestId":"{}","HostId":"h","Code":"InvalidParameter","Message":"{message}"}}"#,
        "r".repeat(5_000)
    );
    let unparseable = format!("<html>{}</html>", "ü".repeat(20_000));
    let server = ScriptedServer::start(
        vec![Canned::new(400, body), Canned::new(400, unparseable)],
        |_| None,
    )
    .await;
    let client = client(&server.url(), 1);
    let error = client.call(&creds(), &regions()).await.unwrap_err();
    let api = error.api().unwrap();
    assert_eq!(api.message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(api.message.ends_with(CUT_MARKER));
    assert!(api.message.starts_with("エラーエラー"));
    assert_eq!(
        api.request_id.as_deref().unwrap().chars().count(),
        MAX_FIELD_CHARS
    );
    let error = client.call(&creds(), &regions()).await.unwrap_err();
    let EcsError::Decode { detail, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(detail.chars().count() < 300, "{detail}");
    assert!(detail.ends_with(CUT_MARKER), "{detail}");
}

#[tokio::test]
async fn a_task_error_is_bounded_and_its_code_checked() {
    let body = format!(
        r#"{{"RequestId":"r","TaskId":"t-1","TaskStatus":"Failed","TaskProcess":"45%","SupportCancel":"false",
        "OperationProgressSet":{{"OperationProgress":[{{"OperationStatus":"Failed","ErrorCode":"{}","ErrorMsg":"{}"}}]}}}}"#,
        "Code<script>".repeat(20),
        "m".repeat(50_000)
    );
    let server = ScriptedServer::start(vec![Canned::new(200, body)], |_| None).await;
    let task = client(&server.url(), 1)
        .call(
            &creds(),
            &DescribeTaskAttributeRequest {
                region_id: "cn-hangzhou".into(),
                task_id: "t-1".into(),
            },
        )
        .await
        .unwrap();
    let (code, message) = task.first_error().unwrap();
    assert_eq!(code, UNUSABLE_CODE);
    assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(message.ends_with(CUT_MARKER));
}

fn oidc(url: &str, token_file: &std::path::Path) -> CredentialSource {
    CredentialSource::Oidc(OidcConfig {
        role_arn: "acs:ram::123:role/importer".into(),
        oidc_provider_arn: "acs:ram::123:oidc-provider/ack-rrsa".into(),
        token_file: token_file.to_path_buf(),
        role_session_name: "test-session".into(),
        duration: Duration::from_secs(3600),
        sts_endpoint: url.into(),
    })
}

#[tokio::test]
async fn sts_answers_are_bounded_and_never_quote_the_oidc_token() {
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{JWT}\n")).unwrap();

    let echo = ecs_error(
        "InvalidParameter.OIDCToken",
        &format!(
            "The OIDC token {JWT} is invalid; form {}",
            ecs_image_operator::ecs::params::percent_encode(JWT)
        ),
    );
    let server = ScriptedServer::start(vec![Canned::new(400, echo)], |_| None).await;
    let provider = CredentialProvider::new(oidc(&server.url(), &token_file)).unwrap();
    let error = provider.credentials().await.unwrap_err();
    assert!(matches!(error, CredentialsError::Sts(_)), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains("eyJ"), "{shown}");

    let (url, _) = endless_server(1024 * 1024).await;
    let provider = CredentialProvider::new(oidc(&url, &token_file)).unwrap();
    let error = provider.credentials().await.unwrap_err();
    assert!(
        matches!(error, CredentialsError::ResponseTooLarge { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(error.code(), "ResponseTooLarge");
}

#[tokio::test]
async fn an_unreadable_metadata_answer_does_not_quote_its_keys() {
    // `Expiration` of the wrong type: serde's message would quote the neighbouring values.
    let answer = r#"{"Code":"Success","AccessKeyId":"STS.meta","AccessKeySecret":"meta-secret-value","SecurityToken":"meta-token-value","Expiration":["meta-token-value"]}"#;
    let odd_code = r#"{"Code":"meta-token-value","AccessKeyId":"STS.meta","AccessKeySecret":"meta-secret-value","SecurityToken":"meta-token-value","Expiration":"2030-01-01T00:00:00Z"}"#;
    let server = ScriptedServer::start(vec![], move |request| {
        let path = request.uri.path().to_string();
        if path.ends_with("/api/token") {
            Some(Canned::new(200, "imds-token"))
        } else if path.ends_with("/role-a") {
            Some(Canned::new(200, answer))
        } else {
            Some(Canned::new(200, odd_code))
        }
    })
    .await;
    for role in ["role-a", "role-b"] {
        let provider = CredentialProvider::new(CredentialSource::Metadata(MetadataConfig {
            role_name: Some(role.into()),
            endpoint: server.url(),
            imdsv1_disabled: false,
        }))
        .unwrap();
        let error = provider.credentials().await.unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("meta-secret-value"), "{shown}");
        assert!(!shown.contains("meta-token-value"), "{shown}");
    }
}

#[tokio::test]
async fn a_transport_error_does_not_show_a_password_from_the_endpoint() {
    // reqwest itself moves user info out of the URL before sending (this passed before
    // `redact::scrub_transport` too): a guard of the property, whatever reqwest does next.
    // A port nothing listens on: bound, then dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://proxyuser:hunter2password@127.0.0.1:{port}");
    let error = client(&url, 1)
        .call(&creds(), &regions())
        .await
        .unwrap_err();
    assert!(matches!(error, EcsError::Transport { .. }), "{error:?}");
    let mut shown = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        shown.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    assert!(shown.contains("127.0.0.1"), "{shown}");
    assert!(!shown.contains("hunter2password"), "{shown}");
}
