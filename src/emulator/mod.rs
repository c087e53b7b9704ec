//! `ecs-image-operator emulator`: an offline ECS endpoint on loopback, for tests, benchmarks, demos
//! and users' own CI.
//!
//! # What is emulated
//!
//! - The RPC endpoint on `/`: GET or POST, parameters from the query, a form body, or both; JSON
//!   (`Format=JSON`, and every V3 request) or XML (`Format=XML`, the V1 default).
//! - Authentication: signature V1 (HMAC-SHA1, canonicalized from the decoded parameters, so
//!   `+`-for-space on the wire and the Python SDK's empty `SignatureType=` verify) and V3
//!   (`ACS3-HMAC-SHA256` with the `SignedHeaders` the client chose, which must cover every
//!   `x-acs-*` header sent, as every SDK's do); unknown keys, incomplete signatures, ±15-minute
//!   clock skew, nonce replay, and STS security tokens (missing, malformed, belonging to another
//!   key, expired).
//! - `ImportImage`, `DescribeTasks`, `DescribeTaskAttribute`, `CancelTask`, `DescribeImages`,
//!   `DeleteImage`, `ModifyImageAttribute`, `TagResources`, `UntagResources`, `DescribeRegions`,
//!   with the parameter checks and error codes of the ECS docs and the original `ImportImage` page;
//!   `ClientToken` idempotency; `DryRun` (answered `DryRunOperation`, HTTP 400).
//! - A world of regions (some without import support), OSS objects (loaded from YAML, added at run
//!   time), accounts (import role, image and snapshot quotas, an account status that can forbid
//!   import), images and tasks.
//! - The import life cycle, computed from timestamps: task `Processing` with rising progress and
//!   image `Creating`, then `Finished`/`Available`, or `Failed`/`CreateFailed` (wrong format,
//!   injected failures). Emulated time runs `--time-scale` times faster than real time and can be
//!   advanced over the admin API.
//! - `CancelTask` of a running import: the task becomes `Cancelled` (ECS's spelling is
//!   unconfirmed; the client reads it as terminal) and the image `CreateFailed`, kept until
//!   `DeleteImage`, so a cancelling caller still has to delete it, as with a failed import.
//! - Faults: throttling, 500/503, latency and dropped connections per action, seedable.
//! - An OSS endpoint on the same port, path-style (`/bucket/key`), OSS signature V4: buckets per
//!   region, simple and multipart uploads, HEAD and DELETE, OSS's XML errors, faults; an object
//!   uploaded there is one `ImportImage` finds, its format read from its bytes. See [`oss`].
//! - An admin API under `/_emulator/` (no signature, no faults): stats, reset, objects, keys,
//!   accounts, faults, images, tasks and time.
//!
//! # What is not
//!
//! Instances, snapshots as resources, system/shared/marketplace images (`DescribeImages` only
//! ever finds the account's own custom images), image export and copy, CloudBox, image checks
//! (`DetectionStrategy` is validated, not run), RAM policies beyond the import role, real OSS
//! reads, per-region quotas, and HTTPS (the emulator binds to loopback; clients must allow plain
//! http there, as the project's client does).
//!
//! Bucket in another region: `InvalidOSSBucket.NotMatched` (a bucket that exists nowhere is
//! `InvalidOSSBucket.NotFound`).

pub mod actions;
pub mod admin;
pub mod auth;
pub mod config;
pub mod faults;
pub mod oss;
pub mod render;
pub mod server;
pub mod stats;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

pub use auth::AccessKey;
pub use config::{EmulatorArgs, EmulatorConfig};
pub use faults::{FaultSettings, FaultSpec};
pub use stats::StatsSnapshot;
pub use world::{AccountPatch, AccountSettings, AccountStatus, BucketDef, OssObject, RegionDef};

/// The error of the emulator layer.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listener could not be set up.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback address without `--allow-remote`.
    #[error(
        "refusing to listen on {0}: the emulator accepts any request signed with its test keys, \
         so it binds to loopback only unless --allow-remote is given"
    )]
    RemoteBind(SocketAddr),
    /// A file named on the command line could not be read.
    #[error("failed to read {path}")]
    ReadFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The objects file is not valid.
    #[error("failed to parse the world file {path}")]
    ParseWorld {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The configuration is unusable.
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    /// A fault closed a connection without an answer (hyper drops a connection whose service
    /// fails, which is exactly the fault).
    #[error("connection dropped by fault injection")]
    ConnectionDropped,
    /// Waiting for Ctrl-C failed.
    #[error("failed to wait for the shutdown signal")]
    Signal(#[source] std::io::Error),
}

/// Emulated time: real time sped up by a factor, plus explicit jumps.
#[derive(Debug)]
pub struct SimClock {
    origin_real: Instant,
    origin: Timestamp,
    scale: f64,
    advanced_ms: AtomicI64,
}

impl SimClock {
    /// A clock starting now, running `scale` times faster than real time.
    pub fn new(scale: f64) -> Self {
        Self {
            origin_real: Instant::now(),
            origin: Timestamp::now(),
            scale: if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            },
            advanced_ms: AtomicI64::new(0),
        }
    }

    /// The emulated instant.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.origin_real.elapsed().as_secs_f64() * self.scale;
        let advanced = SignedDuration::from_millis(self.advanced_ms.load(Ordering::Relaxed));
        self.origin
            .checked_add(SignedDuration::from_secs_f64(elapsed) + advanced)
            .unwrap_or(self.origin)
    }

    /// Jumps emulated time forward.
    pub fn advance(&self, by: SignedDuration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.advanced_ms.fetch_add(millis, Ordering::Relaxed);
    }

    /// The speed factor.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

/// Starts emulators.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds the listener and serves until [`EmulatorHandle::shutdown`].
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        server::start(config).await
    }
}

/// A running emulator. Dropping it without [`Self::shutdown`] leaves it serving until the
/// runtime ends.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EmulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ECS endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin API root, e.g. `http://127.0.0.1:40123/_emulator`.
    pub fn admin_url(&self) -> String {
        format!("http://{}{}", self.addr, admin::PREFIX)
    }

    /// Adds or replaces an OSS object.
    pub fn add_object(&self, object: OssObject) {
        self.shared.with_world(|world| world.add_object(object));
    }

    /// Adds or replaces an OSS bucket.
    pub fn add_bucket(&self, bucket: BucketDef) {
        self.shared.with_world(|world| world.add_bucket(bucket));
    }

    /// What the OSS endpoint kept of an object uploaded through it (size, digests, format).
    pub fn oss_object(&self, bucket: &str, key: &str) -> Option<oss::ObjectMeta> {
        self.shared
            .oss
            .lock()
            .ok()
            .and_then(|store| store.object(bucket, key).cloned())
    }

    /// Multipart uploads neither completed nor aborted.
    pub fn oss_uploads(&self) -> usize {
        self.shared
            .oss
            .lock()
            .map_or(0, |store| store.upload_count())
    }

    /// An object of the world (the world file's, or one uploaded), as `ImportImage` sees it.
    pub fn object(&self, bucket: &str, key: &str) -> Option<OssObject> {
        self.shared
            .with_world(|world| world.object(bucket, key).cloned())
            .flatten()
    }

    /// Adds or replaces an AccessKey (its account exists from then on).
    pub fn add_key(&self, key: AccessKey) {
        self.shared
            .with_world(|world| world.add_account(&key.account));
        self.shared.verifier.add_key(key);
    }

    /// Changes an account's settings.
    pub fn patch_account(&self, account: &str, patch: AccountPatch) -> Option<AccountSettings> {
        self.shared
            .with_world(|world| world.patch_account(account, patch))
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, settings: FaultSettings) {
        self.shared.faults.set(settings);
    }

    /// Makes this share of new imports fail with `ImportImageFailed`.
    pub fn set_import_failure_rate(&self, rate: f64) {
        self.shared
            .with_world(|world| world.set_import_failure_rate(rate));
    }

    /// Jumps emulated time forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.shared
            .clock
            .advance(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX));
    }

    /// The emulated instant.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Counters and the import log.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats_snapshot()
    }

    /// Zeroes the counters and forgets images, tasks, tokens and nonces.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections, closes idle ones and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
