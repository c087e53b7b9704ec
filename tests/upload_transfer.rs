//! The transfer (`src/upload/`) against the emulator's OSS endpoint and the local HTTP source
//! server: whole and multipart uploads, resume, restart without Range, retried parts, stop, local
//! files, the global limit. Integrity failures, refusals and clean-up: `upload_refusals.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
#[allow(unused_imports)] // each test crate uses its own subset
mod source_support;
mod upload_support;

use std::time::Duration;

use ecs_image_operator::emulator::{FaultSettings, FaultSpec};
use ecs_image_operator::upload::{self, Settings, Source, Transfers, View};
use ossify::ops::object::multipart_upload::{
    InitiateMultipartUploadOperations, ListPartsOperations, UploadPartOperations,
};
use source_support::{Serve, SourceBody, SourceServer};
use upload_support::*;

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
    // Starting the same job again while it runs changes nothing.
    transfers.start(job("ns/l/1", &source.url_of("/one.raw"), "one.raw"));
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

/// A job for a key whose transfer runs, with another source (its mapping changed), replaces
/// the running transfer; the same job again is a no-op.
#[tokio::test]
async fn a_job_of_another_source_replaces_the_running_transfer_of_its_key() {
    let handle = emulator().await;
    let old = qcow2(11, 40 * PART);
    let new = qcow2(12, 3 * PART);
    let source = SourceServer::new()
        .route("/old.qcow2", Serve::range(old.clone()).slow(2 * PART))
        .route("/new.qcow2", Serve::range(new.clone()))
        .start()
        .await;
    let transfers = Transfers::new(settings(&handle));
    transfers.start(job("ns/m/0", &source.url_of("/old.qcow2"), "disks/m.qcow2"));
    wait_for(&transfers, "ns/m/0", |view| {
        matches!(view, View::Running(_))
    })
    .await;
    // The same job again changes nothing.
    transfers.start(job("ns/m/0", &source.url_of("/old.qcow2"), "disks/m.qcow2"));
    assert!(matches!(transfers.view("ns/m/0"), Some(View::Running(_))));
    let done = finished(
        run(
            &transfers,
            job("ns/m/0", &source.url_of("/new.qcow2"), "disks/m.qcow2"),
        )
        .await,
    );
    assert_eq!(done.sha256, new.sha256());
    assert_object(&handle, "disks/m.qcow2", &new);
    assert!(source.bytes_served_to("/old.qcow2") < old.size());
}
