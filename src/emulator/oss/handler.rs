//! One OSS request: path and query parsed into an action, faults drawn, signature verified,
//! bucket checked, then the action carried out on the [`Store`] and the world.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use futures::StreamExt as _;
use jiff::Timestamp;
use serde::Deserialize;

use super::digest::{Content, ContentDigest};
use super::respond::{empty, fault_response, faulted, http_date, set, stored, xml};
use super::sign::{self, SignedRequest, Verified};
use super::store::{ListedPart, MAX_PART_NUMBER, MAX_PART_SIZE, ObjectMeta, PartRecord};
use super::{OssFault, xml_document, xml_element};
use crate::emulator::server::Shared;
use crate::emulator::stats::Outcome;
use crate::emulator::world::{BucketDef, GIB, OssObject};

/// Largest `CompleteMultipartUpload` body read (10,000 parts fit in well under 1 MiB).
const MAX_COMPLETE_BODY: usize = 4 << 20;
/// `ListParts` pages hold at most this many parts (OSS's limit and default).
const MAX_LIST_PARTS: usize = 1000;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    PutObject,
    UploadPart { upload_id: String, number: String },
    Initiate,
    Complete { upload_id: String },
    Abort { upload_id: String },
    ListParts { upload_id: String },
    Head,
    Delete,
    Get,
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Self::PutObject => "PutObject",
            Self::UploadPart { .. } => "UploadPart",
            Self::Initiate => "InitiateMultipartUpload",
            Self::Complete { .. } => "CompleteMultipartUpload",
            Self::Abort { .. } => "AbortMultipartUpload",
            Self::ListParts { .. } => "ListParts",
            Self::Head => "HeadObject",
            Self::Delete => "DeleteObject",
            Self::Get => "GetObject",
        }
    }

    fn of(method: &Method, key: &str, query: &[(String, String)]) -> Result<Self, OssFault> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if key.is_empty() {
            return Err(OssFault::new(
                501,
                "NotImplemented",
                "Bucket operations are not emulated: name an object.",
            ));
        }
        let upload_id = get("uploadId");
        Ok(match (method.as_str(), upload_id) {
            ("PUT", Some(upload_id)) => Self::UploadPart {
                upload_id,
                number: get("partNumber").unwrap_or_default(),
            },
            ("PUT", None) => Self::PutObject,
            ("POST", None) if get("uploads").is_some() => Self::Initiate,
            ("POST", Some(upload_id)) => Self::Complete { upload_id },
            ("DELETE", Some(upload_id)) => Self::Abort { upload_id },
            ("DELETE", None) => Self::Delete,
            ("GET", Some(upload_id)) => Self::ListParts { upload_id },
            ("GET", None) => Self::Get,
            ("HEAD", _) => Self::Head,
            _ => {
                return Err(OssFault::new(
                    405,
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                ));
            }
        })
    }
}

/// Percent-decoding without `+` for space (paths and OSS queries encode spaces as `%20`).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_query(query: Option<&str>) -> Option<Vec<(String, String)>> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// The OSS endpoint's handler.
pub async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let request_id = shared.next_request_id();
    let (parts, body) = request.into_parts();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("oss.aliyuncs.com")
        .to_string();
    let head = parts.method == Method::HEAD;
    let answer = |action: Option<&str>, fault: OssFault, delayed: bool| {
        shared
            .stats
            .record(action, Outcome::Error(fault.code), delayed);
        fault_response(head, &request_id, &host, &fault)
    };
    let path = parts.uri.path().trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let (Some(bucket), Some(key), Some(query)) = (
        percent_decode(bucket),
        percent_decode(key),
        parse_query(parts.uri.query()),
    ) else {
        let fault = OssFault::new(
            400,
            "InvalidArgument",
            "The path or query is not valid percent-encoded UTF-8.",
        );
        return answer(None, fault, false);
    };
    let action = match Action::of(&parts.method, &key, &query) {
        Ok(action) => action,
        Err(fault) => return answer(None, fault, false),
    };
    let name = action.name();

    let decision = shared.faults.decide(name);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let delayed = decision.latency.is_some();
    if let Some(fault) = decision.fault
        && let Some(response) =
            faulted(&shared, name, delayed, &request_id, &host, head, fault).await
    {
        return response;
    }

    let signed = SignedRequest {
        method: parts.method.as_str(),
        bucket: &bucket,
        key: &key,
        query: &query,
        headers: &parts.headers,
    };
    let verified = match sign::verify(&shared.verifier, &signed, Timestamp::now()) {
        Ok(verified) => verified,
        Err(fault) => return answer(Some(name), fault, delayed),
    };
    let target = Target {
        bucket: &bucket,
        key: &key,
        query: &query,
        headers: &parts.headers,
        verified: &verified,
    };
    let result = match check_bucket(&shared, &target) {
        Ok(def) => run(&shared, &target, &def, action, body).await,
        Err(fault) => Err(fault),
    };
    match result {
        Ok(mut response) => {
            shared.stats.record(Some(name), Outcome::Ok, delayed);
            set(&mut response, "x-oss-request-id", &request_id);
            response
        }
        Err(fault) => answer(Some(name), fault, delayed),
    }
}

struct Target<'a> {
    bucket: &'a str,
    key: &'a str,
    query: &'a [(String, String)],
    headers: &'a HeaderMap,
    verified: &'a Verified,
}

fn check_bucket(shared: &Shared, target: &Target<'_>) -> Result<BucketDef, OssFault> {
    let def = shared
        .with_world(|world| world.bucket(target.bucket))
        .flatten()
        .ok_or_else(|| {
            OssFault::new(404, "NoSuchBucket", "The specified bucket does not exist.")
                .with("BucketName", target.bucket)
        })?;
    if def
        .account
        .as_ref()
        .is_some_and(|account| *account != target.verified.principal.account)
    {
        return Err(OssFault::new(
            403,
            "AccessDenied",
            "You have no right to access this bucket: it belongs to another account.",
        ));
    }
    if target.verified.region != def.region {
        return Err(OssFault::new(
            400,
            "InvalidArgument",
            format!(
                "Invalid signing region in Authorization header: the bucket is in {}.",
                def.region
            ),
        ));
    }
    Ok(def)
}

fn lock(shared: &Shared) -> Result<std::sync::MutexGuard<'_, super::Store>, OssFault> {
    shared.oss.lock().map_err(|_| {
        OssFault::new(
            500,
            "InternalError",
            "The emulator's OSS state is unusable.",
        )
    })
}

async fn run(
    shared: &Shared,
    target: &Target<'_>,
    def: &BucketDef,
    action: Action,
    body: Body,
) -> Result<Response, OssFault> {
    let (bucket, key) = (target.bucket, target.key);
    match action {
        Action::PutObject => {
            let content = read_body(body, target).await?;
            let meta = lock(shared)?.put_object(bucket, key, content.clone(), Timestamp::now());
            publish(shared, def, key, &meta);
            Ok(stored(&content))
        }
        Action::UploadPart { upload_id, number } => {
            let number = number
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
                .ok_or_else(|| {
                    OssFault::new(
                        400,
                        "InvalidArgument",
                        "Part number must be an integer between 1 and 10000, inclusive.",
                    )
                    .with("ArgumentName", "partNumber")
                    .with("ArgumentValue", number.clone())
                })?;
            // Checked before the body is read, as OSS does: a part of a finished upload is
            // refused without its bytes being taken.
            lock(shared)?.check_upload(bucket, key, &upload_id)?;
            let content = read_body(body, target).await?;
            let record = PartRecord {
                content: content.clone(),
                last_modified: Timestamp::now(),
            };
            lock(shared)?.put_part(bucket, key, &upload_id, number, record)?;
            Ok(stored(&content))
        }
        Action::Initiate => {
            let salt = shared.with_world(|world| world.random_u64()).unwrap_or(1);
            let id = lock(shared)?.initiate(bucket, key, salt);
            Ok(xml(xml_document(
                "InitiateMultipartUploadResult",
                &[("Bucket", bucket), ("Key", key), ("UploadId", &id)],
            )))
        }
        Action::ListParts { upload_id } => {
            let number = |name: &str| {
                target
                    .query
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse::<u32>().ok())
            };
            let marker = number("part-number-marker").unwrap_or(0);
            let max = number("max-parts").map_or(MAX_LIST_PARTS, |m| {
                usize::try_from(m)
                    .unwrap_or(MAX_LIST_PARTS)
                    .clamp(1, MAX_LIST_PARTS)
            });
            let page = lock(shared)?.list_parts(bucket, key, &upload_id, marker, max)?;
            Ok(xml(list_parts_body(target, &upload_id, marker, max, &page)))
        }
        Action::Complete { upload_id } => {
            let all = target
                .headers
                .get("x-oss-complete-all")
                .and_then(|h| h.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
            let bytes = axum::body::to_bytes(body, MAX_COMPLETE_BODY)
                .await
                .map_err(|_| {
                    OssFault::new(
                        400,
                        "MalformedXML",
                        "The request body could not be read or is too large.",
                    )
                })?;
            let listed = if all && bytes.is_empty() {
                None
            } else {
                Some(parse_complete(&bytes)?)
            };
            let meta = lock(shared)?.complete(bucket, key, &upload_id, listed, Timestamp::now())?;
            publish(shared, def, key, &meta);
            let host = target
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let location = format!("http://{host}/{bucket}/{key}");
            let mut response = xml(xml_document(
                "CompleteMultipartUploadResult",
                &[
                    ("Location", &location),
                    ("Bucket", bucket),
                    ("Key", key),
                    ("ETag", &meta.etag),
                ],
            ));
            set(
                &mut response,
                "x-oss-hash-crc64ecma",
                &meta.crc64.to_string(),
            );
            Ok(response)
        }
        Action::Abort { upload_id } => {
            lock(shared)?.abort(bucket, key, &upload_id)?;
            Ok(empty(204))
        }
        Action::Delete => {
            lock(shared)?.delete(bucket, key);
            shared.with_world(|world| world.remove_object(bucket, key));
            Ok(empty(204))
        }
        Action::Head => head_object(shared, bucket, key),
        Action::Get => Err(OssFault::new(
            501,
            "NotImplemented",
            "GetObject is not emulated: the emulator keeps no object data.",
        )),
    }
}

/// Streams a body through the digests, checking its size and the digests it was sent with.
async fn read_body(body: Body, target: &Target<'_>) -> Result<Content, OssFault> {
    let mut digest = ContentDigest::default();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            OssFault::new(
                400,
                "RequestTimeout",
                "The request body ended before it was complete.",
            )
        })?;
        digest.update(&chunk);
        if digest.size() > MAX_PART_SIZE {
            return Err(OssFault::new(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size (5 GiB).",
            ));
        }
    }
    let content = digest.finish();
    let sha256 = &target.verified.content_sha256;
    if sha256 != "UNSIGNED-PAYLOAD" && !sha256.eq_ignore_ascii_case(&content.sha256) {
        return Err(OssFault::new(
            400,
            "InvalidDigest",
            "The body's SHA-256 does not match x-oss-content-sha256.",
        ));
    }
    if let Some(md5) = target
        .headers
        .get("content-md5")
        .and_then(|h| h.to_str().ok())
        && md5 != content.content_md5()
    {
        return Err(OssFault::new(
            400,
            "InvalidDigest",
            "The Content-MD5 you specified did not match what we received.",
        ));
    }
    Ok(content)
}

/// Makes an uploaded object one `ImportImage` finds.
fn publish(shared: &Shared, def: &BucketDef, key: &str, meta: &ObjectMeta) {
    let object = OssObject {
        bucket: def.name.clone(),
        key: key.to_string(),
        region: def.region.clone(),
        size: meta.size,
        virtual_size_gib: meta
            .virtual_size
            .map_or(0, |bytes| bytes.div_ceil(GIB).max(1)),
        format: meta.format.to_string(),
        storage_class: "Standard".into(),
        readable: true,
        encrypted: false,
    };
    shared.with_world(|world| world.add_object(object));
}

fn head_object(shared: &Shared, bucket: &str, key: &str) -> Result<Response, OssFault> {
    let object = shared
        .with_world(|world| world.object(bucket, key).cloned())
        .flatten()
        .ok_or_else(|| {
            OssFault::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", key)
        })?;
    let meta = lock(shared)?.object(bucket, key).cloned();
    let mut response = empty(200);
    set(&mut response, "content-length", &object.size.to_string());
    set(&mut response, "content-type", "application/octet-stream");
    set(&mut response, "x-oss-storage-class", &object.storage_class);
    let now = Timestamp::now();
    set(&mut response, "date", &http_date(now));
    match meta {
        Some(meta) => {
            set(&mut response, "etag", &meta.etag);
            set(
                &mut response,
                "last-modified",
                &http_date(meta.last_modified),
            );
            set(&mut response, "x-oss-object-type", meta.object_type);
            set(
                &mut response,
                "x-oss-hash-crc64ecma",
                &meta.crc64.to_string(),
            );
        }
        None => {
            // An object of the world file: no bytes were ever seen, so no digests.
            set(&mut response, "etag", &format!("\"{:032X}\"", object.size));
            set(&mut response, "last-modified", &http_date(now));
            set(&mut response, "x-oss-object-type", "Normal");
        }
    }
    Ok(response)
}

fn list_parts_body(
    target: &Target<'_>,
    upload_id: &str,
    marker: u32,
    max: usize,
    page: &super::store::PartsPage,
) -> String {
    let next = page.parts.last().map_or(marker, |(n, _)| *n);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult>");
    for (name, value) in [
        ("Bucket", target.bucket.to_string()),
        ("Key", target.key.to_string()),
        ("UploadId", upload_id.to_string()),
        ("PartNumberMarker", marker.to_string()),
        ("NextPartNumberMarker", next.to_string()),
        ("MaxParts", max.to_string()),
        ("IsTruncated", page.truncated.to_string()),
    ] {
        xml_element(&mut out, name, &value);
    }
    for (number, part) in &page.parts {
        out.push_str("<Part>");
        xml_element(&mut out, "PartNumber", &number.to_string());
        xml_element(
            &mut out,
            "LastModified",
            &part
                .last_modified
                .strftime("%Y-%m-%dT%H:%M:%S.000Z")
                .to_string(),
        );
        xml_element(&mut out, "ETag", &part.content.etag());
        xml_element(&mut out, "HashCrc64ecma", &part.content.crc64.to_string());
        xml_element(&mut out, "Size", &part.content.size.to_string());
        out.push_str("</Part>");
    }
    out.push_str("</ListPartsResult>");
    out
}

#[derive(Debug, Deserialize)]
struct CompleteBody {
    #[serde(rename = "Part", default)]
    parts: Vec<CompletePart>,
}

#[derive(Debug, Deserialize)]
struct CompletePart {
    #[serde(rename = "PartNumber")]
    number: u32,
    #[serde(rename = "ETag")]
    etag: String,
}

fn parse_complete(bytes: &[u8]) -> Result<Vec<ListedPart>, OssFault> {
    let malformed = || {
        OssFault::new(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed())?;
    let body: CompleteBody = quick_xml::de::from_str(text).map_err(|_| malformed())?;
    Ok(body
        .parts
        .into_iter()
        .map(|part| ListedPart {
            number: part.number,
            etag: part.etag,
        })
        .collect())
}
