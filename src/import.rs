//! `ecs-image-operator import -f FILE`: the operator's engine run once, outside Kubernetes, on an
//! `ImageImport` manifest: the same pure decision and the same ECS calls as the controller, with a
//! progress bar. `--emulator` runs it against an in-process emulator, to try a spec with no cloud
//! account and no cluster.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use jiff::Timestamp;

use crate::api::conditions::{self, types};
use crate::api::image_import::{ImageImport, ImageImportStatus, Phase};
use crate::controller::decision::{self, Lookup, Observed, Timing};
use crate::controller::lifecycle::{
    act, decision_resource, describe_image, describe_task, failure_from,
};
use crate::controller::port::EcsPort;
use crate::ecs::client::random_hex;
use crate::ecs::{CredentialProvider, Credentials, EcsClient, EcsError};
use crate::emulator::world::OssObject;
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
        // Outside Kubernetes the resource has no UID: a fresh one gives a fresh ClientToken.
        object
            .metadata
            .uid
            .get_or_insert_with(|| uuid_like(&random_hex(32)));
        object
            .metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        object.metadata.generation.get_or_insert(1);

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
        let status = follow(
            &client,
            &object,
            &credentials,
            poll,
            Duration::from_secs(self.timeout_seconds),
        )
        .await;
        if let Some(handle) = emulator {
            handle.shutdown().await;
        }
        let yaml = serde_saphyr::to_string(&serde_json::json!({ "status": status }))
            .unwrap_or_else(|error| format!("# cannot print the status: {error}\n"));
        print!("{yaml}");
        let available = status.phase == Some(Phase::Available);
        Ok(if available {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
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
    Ok((
        handle,
        CredentialProvider::fixed(Credentials::new(id, secret)),
    ))
}

/// Drives one import with the controller's decision until it is available, failed or stalled.
async fn follow<P: EcsPort>(
    ecs: &P,
    object: &ImageImport,
    credentials: &CredentialProvider,
    poll: Duration,
    timeout: Duration,
) -> ImageImportStatus {
    let timing = Timing {
        poll_interval: poll,
        watchdog: poll,
        ..Timing::default()
    };
    let region = object.spec.region_id.clone();
    let started = Instant::now();
    let mut bar = ProgressBar::new();
    let mut status = ImageImportStatus::default();
    let mut failures = 0u32;
    loop {
        let resource = decision_resource(object, &status, None, None);
        let observed = match observe(ecs, &region, &status, credentials).await {
            Ok(observed) => observed,
            Err(error) => {
                failures += 1;
                let decided = decision::after_failure(
                    &resource,
                    &status,
                    &failure_from(&error),
                    failures,
                    &timing,
                    Timestamp::now(),
                );
                status = decided.status;
                if stalled(&status) || failures > 5 {
                    bar.finish(&status);
                    return status;
                }
                tokio::time::sleep(decided.requeue.unwrap_or(poll)).await;
                continue;
            }
        };
        let decided = decision::apply(&resource, &observed, &timing, Timestamp::now());
        // `decision::apply` never cancels or deletes: a one-shot import leaves ECS as it found it,
        // but for its own import.
        let acting = decision::Resource {
            status: &decided.status,
            ..resource
        };
        let outcome = act(ecs, &acting, &decided.action, credentials).await;
        status = match outcome {
            Ok(Some(accepted)) => {
                decision::after_import(
                    &resource,
                    &decided.status,
                    &accepted.image_id,
                    &accepted.task_id,
                    &timing,
                    Timestamp::now(),
                )
                .status
            }
            Ok(None) => decided.status,
            Err(error) => {
                failures += 1;
                decision::after_failure(
                    &resource,
                    &decided.status,
                    &failure_from(&error),
                    failures,
                    &timing,
                    Timestamp::now(),
                )
                .status
            }
        };
        bar.show(&status);
        let done = matches!(status.phase, Some(Phase::Available | Phase::Failed))
            && !conditions::is_true(&status.conditions, types::RECONCILING);
        if done || stalled(&status) || started.elapsed() > timeout {
            bar.finish(&status);
            return status;
        }
        tokio::time::sleep(poll).await;
    }
}

fn stalled(status: &ImageImportStatus) -> bool {
    conditions::is_true(&status.conditions, types::STALLED)
}

/// What ECS says about the import so far: nothing before it starts, then the image and, when it
/// failed, its task.
async fn observe<P: EcsPort>(
    ecs: &P,
    region: &str,
    status: &ImageImportStatus,
    credentials: &CredentialProvider,
) -> Result<Observed, EcsError> {
    let Some(image_id) = &status.image_id else {
        return Ok(Observed {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        });
    };
    let image = describe_image(ecs, credentials, region, image_id).await?;
    let task = match &status.import_task_id {
        Some(task_id) => describe_task(ecs, credentials, region, task_id).await?,
        None => Lookup::NotAsked,
    };
    Ok(Observed { image, task })
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
        let percent = usize::from(status.progress.unwrap_or(0).min(100));
        let filled = percent / 5;
        format!(
            "[{}{}] {percent:>3}% {}",
            "#".repeat(filled),
            " ".repeat(20 - filled),
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

    fn finish(&mut self, status: &ImageImportStatus) {
        self.show(status);
        if self.terminal {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
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
