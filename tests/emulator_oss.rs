//! The emulator's OSS endpoint through the chosen client (`ossify`, path-style, OSS signature V4):
//! every call and its documented errors, a multipart upload listed, aborted, completed with wrong
//! and right part lists, and the uploaded object imported by `ImportImage` with the format its
//! bytes show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::time::Duration;

use ecs_image_operator::ecs::api::{ALL_IMAGE_STATUSES, DescribeImagesRequest, DiskDeviceMapping};
use ecs_image_operator::emulator::oss::digest::crc64_update;
use ecs_image_operator::emulator::{
    AccessKey, BucketDef, EmulatorHandle, FaultSettings, FaultSpec,
};
use emulator_support::*;
use ossify::ops::object::base::{
    DeleteObjectOperations, HeadObjectOperations, HeadObjectParams, PutObjectOperations,
};
use ossify::ops::object::multipart_upload::{
    AbortMultipartUploadOperations, CompleteMultipartUploadOperations,
    InitiateMultipartUploadOperations, ListPartsOperations, ListPartsParams, Part,
    UploadPartOperations,
};
use ossify::{Client, UrlStyle};

const BUCKET: &str = "uploads-hz";
const PART: usize = 100 * 1024;

async fn start() -> EmulatorHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let handle = emulator_support::start().await;
    handle.add_bucket(BucketDef {
        name: BUCKET.into(),
        region: REGION.into(),
        account: None,
    });
    handle.add_bucket(BucketDef {
        name: "private-hz".into(),
        region: REGION.into(),
        account: Some("other".into()),
    });
    handle
}

fn oss(
    handle: &EmulatorHandle,
    bucket: &str,
    id: &str,
    secret: &str,
    token: Option<&str>,
) -> Client {
    let mut builder = Client::builder()
        .endpoint(handle.url())
        .region(REGION)
        .bucket(bucket)
        .access_key_id(id)
        .access_key_secret(secret)
        .url_style(UrlStyle::Path)
        .http_timeout(Duration::from_secs(10));
    if let Some(token) = token {
        builder = builder.security_token(token);
    }
    builder.build().unwrap()
}

fn client(handle: &EmulatorHandle) -> Client {
    oss(handle, BUCKET, AK_ID, AK_SECRET, None)
}

/// The OSS error code of a failed call.
fn code<T: std::fmt::Debug>(result: Result<T, ossify::Error>) -> String {
    match result {
        Err(ossify::Error::ApiError {
            message: Some(body),
            ..
        }) => body.code,
        Err(ossify::Error::ApiError {
            status_code,
            message: None,
        }) => format!("HTTP {status_code}"),
        other => panic!("expected an OSS error answer, got {other:?}"),
    }
}

/// Deterministic bytes, a qcow2 header first.
fn qcow2(size: usize, virtual_gib: u64) -> Vec<u8> {
    let mut data: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    data[..4].copy_from_slice(b"QFI\xfb");
    data[4..8].copy_from_slice(&3u32.to_be_bytes());
    data[24..32].copy_from_slice(&(virtual_gib << 30).to_be_bytes());
    data
}

#[tokio::test]
async fn put_head_and_delete_an_object() {
    let handle = start().await;
    let oss = client(&handle);
    let data = qcow2(300_000, 8);
    let put = oss
        .put_object("simple.qcow2", data.clone(), None)
        .await
        .unwrap();
    let head = oss
        .head_object("simple.qcow2", HeadObjectParams::default(), None)
        .await
        .unwrap();
    assert_eq!(head.content_length, data.len() as u64);
    assert_eq!(head.etag.as_deref(), Some(put.etag.as_str()));
    assert_eq!(
        head.hash_crc64ecma,
        Some(crc64_update(0, &data).to_string())
    );
    let meta = handle.oss_object(BUCKET, "simple.qcow2").unwrap();
    assert_eq!(meta.format, "QCOW2");
    assert_eq!(meta.sha256.as_deref(), Some(sha256_hex(&data).as_str()));
    let object = handle.object(BUCKET, "simple.qcow2").unwrap();
    assert_eq!(
        (object.size, object.format.as_str(), object.virtual_size_gib),
        (300_000, "QCOW2", 8)
    );

    oss.delete_object("simple.qcow2", None).await.unwrap();
    assert_eq!(
        code(
            oss.head_object("simple.qcow2", HeadObjectParams::default(), None)
                .await
        ),
        "HTTP 404 Not Found"
    );
    assert!(handle.object(BUCKET, "simple.qcow2").is_none());
    // Deleting what is not there is no error, as on OSS.
    oss.delete_object("simple.qcow2", None).await.unwrap();
    let stats = handle.stats();
    assert_eq!(stats.actions["PutObject"].ok, 1);
    assert_eq!(stats.actions["DeleteObject"].ok, 2);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

#[tokio::test]
async fn a_multipart_upload_is_listed_completed_and_imported_with_its_format() {
    let handle = start().await;
    let oss = client(&handle);
    let data = qcow2(3 * PART + 1000, 20);
    let key = "disks/ubuntu.qcow2";
    let upload = oss.initiate_multipart_upload(key, None).await.unwrap();
    let mut etags = Vec::new();
    for (i, chunk) in data.chunks(PART).enumerate() {
        let part = oss
            .upload_part(key, &upload.upload_id, i as u32 + 1, chunk.to_vec())
            .await
            .unwrap();
        assert_eq!(part.hash_crc64ecma, crc64_update(0, chunk).to_string());
        etags.push(part.etag);
    }
    assert_eq!(etags.len(), 4);

    // ListParts pages by marker: what a restarted uploader would read back.
    let params = |marker: Option<u32>| ListPartsParams {
        upload_id: upload.upload_id.clone(),
        max_parts: Some(3),
        part_number_marker: marker,
        encoding_type: None,
    };
    let first = oss
        .list_parts(key, &upload.upload_id, Some(params(None)))
        .await
        .unwrap();
    assert!(first.is_truncated);
    assert_eq!(
        first
            .parts
            .iter()
            .map(|p| p.part_number)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(first.parts[1].etag, etags[1]);
    assert_eq!(first.parts[0].size, PART as u64);
    let rest = oss
        .list_parts(
            key,
            &upload.upload_id,
            Some(params(Some(first.next_part_number_marker))),
        )
        .await
        .unwrap();
    assert!(!rest.is_truncated);
    assert_eq!(
        rest.parts
            .iter()
            .map(|p| (p.part_number, p.size))
            .collect::<Vec<_>>(),
        [(4, 1000)]
    );

    let parts = |list: &[(u32, usize)]| {
        list.iter()
            .map(|(n, i)| Part::new(*n, etags[*i].clone()))
            .collect::<Vec<_>>()
    };
    let complete = |list| oss.complete_multipart_upload(key, &upload.upload_id, list, None);
    // ossify sorts the list it is given, so an unsorted one goes out raw.
    let unsorted = format!(
        "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part>\
         <Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[1], etags[0]
    );
    let (status, body) = raw(
        &handle,
        "POST",
        key,
        &[("uploadId", &upload.upload_id)],
        unsorted.into_bytes(),
    )
    .await;
    assert_eq!(
        (status, xml_code(&body)),
        (400, "InvalidPartOrder".to_string()),
        "{body}"
    );
    let (status, body) = raw(
        &handle,
        "POST",
        key,
        &[("uploadId", &upload.upload_id)],
        b"<oops".to_vec(),
    )
    .await;
    assert_eq!((status, xml_code(&body)), (400, "MalformedXML".to_string()));
    assert_eq!(
        code(complete(parts(&[(1, 0), (2, 2), (3, 2), (4, 3)])).await),
        "InvalidPart"
    );
    assert_eq!(
        code(complete(parts(&[(1, 0), (2, 1), (5, 3)])).await),
        "InvalidPart"
    );
    assert_eq!(
        code(complete(parts(&[(1, 0), (4, 3), (5, 3)])).await),
        "InvalidPart"
    );
    assert_eq!(
        handle.oss_uploads(),
        1,
        "a refused completion keeps the upload"
    );

    let done = complete(parts(&[(1, 0), (2, 1), (3, 2), (4, 3)]))
        .await
        .unwrap();
    assert!(done.etag.ends_with("-4\""), "{}", done.etag);
    assert_eq!(handle.oss_uploads(), 0);
    let meta = handle.oss_object(BUCKET, key).unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(
        meta.crc64,
        crc64_update(0, &data),
        "the CRC of the whole content"
    );
    assert_eq!(meta.part_sha256[3], sha256_hex(&data[3 * PART..]));
    assert_eq!(
        code(oss.list_parts(key, &upload.upload_id, None).await),
        "NoSuchUpload"
    );

    // ImportImage finds it, with the format and virtual size from its header.
    let ecs = emulator_support::client(&handle);
    let request = |name: &str, format: &str| {
        let mut request = import(name, key);
        request.disk_device_mappings = vec![DiskDeviceMapping {
            oss_bucket: BUCKET.into(),
            oss_object: key.into(),
            format: Some(format.into()),
            ..Default::default()
        }];
        request
    };
    let good = ecs
        .import_image(&creds(), &request("uploaded", "QCOW2"))
        .await
        .unwrap();
    let wrong = ecs
        .import_image(&creds(), &request("declared-raw", "RAW"))
        .await
        .unwrap();
    handle.advance(Duration::from_secs(3600));
    let images = ecs
        .call(
            &creds(),
            &DescribeImagesRequest {
                region_id: REGION.into(),
                image_ids: vec![good.image_id.clone(), wrong.image_id.clone()],
                statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let status = |id: &str| {
        images
            .images
            .iter()
            .find(|i| i.image_id == id)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(status(&good.image_id), "Available");
    assert_eq!(
        status(&wrong.image_id),
        "CreateFailed",
        "a RAW declaration of a qcow2 file"
    );
}

#[tokio::test]
async fn small_parts_aborts_and_part_numbers_are_refused_as_documented() {
    let handle = start().await;
    let oss = client(&handle);
    let key = "small.raw";
    let upload = oss.initiate_multipart_upload(key, None).await.unwrap();
    let one = oss
        .upload_part(key, &upload.upload_id, 1, vec![1u8; 1000])
        .await
        .unwrap();
    let two = oss
        .upload_part(key, &upload.upload_id, 2, vec![2u8; 1000])
        .await
        .unwrap();
    assert_eq!(
        code(
            oss.complete_multipart_upload(
                key,
                &upload.upload_id,
                vec![Part::new(1, one.etag), Part::new(2, two.etag)],
                None
            )
            .await
        ),
        "EntityTooSmall"
    );
    assert_eq!(
        code(
            oss.upload_part(key, &upload.upload_id, 10_001, vec![0u8; 10])
                .await
        ),
        "InvalidArgument"
    );
    assert_eq!(
        code(oss.upload_part(key, "0000BOGUS", 1, vec![0u8; 10]).await),
        "NoSuchUpload"
    );
    assert_eq!(
        code(
            oss.upload_part("other-key", &upload.upload_id, 1, vec![0u8; 10])
                .await
        ),
        "NoSuchUpload"
    );

    oss.abort_multipart_upload(key, &upload.upload_id)
        .await
        .unwrap();
    assert_eq!(handle.oss_uploads(), 0);
    // ossify reads no status from AbortMultipartUpload (nor DeleteObject): a second abort is
    // checked raw, and also shows that ossify's Ok there proves nothing.
    assert!(
        oss.abort_multipart_upload(key, &upload.upload_id)
            .await
            .is_ok()
    );
    let (status, body) = raw(
        &handle,
        "DELETE",
        key,
        &[("uploadId", &upload.upload_id)],
        Vec::new(),
    )
    .await;
    assert_eq!(
        (status, xml_code(&body)),
        (404, "NoSuchUpload".to_string()),
        "{body}"
    );
    assert_eq!(
        code(
            oss.upload_part(key, &upload.upload_id, 3, vec![0u8; 10])
                .await
        ),
        "NoSuchUpload"
    );
    assert!(
        handle.object(BUCKET, key).is_none(),
        "an aborted upload leaves no object"
    );
}

#[tokio::test]
async fn signatures_keys_tokens_buckets_and_accounts() {
    let handle = start().await;
    let put = |client: Client| async move { client.put_object("k.raw", vec![0u8; 10], None).await };
    assert_eq!(
        code(put(oss(&handle, BUCKET, AK_ID, "wrong-secret", None)).await),
        "SignatureDoesNotMatch"
    );
    assert_eq!(
        code(put(oss(&handle, BUCKET, "LTAI5tNobody", AK_SECRET, None)).await),
        "InvalidAccessKeyId"
    );
    assert_eq!(
        code(put(oss(&handle, BUCKET, STS_ID, STS_SECRET, None)).await),
        "InvalidAccessKeyId"
    );
    assert_eq!(
        code(put(oss(&handle, BUCKET, STS_ID, STS_SECRET, Some("CAISforged"))).await),
        "InvalidSecurityToken"
    );
    put(oss(&handle, BUCKET, STS_ID, STS_SECRET, Some(STS_TOKEN)))
        .await
        .unwrap();
    assert_eq!(
        code(put(oss(&handle, "no-such-bucket", AK_ID, AK_SECRET, None)).await),
        "NoSuchBucket"
    );
    assert_eq!(
        code(put(oss(&handle, "private-hz", AK_ID, AK_SECRET, None)).await),
        "AccessDenied"
    );
    put(oss(&handle, "private-hz", OTHER_ID, OTHER_SECRET, None))
        .await
        .unwrap();
    // A bucket of another region, signed for this one.
    assert_eq!(
        code(put(oss(&handle, "images-sh", AK_ID, AK_SECRET, None)).await),
        "InvalidArgument"
    );
    // Objects of the world file answer HEAD too.
    let world = oss(&handle, "images-hz", AK_ID, AK_SECRET, None);
    let head = world
        .head_object("ubuntu-22.04.qcow2", HeadObjectParams::default(), None)
        .await
        .unwrap();
    assert_eq!(head.content_length, 2 << 30);
    assert_eq!(handle.stats().code("SignatureDoesNotMatch"), 1);

    handle.add_key(
        AccessKey::new("STS.Expired", "expired-secret")
            .with_security_token("CAISexpired")
            .expiring_at(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)),
    );
    assert_eq!(
        code(
            put(oss(
                &handle,
                BUCKET,
                "STS.Expired",
                "expired-secret",
                Some("CAISexpired")
            ))
            .await
        ),
        "SecurityTokenExpired"
    );
    assert_eq!(
        code(
            put(oss(
                &handle,
                BUCKET,
                STS_ID,
                STS_SECRET,
                Some("CAISexpired")
            ))
            .await
        ),
        "AccessKeyIdAndSecurityTokenNotMatch"
    );
    let (status, body) = raw_at(
        &handle,
        "HEAD",
        "k.raw",
        &[],
        Vec::new(),
        "20200101T000000Z",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (403, ""),
        "a HEAD error has no body"
    );
    let (status, body) = raw_at(&handle, "PUT", "k.raw", &[], vec![1], "20200101T000000Z").await;
    assert_eq!(
        (status, xml_code(&body)),
        (403, "RequestTimeTooSkewed".to_string())
    );
    let (status, body) = raw(&handle, "HEAD", "missing.raw", &[], Vec::new()).await;
    assert_eq!((status, body.as_str()), (404, ""));
}

/// A request signed here with the emulator's own V4 functions, for what ossify never sends.
async fn raw(
    handle: &EmulatorHandle,
    method: &str,
    key: &str,
    query: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let date = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    raw_at(handle, method, key, query, body, &date).await
}

async fn raw_at(
    handle: &EmulatorHandle,
    method: &str,
    key: &str,
    query: &[(&str, &str)],
    body: Vec<u8>,
    date: &str,
) -> (u16, String) {
    use ecs_image_operator::emulator::oss::sign;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-oss-date", date.parse().unwrap());
    headers.insert("x-oss-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let canonical = sign::canonical_request(
        &sign::SignedRequest {
            method,
            bucket: BUCKET,
            key,
            query: &query,
            headers: &headers,
        },
        &[],
        "UNSIGNED-PAYLOAD",
    );
    let scope = format!("{}/{REGION}/oss/aliyun_v4_request", &date[..8]);
    let string_to_sign = format!(
        "OSS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let signature = sign::signature(AK_SECRET, &date[..8], REGION, &string_to_sign);
    headers.insert(
        "authorization",
        format!("OSS4-HMAC-SHA256 Credential={AK_ID}/{scope},Signature={signature}")
            .parse()
            .unwrap(),
    );
    let query = query
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                sign::uri_encode(k, false),
                sign::uri_encode(v, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let url = format!(
        "{}/{BUCKET}/{}?{query}",
        handle.url(),
        sign::uri_encode(key, true)
    );
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn xml_code(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn faults_apply_to_oss_actions_by_name() {
    let handle = start().await;
    let oss = client(&handle);
    let upload = oss.initiate_multipart_upload("f.raw", None).await.unwrap();
    let mut settings = FaultSettings::default();
    settings.actions.insert(
        "UploadPart".into(),
        FaultSpec {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    handle.set_faults(settings);
    let failed = code(
        oss.upload_part("f.raw", &upload.upload_id, 1, vec![0u8; 10])
            .await,
    );
    assert!(
        ["InternalError", "ServiceUnavailable"].contains(&failed.as_str()),
        "{failed}"
    );
    let listed = oss
        .list_parts("f.raw", &upload.upload_id, None)
        .await
        .unwrap();
    assert!(listed.parts.is_empty(), "a faulted part is not stored");
    handle.set_faults(FaultSettings {
        default: FaultSpec {
            drop_rate: 1.0,
            ..Default::default()
        },
        ..Default::default()
    });
    assert!(matches!(
        oss.list_parts("f.raw", &upload.upload_id, None).await,
        Err(ossify::Error::HttpRequest(_))
    ));
    assert_eq!(handle.stats().faults.dropped, 1);
}
