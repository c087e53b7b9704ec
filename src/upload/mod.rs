//! Uploads: a disk image streamed from a URL (or a local file) into an OSS object as a multipart
//! upload, so `ImportImage` can find it.
//!
//! # What it does
//!
//! - Reads the source ([`source`]): `https`, or `http` only to loopback; every resolved address
//!   checked (loopback, private and link-local refused unless [`Settings`] allow them, the metadata
//!   services above all) and the connection pinned to it; redirects followed by hand, each hop
//!   checked, at most [`Settings::max_redirects`]; the job's headers sent (to the first URL's
//!   origin only), never logged; a size cap.
//! - Streams it into OSS ([`transfer`], [`oss`]): parts of [`Settings::part_size`], at most
//!   [`Settings::parts_in_flight`] part buffers at once (the one being filled included), so the
//!   memory a transfer adds is about their product; never to disk. Failed parts are retried with
//!   backoff. An optional bandwidth cap is shared by all transfers, and at most
//!   [`Settings::max_uploads`] transfers run at once.
//! - Checks integrity while streaming: the SHA-256 in source order, its state kept at every part
//!   boundary so a [`ResumePoint`] can carry it; the size and digest against what the job expects;
//!   the format its magic bytes show ([`format`]) against the declared one, before
//!   `CompleteMultipartUpload`. A mismatch aborts the multipart upload (its parts removed).
//! - Resumes: given a [`ResumePoint`], `ListParts` must show parts `1..=parts_done` of the same
//!   size, then the source is read from `bytes_done` with `Range` and `If-Range`; a source that
//!   ignores the range (or changed) makes the transfer start over, saying so in
//!   [`Progress::restarted`].
//! - Runs each job in a background task ([`Transfers`]), whose state the engine reads with
//!   [`Transfers::view`] when [`Transfers::wakes`] says something changed.
//!
//! # What it does not do
//!
//! It decides nothing: when to upload, resume, abort or delete is the controller's decision, which
//! records [`Progress`] in the resource's status (the only durable copy: this process keeps
//! nothing across a restart). It does not retry a failed transfer as a whole (the decision does,
//! with its backoff), does not read the headers Secret, does not import, and keeps no bytes on disk.

mod bandwidth;
mod checks;
pub mod error;
pub mod format;
pub mod oss;
pub mod source;
mod transfer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use secrecy::SecretString;
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinHandle;

pub use error::UploadError;
pub use oss::{abort, delete_object};

use crate::ecs::CredentialProvider;

/// How every transfer of the process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Bytes per part (OSS: at least 100 KiB, at most 5 GiB; at most 10,000 parts).
    pub part_size: u64,
    /// Part buffers per transfer at once, the one being filled included (at least 1).
    pub parts_in_flight: usize,
    /// Transfers running at once in the process; the others wait.
    pub max_uploads: usize,
    /// A bandwidth cap shared by all transfers (source bytes per second), if any.
    pub bytes_per_second: Option<u64>,
    /// The largest source accepted, in bytes.
    pub max_size: u64,
    /// Whether private and link-local addresses (RFC 1918, 100.64/10, fc00::/7, 169.254/16,
    /// fe80::/10, the metadata services) may be sources.
    pub allow_private_sources: bool,
    /// Whether loopback addresses may be sources (tests, `import -f`).
    pub allow_loopback_sources: bool,
    /// Redirects followed at most.
    pub max_redirects: usize,
    /// An OSS endpoint to use path-style (the emulator's URL); `None`: the region's public
    /// endpoint `https://oss-{region}.aliyuncs.com`, virtual-hosted style.
    pub oss_endpoint: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            part_size: 16 << 20,
            parts_in_flight: 4,
            max_uploads: 4,
            bytes_per_second: None,
            max_size: 1 << 40,
            allow_private_sources: false,
            allow_loopback_sources: false,
            max_redirects: 5,
            oss_endpoint: None,
        }
    }
}

/// Where the bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An `https` URL (or `http` to loopback).
    Url(String),
    /// A local file (`import -f` only).
    File(PathBuf),
}

/// Where an interrupted transfer carries on: what status recorded of its [`Progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The multipart upload.
    pub upload_id: String,
    /// The part size it was started with.
    pub part_size: u64,
    /// Parts `1..=parts_done` are uploaded.
    pub parts_done: u32,
    /// `parts_done × part_size`: where the source is read from.
    pub bytes_done: u64,
    /// The SHA-256 state after `bytes_done` bytes (hex of `sha2::Sha256`'s serialised state).
    pub sha256_state: Option<String>,
    /// The source's validator, sent as `If-Range`.
    pub validator: Option<String>,
}

/// One transfer to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// `namespace/name/disk`: one transfer per key at a time.
    pub key: String,
    /// The source.
    pub source: Source,
    /// Request headers for the source (values are secrets).
    pub headers: Vec<(String, SecretString)>,
    /// The SHA-256 the source must have (64 hex digits).
    pub expected_sha256: Option<String>,
    /// The size the source must have.
    pub expected_size: Option<u64>,
    /// The format the mapping declares (`qcow2`, `VHD`, `RAW`…), checked against the bytes.
    pub declared_format: Option<String>,
    /// The bucket's region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub object: String,
    /// Credentials for OSS.
    pub credentials: Arc<CredentialProvider>,
    /// Where to carry on, if a previous transfer recorded progress.
    pub resume: Option<ResumePoint>,
}

/// A running transfer's progress: what status records, and a [`ResumePoint`] once it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The multipart upload.
    pub upload_id: String,
    /// Its part size.
    pub part_size: u64,
    /// Parts `1..=parts_done` are uploaded (the contiguous prefix).
    pub parts_done: u32,
    /// `parts_done × part_size`.
    pub bytes_done: u64,
    /// The source's size, when known.
    pub bytes_total: Option<u64>,
    /// Source bytes per second read in this run so far.
    pub bytes_per_second: Option<u64>,
    /// The SHA-256 state after `bytes_done` bytes.
    pub sha256_state: Option<String>,
    /// The source's validator.
    pub validator: Option<String>,
    /// Why this run started over from byte 0, if it did.
    pub restarted: Option<String>,
}

impl Progress {
    /// Where a later transfer carries on.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            upload_id: self.upload_id.clone(),
            part_size: self.part_size,
            parts_done: self.parts_done,
            bytes_done: self.bytes_done,
            sha256_state: self.sha256_state.clone(),
            validator: self.validator.clone(),
        }
    }
}

/// A finished upload: the OSS object is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// The format its bytes show (`QCOW2`, `VHD`, `RAW`…).
    pub format: Option<String>,
    /// Why the run that finished started over from byte 0, if it did (as in [`Progress`]).
    pub restarted: Option<String>,
}

/// What a transfer is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Waiting for the global limit, or opening the source and the upload.
    Starting,
    /// Uploading.
    Running(Progress),
    /// The object is complete.
    Finished(Done),
    /// It failed.
    Failed {
        /// Why.
        error: UploadError,
        /// The multipart upload is gone (aborted): start from byte 0 next time.
        restart: bool,
        /// The last progress reported, if any (resume from it unless `restart`; its upload id
        /// says which upload was aborted when `restart`).
        progress: Option<Progress>,
    },
}

struct Entry {
    view: Arc<Mutex<View>>,
    task: Option<JoinHandle<()>>,
    /// What the transfer moves, from where to where ([`what_of`]).
    what: String,
}

/// What a job moves, from where to where: a job for the same key that says otherwise (its
/// mapping changed) replaces a running one.
fn what_of(job: &Job) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {} {} {}",
        job.source,
        job.expected_sha256,
        job.expected_size,
        job.declared_format,
        job.region,
        job.bucket,
        job.object
    )
}

/// The process's transfers: the global limit and the running jobs.
pub struct Transfers {
    settings: Settings,
    permits: Arc<Semaphore>,
    bandwidth: Option<Arc<transfer::Bandwidth>>,
    jobs: Mutex<HashMap<String, Entry>>,
    wakes: broadcast::Sender<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Transfers {
    /// One per process.
    pub fn new(settings: Settings) -> Arc<Self> {
        let (wakes, _) = broadcast::channel(1024);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(settings.max_uploads.max(1))),
            bandwidth: settings
                .bytes_per_second
                .map(|rate| Arc::new(transfer::Bandwidth::new(rate))),
            settings,
            jobs: Mutex::new(HashMap::new()),
            wakes,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Starts the job in the background; a no-op while a transfer of the same job (key, source
    /// and target) is starting or running. A finished or failed one not yet forgotten is
    /// replaced, and so is a running one of another source or target (its mapping changed; a
    /// multipart upload it began is left to the caller to abort).
    pub fn start(&self, job: Job) {
        let mut jobs = lock(&self.jobs);
        let what = what_of(&job);
        if let Some(entry) = jobs.get_mut(&job.key)
            && matches!(*lock(&entry.view), View::Starting | View::Running(_))
        {
            if entry.what == what {
                return;
            }
            if let Some(task) = entry.task.take() {
                task.abort();
            }
        }
        let view = Arc::new(Mutex::new(View::Starting));
        let reporter = transfer::Reporter {
            key: job.key.clone(),
            view: view.clone(),
            wakes: self.wakes.clone(),
        };
        let permits = self.permits.clone();
        let settings = self.settings.clone();
        let bandwidth = self.bandwidth.clone();
        let key = job.key.clone();
        let task = tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let outcome = transfer::run(&job, &settings, bandwidth.as_deref(), &reporter).await;
            reporter.finish(outcome);
        });
        jobs.insert(
            key,
            Entry {
                view,
                task: Some(task),
                what,
            },
        );
    }

    /// What the transfer of `key` is doing, if one is known.
    pub fn view(&self, key: &str) -> Option<View> {
        lock(&self.jobs)
            .get(key)
            .map(|entry| lock(&entry.view).clone())
    }

    /// Forgets a finished or failed transfer (once the decision recorded it); a running one is
    /// left alone (use [`Self::stop`]).
    pub fn forget(&self, key: &str) {
        let mut jobs = lock(&self.jobs);
        if let Some(entry) = jobs.get(key)
            && !matches!(*lock(&entry.view), View::Starting | View::Running(_))
        {
            jobs.remove(key);
        }
    }

    /// Cancels the transfer of `key` and waits for it to end; its multipart upload stays (abort
    /// it with [`abort`], or resume it from the last [`Progress`]). Returns the transfer's last
    /// view, as of its end: the progress to record for a later resume.
    pub async fn stop(&self, key: &str) -> Option<View> {
        let mut entry = lock(&self.jobs).remove(key)?;
        if let Some(task) = entry.task.take() {
            task.abort();
            let _ = task.await;
        }
        let view = lock(&entry.view).clone();
        Some(view)
    }

    /// Keys whose transfer changed: a part completed, it finished or failed. Lagging receivers
    /// lose keys, so read every view after a lag.
    pub fn wakes(&self) -> broadcast::Receiver<String> {
        self.wakes.subscribe()
    }

    /// Keys of transfers starting or running.
    pub fn running(&self) -> Vec<String> {
        lock(&self.jobs)
            .iter()
            .filter(|(_, entry)| matches!(*lock(&entry.view), View::Starting | View::Running(_)))
            .map(|(key, _)| key.clone())
            .collect()
    }
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("settings", self.settings())
            .field("running", &self.running().len())
            .finish_non_exhaustive()
    }
}
