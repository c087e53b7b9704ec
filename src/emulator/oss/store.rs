//! Multipart uploads in progress and what is known of each uploaded object: pure bookkeeping,
//! with the checks of `UploadPart`, `ListParts` and `CompleteMultipartUpload` as OSS documents
//! them (part numbers 1–10000, ascending in the completion list, each listed part present with its
//! ETag, every part but the last at least 100 KiB).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::OssFault;
use super::digest::{Content, detect_format, join_edges};

/// Highest part number OSS accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest size of every part but the last.
pub const MIN_PART_SIZE: u64 = 100 * 1024;
/// Largest part, and largest simple object (5 GiB).
pub const MAX_PART_SIZE: u64 = 5 << 30;

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// Its content.
    pub content: Content,
    /// When it was (last) uploaded.
    pub last_modified: Timestamp,
}

/// A multipart upload in progress.
#[derive(Debug, Clone)]
struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<u32, PartRecord>,
}

/// What the emulator knows of an object uploaded through its OSS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Bytes.
    pub size: u64,
    /// OSS's ETag (MD5 for a simple object, `"MD5-OF-MD5S-N"` for a multipart one).
    pub etag: String,
    /// CRC-64/ECMA of the whole content.
    pub crc64: u64,
    /// SHA-256 of the whole content: known for a simple upload only.
    pub sha256: Option<String>,
    /// SHA-256 of each part, in order (one entry for a simple upload).
    pub part_sha256: Vec<String>,
    /// `Normal` or `Multipart`.
    pub object_type: &'static str,
    /// The format its bytes show (`QCOW2`, `VHD`, `VMDK`, `RAW`).
    pub format: &'static str,
    /// The virtual disk size the file declares, if it does.
    pub virtual_size: Option<u64>,
    /// When it was written.
    pub last_modified: Timestamp,
}

/// A part named in a `CompleteMultipartUpload` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    /// Its number.
    pub number: u32,
    /// The ETag the client has for it.
    pub etag: String,
}

/// A page of `ListParts`.
#[derive(Debug, Clone)]
pub struct PartsPage {
    /// The parts after the marker, at most `max_parts`.
    pub parts: Vec<(u32, PartRecord)>,
    /// Whether more follow.
    pub truncated: bool,
}

/// Uploads and object metadata.
#[derive(Debug, Default)]
pub struct Store {
    uploads: HashMap<String, Upload>,
    objects: HashMap<(String, String), ObjectMeta>,
    next_upload: u64,
}

fn no_such_upload(upload_id: &str) -> OssFault {
    OssFault::new(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with("UploadId", upload_id)
}

impl Store {
    /// Starts an upload; `salt` makes IDs differ between emulator runs.
    pub fn initiate(&mut self, bucket: &str, key: &str, salt: u64) -> String {
        self.next_upload += 1;
        let id = format!("{:016X}{:016X}", salt, self.next_upload);
        self.uploads.insert(
            id.clone(),
            Upload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                parts: BTreeMap::new(),
            },
        );
        id
    }

    /// Checks that an upload exists for this object (before its body is read).
    pub fn check_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), OssFault> {
        match self.uploads.get(upload_id) {
            Some(upload) if upload.bucket == bucket && upload.key == key => Ok(()),
            _ => Err(no_such_upload(upload_id)),
        }
    }

    /// Records (or replaces) a part.
    pub fn put_part(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        record: PartRecord,
    ) -> Result<(), OssFault> {
        self.check_upload(bucket, key, upload_id)?;
        if let Some(upload) = self.uploads.get_mut(upload_id) {
            upload.parts.insert(number, record);
        }
        Ok(())
    }

    /// The parts after `marker`, at most `max_parts`.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max_parts: usize,
    ) -> Result<PartsPage, OssFault> {
        self.check_upload(bucket, key, upload_id)?;
        let upload = self
            .uploads
            .get(upload_id)
            .ok_or_else(|| no_such_upload(upload_id))?;
        let mut after = upload
            .parts
            .range(marker.saturating_add(1)..)
            .map(|(n, p)| (*n, p.clone()));
        let parts: Vec<_> = after.by_ref().take(max_parts).collect();
        Ok(PartsPage {
            parts,
            truncated: after.next().is_some(),
        })
    }

    /// Aborts an upload, forgetting its parts.
    pub fn abort(&mut self, bucket: &str, key: &str, upload_id: &str) -> Result<(), OssFault> {
        self.check_upload(bucket, key, upload_id)?;
        self.uploads.remove(upload_id);
        Ok(())
    }

    /// Completes an upload from the listed parts (all parts when `listed` is `None`).
    pub fn complete(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        listed: Option<Vec<ListedPart>>,
        now: Timestamp,
    ) -> Result<ObjectMeta, OssFault> {
        self.check_upload(bucket, key, upload_id)?;
        let upload = self
            .uploads
            .get(upload_id)
            .ok_or_else(|| no_such_upload(upload_id))?;
        let listed = listed.unwrap_or_else(|| {
            upload
                .parts
                .iter()
                .map(|(n, p)| ListedPart {
                    number: *n,
                    etag: p.content.etag(),
                })
                .collect()
        });
        if listed.is_empty() {
            return Err(OssFault::new(
                400,
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema: no Part.",
            ));
        }
        if listed
            .windows(2)
            .any(|pair| pair[0].number >= pair[1].number)
        {
            return Err(OssFault::new(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts list must specified in order by part number.",
            ));
        }
        let mut parts = Vec::with_capacity(listed.len());
        for item in &listed {
            let found = upload
                .parts
                .get(&item.number)
                .filter(|p| same_etag(&p.content.etag(), &item.etag));
            let Some(part) = found else {
                return Err(OssFault::new(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag.",
                )
                .with("PartNumber", item.number.to_string()));
            };
            parts.push(&part.content);
        }
        if let Some(small) = parts[..parts.len() - 1]
            .iter()
            .zip(&listed)
            .find(|(part, _)| part.size < MIN_PART_SIZE)
        {
            return Err(OssFault::new(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size.",
            )
            .with("PartNumber", small.1.number.to_string()));
        }
        let (size, crc64, head, tail) = join_edges(&parts);
        let mut md5s = Vec::with_capacity(parts.len() * 16);
        for part in &parts {
            md5s.extend_from_slice(&part.md5);
        }
        let (format, virtual_size) = detect_format(&head, &tail);
        let meta = ObjectMeta {
            size,
            etag: format!(
                "\"{}-{}\"",
                hex::encode_upper(<md5::Md5 as md5::Digest>::digest(&md5s)),
                parts.len()
            ),
            crc64,
            sha256: None,
            part_sha256: parts.iter().map(|p| p.sha256.clone()).collect(),
            object_type: "Multipart",
            format,
            virtual_size,
            last_modified: now,
        };
        self.uploads.remove(upload_id);
        self.objects
            .insert((bucket.to_string(), key.to_string()), meta.clone());
        Ok(meta)
    }

    /// Records a simple upload.
    pub fn put_object(
        &mut self,
        bucket: &str,
        key: &str,
        content: Content,
        now: Timestamp,
    ) -> ObjectMeta {
        let (format, virtual_size) = detect_format(&content.head, &content.tail);
        let meta = ObjectMeta {
            size: content.size,
            etag: content.etag(),
            crc64: content.crc64,
            sha256: Some(content.sha256.clone()),
            part_sha256: vec![content.sha256],
            object_type: "Normal",
            format,
            virtual_size,
            last_modified: now,
        };
        self.objects
            .insert((bucket.to_string(), key.to_string()), meta.clone());
        meta
    }

    /// What is known of an uploaded object.
    pub fn object(&self, bucket: &str, key: &str) -> Option<&ObjectMeta> {
        self.objects.get(&(bucket.to_string(), key.to_string()))
    }

    /// Forgets an object.
    pub fn delete(&mut self, bucket: &str, key: &str) {
        self.objects.remove(&(bucket.to_string(), key.to_string()));
    }

    /// Multipart uploads in progress.
    pub fn upload_count(&self) -> usize {
        self.uploads.len()
    }
}

/// ETags compared as OSS does: quotes optional, hex case ignored.
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"')
        .eq_ignore_ascii_case(b.trim_matches('"'))
}
