//! Uploads on the real controller, between the Kubernetes API (the double, or kube-apiserver with
//! `ECS_IMAGE_OPERATOR_TIER=envtest`), the ECS emulator's OSS endpoint and a local HTTP source: a
//! disk mapping's `source.url` streamed into OSS, imported, and the object removed once the image
//! is Available; a checksum that does not match; a resource deleted mid-upload; the controller
//! stopped mid-upload and started again (the upload resumes with a `Range` read); a source that
//! needs a header from a Secret; a URL the operator refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;
#[allow(unused_imports)]
mod source_support;

use ecs_image_operator::api::ImageImport;
use ecs_image_operator::api::image_import::Phase;
use kube::ResourceExt;
use operator_support::*;
use source_support::{Serve, SourceBody, SourceServer};

const BUCKET: &str = "images-hz";
/// The part size the rig's transfers use (the emulator's minimum is 100 KiB).
const PART: u64 = 100 * 1024;

/// A qcow2 file of `size` bytes: its header (virtual size 1 GiB) then noise from `seed`.
fn qcow2(seed: u64, size: u64) -> SourceBody {
    let mut header = b"QFI\xfb\0\0\0\x03".to_vec();
    header.resize(24, 0);
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    SourceBody::new(seed, size).with_prefix(&header)
}

/// An ImageImport whose only mapping is uploaded from `url` into `object`.
fn uploaded(name: &str, object: &str, source: &str) -> String {
    format!(
        r#"
apiVersion: ecs.image-import.dev/v1alpha1
kind: ImageImport
metadata:
  name: {name}
spec:
  regionId: cn-hangzhou
  imageName: {name}
  diskDeviceMappings:
    - ossBucket: {BUCKET}
      ossObject: {object}
      format: QCOW2
      source:
{source}
"#
    )
}

/// Serves `serve` at `/u.qcow2` and creates `name`, uploading it into `object` with `body`'s
/// SHA-256 as the expected digest.
async fn create_verified(
    rig: &Rig,
    name: &str,
    object: &str,
    body: &SourceBody,
    serve: Serve,
) -> source_support::SourceHandle {
    let source = SourceServer::new().route("/u.qcow2", serve).start().await;
    let spec = format!(
        "        url: {}\n        sha256: {}",
        source.url_of("/u.qcow2"),
        body.sha256()
    );
    rig.create(&uploaded(name, object, &spec)).await;
    source
}

fn upload_of(object: &ImageImport) -> Option<&ecs_image_operator::api::source::UploadStatus> {
    object.status.as_ref()?.upload.as_ref()
}

async fn rig() -> Rig {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    rig
}

#[tokio::test]
async fn a_source_url_is_uploaded_imported_and_its_object_removed() {
    let rig = rig().await;
    let body = qcow2(1, 3 * PART + 1234);
    let source = SourceServer::new()
        .route("/u.qcow2", Serve::range(body.clone()))
        .start()
        .await;
    let spec = format!(
        "        url: {}\n        sha256: {}\n        size: {}",
        source.url_of("/u.qcow2"),
        body.sha256(),
        body.size()
    );
    rig.create(&uploaded("up", "uploads/up.qcow2", &spec)).await;
    let done = rig.wait_available("up").await;
    let upload = upload_of(&done).expect("status.upload");
    assert_eq!(upload.bytes_done, body.size(), "{upload:#?}");
    let disk = &upload.disks[0];
    assert!(disk.uploaded, "{disk:#?}");
    assert_eq!(disk.sha256.as_deref(), Some(body.sha256().as_str()));
    assert!(
        disk.format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("qcow2")),
        "{disk:#?}"
    );
    // Once Available, cleanup Delete removes the object the operator put there.
    let done = rig
        .wait_for("up", "the OSS object removed", |o| {
            upload_of(o).is_some_and(|u| u.disks.iter().all(|d| d.removed))
        })
        .await;
    assert_eq!(rig.emulator.oss_object(BUCKET, "uploads/up.qcow2"), None);
    assert_eq!(rig.emulator.oss_uploads(), 0, "no multipart upload left");
    assert_eq!(phase(&done), Some(Phase::Available));
    for reason in ["UploadStarted", "UploadFinished", "SourceObjectRemoved"] {
        rig.wait_for_events(reason, |e| e.reason.as_deref() == Some(reason))
            .await;
    }
}

#[tokio::test]
async fn a_checksum_that_does_not_match_stalls_and_leaves_no_parts() {
    let rig = rig().await;
    let body = qcow2(2, 2 * PART + 17);
    let source = SourceServer::new()
        .route(
            "/u.qcow2",
            Serve::range(body.clone()).wrong_bytes_from(PART + 5),
        )
        .start()
        .await;
    let spec = format!(
        "        url: {}\n        sha256: {}",
        source.url_of("/u.qcow2"),
        body.sha256()
    );
    rig.create(&uploaded("bad", "uploads/bad.qcow2", &spec))
        .await;
    let stalled = rig
        .wait_for("bad", "Stalled with SourceChecksumMismatch", |o| {
            condition(o, "Stalled").is_some_and(|c| c.0 && c.1 == "SourceChecksumMismatch")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(message.contains(&body.sha256()), "{message}");
    let error = stalled
        .status
        .as_ref()
        .unwrap()
        .last_error
        .as_ref()
        .unwrap();
    assert_eq!(error.code, "SourceChecksumMismatch");
    assert!(stalled.status.as_ref().unwrap().image_id.is_none());
    assert_eq!(rig.emulator.oss_uploads(), 0, "the parts are removed");
    assert_eq!(rig.emulator.oss_object(BUCKET, "uploads/bad.qcow2"), None);
    assert!(rig.images_of(&stalled.uid().unwrap()).await.is_empty());
}

#[tokio::test]
async fn cleanup_retain_keeps_the_object() {
    let rig = rig().await;
    let body = qcow2(3, PART + 1);
    let source = SourceServer::new()
        .route("/u.qcow2", Serve::range(body.clone()))
        .start()
        .await;
    let spec = format!(
        "        url: {}\n        cleanup: Retain",
        source.url_of("/u.qcow2")
    );
    rig.create(&uploaded("keep", "uploads/keep.qcow2", &spec))
        .await;
    rig.wait_available("keep").await;
    let object = rig.emulator.oss_object(BUCKET, "uploads/keep.qcow2");
    assert_eq!(object.map(|o| o.size), Some(body.size()));
}

#[tokio::test]
async fn a_resource_deleted_mid_upload_aborts_its_multipart_upload() {
    let rig = rig().await;
    let body = qcow2(4, 40 * PART);
    let source = SourceServer::new()
        .route("/u.qcow2", Serve::range(body.clone()).slow(4 * PART))
        .start()
        .await;
    let spec = format!("        url: {}", source.url_of("/u.qcow2"));
    rig.create(&uploaded("gone", "uploads/gone.qcow2", &spec))
        .await;
    rig.wait_for("gone", "parts uploaded", |o| {
        phase(o) == Some(Phase::Uploading)
            && upload_of(o).is_some_and(|u| u.disks.iter().any(|d| d.parts_done > 0))
    })
    .await;
    rig.delete("gone").await;
    rig.wait_gone("gone").await;
    assert_eq!(
        rig.emulator.oss_uploads(),
        0,
        "the multipart upload is aborted"
    );
    assert_eq!(rig.emulator.oss_object(BUCKET, "uploads/gone.qcow2"), None);
}

#[tokio::test]
async fn a_controller_stopped_mid_upload_resumes_with_a_range_read() {
    let mut rig = rig().await;
    let body = qcow2(5, 30 * PART);
    let source = create_verified(
        &rig,
        "resume",
        "uploads/resume.qcow2",
        &body,
        Serve::range(body.clone()).slow(6 * PART),
    )
    .await;
    let midway = rig
        .wait_for("resume", "a third uploaded", |o| {
            upload_of(o).is_some_and(|u| u.disks.iter().any(|d| d.parts_done >= 10))
        })
        .await;
    rig.kill_controller().await;
    let recorded = upload_of(&midway).unwrap().disks[0].bytes_done;
    rig.start_controller().await;
    let done = rig.wait_available("resume").await;
    let disk = &upload_of(&done).unwrap().disks[0];
    assert_eq!(disk.sha256.as_deref(), Some(body.sha256().as_str()));
    let ranges = source.ranges_to("/u.qcow2");
    assert!(
        ranges
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "the second run read from where the first stopped: {ranges:?}"
    );
    // Read again: at most what the first run had in flight (2 parts in the rig) or done but not
    // yet recorded, with what the slow source had sent into the socket; never the whole file.
    let served = source.bytes_served_to("/u.qcow2");
    let again = served.saturating_sub(body.size());
    assert!(
        again <= 5 * PART,
        "read {again} bytes twice: served {served} of {} (recorded {recorded} at the kill)",
        body.size()
    );
    rig.wait_for_events("UploadResumed", |e| {
        e.reason.as_deref() == Some("UploadResumed")
    })
    .await;
}

#[tokio::test]
async fn a_source_url_to_the_metadata_service_is_refused() {
    let rig = rig().await;
    let spec = "        url: https://100.100.100.200/latest/meta-data/ram/security-credentials/";
    rig.create(&uploaded("imds", "uploads/imds.raw", spec))
        .await;
    let stalled = rig
        .wait_for("imds", "Stalled with SourceRefused", |o| {
            condition(o, "Stalled").is_some_and(|c| c.0 && c.1 == "SourceRefused")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(message.contains("100.100.100.200"), "{message}");
    assert!(stalled.status.as_ref().unwrap().image_id.is_none());
}

#[tokio::test]
async fn a_source_needing_a_header_gets_it_from_the_headers_secret_and_nowhere_else() {
    let rig = rig().await;
    let token = "Bearer s3cr3t-download-token";
    let body = qcow2(6, PART + 3);
    let source = SourceServer::new()
        .route(
            "/u.qcow2",
            Serve::range(body.clone()).require_header("Authorization", token),
        )
        .start()
        .await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(rig.client.clone(), &rig.ns);
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "download-auth", "namespace": rig.ns},
        "stringData": {"Authorization": token},
    }))
    .unwrap();
    secrets
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .unwrap();
    let spec = format!(
        "        url: {}\n        headersSecretRef:\n          name: download-auth",
        source.url_of("/u.qcow2")
    );
    rig.create(&uploaded("auth", "uploads/auth.qcow2", &spec))
        .await;
    let done = rig.wait_available("auth").await;
    assert_eq!(
        upload_of(&done).unwrap().disks[0].sha256.as_deref(),
        Some(body.sha256().as_str())
    );
    // The header's value is in no status and no Event.
    let status = serde_json::to_string(&done.status).unwrap();
    assert!(!status.contains("s3cr3t"), "{status}");
    let events = rig
        .wait_for_events("UploadFinished", |e| {
            e.reason.as_deref() == Some("UploadFinished")
        })
        .await;
    assert!(
        events
            .iter()
            .all(|e| !e.note.as_deref().unwrap_or_default().contains("s3cr3t")),
        "{events:?}"
    );

    // A mapping naming a headers Secret that does not exist stalls, saying which.
    let spec = format!(
        "        url: {}\n        headersSecretRef:\n          name: missing-auth",
        source.url_of("/u.qcow2")
    );
    rig.create(&uploaded("noauth", "uploads/noauth.qcow2", &spec))
        .await;
    let stalled = rig
        .wait_for("noauth", "Stalled with SourceHeadersSecretNotFound", |o| {
            condition(o, "Stalled").is_some_and(|c| c.0 && c.1 == "SourceHeadersSecretNotFound")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(message.contains("missing-auth"), "{message}");
}

#[tokio::test]
async fn a_source_without_range_support_starts_over_after_a_restart_and_says_so() {
    let mut rig = rig().await;
    let body = qcow2(9, 20 * PART);
    let _source = create_verified(
        &rig,
        "norange",
        "uploads/norange.qcow2",
        &body,
        Serve::no_range(body.clone()).slow(6 * PART),
    )
    .await;
    rig.wait_for("norange", "parts recorded", |o| {
        upload_of(o).is_some_and(|u| u.disks.iter().any(|d| d.parts_done >= 4))
    })
    .await;
    rig.kill_controller().await;
    rig.start_controller().await;
    let done = rig.wait_available("norange").await;
    assert_eq!(
        upload_of(&done).unwrap().disks[0].sha256.as_deref(),
        Some(body.sha256().as_str())
    );
    let events = rig
        .wait_for_events("UploadRestarted", |e| {
            e.reason.as_deref() == Some("UploadRestarted")
        })
        .await;
    let note = events[0].note.clone().unwrap_or_default();
    assert!(note.contains("Range"), "{note}");
    assert_eq!(
        rig.emulator.oss_uploads(),
        0,
        "the first upload was aborted"
    );
}

/// A mapping changed while its upload runs (another URL, digest and object): the old transfer
/// stops and its multipart upload is aborted where it went, and the image is made from the new
/// source.
#[tokio::test]
async fn a_mapping_changed_mid_upload_aborts_the_old_upload_and_imports_the_new_source() {
    let rig = rig().await;
    let old = qcow2(6, 40 * PART);
    let new = qcow2(7, 8 * PART);
    let source = SourceServer::new()
        .route("/old.qcow2", Serve::range(old.clone()).slow(4 * PART))
        .route("/new.qcow2", Serve::range(new.clone()))
        .start()
        .await;
    let spec = format!(
        "        url: {}\n        sha256: {}",
        source.url_of("/old.qcow2"),
        old.sha256()
    );
    rig.create(&uploaded("moved", "uploads/old.qcow2", &spec))
        .await;
    rig.wait_for("moved", "parts of the old source uploaded", |o| {
        upload_of(o).is_some_and(|u| u.disks.iter().any(|d| d.parts_done > 0))
    })
    .await;
    rig.patch(
        "moved",
        serde_json::json!({"spec": {"diskDeviceMappings": [{
            "ossBucket": BUCKET,
            "ossObject": "uploads/new.qcow2",
            "format": "QCOW2",
            "source": {"url": source.url_of("/new.qcow2"), "sha256": new.sha256()},
        }]}}),
    )
    .await;
    let done = rig.wait_available("moved").await;
    let disk = &upload_of(&done).unwrap().disks[0];
    assert_eq!(disk.sha256.as_deref(), Some(new.sha256().as_str()));
    assert_eq!(
        rig.emulator.oss_uploads(),
        0,
        "the old multipart upload is aborted"
    );
    assert_eq!(rig.emulator.oss_object(BUCKET, "uploads/old.qcow2"), None);
    assert!(
        source.bytes_served_to("/old.qcow2") < old.size(),
        "the old transfer stopped"
    );
    rig.wait_for_events("UploadSourceChanged", |e| {
        e.reason.as_deref() == Some("UploadSourceChanged")
    })
    .await;
}
