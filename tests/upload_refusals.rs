//! The transfer's refusals and clean-up against the emulator's OSS endpoint and the local HTTP
//! source server: checksum, size and format mismatches (the upload aborted), unsafe URLs, the
//! source's headers, confirmed abort and delete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
#[allow(unused_imports)] // each test crate uses its own subset
mod source_support;
mod upload_support;

use std::sync::Arc;

use ecs_image_operator::emulator::{FaultSettings, FaultSpec};
use ecs_image_operator::upload::{self, Settings, Transfers, UploadError, View};
use emulator_support::REGION;
use ossify::ops::object::multipart_upload::{
    InitiateMultipartUploadOperations, UploadPartOperations,
};
use secrecy::SecretString;
use source_support::{Route, Serve, SourceBody, SourceServer};
use upload_support::*;

#[tokio::test]
async fn a_checksum_mismatch_aborts_and_names_both_digests() {
    let handle = emulator().await;
    let body = SourceBody::new(4, 500_000);
    let source = SourceServer::new()
        .route(
            "/w.raw",
            Serve::range(body.clone()).wrong_bytes_from(300_000),
        )
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let mut job = job("ns/w/0", &source.url_of("/w.raw"), "w.raw");
    job.expected_sha256 = Some(body.sha256());
    let (error, restart, progress) = failed(run(&transfers, job).await);
    assert_eq!(error.code(), "SourceChecksumMismatch");
    assert!(restart);
    let message = error.to_string();
    assert!(message.contains(&body.sha256()), "{message}");
    let UploadError::ChecksumMismatch { actual, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains(actual.as_str()) && actual != &body.sha256());
    let upload_id = progress.unwrap().upload_id;
    assert_eq!(
        failed_list(&handle, "w.raw", &upload_id).await.0,
        "NoSuchUpload"
    );
    assert!(handle.oss_object(BUCKET, "w.raw").is_none());
}

#[tokio::test]
async fn size_and_format_mismatches_abort() {
    let handle = emulator().await;
    let body = SourceBody::new(5, 300_000);
    let source = SourceServer::new()
        .route("/s.raw", Serve::range(body.clone()))
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let mut sized = job("ns/s/0", &source.url_of("/s.raw"), "s.raw");
    sized.expected_size = Some(body.size() + 1);
    let (error, restart, _) = failed(run(&transfers, sized).await);
    assert_eq!(error.code(), "SourceSizeMismatch");
    assert_eq!(
        error,
        UploadError::SizeMismatch {
            expected: body.size() + 1,
            actual: body.size()
        }
    );
    assert!(restart);
    let mut formatted = job("ns/s/1", &source.url_of("/s.raw"), "s.raw");
    formatted.declared_format = Some("qcow2".into());
    let (error, _, _) = failed(run(&transfers, formatted).await);
    assert_eq!(error.code(), "SourceFormatMismatch");
    assert_eq!(
        error.to_string(),
        "the source was declared qcow2 but its bytes show RAW"
    );
    assert_eq!(handle.oss_uploads(), 0);
    assert!(handle.oss_object(BUCKET, "s.raw").is_none());
}

#[tokio::test]
async fn unsafe_urls_are_refused() {
    let handle = emulator().await;
    let body = SourceBody::new(6, 1000);
    let source = SourceServer::new()
        .route("/ok", Serve::range(body))
        .route(
            "/meta",
            Route::redirect("https://169.254.169.254/latest/meta-data/"),
        )
        .route(
            "/aliyun",
            Route::redirect("https://100.100.100.200/latest/meta-data/"),
        )
        .route("/loop-a", Route::redirect("/loop-b"))
        .route("/loop-b", Route::redirect("/loop-a"))
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let reason = |view: View| match failed(view).0 {
        UploadError::SourceRefused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let cases = [
        ("http://10.1.2.3/disk.raw", "10.1.2.3 is a private address"),
        (
            "http://example.com/disk.raw",
            "plain http is allowed only to loopback; use https",
        ),
        ("ftp://127.0.0.1/disk.raw", "the scheme ftp is not http(s)"),
        (
            &source.url_of("/meta") as &str,
            "169.254.169.254 is a link-local (instance metadata) address",
        ),
        (
            &source.url_of("/aliyun"),
            "100.100.100.200 is Alibaba Cloud's metadata service address",
        ),
        (&source.url_of("/loop-a"), "more than 3 redirects"),
    ];
    for (i, (url, expected)) in cases.iter().enumerate() {
        let view = run(&transfers, job(&format!("ns/u/{i}"), url, "u.raw")).await;
        assert_eq!(reason(view), *expected, "{url}");
    }
    // The first request and three redirects followed; the fourth is not.
    let looped = source.requests_to("/loop-a") + source.requests_to("/loop-b");
    assert_eq!(looped, 4);
    let strict = Transfers::new(Settings {
        allow_loopback_sources: false,
        ..settings(&handle)
    });
    let view = run(&strict, job("ns/u/x", &source.url_of("/ok"), "u.raw")).await;
    assert_eq!(reason(view), "127.0.0.1 is a loopback address");
    // Presigned queries and user info never show.
    let view = run(
        &transfers,
        job("ns/u/q", "http://u:pw@10.0.0.1/d?Signature=s3cr3t", "u.raw"),
    )
    .await;
    let message = failed(view).0.to_string();
    assert!(
        !message.contains("s3cr3t") && !message.contains("pw"),
        "{message}"
    );
    assert_eq!(
        handle
            .stats()
            .actions
            .get("InitiateMultipartUpload")
            .map_or(0, |a| a.calls),
        0
    );
    // Three redirects are allowed.
    let chain = SourceServer::new()
        .route("/c1", Route::redirect("/c2"))
        .route("/c2", Route::redirect("/c3"))
        .route("/c3", Route::redirect("/c4"))
        .route("/c4", Serve::range(SourceBody::new(6, 1000)))
        .start()
        .await;
    finished(run(&transfers, job("ns/u/chain", &chain.url_of("/c1"), "u.raw")).await);
}

#[tokio::test]
async fn the_sources_headers_are_sent_and_never_shown() {
    let handle = emulator().await;
    let body = SourceBody::new(7, 250_000);
    let source = SourceServer::new()
        .route(
            "/h.raw",
            Serve::range(body.clone()).require_header("Authorization", "Bearer t0k3n"),
        )
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let bare = job("ns/h/0", &source.url_of("/h.raw"), "h.raw");
    let (error, ..) = failed(run(&transfers, bare.clone()).await);
    assert_eq!(
        error,
        UploadError::SourceStatus {
            url: source.url_of("/h.raw"),
            status: 401
        }
    );
    let mut with = bare;
    with.key = "ns/h/1".into();
    with.headers = vec![("Authorization".into(), SecretString::from("Bearer t0k3n"))];
    assert!(!format!("{with:?}").contains("t0k3n"));
    let done = finished(run(&transfers, with).await);
    assert_eq!(done.sha256, body.sha256());
}

#[tokio::test]
async fn abort_and_delete_are_confirmed() {
    let handle = emulator().await;
    let settings = settings(&handle);
    let creds = Arc::new(emulator_support::creds());
    let client = oss(&handle);
    let upload = client
        .initiate_multipart_upload("a.raw", None)
        .await
        .unwrap();
    client
        .upload_part("a.raw", &upload.upload_id, 1, vec![1u8; 1000])
        .await
        .unwrap();
    // An abort OSS refuses is an error, though ossify's own call reports success.
    let mut faults = FaultSettings::default();
    faults.actions.insert(
        "AbortMultipartUpload".into(),
        FaultSpec {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    handle.set_faults(faults);
    let refused = upload::abort(
        &settings,
        &creds,
        REGION,
        BUCKET,
        "a.raw",
        &upload.upload_id,
    )
    .await;
    assert_eq!(
        refused.unwrap_err().code(),
        "AbortMultipartUploadNotConfirmed"
    );
    handle.set_faults(FaultSettings::default());
    upload::abort(
        &settings,
        &creds,
        REGION,
        BUCKET,
        "a.raw",
        &upload.upload_id,
    )
    .await
    .unwrap();
    assert_eq!(
        failed_list(&handle, "a.raw", &upload.upload_id).await.0,
        "NoSuchUpload"
    );
    // Already gone: done.
    upload::abort(
        &settings,
        &creds,
        REGION,
        BUCKET,
        "a.raw",
        &upload.upload_id,
    )
    .await
    .unwrap();

    let body = SourceBody::new(9, 150_000);
    let source = SourceServer::new()
        .route("/d.raw", Serve::range(body))
        .start()
        .await;
    let transfers = Transfers::new(settings.clone());
    finished(run(&transfers, job("ns/d/0", &source.url_of("/d.raw"), "d.raw")).await);
    let mut faults = FaultSettings::default();
    faults.actions.insert(
        "DeleteObject".into(),
        FaultSpec {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    handle.set_faults(faults);
    let refused = upload::delete_object(&settings, &creds, REGION, BUCKET, "d.raw").await;
    assert_eq!(refused.unwrap_err().code(), "DeleteObjectNotConfirmed");
    handle.set_faults(FaultSettings::default());
    upload::delete_object(&settings, &creds, REGION, BUCKET, "d.raw")
        .await
        .unwrap();
    assert!(handle.oss_object(BUCKET, "d.raw").is_none());
    upload::delete_object(&settings, &creds, REGION, BUCKET, "d.raw")
        .await
        .unwrap();
    let missing = upload::abort(&settings, &creds, REGION, "no-such-bucket", "x", "1").await;
    assert_eq!(missing.unwrap_err().code(), "NoSuchBucket");
}
