//! One import of `import -f` driven to its end by the operator's engine: the engine's shell for a
//! run outside Kubernetes (fixed credentials, status in memory, progress on the board) and the
//! loop that steps it until ECS has the last word, the clock runs out or Ctrl-C comes.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::board::Board;
use crate::api::conditions::{self, types};
use crate::api::distribution::Distribution;
use crate::api::image_import::{ImageImport, ImageImportStatus, Phase};
use crate::controller::decision::{CopyObserved, EcsAction, Lookup, Plan, Timing};
use crate::controller::engine::source::describe_image;
use crate::controller::engine::{self, Blocked, Identity, Latest, Shell, failure_from};
use crate::controller::port::EcsPort;
use crate::ecs::CredentialProvider;

/// Consecutive failed passes after which a one-shot import gives up.
pub const GIVE_UP_AFTER: u32 = 5;

/// Why a one-shot import stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Available, failed or stalled: ECS had the last word.
    Done,
    /// Failures kept coming (`GIVE_UP_AFTER` in a row).
    GaveUp,
    /// `--timeout-seconds` ran out.
    TimedOut(Duration),
    /// Ctrl-C (SIGINT).
    Interrupted,
}

/// How one import ended.
#[derive(Debug)]
pub struct Followed {
    /// Its last status.
    pub status: ImageImportStatus,
    /// Why it stopped.
    pub ending: Ending,
    /// What to say when an earlier run of the same import made the image.
    pub earlier: Option<String>,
}

/// What one import is followed with.
pub struct Follow<'a, P> {
    /// ECS (or the emulator).
    pub ecs: &'a P,
    /// Its credentials.
    pub credentials: Arc<CredentialProvider>,
    /// Where its sources are uploaded.
    pub transfers: &'a crate::upload::Transfers,
    /// The board it draws its row on.
    pub board: &'a Mutex<Board>,
    /// Its row.
    pub row: usize,
    /// Seconds between looks.
    pub poll: Duration,
    /// When to stop waiting.
    pub timeout: Duration,
    /// Turns true on Ctrl-C (a channel closed without it, no handler, never interrupts).
    pub interrupt: watch::Receiver<bool>,
}

/// Drives one import with the operator's engine until it is available, failed or stalled.
pub async fn follow<P: EcsPort>(how: Follow<'_, P>, object: &ImageImport) -> Followed {
    let Follow {
        ecs,
        credentials,
        transfers,
        board,
        row,
        poll,
        timeout,
        mut interrupt,
    } = how;
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
        board,
        row,
        imported: AtomicBool::new(false),
        found: Mutex::new(None),
        transfers,
    };
    let mut object = object.clone();
    let started = Instant::now();
    let interrupted = |object: &ImageImport| {
        let status = object.status.clone().unwrap_or_default();
        lock(board).show(row, &status);
        Followed {
            status,
            ending: Ending::Interrupted,
            earlier: None,
        }
    };
    loop {
        let stepped = tokio::select! {
            stepped = engine::step(&shell, &object) => stepped,
            Ok(_) = interrupt.wait_for(|stop| *stop) => return interrupted(&object),
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
            lock(board).show(row, &status);
            let earlier = shell.earlier_run(&object.spec.region_id, &status);
            return Followed {
                status,
                ending,
                earlier,
            };
        }
        // A failure waits out its backoff; otherwise look again every poll.
        let wait = plan.requeue.filter(|_| plan.failed).unwrap_or(poll);
        object.status = Some(status);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Ok(_) = interrupt.wait_for(|stop| *stop) => return interrupted(&object),
        }
    }
}

fn lock(board: &Mutex<Board>) -> std::sync::MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stalled(status: &ImageImportStatus) -> bool {
    conditions::is_true(&status.conditions, types::STALLED)
}

/// The one-shot import as the engine's shell: fixed credentials, the image looked at directly
/// (no poller), status kept in memory and shown on the board.
struct OneShot<'a, P> {
    ecs: &'a P,
    credentials: Arc<CredentialProvider>,
    account: tokio::sync::OnceCell<String>,
    timing: Timing,
    failures: AtomicU32,
    board: &'a Mutex<Board>,
    row: usize,
    /// This run asked ECS for the import.
    imported: AtomicBool,
    /// The phase of the image an earlier run made, when this run found one by its UID tag.
    found: Mutex<Option<Phase>>,
    /// Where the sources are uploaded.
    transfers: &'a crate::upload::Transfers,
}

impl<P> OneShot<'_, P> {
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
        lock(self.board).show(self.row, &plan.status);
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
                "import -f takes only the credentials Secrets of its file, so the headers Secret \
                 {name} cannot be had: download the file and name it in source.file"
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
