//! `ecs-image-operator import -f FILE`: the operator's engine run once, outside Kubernetes, on a
//! manifest of one or several `ImageImport`s: the same life-cycle engine as the controller
//! (`controller::engine`), the imports side by side with a progress row each. `--emulator` runs
//! them against an in-process emulator, to try a spec with no cloud account and no cluster.
//!
//! The parts: [`manifest`] reads and checks the file, [`emulated`] starts the emulator,
//! [`one_shot`] follows one import, [`board`] draws the progress and [`report`] says how it ended.

mod board;
mod emulated;
pub mod manifest;
mod one_shot;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;

pub use self::board::LogWriter;
use self::board::{Board, Style};
use self::manifest::{ManifestError, Planned, SecretDocument};
use self::one_shot::{Ending, Follow, Followed};
use crate::api::image_import::{ImageImport, ImageImportStatus, Phase};
use crate::cli::LogFormat;
use crate::ecs::{CredentialProvider, Credentials, EcsClient, EcsError};
use crate::emulator::EmulatorHandle;

/// Options of a one-shot import.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The manifest (YAML): one or several ImageImports, imported side by side, and the
    /// credentials Secrets they name; `-` reads standard input.
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
    /// another; give another `--id` to import the same manifest a second time on purpose. With
    /// several imports in the file, each is known by `ID/NAMESPACE/NAME`.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_IMPORT_ID")]
    pub id: Option<String>,
    /// How sources (`source.url`, `source.file`) are uploaded into OSS; with `--emulator`, into
    /// the emulator's OSS. Loopback sources are allowed here.
    #[command(flatten)]
    pub uploads: crate::cli::UploadArgs,
    /// Where ECS, STS and the metadata service are (ignored with `--emulator`); an import whose
    /// credentialsSecretRef names a Secret of the file uses that Secret's AccessKey, the others
    /// the credentials of the environment, as for `run`.
    #[command(flatten)]
    pub endpoints: crate::cli::EndpointArgs,
    /// The ECS attempt timeout and attempts per call (also with `--emulator`).
    #[command(flatten)]
    pub attempts: crate::cli::AttemptArgs,
    /// Most ECS requests per second per AccessKey and endpoint, shared by every import of the
    /// file (0 for no limit; with `--emulator` the default is no limit).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
}

/// Why a one-shot import could not run (what ECS says about the import is not an error here: it
/// ends in the printed status and the exit code).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The manifest could not be read or is not one `import -f` takes.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// ECS could not be set up (endpoint, credentials).
    #[error(transparent)]
    Ecs(#[from] EcsError),
    /// The in-process emulator could not start.
    #[error(transparent)]
    Emulator(#[from] emulated::EmulatorError),
}

/// One import of the run, ready to go.
struct Prepared {
    /// Namespace/name, as rows and printed documents name it.
    name: String,
    object: ImageImport,
    credentials: Arc<CredentialProvider>,
}

impl ImportArgs {
    /// Runs every import of the file to its end, side by side, and prints their final status as
    /// YAML on standard output (one document each). With `LogFormat::Json` the progress is
    /// drawn as JSON events, so standard error stays JSON only.
    pub async fn run(self, log_format: LogFormat) -> Result<ExitCode, ImportError> {
        crate::ecs::ensure_tls_provider();
        let manifest = manifest::read(&self.file)?;
        let several = manifest.imports.len() > 1;
        let objects: Vec<(ImageImport, SecretDocument)> = manifest
            .imports
            .into_iter()
            .map(|Planned { object, secret }| (self.identified(object, several), secret))
            .collect();

        // Everything is set up before the first ECS call: a missing credential or a bad
        // endpoint stops the run with nothing started.
        let emulator = self.start_emulator(&objects).await?;
        let (client, ecs_args) = self.client(emulator.as_ref())?;
        let prepared = prepare(objects, emulator.as_ref(), &ecs_args)?;

        let poll = if self.emulator {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(self.poll_interval_seconds.max(1))
        };
        let mut uploads = self.uploads.settings();
        uploads.allow_loopback_sources = true;
        if let Some((handle, _)) = &emulator {
            uploads.oss_endpoint = Some(handle.url());
        }
        let transfers = crate::upload::Transfers::new(uploads);
        let board = Mutex::new(Board::new(
            prepared.iter().map(|p| p.name.clone()).collect(),
            Style::for_stderr(log_format == LogFormat::Json),
        ));
        let (interrupt, interrupted) = tokio::sync::watch::channel(false);
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = interrupt.send(true);
            }
        });
        let timeout = Duration::from_secs(self.timeout_seconds);
        let followed: Vec<Followed> =
            futures::future::join_all(prepared.iter().enumerate().map(|(row, import)| {
                one_shot::follow(
                    Follow {
                        ecs: &client,
                        credentials: Arc::clone(&import.credentials),
                        transfers: &transfers,
                        board: &board,
                        row,
                        poll,
                        timeout,
                        interrupt: interrupted.clone(),
                    },
                    &import.object,
                )
            }))
            .await;
        ctrl_c.abort();
        let mut board = board.into_inner().unwrap_or_else(PoisonError::into_inner);
        board.close();

        let mut documents = Vec::new();
        let mut interrupted = false;
        let mut all_available = true;
        for (row, (import, followed)) in prepared.iter().zip(followed).enumerate() {
            interrupted |= followed.ending == Ending::Interrupted;
            let status = self.end(&client, import, followed, &mut board, row).await;
            all_available &= status.phase == Some(Phase::Available);
            let region = import.object.spec.region_id.as_str();
            let name = several.then_some(import.name.as_str());
            documents.push(
                serde_saphyr::to_string(&report::printed(&status, region, name))
                    .unwrap_or_else(|error| format!("# cannot print the status: {error}\n")),
            );
        }
        for running in transfers.running() {
            transfers.stop(&running).await;
        }
        if let Some((handle, _)) = emulator {
            handle.shutdown().await;
        }
        print!("{}", documents.join("---\n"));
        Ok(if interrupted {
            ExitCode::from(130)
        } else if all_available {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// With `--emulator`, the emulator of every import of the file, knowing the AccessKeys of
    /// its Secret documents, and the key it made for the imports that bring none.
    async fn start_emulator(
        &self,
        objects: &[(ImageImport, SecretDocument)],
    ) -> Result<Option<(EmulatorHandle, Credentials)>, ImportError> {
        if !self.emulator {
            return Ok(None);
        }
        let keys: Vec<Credentials> = objects
            .iter()
            .filter_map(|(_, secret)| match secret {
                SecretDocument::Found { credentials, .. } => Some(credentials.clone()),
                _ => None,
            })
            .collect();
        let specs: Vec<&ImageImport> = objects.iter().map(|(object, _)| object).collect();
        let (handle, own) = emulated::start(&specs, &keys, self.time_scale).await?;
        tracing::info!(url = %handle.url(), time_scale = self.time_scale, "emulator started");
        Ok(Some((handle, own)))
    }

    /// One client for every import of the run: one rate budget per AccessKey and endpoint, as
    /// for `run`, however many imports the file holds (regional endpoints are chosen per call,
    /// by each import's region). Also the ECS settings the environment's credentials are read
    /// with.
    fn client(
        &self,
        emulator: Option<&(EmulatorHandle, Credentials)>,
    ) -> Result<(EcsClient, crate::cli::EcsArgs), ImportError> {
        let rate_limit = self.rate_limit.unwrap_or(match self.emulator {
            true => 0,
            false => crate::ecs::client::DEFAULT_RATE_LIMIT,
        });
        let ecs_args = crate::cli::EcsArgs {
            region: String::new(),
            endpoints: self.endpoints.clone(),
            rate_limit,
            timeout_seconds: self.attempts.ecs_timeout_seconds,
            max_attempts: self.attempts.ecs_max_attempts,
            output: None,
        };
        let config = match emulator {
            Some((handle, _)) => self.attempts.apply(crate::ecs::ClientConfig {
                endpoint: crate::ecs::endpoint::EcsEndpoint::override_url(&handle.url())
                    .map_err(EcsError::Endpoint)?,
                rate_limit: std::num::NonZeroU32::new(rate_limit),
                ..crate::ecs::ClientConfig::default()
            }),
            None => ecs_args.client_config()?,
        };
        Ok((EcsClient::new(config)?, ecs_args))
    }

    /// What is said once an import stopped: Ctrl-C cancels the task it left running (unless
    /// `--keep-on-interrupt`), an earlier run that made the image is named, and an ending that
    /// is not `Available` says what to do now. Returns the status to print.
    async fn end(
        &self,
        client: &EcsClient,
        import: &Prepared,
        followed: Followed,
        board: &mut Board,
        row: usize,
    ) -> ImageImportStatus {
        let Followed {
            mut status,
            ending,
            earlier,
        } = followed;
        let region = import.object.spec.region_id.as_str();
        let cancelled = match (ending, running_task(&status), self.keep_on_interrupt) {
            (Ending::Interrupted, Some(task), false) => Some(
                client
                    .cancel(&import.credentials, region, &task)
                    .await
                    .map(|_| ())
                    .map_err(|error| crate::explain::explain(&error)),
            ),
            _ => None,
        };
        report::one_shot_message(&mut status);
        if let Some(line) = earlier {
            board.say(row, &line, false);
        }
        for line in report::ending_lines(&status, ending, region, cancelled) {
            board.say(row, &line, true);
        }
        status
    }

    /// The resource as the engine sees it outside Kubernetes: namespace defaulted, a stable UID
    /// (so a second run asks ECS for the same import and finds its image by the UID tag), and
    /// a status as if one had been written (the engine then first looks for that image).
    fn identified(&self, mut object: ImageImport, several: bool) -> ImageImport {
        let identity = identity(self.id.as_deref(), &name_of(&object), several);
        object.metadata.uid = Some(stable_uid(&identity));
        object.metadata.generation.get_or_insert(1);
        object.status.get_or_insert_with(|| ImageImportStatus {
            phase: Some(Phase::Pending),
            ..ImageImportStatus::default()
        });
        object
    }
}

/// What a one-shot import is known by: `--id`, made `ID/NAMESPACE/NAME` when the file holds
/// several imports (one `--id` must not make them one), else `NAMESPACE/NAME`.
fn identity(id: Option<&str>, name: &str, several: bool) -> String {
    match id {
        Some(id) if several => format!("{id}/{name}"),
        Some(id) => id.to_string(),
        None => name.to_string(),
    }
}

/// `namespace/name` of a resource whose namespace the manifest reader has defaulted.
fn name_of(object: &ImageImport) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or("default"),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Each import with its credentials: the AccessKey of its Secret document, the emulator's key,
/// or the environment's (the Secret document first in the list of sources tried when none
/// works). Where each comes from is said up front: a credentialsSecretRef whose Secret the file
/// does not hold (a typo, often) falls back to the environment, with a warning.
fn prepare(
    objects: Vec<(ImageImport, SecretDocument)>,
    emulator: Option<&(EmulatorHandle, Credentials)>,
    ecs_args: &crate::cli::EcsArgs,
) -> Result<Vec<Prepared>, ImportError> {
    let mut prepared = Vec::new();
    for (object, secret) in objects {
        let name = name_of(&object);
        match &secret {
            SecretDocument::Found { name: secret, .. } => {
                tracing::info!(import = %name, "using the AccessKey of Secret {secret} in the file");
            }
            SecretDocument::NotInFile(secret) => tracing::warn!(
                import = %name,
                "credentialsSecretRef names Secret {secret}, which the file does not hold: \
                 using the credentials of the environment"
            ),
            SecretDocument::NotNamed => {}
        }
        let credentials = match (secret, emulator) {
            (SecretDocument::Found { credentials, .. }, _) => {
                CredentialProvider::fixed(credentials)
            }
            (_, Some((_, own))) => CredentialProvider::fixed(own.clone()),
            (other, None) => ecs_args.credentials_after(other.tried().into_iter().collect())?,
        };
        prepared.push(Prepared {
            name,
            object,
            credentials: Arc::new(credentials),
        });
    }
    Ok(prepared)
}

/// The import task still running in ECS, if any.
fn running_task(status: &ImageImportStatus) -> Option<String> {
    status
        .import_task_id
        .clone()
        .filter(|_| status.phase == Some(Phase::Importing))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_for_several_imports_still_tells_them_apart() {
        assert_eq!(identity(None, "default/a", true), "default/a");
        assert_eq!(identity(Some("again"), "default/a", false), "again");
        let a = identity(Some("again"), "default/a", true);
        let b = identity(Some("again"), "default/b", true);
        assert_eq!(a, "again/default/a");
        assert_ne!(stable_uid(&a), stable_uid(&b));
        assert_eq!(
            stable_uid(&a),
            stable_uid("again/default/a"),
            "stable across runs"
        );
    }
}
