//! `spec.diskDeviceMappings[].source` and `status.upload`: a disk whose file the operator puts
//! into OSS itself (streamed from a URL, multipart, resumable, checksummed) before it imports it.
//!
//! The schema checks what it can at admission (exactly one of `url` and `file`; `https`, or plain
//! `http` only to a loopback host; a SHA-256 of 64 hex digits; a size of at least one byte). What
//! only the transfer can tell (a wrong checksum, size or format, a refused URL) comes back as a
//! condition with a `Source…` code.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image_import::SecretReference;

/// The CEL rule that a source names exactly one of `url` and `file`.
pub const ONE_OF_URL_AND_FILE: &str = "has(self.url) != has(self.file)";

/// The CEL rule on `source.url`: `https`, or plain `http` only to a loopback host (127.0.0.0/8,
/// `localhost`, `[::1]`), whose name ends where the port, path, query or fragment starts (so
/// `http://127.0.0.1.example.com/` and `http://localhost@example.com/` are refused).
pub const URL_SCHEME_RULE: &str = r"!has(self.url) || self.url.lowerAscii().startsWith('https://') || self.url.lowerAscii().matches('^http://(127(\\.[0-9]{1,3}){3}|localhost|\\[::1\\])(:[0-9]{1,5})?([/?#].*)?$')";

/// A file the operator uploads to the mapping's `ossBucket`/`ossObject` before the import.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(ONE_OF_URL_AND_FILE)
    .message("a source names exactly one of url and file")
    .reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new(URL_SCHEME_RULE)
    .message("source.url must be https, or plain http only to a loopback host (127.0.0.0/8, localhost, [::1])")
    .reason(kube::core::Reason::FieldValueInvalid))]
pub struct DiskSource {
    /// Where the file is downloaded from: an `https` URL, or plain `http` only to a loopback
    /// host (127.0.0.0/8, `localhost`, `[::1]`). Streamed into OSS (never to disk); resumed with
    /// an HTTP `Range` read after a restart when the server supports it. Exactly one of `url` and
    /// `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048))]
    pub url: Option<String>,

    /// A local file to upload instead of `url`: only for the one-shot `ecs-image-operator import
    /// -f`; the operator in a cluster refuses it (`SourceFileUnsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub file: Option<String>,

    /// The expected SHA-256 of the file, 64 hex digits: computed while streaming; a mismatch
    /// aborts the upload, removes its parts and stalls with `SourceChecksumMismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub sha256: Option<String>,

    /// The expected size of the file in bytes (at least 1); a mismatch stalls with
    /// `SourceSizeMismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub size: Option<u64>,

    /// A Secret in this namespace whose every data key is sent as a request header with its value
    /// (e.g. `Authorization`), for authenticated downloads. Never logged or shown in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret_ref: Option<SecretReference>,

    /// What happens to the uploaded OSS object: `Delete` (default) removes it once the image is
    /// `Available` (or when the resource is deleted); `Retain` keeps it.
    #[serde(default)]
    pub cleanup: SourceCleanup,
}

/// What happens to an uploaded OSS object once it has served its import.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SourceCleanup {
    /// Remove the object once the image is `Available`, or when the resource is deleted.
    #[default]
    Delete,
    /// Keep the object in OSS.
    Retain,
}

/// The uploads of the mappings with a `source`: totals over all of them, and each disk's own
/// record, which is also what an upload resumes from after a restart.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadStatus {
    /// Bytes uploaded so far, over every mapping with a source.
    #[serde(default)]
    pub bytes_done: u64,
    /// Bytes to upload over every mapping with a source, once every size is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// Upload progress in percent, 0–100, once the total is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<u8>,
    /// The current throughput of the running upload, in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// One entry per mapping with a source, keyed by `disk`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 17),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["disk"])
    )]
    pub disks: Vec<DiskUpload>,
}

/// The upload of one mapping's source.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskUpload {
    /// The mapping's index in `spec.diskDeviceMappings` (0 is the system disk).
    #[schemars(range(min = 0, max = 16))]
    pub disk: u32,
    /// The OSS multipart upload, once initiated; aborted (its parts removed) when the resource is
    /// deleted before the upload is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The part size the upload was started with, in bytes (a resumed upload keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// Parts 1 to `partsDone` are uploaded, with no gap.
    #[serde(default)]
    pub parts_done: u32,
    /// Bytes uploaded: `partsDone` × `partSize`, where a resumed upload reads the source from.
    #[serde(default)]
    pub bytes_done: u64,
    /// The size of the file, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// The SHA-256 state after `bytesDone` bytes (hex), so a resumed upload verifies the whole
    /// file without reading it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_state: Option<String>,
    /// The source's `ETag` or `Last-Modified` when the upload started, sent as `If-Range` on
    /// resuming: a source that changed meanwhile is read again from byte 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
    /// The SHA-256 of the whole file, once uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The format the file's bytes show (`QCOW2`, `VHD`, `RAW`…), once uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The OSS object is complete (the multipart upload is completed).
    #[serde(default)]
    pub uploaded: bool,
    /// The OSS object was removed by `cleanup: Delete`.
    #[serde(default)]
    pub removed: bool,
    /// A digest of the mapping this record is about (its source, format, bucket and object), set
    /// when the upload starts: a mapping changed while it uploads, or before the import starts,
    /// is uploaded afresh (its old multipart upload aborted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub mapping_digest: Option<String>,
    /// The bucket the upload went to, as the mapping said when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub oss_bucket: Option<String>,
    /// The object the upload went to, as the mapping said when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1023))]
    pub oss_object: Option<String>,
}

impl UploadStatus {
    /// The record of `disk`, if any.
    pub fn disk(&self, disk: u32) -> Option<&DiskUpload> {
        self.disks.iter().find(|entry| entry.disk == disk)
    }

    /// The record of `disk`, created empty when there is none (kept sorted by disk).
    pub fn disk_mut(&mut self, disk: u32) -> &mut DiskUpload {
        let at = match self.disks.iter().position(|entry| entry.disk == disk) {
            Some(at) => at,
            None => {
                let at = self.disks.partition_point(|entry| entry.disk < disk);
                self.disks.insert(
                    at,
                    DiskUpload {
                        disk,
                        ..DiskUpload::default()
                    },
                );
                at
            }
        };
        &mut self.disks[at]
    }
}
