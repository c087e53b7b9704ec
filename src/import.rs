//! `ecs-image-operator import -f FILE`: the operator's engine run once, outside Kubernetes, on an
//! `ImageImport` manifest: the same life-cycle engine as the controller (`controller::engine`),
//! with a progress bar. `--emulator` runs it against an in-process emulator, to try a spec with no cloud
//! account and no cluster.

use std::convert::Infallible;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;

use crate::api::conditions::{self, types};
use crate::api::distribution::Distribution;
use crate::api::image_import::{ImageImport, ImageImportStatus, Phase};
use crate::controller::decision::{CopyObserved, EcsAction, Lookup, Plan, Timing};
use crate::controller::engine::source::describe_image;
use crate::controller::engine::{self, Blocked, Identity, Latest, Shell, failure_from};
use crate::controller::port::EcsPort;
use crate::ecs::client::random_hex;
use crate::ecs::{CredentialProvider, Credentials, EcsClient, EcsError};
use crate::emulator::world::{AccountPatch, OssObject};
use crate::emulator::{AccessKey, Emulator, EmulatorConfig, EmulatorHandle};

/// Options of a one-shot import.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The `ImageImport` manifest (YAML); `-` reads standard input.
    #[arg(short = 'f', long = "filename", env = "ECS_IMAGE_OPERATOR_IMPORT_FILE")]
    pub file: PathBuf,
    /// Import into an in-process ECS emulator instead of Alibaba Cloud: the OSS objects the spec
    /// names are created in it, and the import takes seconds.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_IMPORT_EMULATOR")]
    pub emulator: bool,
    /// Emulated seconds per real second with `--emulator` (the emulated import takes 2 minutes).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_IMPORT_TIME_SCALE",
        default_value_t = 40.0
    )]
    pub time_scale: f64,
    /// Seconds between looks at a running import.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_IMPORT_POLL_INTERVAL",
        default_value_t = 10
    )]
    pub poll_interval_seconds: u64,
    /// Give up after this many seconds (the import goes on in ECS).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_IMPORT_TIMEOUT",
        default_value_t = 7200
    )]
    pub timeout_seconds: u64,
    /// On Ctrl-C, leave the running import task alone instead of cancelling it (the next run of
    /// the same manifest follows it).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_IMPORT_KEEP_ON_INTERRUPT")]
    pub keep_on_interrupt: bool,
    /// The identity of this import: its `ClientToken` and the UID tag of its image. By default it
    /// is derived from the manifest's namespace and name, so running the same manifest again
    /// finds the image the first run made (or follows its running import) instead of starting
    /// another; give another `--id` to import the same manifest a second time on purpose.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_IMPORT_ID")]
    pub id: Option<String>,
    /// How sources (`source.url`, `source.file`) are uploaded into OSS; with `--emulator`, into
    /// the emulator's OSS. Loopback sources are allowed here.
    #[command(flatten)]
    pub uploads: crate::cli::UploadArgs,
    /// Where ECS, STS and the metadata service are (ignored with `--emulator`); credentials come
    /// from the environment, as for `run`.
    #[command(flatten)]
    pub endpoints: crate::cli::EndpointArgs,
    /// The ECS attempt timeout and attempts per call (also with `--emulator`).
    #[command(flatten)]
    pub attempts: crate::cli::AttemptArgs,
}

/// Why a one-shot import could not run (what ECS says about the import is not an error here: it
/// ends in the printed status and the exit code).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The manifest could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not an ImageImport.
    #[error("{path} is not an ImageImport manifest: {detail}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// ECS could not be set up (endpoint, credentials).
    #[error(transparent)]
    Ecs(#[from] EcsError),
    /// The in-process emulator could not start.
    #[error("failed to start the emulator: {0}")]
    Emulator(String),
}

impl ImportArgs {
    /// Runs the import to its end and prints the final status as YAML on standard output.
    pub async fn run(self) -> Result<ExitCode, ImportError> {
        crate::ecs::ensure_tls_provider();
        let mut object = self.read_manifest()?;
        let namespace = object
            .metadata
            .namespace
            .get_or_insert_with(|| "default".into())
            .clone();
        // Outside Kubernetes the resource has no UID: a stable one, so a second run asks ECS for
        // the same import (and finds its image by the UID tag).
        let name = object.metadata.name.clone().unwrap_or_default();
        let identity = self
            .id
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{name}"));
        object.metadata.uid = Some(stable_uid(&identity));
        object.metadata.generation.get_or_insert(1);
        // As if a status had been written before: the engine first looks for an image carrying
        // the UID tag, which is what makes a re-run find the first run's image.
        object.status.get_or_insert_with(|| ImageImportStatus {
            phase: Some(Phase::Pending),
            ..ImageImportStatus::default()
        });

        let (client, credentials, emulator) = if self.emulator {
            let (handle, credentials) = start_emulator(&object, self.time_scale).await?;
            let config = self.attempts.apply(crate::ecs::ClientConfig {
                endpoint: crate::ecs::endpoint::EcsEndpoint::override_url(&handle.url())
                    .map_err(EcsError::Endpoint)?,
                rate_limit: None,
                ..crate::ecs::ClientConfig::default()
            });
            tracing::info!(url = %handle.url(), time_scale = self.time_scale, "emulator started");
            (EcsClient::new(config)?, credentials, Some(handle))
        } else {
            let args = crate::cli::EcsArgs {
                region: object.spec.region_id.clone(),
                endpoints: self.endpoints.clone(),
                rate_limit: crate::ecs::client::DEFAULT_RATE_LIMIT,
                timeout_seconds: self.attempts.ecs_timeout_seconds,
                max_attempts: self.attempts.ecs_max_attempts,
                output: None,
            };
            (
                EcsClient::new(args.client_config()?)?,
                args.credentials()?,
                None,
            )
        };
        let poll = if self.emulator {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(self.poll_interval_seconds.max(1))
        };
        let mut uploads = self.uploads.settings();
        uploads.allow_loopback_sources = true;
        if let Some(handle) = &emulator {
            uploads.oss_endpoint = Some(handle.url());
        }
        let transfers = crate::upload::Transfers::new(uploads);
        let credentials = Arc::new(credentials);
        let (mut status, ending) = follow(
            &client,
            &object,
            Arc::clone(&credentials),
            &transfers,
            poll,
            Duration::from_secs(self.timeout_seconds),
        )
        .await;
        let region = object.spec.region_id.as_str();
        let running = status
            .import_task_id
            .clone()
            .filter(|_| status.phase == Some(Phase::Importing));
        // Ctrl-C cancels what it started, unless asked not to.
        let cancelled = match (ending, running, self.keep_on_interrupt) {
            (Ending::Interrupted, Some(task), false) => Some(
                client
                    .cancel(&credentials, region, &task)
                    .await
                    .map(|_| ())
                    .map_err(|error| crate::explain::explain(&error)),
            ),
            _ => None,
        };
        for running in transfers.running() {
            transfers.stop(&running).await;
        }
        if let Some(handle) = emulator {
            handle.shutdown().await;
        }
        one_shot_message(&mut status);
        for line in ending_lines(&status, ending, region, cancelled) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        let yaml = serde_saphyr::to_string(&printed(&status, region))
            .unwrap_or_else(|error| format!("# cannot print the status: {error}\n"));
        print!("{yaml}");
        Ok(match ending {
            Ending::Interrupted => ExitCode::from(130),
            _ if status.phase == Some(Phase::Available) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        })
    }

    fn read_manifest(&self) -> Result<ImageImport, ImportError> {
        let read = |source| ImportError::Read {
            path: self.file.clone(),
            source,
        };
        let text = if self.file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).map_err(read)?
        } else {
            std::fs::read_to_string(&self.file).map_err(read)?
        };
        let object: ImageImport =
            serde_saphyr::from_str(&text).map_err(|error| ImportError::Manifest {
                path: self.file.clone(),
                detail: error.to_string(),
            })?;
        if object.spec.disk_device_mappings.is_empty() {
            return Err(ImportError::Manifest {
                path: self.file.clone(),
                detail: "spec.diskDeviceMappings needs at least one disk".into(),
            });
        }
        Ok(object)
    }
}

/// An emulator whose world holds every object the spec names, and a key for it.
async fn start_emulator(
    object: &ImageImport,
    time_scale: f64,
) -> Result<(EmulatorHandle, CredentialProvider), ImportError> {
    let id = format!("LTAI{}", random_hex(20));
    let secret = random_hex(30);
    let objects = object
        .spec
        .disk_device_mappings
        .iter()
        // A mapping with a source gets its object from the upload.
        .filter(|disk| disk.source.is_none())
        .map(|disk| {
            serde_json::from_value::<OssObject>(serde_json::json!({
                "bucket": disk.oss_bucket,
                "key": disk.oss_object,
                "region": object.spec.region_id,
                // A 2 GiB file: a 2-minute import for the emulated clock.
                "size": 2u64 << 30,
                "virtual_size_gib": disk.disk_image_size.unwrap_or(20),
                "format": disk.format.map_or("RAW", |f| f.as_str()),
            }))
            .map_err(|error| ImportError::Emulator(error.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = EmulatorConfig {
        keys: vec![AccessKey::new(id.clone(), secret.clone())],
        objects,
        time_scale,
        ..EmulatorConfig::default()
    };
    let handle = Emulator::start(config)
        .await
        .map_err(|error| ImportError::Emulator(error.to_string()))?;
    // The buckets sources are uploaded into exist in the emulated cloud.
    for disk in object
        .spec
        .disk_device_mappings
        .iter()
        .filter(|d| d.source.is_some())
    {
        handle.add_bucket(crate::emulator::BucketDef {
            name: disk.oss_bucket.clone(),
            region: object.spec.region_id.clone(),
            account: None,
        });
    }
    // The accounts the spec shares with exist in the emulated cloud.
    for account in object.spec.distribution.iter().flat_map(|d| d.accounts()) {
        handle.patch_account(&account, AccountPatch::default());
    }
    Ok((
        handle,
        CredentialProvider::fixed(Credentials::new(id, secret)),
    ))
}

/// Consecutive failed passes after which a one-shot import gives up.
const GIVE_UP_AFTER: u32 = 5;

/// Drives one import with the operator's engine until it is available, failed or stalled.
async fn follow<P: EcsPort>(
    ecs: &P,
    object: &ImageImport,
    credentials: Arc<CredentialProvider>,
    transfers: &crate::upload::Transfers,
    poll: Duration,
    timeout: Duration,
) -> (ImageImportStatus, Ending) {
    let shell = OneShot {
        ecs,
        credentials,
        account: tokio::sync::OnceCell::new(),
        timing: Timing {
            poll_interval: poll,
            watchdog: poll,
            ..Timing::default()
        },
        failures: AtomicU32::new(0),
        bar: Mutex::new(ProgressBar::new()),
        imported: AtomicBool::new(false),
        found: Mutex::new(None),
        transfers,
    };
    let mut object = object.clone();
    let started = Instant::now();
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let stepped = tokio::select! {
            stepped = engine::step(&shell, &object) => stepped,
            _ = &mut interrupt => {
                let status = object.status.clone().unwrap_or_default();
                shell.bar().finish(&status);
                return (status, Ending::Interrupted);
            }
        };
        let Ok(plan) = stepped;
        let status = plan.status;
        let done = matches!(status.phase, Some(Phase::Available | Phase::Failed))
            && !conditions::is_true(&status.conditions, types::RECONCILING);
        let gave_up = shell.failures.load(Ordering::Relaxed) > GIVE_UP_AFTER;
        let ending = if done || stalled(&status) {
            Some(Ending::Done)
        } else if gave_up {
            Some(Ending::GaveUp)
        } else if started.elapsed() > timeout {
            Some(Ending::TimedOut(timeout))
        } else {
            None
        };
        if let Some(ending) = ending {
            let mut bar = shell.bar();
            bar.finish(&status);
            if let Some(line) = shell.earlier_run(&object.spec.region_id, &status) {
                bar.say(&line);
            }
            return (status, ending);
        }
        // A failure waits out its backoff; otherwise look again every poll.
        let wait = plan.requeue.filter(|_| plan.failed).unwrap_or(poll);
        object.status = Some(status);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = &mut interrupt => {
                let status = object.status.clone().unwrap_or_default();
                shell.bar().finish(&status);
                return (status, Ending::Interrupted);
            }
        }
    }
}

/// What the run prints on standard output: the image and its region first, when there is one,
/// then the status without the conditions that only say something is not the case (`Stalled` or
/// `Reconciling` False): `Ready` always stays, the others only while True.
fn printed(status: &ImageImportStatus, region: &str) -> serde_json::Value {
    let mut shown = status.clone();
    shown
        .conditions
        .retain(|c| c.status == "True" || c.type_ == types::READY);
    let mut printed = serde_json::Map::new();
    if let Some(image) = &status.image_id {
        printed.insert(
            "image".into(),
            serde_json::json!({ "id": image, "region": region }),
        );
    }
    printed.insert(
        "status".into(),
        serde_json::to_value(&shown).unwrap_or_default(),
    );
    serde_json::Value::Object(printed)
}

/// Why a one-shot import stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Available, failed or stalled: ECS had the last word.
    Done,
    /// Failures kept coming (`GIVE_UP_AFTER` in a row).
    GaveUp,
    /// `--timeout-seconds` ran out.
    TimedOut(Duration),
    /// Ctrl-C (SIGINT).
    Interrupted,
}

/// The status a one-shot run prints: its message says what a person can do now, never that
/// something will be retried (the command has ended).
fn one_shot_message(status: &mut ImageImportStatus) {
    let Some(message) = status.message.as_mut() else {
        return;
    };
    let mut text = message.clone();
    for promise in ["; fix the spec or the credentials Secret", " (retrying)"] {
        text = text.replace(promise, "");
    }
    if let Some(at) = text.find("; retrying every ") {
        let rest = &text[at + 2..];
        let end = rest.find(';').map_or(text.len(), |i| at + 2 + i);
        text.replace_range(at..end, "");
    }
    *message = text;
}

/// What to say after the bar when the run did not end in `Available`, and the exit code.
fn ending_lines(
    status: &ImageImportStatus,
    ending: Ending,
    region: &str,
    cancelled: Option<Result<(), String>>,
) -> Vec<String> {
    let task = status.import_task_id.as_deref();
    let running = task.filter(|_| status.phase == Some(Phase::Importing));
    let cancel_hint = |task: &str| {
        format!("cancel it with: ecs-image-operator ecs cancel-task {task} --region {region}")
    };
    let error = status
        .last_error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message));
    match ending {
        Ending::Done if status.phase == Some(Phase::Available) => Vec::new(),
        Ending::Done => vec![format!(
            "refused: {}; change the manifest (or the credentials) and run again",
            error.unwrap_or_else(|| "the import did not succeed".into())
        )],
        Ending::GaveUp => {
            let mut line = format!(
                "gave up after {} failed attempts in a row: {}",
                GIVE_UP_AFTER + 1,
                error.unwrap_or_else(|| "unknown error".into())
            );
            if let Some(task) = running {
                line.push_str(&format!("; import task {task} is still running in ECS: run the same command again to follow it, or {}", cancel_hint(task)));
            }
            vec![line]
        }
        Ending::TimedOut(after) => vec![match running {
            Some(task) => format!(
                "stopped waiting after {}s; import task {task} is still running in ECS ({region}): run the same command again to follow it, or {}",
                after.as_secs(),
                cancel_hint(task)
            ),
            None => format!(
                "stopped waiting after {}s; nothing is running in ECS",
                after.as_secs()
            ),
        }],
        Ending::Interrupted => vec![match (running, cancelled) {
            (Some(task), Some(Ok(()))) => {
                format!("interrupted: cancelled import task {task} in {region}")
            }
            (Some(task), Some(Err(why))) => format!(
                "interrupted: cancelling import task {task} failed ({why}); {}",
                cancel_hint(task)
            ),
            (Some(task), None) => format!(
                "interrupted: import task {task} keeps running (--keep-on-interrupt): run the same command again to follow it, or {}",
                cancel_hint(task)
            ),
            (None, _) if status.phase == Some(Phase::Uploading) => {
                "interrupted: the upload stopped; nothing was imported".to_string()
            }
            (None, _) => "interrupted: no import task was running".to_string(),
        }],
    }
}

fn stalled(status: &ImageImportStatus) -> bool {
    conditions::is_true(&status.conditions, types::STALLED)
}

/// The one-shot import as the engine's shell: fixed credentials, the image looked at directly
/// (no poller), status kept in memory and shown on the progress bar.
struct OneShot<'a, P> {
    ecs: &'a P,
    credentials: Arc<CredentialProvider>,
    account: tokio::sync::OnceCell<String>,
    timing: Timing,
    failures: AtomicU32,
    bar: Mutex<ProgressBar>,
    /// This run asked ECS for the import.
    imported: AtomicBool,
    /// The phase of the image an earlier run made, when this run found one by its UID tag.
    found: Mutex<Option<Phase>>,
    /// Where the sources are uploaded.
    transfers: &'a crate::upload::Transfers,
}

impl<P> OneShot<'_, P> {
    fn bar(&self) -> std::sync::MutexGuard<'_, ProgressBar> {
        self.bar.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What to say when an earlier run of the same import made the image: it was already
    /// there, or this run followed the import that run had started.
    fn earlier_run(&self, region: &str, status: &ImageImportStatus) -> Option<String> {
        let found = *self.found.lock().unwrap_or_else(PoisonError::into_inner);
        let image = status.image_id.as_deref()?;
        Some(match found? {
            Phase::Available => format!(
                "already imported: image {image} in {region} (found by its UID tag); no import was started"
            ),
            _ => format!(
                "resumed: followed the import of image {image} in {region} that an earlier run started (task {})",
                status.import_task_id.as_deref().unwrap_or("unknown")
            ),
        })
    }
}

impl<P: EcsPort> Shell for OneShot<'_, P> {
    type Port = P;
    type Error = Infallible;

    fn port(&self) -> &P {
        self.ecs
    }

    fn timing(&self) -> &Timing {
        &self.timing
    }

    fn failures(&self, _object: &ImageImport) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    async fn identity(&self, _object: &ImageImport) -> Result<Identity, Blocked> {
        let account = self
            .account
            .get_or_try_init(|| self.ecs.account_id(&self.credentials))
            .await
            .map_err(|error| Blocked {
                failure: failure_from(&error),
                version: None,
            })?;
        Ok(Identity {
            credentials: Arc::clone(&self.credentials),
            version: None,
            account: account.clone(),
        })
    }

    async fn latest(
        &self,
        object: &ImageImport,
        identity: &Identity,
        status: &ImageImportStatus,
    ) -> Latest {
        let credentials = &identity.credentials;
        let look = |region: String, image_id: String| async move {
            describe_image(self.ecs, credentials, &region, &image_id)
                .await
                .unwrap_or_else(|error| Lookup::Failed(failure_from(&error)))
        };
        let source = match &status.image_id {
            Some(image_id) => look(object.spec.region_id.clone(), image_id.clone()).await,
            None => Lookup::NotAsked,
        };
        let mut copies = Vec::new();
        for copy in status
            .copies
            .iter()
            .filter(|c| Distribution::wants(object.spec.distribution.as_ref(), &c.region_id))
        {
            if let Some(image_id) = &copy.image_id {
                copies.push(CopyObserved {
                    region_id: copy.region_id.clone(),
                    image: look(copy.region_id.clone(), image_id.clone()).await,
                });
            }
        }
        Latest { source, copies }
    }

    async fn patiently<T: Send>(
        &self,
        _object: &ImageImport,
        _base: &ImageImportStatus,
        _action: &'static str,
        work: impl Future<Output = T> + Send,
    ) -> (T, bool) {
        (work.await, false)
    }

    async fn record(
        &self,
        _object: &ImageImport,
        _stored: Option<&ImageImportStatus>,
        plan: &Plan,
    ) -> Result<(), Infallible> {
        if plan.steps.contains(&EcsAction::Import) {
            self.imported.store(true, Ordering::Relaxed);
        }
        if !self.imported.load(Ordering::Relaxed) && plan.status.image_id.is_some() {
            let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
            found.get_or_insert(plan.status.phase.unwrap_or(Phase::Importing));
        }
        self.bar().show(&plan.status);
        Ok(())
    }

    fn transfers(&self) -> Option<&crate::upload::Transfers> {
        Some(self.transfers)
    }

    fn local_files(&self) -> bool {
        true
    }

    async fn source_headers(
        &self,
        _object: &ImageImport,
        name: &str,
    ) -> Result<Vec<(String, secrecy::SecretString)>, crate::controller::decision::Failure> {
        Err(crate::controller::decision::Failure::minted(
            "SourceHeadersSecretNotFound",
            format!(
                "import -f reads no Secrets, so the headers Secret {name} cannot be had: \
                 download the file and name it in source.file"
            ),
        ))
    }

    async fn settle(&self, _object: &ImageImport, _identity: Option<&Identity>, plan: &Plan) {
        if plan.failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures.store(0, Ordering::Relaxed);
        }
    }
}

/// A one-line progress bar on standard error; plain lines when it is not a terminal.
struct ProgressBar {
    terminal: bool,
    last: Option<String>,
}

impl ProgressBar {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn line(status: &ImageImportStatus) -> String {
        // The bar speaks for the one-shot run: no retry promises either.
        let mut status = status.clone();
        one_shot_message(&mut status);
        let status = &status;
        let percent = usize::from(percent(status));
        let filled = percent / 5;
        format!(
            "[{}{}] {percent:>3}% {}: {}",
            "#".repeat(filled),
            " ".repeat(20 - filled),
            status.phase.map_or("Starting", Phase::as_str),
            status.message.as_deref().unwrap_or("")
        )
    }

    fn show(&mut self, status: &ImageImportStatus) {
        let line = Self::line(status);
        if self.last.as_deref() == Some(line.as_str()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.last = Some(line);
    }

    /// A line of its own under the bar.
    fn say(&mut self, line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn finish(&mut self, status: &ImageImportStatus) {
        self.show(status);
        if self.terminal {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

/// The progress to draw: the import's, then, once the image is available, that of its copies
/// (their mean, a finished copy counting 100).
fn percent(status: &ImageImportStatus) -> u8 {
    let source = status.progress.unwrap_or(0).min(100);
    let copying = status.phase == Some(Phase::Available) && !status.copies.is_empty();
    if !copying {
        return source;
    }
    let sum: usize = status
        .copies
        .iter()
        .map(|copy| match copy.phase {
            Some(Phase::Available) => 100,
            _ => usize::from(copy.progress.unwrap_or(0).min(100)),
        })
        .sum();
    u8::try_from(sum / status.copies.len()).unwrap_or(100)
}

/// The UID of a one-shot import known by `identity`: a UUID from its SHA-256, the same on every
/// run and every machine.
fn stable_uid(identity: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("ecs-image-operator import {identity}").as_bytes());
    uuid_like(&hex::encode(digest))
}

/// Formats 32 hex digits as a UUID, the shape of a Kubernetes UID.
fn uuid_like(hex: &str) -> String {
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or("0");
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}
