//! What the transfer (`crate::upload`, run by the engine) reports of a disk's upload, as the
//! decision reads it.

use super::Failure;

/// What the transfer in this process reports of one disk's upload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UploadObserved {
    /// No mapping to upload, or not looked at: the decision starts nothing (a transfer may run).
    #[default]
    NotAsked,
    /// No transfer of the disk runs in this process.
    Idle {
        /// The mapping's index.
        disk: u32,
    },
    /// The transfer runs.
    Running {
        /// The mapping's index.
        disk: u32,
        /// How far it is.
        progress: UploadProgress,
    },
    /// The transfer completed the OSS object.
    Finished {
        /// The mapping's index.
        disk: u32,
        /// What it found.
        done: UploadDone,
    },
    /// The transfer failed.
    Failed {
        /// The mapping's index.
        disk: u32,
        /// Why.
        failure: Failure,
        /// The upload id is gone (aborted): the next attempt starts from byte 0.
        restart: bool,
    },
}

impl UploadObserved {
    /// The disk it is about, unless `NotAsked`.
    pub fn disk(&self) -> Option<u32> {
        match self {
            Self::NotAsked => None,
            Self::Idle { disk }
            | Self::Running { disk, .. }
            | Self::Finished { disk, .. }
            | Self::Failed { disk, .. } => Some(*disk),
        }
    }
}

/// How far a running upload is: also its resume point, recorded in `status.upload`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadProgress {
    /// The OSS multipart upload.
    pub upload_id: String,
    /// Its part size, in bytes.
    pub part_size: u64,
    /// Parts 1 to `parts_done` are uploaded.
    pub parts_done: u32,
    /// `parts_done × part_size`.
    pub bytes_done: u64,
    /// The file's size, once known.
    pub bytes_total: Option<u64>,
    /// The current throughput.
    pub bytes_per_second: Option<u64>,
    /// The SHA-256 state after `bytes_done` (hex), for resuming.
    pub sha256_state: Option<String>,
    /// The source's `ETag` or `Last-Modified`, sent as `If-Range` on resuming.
    pub validator: Option<String>,
    /// Why the upload started over from byte 0 (the source has no `Range` support, or changed),
    /// reported once.
    pub restarted: Option<String>,
}

/// What a finished upload found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadDone {
    /// The file's size in bytes.
    pub size: u64,
    /// The file's SHA-256 (hex).
    pub sha256: String,
    /// The format its bytes show.
    pub format: Option<String>,
}
