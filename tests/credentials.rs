//! Credentials against local STS and metadata servers: fetching, caching, refreshing before expiry,
//! refreshing when ECS rejects a token, and never showing a secret in errors, `Debug` or logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod log_capture;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecs_image_operator::ecs::api::DescribeTasksRequest;
use ecs_image_operator::ecs::credentials::{MetadataConfig, OidcConfig};
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::retry::Backoff;
use ecs_image_operator::ecs::{
    ClientConfig, CredentialProvider, CredentialSource, CredentialsError, EcsClient,
};
use jiff::{SignedDuration, Timestamp};
use support::{Canned, Recorded, ScriptedServer, ecs_error};

fn credentials_json(id: &str, secret: &str, token: &str, valid_for: SignedDuration) -> String {
    let expiration = Timestamp::now().checked_add(valid_for).unwrap();
    serde_json::json!({
        "AccessKeyId": id,
        "AccessKeySecret": secret,
        "SecurityToken": token,
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
    .to_string()
}

/// A local STS that hands out numbered credentials valid for `valid_for`.
async fn sts_server(valid_for: SignedDuration) -> ScriptedServer {
    let issued = Arc::new(Mutex::new(0u32));
    ScriptedServer::start(vec![], move |request: &Recorded| {
        let params = request.params();
        if params.get("Action") != Some("AssumeRoleWithOIDC") {
            return Some(Canned::new(400, ecs_error("InvalidAction.NotFound", "no such action")));
        }
        let mut issued = issued.lock().unwrap();
        *issued += 1;
        let n = *issued;
        let credentials =
            credentials_json(&format!("STS.id-{n}"), &format!("sts-secret-{n}"), &format!("sts-token-{n}"), valid_for);
        let body = format!(
            r#"{{"RequestId":"S-{n}","AssumedRoleUser":{{"Arn":"acs:ram::1:role/r/s"}},"Credentials":{credentials}}}"#
        );
        Some(Canned::new(200, body))
    })
    .await
}

fn oidc_config(sts: &ScriptedServer, token_file: &std::path::Path) -> OidcConfig {
    OidcConfig {
        role_arn: "acs:ram::123:role/importer".into(),
        oidc_provider_arn: "acs:ram::123:oidc-provider/ack-rrsa".into(),
        token_file: token_file.to_path_buf(),
        role_session_name: "test-session".into(),
        duration: Duration::from_secs(3600),
        sts_endpoint: sts.url(),
    }
}

#[tokio::test]
async fn oidc_credentials_are_fetched_once_and_cached_while_fresh() {
    let sts = sts_server(SignedDuration::from_hours(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "oidc-jwt-one\n").unwrap();
    let provider =
        CredentialProvider::new(CredentialSource::Oidc(oidc_config(&sts, &token_file))).unwrap();

    let first = provider.credentials().await.unwrap();
    let second = provider.credentials().await.unwrap();
    assert_eq!(first.access_key_id(), "STS.id-1");
    assert_eq!(first.access_key_secret(), "sts-secret-1");
    assert_eq!(first.security_token(), Some("sts-token-1"));
    assert_eq!(
        second.access_key_id(),
        "STS.id-1",
        "cached while far from expiry"
    );
    let requests = sts.requests();
    assert_eq!(requests.len(), 1);
    let query =
        ecs_image_operator::ecs::params::Params::from_form(requests[0].uri.query().unwrap())
            .unwrap();
    assert_eq!(query.get("Version"), Some("2015-04-01"));
    assert!(
        query.get("OIDCToken").is_none(),
        "the token travels in the body, not the URL"
    );
    let params = requests[0].params();
    assert_eq!(params.get("OIDCToken"), Some("oidc-jwt-one"));
    assert_eq!(params.get("RoleArn"), Some("acs:ram::123:role/importer"));
    assert_eq!(
        params.get("OIDCProviderArn"),
        Some("acs:ram::123:oidc-provider/ack-rrsa")
    );
    assert_eq!(params.get("DurationSeconds"), Some("3600"));
}

#[tokio::test]
async fn credentials_close_to_expiry_are_refreshed_and_the_token_file_is_reread() {
    // Valid for 60 s: inside the 180 s refresh margin, so every call must refresh.
    let sts = sts_server(SignedDuration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "jwt-before-rotation").unwrap();
    let provider =
        CredentialProvider::new(CredentialSource::Oidc(oidc_config(&sts, &token_file))).unwrap();
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.id-1"
    );
    std::fs::write(&token_file, "jwt-after-rotation").unwrap();
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.id-2"
    );
    let tokens: Vec<String> = sts
        .requests()
        .iter()
        .map(|r| r.params().get("OIDCToken").unwrap().to_string())
        .collect();
    assert_eq!(tokens, ["jwt-before-rotation", "jwt-after-rotation"]);
}

#[tokio::test]
async fn an_sts_refusal_keeps_its_code_and_is_not_transient() {
    let sts = ScriptedServer::start(vec![], |_| {
        Some(Canned::new(
            400,
            ecs_error(
                "InvalidParameter.OIDCToken.Expired",
                "The OIDC token has expired.",
            ),
        ))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "jwt").unwrap();
    let provider =
        CredentialProvider::new(CredentialSource::Oidc(oidc_config(&sts, &token_file))).unwrap();
    let error = provider.credentials().await.unwrap_err();
    assert!(matches!(error, CredentialsError::Sts(_)), "{error:?}");
    assert_eq!(error.code(), "InvalidParameter.OIDCToken.Expired");
    assert!(!error.is_transient());
    assert!(!error.to_string().contains("jwt"));
}

#[tokio::test]
async fn a_missing_token_file_is_named_in_the_error() {
    let sts = sts_server(SignedDuration::from_hours(1)).await;
    let config = oidc_config(&sts, std::path::Path::new("/nonexistent/token"));
    let provider = CredentialProvider::new(CredentialSource::Oidc(config)).unwrap();
    let error = provider.credentials().await.unwrap_err();
    assert!(matches!(error, CredentialsError::TokenFile { .. }));
    assert!(error.to_string().contains("/nonexistent/token"));
    assert!(sts.requests().is_empty());
}

/// A local metadata service: IMDSv2 token, role discovery, and credentials that need the token.
async fn metadata_server(token_supported: bool) -> ScriptedServer {
    ScriptedServer::start(vec![], move |request: &Recorded| {
        let path = request.uri.path();
        let token = request
            .headers
            .get("x-aliyun-ecs-metadata-token")
            .and_then(|v| v.to_str().ok());
        match (request.method.as_str(), path) {
            ("PUT", "/latest/api/token") if token_supported => {
                let ttl = request
                    .headers
                    .get("x-aliyun-ecs-metadata-token-ttl-seconds");
                Some(if ttl.is_some() {
                    Canned::new(200, "imds-token")
                } else {
                    Canned::new(400, "ttl missing")
                })
            }
            ("PUT", _) => Some(Canned::new(404, "not found")),
            _ if token_supported && token != Some("imds-token") => {
                Some(Canned::new(401, "token required"))
            }
            ("GET", "/latest/meta-data/ram/security-credentials/") => {
                Some(Canned::new(200, "importer-role"))
            }
            ("GET", "/latest/meta-data/ram/security-credentials/importer-role") => {
                let creds = credentials_json(
                    "STS.meta",
                    "meta-secret",
                    "meta-token",
                    SignedDuration::from_hours(6),
                );
                let mut body: serde_json::Value = serde_json::from_str(&creds).unwrap();
                body["Code"] = "Success".into();
                body["LastUpdated"] = "2024-05-01T00:00:00Z".into();
                Some(Canned::new(200, body.to_string()))
            }
            _ => Some(Canned::new(404, "not found")),
        }
    })
    .await
}

fn metadata_provider(
    server: &ScriptedServer,
    role: Option<&str>,
    imdsv1_disabled: bool,
) -> CredentialProvider {
    CredentialProvider::new(CredentialSource::Metadata(MetadataConfig {
        role_name: role.map(String::from),
        endpoint: server.url(),
        imdsv1_disabled,
    }))
    .unwrap()
}

#[tokio::test]
async fn instance_role_credentials_use_an_imdsv2_token_and_discover_the_role() {
    let server = metadata_server(true).await;
    let credentials = metadata_provider(&server, None, true)
        .credentials()
        .await
        .unwrap();
    assert_eq!(credentials.access_key_id(), "STS.meta");
    assert_eq!(credentials.security_token(), Some("meta-token"));
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "PUT /latest/api/token",
            "GET /latest/meta-data/ram/security-credentials/",
            "GET /latest/meta-data/ram/security-credentials/importer-role"
        ]
    );
}

#[tokio::test]
async fn instance_role_falls_back_to_imdsv1_unless_that_is_disabled() {
    let server = metadata_server(false).await;
    let credentials = metadata_provider(&server, Some("importer-role"), false)
        .credentials()
        .await
        .unwrap();
    assert_eq!(credentials.access_key_id(), "STS.meta");
    let error = metadata_provider(&server, Some("importer-role"), true)
        .credentials()
        .await
        .unwrap_err();
    assert!(matches!(error, CredentialsError::Metadata(_)), "{error:?}");
}

/// A client for a scripted ECS: no rate limit and millisecond backoff, so retries cost no time.
fn fast_client(ecs: &ScriptedServer) -> EcsClient {
    EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&ecs.url()).unwrap(),
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        },
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_rejected_security_token_is_refreshed_and_the_call_retried() {
    let sts = sts_server(SignedDuration::from_hours(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "jwt").unwrap();
    let provider =
        CredentialProvider::new(CredentialSource::Oidc(oidc_config(&sts, &token_file))).unwrap();
    let ecs = ScriptedServer::start(
        vec![Canned::new(
            400,
            ecs_error(
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            ),
        )],
        |_| {
            Some(Canned::new(
                200,
                r#"{"RequestId":"R","TaskSet":{"Task":[]}}"#,
            ))
        },
    )
    .await;
    let client = fast_client(&ecs);
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    };
    client.call(&provider, &request).await.unwrap();
    let tokens: Vec<String> = ecs
        .requests()
        .iter()
        .map(|r| r.params().get("SecurityToken").unwrap().to_string())
        .collect();
    assert_eq!(
        tokens,
        ["sts-token-1", "sts-token-2"],
        "the second attempt used fresh credentials"
    );
    assert_eq!(sts.requests().len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let captured = log_capture::LogBuffer::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sts = sts_server(SignedDuration::from_hours(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "oidc-jwt-secret-material").unwrap();
    let provider =
        CredentialProvider::new(CredentialSource::Oidc(oidc_config(&sts, &token_file))).unwrap();
    let ecs = ScriptedServer::start(
        vec![
            Canned::new(400, ecs_error("InvalidSecurityToken.Expired", "expired")),
            Canned::new(400, ecs_error("Throttling.User", "flow control")),
        ],
        |_| {
            Some(Canned::new(
                403,
                ecs_error("Forbidden.RAM", "User not authorized"),
            ))
        },
    )
    .await;
    let client = fast_client(&ecs);
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    };
    let error = client.call(&provider, &request).await.unwrap_err();
    let credentials = provider.credentials().await.unwrap();

    let mut everything = captured.text();
    everything.push_str(&format!(
        "{error} {error:?} {credentials:?} {provider:?} {client:?}"
    ));
    assert!(
        everything.contains("Forbidden.RAM"),
        "the log and error name the failure: {everything}"
    );
    assert!(
        everything.contains("retrying ECS call"),
        "retries are logged: {everything}"
    );
    for secret in [
        "sts-secret-1",
        "sts-secret-2",
        "sts-token-1",
        "sts-token-2",
        "oidc-jwt-secret-material",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
}
