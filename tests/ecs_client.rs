//! The ECS client against a scripted loopback server: signing on the wire, retries, error reading,
//! outcomes that are not failures, timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod support;

use std::time::Duration;

use ecs_image_operator::ecs::api::{
    CancelTaskRequest, DeleteImageRequest, DescribeTasksRequest, DiskDeviceMapping,
    ImportImageRequest,
};
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::retry::Backoff;
use ecs_image_operator::ecs::{
    CancelOutcome, ClientConfig, CredentialProvider, Credentials, DeleteOutcome, EcsClient,
    EcsError, ErrorClass, sign,
};
use support::{Canned, ScriptedServer, ecs_error};

const SECRET: &str = "test-secret-value";

fn client(server: &ScriptedServer, max_attempts: u32) -> EcsClient {
    EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&server.url()).unwrap(),
        max_attempts,
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        },
        request_timeout: Duration::from_secs(5),
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn credentials() -> CredentialProvider {
    CredentialProvider::fixed(Credentials::new("LTAI-test", SECRET))
}

fn import_request(token: Option<&str>) -> ImportImageRequest {
    ImportImageRequest {
        region_id: "cn-hangzhou".into(),
        image_name: Some("ubuntu 22.04".into()),
        disk_device_mappings: vec![DiskDeviceMapping {
            oss_bucket: "bucket".into(),
            oss_object: "images/disk 1.qcow2".into(),
            ..Default::default()
        }],
        client_token: token.map(String::from),
        ..Default::default()
    }
}

const IMPORT_OK: &str =
    r#"{"RequestId":"R","ImageId":"m-123","TaskId":"t-456","RegionId":"cn-hangzhou"}"#;

#[tokio::test]
async fn throttling_twice_then_success_retries_with_the_same_client_token() {
    let throttled = Canned::new(
        400,
        ecs_error(
            "Throttling.User",
            "Request was denied due to user flow control.",
        ),
    );
    let server = ScriptedServer::start(vec![throttled.clone(), throttled], |_| {
        Some(Canned::new(200, IMPORT_OK))
    })
    .await;
    let client = client(&server, 4);

    for token in [Some("uid-abc-gen-1"), None] {
        let before = server.requests().len();
        let answer = client
            .import_image(&credentials(), &import_request(token))
            .await
            .unwrap();
        assert_eq!(
            (answer.image_id.as_str(), answer.task_id.as_str()),
            ("m-123", "t-456")
        );
        let attempts: Vec<_> = server.requests()[before..].to_vec();
        let expected_attempts = if token.is_some() { 3 } else { 1 };
        assert_eq!(
            attempts.len(),
            expected_attempts,
            "attempts for token {token:?}"
        );
        let tokens: Vec<String> = attempts
            .iter()
            .map(|r| r.params().get("ClientToken").unwrap_or("").to_string())
            .collect();
        assert!(!tokens[0].is_empty(), "a ClientToken is always sent");
        assert!(
            tokens.iter().all(|t| t == &tokens[0]),
            "every attempt carries one token: {tokens:?}"
        );
        if let Some(token) = token {
            assert_eq!(tokens[0], token);
        }
        let nonces: std::collections::BTreeSet<String> = attempts
            .iter()
            .map(|r| r.params().get("SignatureNonce").unwrap().to_string())
            .collect();
        assert_eq!(
            nonces.len(),
            attempts.len(),
            "each attempt is signed afresh"
        );
    }
}

#[tokio::test]
async fn a_generated_client_token_is_kept_across_retries() {
    let throttled = Canned::new(503, ecs_error("ServiceUnavailable", "temporary failure"));
    let server = ScriptedServer::start(vec![throttled.clone(), throttled], |_| {
        Some(Canned::new(200, IMPORT_OK))
    })
    .await;
    client(&server, 3)
        .import_image(&credentials(), &import_request(None))
        .await
        .unwrap();
    let tokens: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.params().get("ClientToken").unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
}

#[tokio::test]
async fn requests_are_signed_form_posts_that_verify() {
    let server = ScriptedServer::start(vec![], |_| Some(Canned::new(200, IMPORT_OK))).await;
    client(&server, 1)
        .import_image(&credentials(), &import_request(Some("tok")))
        .await
        .unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri.path(), "/");
    assert_eq!(
        request.uri.query(),
        None,
        "nothing signed travels in the URL"
    );
    assert_eq!(
        request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let mut params = request.params();
    for (name, value) in [
        ("Action", "ImportImage"),
        ("Version", "2014-05-26"),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("AccessKeyId", "LTAI-test"),
        ("DiskDeviceMapping.1.OSSObject", "images/disk 1.qcow2"),
    ] {
        assert_eq!(params.get(name), Some(value), "{name}");
    }
    let timestamp = params.get("Timestamp").unwrap();
    assert!(
        timestamp.len() == 20 && timestamp.ends_with('Z'),
        "{timestamp}"
    );
    let signature = params.remove("Signature").unwrap();
    assert!(sign::v1_verify(
        SECRET,
        &sign::v1_string_to_sign("POST", &params),
        &signature
    ));
    assert!(!sign::v1_verify(
        "wrong",
        &sign::v1_string_to_sign("POST", &params),
        &signature
    ));
}

#[tokio::test]
async fn an_sts_token_is_sent_as_a_signed_parameter() {
    let server =
        ScriptedServer::start(vec![], |_| Some(Canned::new(200, r#"{"RequestId":"R"}"#))).await;
    let sts = CredentialProvider::fixed(
        Credentials::new("STS.id", SECRET).with_security_token("CAIS+/token=="),
    );
    let request = CancelTaskRequest {
        region_id: "cn-hangzhou".into(),
        task_id: "t-1".into(),
    };
    assert_eq!(
        client(&server, 1)
            .cancel_task(&sts, &request)
            .await
            .unwrap(),
        CancelOutcome::Cancelled
    );
    let mut params = server.requests()[0].params();
    assert_eq!(params.get("SecurityToken"), Some("CAIS+/token=="));
    let signature = params.remove("Signature").unwrap();
    assert!(sign::v1_verify(
        SECRET,
        &sign::v1_string_to_sign("POST", &params),
        &signature
    ));
}

#[tokio::test]
async fn terminal_errors_are_returned_at_once_with_code_message_and_request_id() {
    let server = ScriptedServer::start(vec![], |_| {
        Some(Canned::new(
            403,
            ecs_error("QuotaExceed.Image", "The Image Quota exceeds."),
        ))
    })
    .await;
    let error = client(&server, 4)
        .import_image(&credentials(), &import_request(Some("t")))
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 1, "no retry of a quota error");
    let api = error.api().expect("an ECS error");
    assert_eq!(
        (api.http_status, api.code.as_str()),
        (403, "QuotaExceed.Image")
    );
    assert_eq!(api.message, "The Image Quota exceeds.");
    assert_eq!(api.request_id.as_deref(), Some("REQ-1"));
    assert_eq!(error.class(), ErrorClass::External);
    assert!(api.hint().is_some());
}

#[tokio::test]
async fn xml_error_bodies_are_read() {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><RequestId>X-1</RequestId><HostId>ecs.test</HostId>\
               <Code>InvalidOSSObject.NotFound</Code><Message>The specified OSS object is not found.</Message></Error>";
    let server = ScriptedServer::start(vec![], move |_| Some(Canned::new(400, xml))).await;
    let error = client(&server, 2)
        .import_image(&credentials(), &import_request(Some("t")))
        .await
        .unwrap_err();
    let api = error.api().expect("an ECS error");
    assert_eq!(api.code, "InvalidOSSObject.NotFound");
    assert_eq!(api.request_id.as_deref(), Some("X-1"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn unreadable_gateway_errors_are_retried_then_reported() {
    let server = ScriptedServer::start(vec![], |_| {
        Some(Canned::new(502, "<html>Bad Gateway</html>"))
    })
    .await;
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    };
    let error = client(&server, 3)
        .call(&credentials(), &request)
        .await
        .unwrap_err();
    assert!(
        matches!(error, EcsError::Decode { status: 502, .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(server.requests().len(), 3, "every attempt was used");
}

#[tokio::test]
async fn a_missing_ram_role_comes_back_with_the_set_up_hint() {
    let role = ecs_error(
        "NoSetRoletoECSServiceAcount",
        "The ECS service has no role to access your OSS.",
    );
    let server = ScriptedServer::start(vec![], move |_| Some(Canned::new(403, role.clone()))).await;
    let error = client(&server, 1)
        .import_image(&credentials(), &import_request(Some("t")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "NoSetRoletoECSServiceAcount");
    assert!(
        error
            .api()
            .and_then(|api| api.hint())
            .unwrap()
            .contains("AliyunECSImageImportDefaultRole")
    );
}

#[tokio::test]
async fn cancel_and_delete_treat_already_done_as_outcomes() {
    let server = ScriptedServer::start(
        vec![
            Canned::new(
                403,
                ecs_error(
                    "InvalidTaskId.IncorrectTaskStatus",
                    "The specified task status is not invalid.",
                ),
            ),
            Canned::new(
                400,
                ecs_error(
                    "InvalidTaskId.NotFound",
                    "The specified \"TaskId\" is not found.",
                ),
            ),
            Canned::new(
                404,
                ecs_error(
                    "InvalidImageId.NotFound",
                    "The specified ImageId does not exist.",
                ),
            ),
            Canned::new(200, r#"{"RequestId":"R"}"#),
            Canned::new(
                403,
                ecs_error("ImageIsImporting", "The specified Image is importing."),
            ),
        ],
        |_| None,
    )
    .await;
    let client = client(&server, 1);
    let cancel = CancelTaskRequest {
        region_id: "cn-hangzhou".into(),
        task_id: "t-1".into(),
    };
    assert_eq!(
        client.cancel_task(&credentials(), &cancel).await.unwrap(),
        CancelOutcome::AlreadyStopped
    );
    assert_eq!(
        client.cancel_task(&credentials(), &cancel).await.unwrap(),
        CancelOutcome::NotFound
    );
    let delete = DeleteImageRequest {
        region_id: "cn-hangzhou".into(),
        image_id: "m-1".into(),
        force: false,
    };
    assert_eq!(
        client.delete_image(&credentials(), &delete).await.unwrap(),
        DeleteOutcome::NotFound
    );
    assert_eq!(
        client.delete_image(&credentials(), &delete).await.unwrap(),
        DeleteOutcome::Deleted
    );
    let importing = client
        .delete_image(&credentials(), &delete)
        .await
        .unwrap_err();
    assert_eq!(
        (importing.code(), importing.class()),
        ("ImageIsImporting", ErrorClass::Retryable)
    );
}

#[tokio::test]
async fn retry_after_from_a_throttled_answer_is_honoured_within_the_cap() {
    let throttled = Canned::new(400, ecs_error("Throttling.User", "flow control"))
        .header("x-acs-retry-after", "0.05");
    let server = ScriptedServer::start(vec![throttled], |_| {
        Some(Canned::new(
            200,
            r#"{"RequestId":"R","TaskSet":{"Task":[]}}"#,
        ))
    })
    .await;
    let client = EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&server.url()).unwrap(),
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_secs(1),
        },
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    };
    client.call(&credentials(), &request).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    // A lower bound only: the client waited at least what ECS asked, not the 1 ms backoff.
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_slow_answer_becomes_a_retryable_timeout() {
    let slow = Canned::new(200, r#"{"RequestId":"R"}"#).delayed(Duration::from_secs(5));
    let server = ScriptedServer::start(vec![], move |_| Some(slow.clone())).await;
    let client = EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&server.url()).unwrap(),
        request_timeout: Duration::from_millis(100),
        max_attempts: 1,
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap();
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    };
    let error = client.call(&credentials(), &request).await.unwrap_err();
    assert!(matches!(error, EcsError::Timeout { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Retryable);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_network_error() {
    // Bind, learn a free port, and close it again: nothing listens there afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&format!("http://127.0.0.1:{port}")).unwrap(),
        max_attempts: 2,
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        },
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap();
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        ..Default::default()
    };
    let error = client.call(&credentials(), &request).await.unwrap_err();
    assert!(matches!(error, EcsError::Transport { .. }), "{error:?}");
    assert_eq!(
        (error.class(), error.code()),
        (ErrorClass::Retryable, "NetworkError")
    );
}

#[tokio::test]
async fn more_than_one_hundred_task_ids_never_leave_the_client() {
    let server =
        ScriptedServer::start(vec![], |_| Some(Canned::new(200, r#"{"RequestId":"R"}"#))).await;
    let request = DescribeTasksRequest {
        region_id: "cn-hangzhou".into(),
        task_ids: (0..101).map(|i| format!("t-{i}")).collect(),
        ..Default::default()
    };
    let error = client(&server, 1)
        .call(&credentials(), &request)
        .await
        .unwrap_err();
    assert!(matches!(error, EcsError::InvalidRequest(_)));
    assert!(server.requests().is_empty());
}
