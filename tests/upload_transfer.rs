//! The transfer (`src/upload/`) against the emulator's OSS endpoint and the local HTTP source
//! server: whole and multipart uploads, resume, restart without Range, the integrity checks,
//! refused URLs, source headers, retried parts, confirmed abort and delete, stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
#[allow(unused_imports)] // each test crate uses its own subset
mod source_support;

use std::sync::Arc;
use std::time::Duration;

use ecs_image_operator::emulator::{BucketDef, EmulatorHandle, FaultSettings, FaultSpec};
use ecs_image_operator::upload::{self, Job, Settings, Source, Transfers, UploadError, View};
use emulator_support::{AK_ID, AK_SECRET, REGION};
use ossify::ops::object::multipart_upload::{
    InitiateMultipartUploadOperations, ListPartsOperations, UploadPartOperations,
};
use ossify::{Client, UrlStyle};
use secrecy::SecretString;
use source_support::{Route, Serve, SourceBody, SourceServer};

const BUCKET: &str = "uploads-hz";
const PART: u64 = 100 * 1024;
/// What a resumed run reads apart for the format check (`upload::format::HEAD`).
const HEAD: u64 = upload::format::HEAD as u64;

async fn emulator() -> EmulatorHandle {
    let handle = emulator_support::start().await;
    handle.add_bucket(BucketDef {
        name: BUCKET.into(),
        region: REGION.into(),
        account: None,
    });
    handle
}

fn settings(handle: &EmulatorHandle) -> Settings {
    Settings {
        part_size: PART,
        parts_in_flight: 3,
        max_uploads: 4,
        bytes_per_second: None,
        max_size: 64 << 20,
        allow_private_sources: false,
        allow_loopback_sources: true,
        max_redirects: 3,
        oss_endpoint: Some(handle.url()),
    }
}

fn job(key: &str, url: &str, object: &str) -> Job {
    Job {
        key: key.into(),
        source: Source::Url(url.into()),
        headers: Vec::new(),
        expected_sha256: None,
        expected_size: None,
        declared_format: None,
        region: REGION.into(),
        bucket: BUCKET.into(),
        object: object.into(),
        credentials: Arc::new(emulator_support::creds()),
        resume: None,
    }
}

fn oss(handle: &EmulatorHandle) -> Client {
    Client::builder()
        .endpoint(handle.url())
        .region(REGION)
        .bucket(BUCKET)
        .access_key_id(AK_ID)
        .access_key_secret(AK_SECRET)
        .url_style(UrlStyle::Path)
        .build()
        .unwrap()
}

/// Runs a job to its end and returns the final view.
async fn run(transfers: &Transfers, job: Job) -> View {
    let key = job.key.clone();
    transfers.start(job);
    wait_for(transfers, &key, |view| {
        matches!(view, View::Finished(_) | View::Failed { .. })
    })
    .await
}

async fn wait_for(transfers: &Transfers, key: &str, done: impl Fn(&View) -> bool) -> View {
    let mut wakes = transfers.wakes();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(view) = transfers.view(key).filter(|view| done(view)) {
                return view;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), wakes.recv()).await;
        }
    })
    .await
    .expect("the transfer never got there")
}

fn failed(view: View) -> (UploadError, bool, Option<upload::Progress>) {
    match view {
        View::Failed {
            error,
            restart,
            progress,
        } => (error, restart, progress),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn finished(view: View) -> upload::Done {
    match view {
        View::Finished(done) => done,
        other => panic!("expected the upload to finish, got {other:?}"),
    }
}

/// A qcow2-looking body of `size` bytes.
fn qcow2(seed: u64, size: u64) -> SourceBody {
    SourceBody::new(seed, size).with_prefix(b"QFI\xfb\0\0\0\x03")
}

/// The emulator's per-part digests of the object equal the body's.
fn assert_object(handle: &EmulatorHandle, object: &str, body: &SourceBody) {
    let meta = handle
        .oss_object(BUCKET, object)
        .expect("the object exists");
    assert_eq!(meta.size, body.size());
    let expected: Vec<String> = (0..body.size().div_ceil(PART))
        .map(|i| body.sha256_of_range(i * PART, ((i + 1) * PART).min(body.size())))
        .collect();
    assert_eq!(meta.part_sha256, expected, "the parts' SHA-256 in OSS");
}

#[tokio::test]
async fn a_multipart_upload_ends_with_the_object_its_size_and_digest() {
    let handle = emulator().await;
    let body = qcow2(1, 2 * 1024 * 1024 + 12_345);
    let source = SourceServer::new()
        .route("/disk.qcow2", Serve::range(body.clone()))
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let mut job = job("ns/a/0", &source.url_of("/disk.qcow2"), "disks/a.qcow2");
    job.expected_sha256 = Some(body.sha256().to_uppercase());
    job.expected_size = Some(body.size());
    job.declared_format = Some("qcow2".into());
    let done = finished(run(&transfers, job).await);
    assert_eq!(done.size, body.size());
    assert_eq!(done.sha256, body.sha256());
    assert_eq!(done.format.as_deref(), Some("QCOW2"));
    assert_eq!(done.restarted, None);
    assert_object(&handle, "disks/a.qcow2", &body);
    assert_eq!(
        handle.oss_object(BUCKET, "disks/a.qcow2").unwrap().format,
        "QCOW2"
    );
    assert_eq!(handle.oss_uploads(), 0);
    assert_eq!(source.bytes_served_to("/disk.qcow2"), body.size());
    assert_eq!(handle.stats().actions["UploadPart"].ok, 21);
    transfers.forget("ns/a/0");
    assert!(transfers.view("ns/a/0").is_none());
}

#[tokio::test]
async fn a_resumed_upload_reads_and_uploads_only_the_rest() {
    let handle = emulator().await;
    let body = qcow2(2, 1024 * 1024 + 777);
    let source = SourceServer::new()
        .route(
            "/r.qcow2",
            Serve::range(body.clone()).cut_after(612_000).only_first(1),
        )
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let mut first = job("ns/r/0", &source.url_of("/r.qcow2"), "r.qcow2");
    first.expected_sha256 = Some(body.sha256());
    first.declared_format = Some("QCOW2".into());
    let (error, restart, progress) = failed(run(&transfers, first.clone()).await);
    assert_eq!(error.code(), "SourceUnavailable", "{error}");
    assert!(!restart);
    let progress = progress.expect("progress before the cut");
    // Every whole part read before the cut (the server may lose its last 64 KiB chunk in the cut).
    assert!((4..=5).contains(&progress.parts_done), "{progress:?}");
    let resumed_at = progress.bytes_done;
    assert_eq!(resumed_at, u64::from(progress.parts_done) * PART);
    assert!(progress.sha256_state.is_some() && progress.validator.is_some());

    let served = source.bytes_served_to("/r.qcow2");
    let parts_before = handle.stats().actions["UploadPart"].ok;
    transfers.forget("ns/r/0");
    let mut again = first;
    again.resume = Some(progress.resume_point());
    let done = finished(run(&transfers, again).await);
    assert_eq!(done.sha256, body.sha256());
    assert_eq!(done.restarted, None);
    assert_object(&handle, "r.qcow2", &body);
    let rest = body.size() - resumed_at;
    assert_eq!(source.bytes_served_to("/r.qcow2") - served, rest + HEAD);
    assert!(
        source
            .ranges_to("/r.qcow2")
            .contains(&format!("bytes={resumed_at}-"))
    );
    assert_eq!(
        handle.stats().actions["UploadPart"].ok - parts_before,
        rest.div_ceil(PART)
    );
}

#[tokio::test]
async fn a_source_without_range_starts_over_and_says_why() {
    let handle = emulator().await;
    let body = SourceBody::new(3, 700_000);
    let source = SourceServer::new()
        .route(
            "/n.raw",
            Serve::no_range(body.clone())
                .cut_after(450_000)
                .only_first(1),
        )
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    let first = job("ns/n/0", &source.url_of("/n.raw"), "n.raw");
    let (_, _, progress) = failed(run(&transfers, first.clone()).await);
    let progress = progress.unwrap();
    assert!(progress.parts_done >= 1);
    transfers.forget("ns/n/0");
    let mut again = first;
    again.resume = Some(progress.resume_point());
    let done = finished(run(&transfers, again).await);
    assert_eq!(
        done.restarted.as_deref(),
        Some(
            "the source ignores Range requests (or changed since the upload began), so the upload started over"
        )
    );
    assert_object(&handle, "n.raw", &body);
    assert_eq!(handle.oss_uploads(), 0, "the first upload was aborted");
    let (error, ..) = failed_list(&handle, "n.raw", &progress.upload_id).await;
    assert_eq!(error, "NoSuchUpload");
}

/// ListParts of an upload id: its OSS error code.
async fn failed_list(handle: &EmulatorHandle, object: &str, upload_id: &str) -> (String, ()) {
    match oss(handle).list_parts(object, upload_id, None).await {
        Err(ossify::Error::ApiError {
            message: Some(body),
            ..
        }) => (body.code, ()),
        other => panic!("expected an OSS error, got {other:?}"),
    }
}

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
async fn a_part_failing_once_is_retried() {
    let handle = emulator().await;
    let body = SourceBody::new(8, 450_000);
    let source = SourceServer::new()
        .route("/f.raw", Serve::range(body.clone()))
        .start()
        .await;
    let mut faults = FaultSettings::default();
    faults.actions.insert(
        "UploadPart".into(),
        FaultSpec {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    handle.set_faults(faults);
    let transfers = Transfers::new(settings(&handle));
    transfers.start(job("ns/f/0", &source.url_of("/f.raw"), "f.raw"));
    tokio::time::timeout(Duration::from_secs(10), async {
        while handle
            .stats()
            .actions
            .get("UploadPart")
            .is_none_or(|a| a.errors.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    handle.set_faults(FaultSettings::default());
    let view = wait_for(&transfers, "ns/f/0", |v| {
        !matches!(v, View::Starting | View::Running(_))
    })
    .await;
    finished(view);
    assert_object(&handle, "f.raw", &body);
    let stats = handle.stats();
    assert!(!stats.actions["UploadPart"].errors.is_empty());
    assert_eq!(stats.actions["UploadPart"].ok, 5);
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

#[tokio::test]
async fn stop_ends_a_running_transfer_and_keeps_its_upload() {
    let handle = emulator().await;
    let body = SourceBody::new(10, 3 * 1024 * 1024);
    let source = SourceServer::new()
        .route("/slow.raw", Serve::range(body).slow(400 * 1024))
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    transfers.start(job("ns/slow/0", &source.url_of("/slow.raw"), "slow.raw"));
    let view = wait_for(
        &transfers,
        "ns/slow/0",
        |v| matches!(v, View::Running(p) if p.parts_done >= 1),
    )
    .await;
    let View::Running(seen) = view else {
        unreachable!()
    };
    let Some(View::Running(progress)) = transfers.stop("ns/slow/0").await else {
        panic!("a stopped transfer's last view is its progress")
    };
    assert!(progress.parts_done >= seen.parts_done);
    assert_eq!(progress.upload_id, seen.upload_id);
    assert!(transfers.view("ns/slow/0").is_none());
    assert!(transfers.running().is_empty());
    let served = source.bytes_served_to("/slow.raw");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        source.bytes_served_to("/slow.raw") <= served + 64 * 1024,
        "the source is no longer read"
    );
    assert_eq!(
        handle.oss_uploads(),
        1,
        "the upload stays, to resume or abort"
    );
    let listed = oss(&handle)
        .list_parts("slow.raw", &progress.upload_id, None)
        .await
        .unwrap();
    assert!(listed.parts.len() as u32 >= progress.parts_done);
}

#[tokio::test]
async fn a_local_file_uploads_and_resumes_from_its_offset() {
    let handle = emulator().await;
    let body = qcow2(11, 900_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.qcow2");
    std::fs::write(&path, body.to_vec()).unwrap();
    let transfers = Transfers::new(settings(&handle));
    let mut whole = job("ns/file/0", "unused", "file.qcow2");
    whole.source = Source::File(path.clone());
    whole.declared_format = Some("qcow2".into());
    whole.expected_sha256 = Some(body.sha256());
    let done = finished(run(&transfers, whole.clone()).await);
    assert_eq!(
        (done.size, done.sha256.as_str()),
        (body.size(), body.sha256().as_str())
    );
    assert_object(&handle, "file.qcow2", &body);

    // A resume point three parts in, made by uploading those parts by hand.
    let client = oss(&handle);
    let upload = client
        .initiate_multipart_upload("file2.qcow2", None)
        .await
        .unwrap();
    let mut hasher = sha2::Sha256::default();
    for number in 1..=3u64 {
        let bytes = body.range((number - 1) * PART, number * PART);
        sha2::Digest::update(&mut hasher, &bytes);
        client
            .upload_part("file2.qcow2", &upload.upload_id, number as u32, bytes)
            .await
            .unwrap();
    }
    use sha2::digest::common::hazmat::SerializableState as _;
    let mut resumed = whole;
    resumed.key = "ns/file/1".into();
    resumed.object = "file2.qcow2".into();
    let meta = std::fs::metadata(&path).unwrap();
    let modified = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    resumed.resume = Some(upload::ResumePoint {
        upload_id: upload.upload_id.clone(),
        part_size: PART,
        parts_done: 3,
        bytes_done: 3 * PART,
        sha256_state: Some(hex::encode(hasher.serialize().as_slice())),
        validator: Some(format!("file:{}:{modified}", meta.len())),
    });
    let parts_before = handle.stats().actions["UploadPart"].ok;
    let done = finished(run(&transfers, resumed).await);
    assert_eq!(done.sha256, body.sha256());
    assert_eq!(done.restarted, None);
    assert_object(&handle, "file2.qcow2", &body);
    assert_eq!(
        handle.stats().actions["UploadPart"].ok - parts_before,
        (body.size() - 3 * PART).div_ceil(PART)
    );
}

#[tokio::test]
async fn at_most_max_uploads_run_at_once() {
    let handle = emulator().await;
    let body = SourceBody::new(12, 2 * 1024 * 1024);
    let source = SourceServer::new()
        .route("/one.raw", Serve::range(body.clone()).slow(400 * 1024))
        .route("/two.raw", Serve::range(body))
        .start()
        .await;
    let transfers = Transfers::new(Settings {
        max_uploads: 1,
        ..settings(&handle)
    });
    transfers.start(job("ns/l/1", &source.url_of("/one.raw"), "one.raw"));
    wait_for(
        &transfers,
        "ns/l/1",
        |v| matches!(v, View::Running(p) if p.parts_done >= 1),
    )
    .await;
    transfers.start(job("ns/l/2", &source.url_of("/two.raw"), "two.raw"));
    // Starting the same key again while it runs changes nothing.
    transfers.start(job("ns/l/1", &source.url_of("/two.raw"), "one.raw"));
    // While the first gets on (the second's fast source would be done by then if it ran).
    wait_for(
        &transfers,
        "ns/l/1",
        |v| matches!(v, View::Running(p) if p.parts_done >= 4),
    )
    .await;
    assert_eq!(transfers.view("ns/l/2"), Some(View::Starting));
    assert_eq!(
        source.requests_to("/two.raw"),
        0,
        "the second waits for the first"
    );
    transfers.stop("ns/l/1").await;
    finished(
        wait_for(&transfers, "ns/l/2", |v| {
            matches!(v, View::Finished(_) | View::Failed { .. })
        })
        .await,
    );
    assert_eq!(source.requests_to("/two.raw"), 1);
}
