//! Shared set-up of the upload tests: the emulator with a bucket, settings for 100 KiB parts, jobs,
//! an ossify client, waiting for a transfer's end, and the checks of what OSS holds.
#![allow(dead_code)] // each test crate uses its own subset

use std::sync::Arc;
use std::time::Duration;

use ecs_image_operator::emulator::{BucketDef, EmulatorHandle};
use ecs_image_operator::upload::{self, Job, Settings, Source, Transfers, UploadError, View};
use ossify::ops::object::multipart_upload::ListPartsOperations;
use ossify::{Client, UrlStyle};

use crate::emulator_support::{self, AK_ID, AK_SECRET, REGION};
use crate::source_support::SourceBody;

pub const BUCKET: &str = "uploads-hz";
pub const PART: u64 = 100 * 1024;
/// What a resumed run reads apart for the format check (`upload::format::HEAD`).
pub const HEAD: u64 = upload::format::HEAD as u64;

pub async fn emulator() -> EmulatorHandle {
    let handle = emulator_support::start().await;
    handle.add_bucket(BucketDef {
        name: BUCKET.into(),
        region: REGION.into(),
        account: None,
    });
    handle
}

pub fn settings(handle: &EmulatorHandle) -> Settings {
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

pub fn job(key: &str, url: &str, object: &str) -> Job {
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

pub fn oss(handle: &EmulatorHandle) -> Client {
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
pub async fn run(transfers: &Transfers, job: Job) -> View {
    let key = job.key.clone();
    transfers.start(job);
    wait_for(transfers, &key, |view| {
        matches!(view, View::Finished(_) | View::Failed { .. })
    })
    .await
}

pub async fn wait_for(transfers: &Transfers, key: &str, done: impl Fn(&View) -> bool) -> View {
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

pub fn failed(view: View) -> (UploadError, bool, Option<upload::Progress>) {
    match view {
        View::Failed {
            error,
            restart,
            progress,
        } => (error, restart, progress),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub fn finished(view: View) -> upload::Done {
    match view {
        View::Finished(done) => done,
        other => panic!("expected the upload to finish, got {other:?}"),
    }
}

/// A qcow2-looking body of `size` bytes.
pub fn qcow2(seed: u64, size: u64) -> SourceBody {
    SourceBody::new(seed, size).with_prefix(b"QFI\xfb\0\0\0\x03")
}

/// The emulator's per-part digests of the object equal the body's.
pub fn assert_object(handle: &EmulatorHandle, object: &str, body: &SourceBody) {
    let meta = handle
        .oss_object(BUCKET, object)
        .expect("the object exists");
    assert_eq!(meta.size, body.size());
    let expected: Vec<String> = (0..body.size().div_ceil(PART))
        .map(|i| body.sha256_of_range(i * PART, ((i + 1) * PART).min(body.size())))
        .collect();
    assert_eq!(meta.part_sha256, expected, "the parts' SHA-256 in OSS");
}

/// ListParts of an upload id: its OSS error code.
pub async fn failed_list(handle: &EmulatorHandle, object: &str, upload_id: &str) -> (String, ()) {
    match oss(handle).list_parts(object, upload_id, None).await {
        Err(ossify::Error::ApiError {
            message: Some(body),
            ..
        }) => (body.code, ()),
        other => panic!("expected an OSS error, got {other:?}"),
    }
}
