//! The emulator's OSS endpoint: path-style requests (`/bucket/key`) on the emulator's own port,
//! signed with OSS signature V4 by the same AccessKeys the ECS side accepts.
//!
//! # What is emulated
//!
//! - Buckets per region (`buckets:` in the world file, [`crate::emulator::EmulatorHandle::add_bucket`],
//!   or implied by the objects of `objects:`), optionally reserved to one account (`AccessDenied`
//!   for the others).
//! - `PutObject`, `InitiateMultipartUpload`, `UploadPart`, `ListParts` (paged by
//!   `part-number-marker` and `max-parts`), `CompleteMultipartUpload` (a part list, or
//!   `x-oss-complete-all: yes`), `AbortMultipartUpload`, `HeadObject`, `DeleteObject`; `GetObject`
//!   is `NotImplemented`, since no object data is kept.
//! - The documented errors in OSS's XML body (`Code`, `Message`, `RequestId`, `HostId`, `EC`,
//!   `RecommendDoc`, and the element naming the culprit): `NoSuchBucket`, `NoSuchKey`,
//!   `NoSuchUpload`, `InvalidPart`, `InvalidPartOrder`, `EntityTooSmall`, `EntityTooLarge`,
//!   `InvalidArgument`, `MalformedXML`, `InvalidDigest`, `AccessDenied`,
//!   `SignatureDoesNotMatch` (with `StringToSign`), `InvalidAccessKeyId`,
//!   `RequestTimeTooSkewed`, `InvalidSecurityToken`, `SecurityTokenExpired`,
//!   `AccessKeyIdAndSecurityTokenNotMatch`. `EC` is always `0000-00000000`: the emulator does not
//!   know OSS's per-cause numbers.
//! - Faults from the same settings as ECS, by OSS action name (`UploadPart`…): drops, latency,
//!   5xx (`InternalError`, `ServiceUnavailable`; throttling is answered `ServiceUnavailable`,
//!   as OSS has no throttling code of its own), HTML 502 pages, a `200` that is not XML, a `200`
//!   without the action's headers or fields, truncated bodies and hangs. `answer_code` (ECS codes)
//!   and oversized bodies do not apply here.
//!
//! Bodies are streamed through digests ([`digest`]), never stored: an object is its size, CRC-64,
//! ETag, SHA-256 (simple uploads; per part for multipart ones) and its first and last 4 KiB, from
//! which its format is read. An uploaded object becomes an object `ImportImage` finds, with that
//! format and the virtual size its header declares.

pub mod digest;
pub mod sign;
pub mod store;

mod handler;
mod respond;

pub use handler::serve;
pub use store::{ObjectMeta, Store};

use std::fmt::Write as _;

use axum::http::StatusCode;

/// An OSS error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssFault {
    /// HTTP status.
    pub status: u16,
    /// OSS error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Extra elements (`BucketName`, `UploadId`, `PartNumber`, `StringToSign`…).
    pub extra: Vec<(&'static str, String)>,
}

impl OssFault {
    /// An error with a status, a code and a message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    /// Adds an element to the body.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The XML body.
    pub fn body(&self, request_id: &str, host: &str) -> String {
        let mut fields: Vec<(&str, &str)> = vec![
            ("Code", self.code),
            ("Message", &self.message),
            ("RequestId", request_id),
            ("HostId", host),
        ];
        for (name, value) in &self.extra {
            fields.push((name, value));
        }
        let recommend = format!("https://api.aliyun.com/troubleshoot?q={NO_EC}");
        fields.push(("EC", NO_EC));
        fields.push(("RecommendDoc", &recommend));
        xml_document("Error", &fields)
    }
}

/// The `EC` of every emulated error.
const NO_EC: &str = "0000-00000000";

/// `<?xml …?><root><name>value</name>…</root>` with the values escaped.
pub fn xml_document(root: &str, fields: &[(&str, &str)]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(out, "<{root}>");
    for (name, value) in fields {
        xml_element(&mut out, name, value);
    }
    let _ = write!(out, "</{root}>");
    out
}

/// `<name>value</name>`, escaped.
pub fn xml_element(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}>");
    crate::emulator::render::xml_text(out, value);
    let _ = write!(out, "</{name}>");
}
