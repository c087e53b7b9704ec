//! `ecs-image-operator run`: the controller process — Kubernetes and ECS clients, the controller,
//! health endpoints, and a bounded graceful shutdown.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::controller::decision::Timing;
use crate::controller::leader::{LeaderElector, LeaseConfig, StopGrace, while_leader};
use crate::controller::liveness::{Liveness, Verdict};
use crate::controller::reconciler::Settings;
use crate::controller::watch;
use crate::ecs::observe::Observer;
use crate::ecs::{ClientConfig, CredentialProvider, CredentialSource, EcsClient};
use crate::metrics::Metrics;

/// Options of the controller.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kubeconfig file; without it, the in-cluster service account or the usual kubeconfig lookup.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch only these namespaces: repeat the flag or separate names with commas (all namespaces
    /// when left out). Each namespace gets its own watch and `--concurrency` reconciles.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Where ECS, STS and the metadata service are.
    #[command(flatten)]
    pub endpoints: crate::cli::EndpointArgs,
    /// The ECS attempt timeout and attempts per call.
    #[command(flatten)]
    pub attempts: crate::cli::AttemptArgs,
    /// Seconds between polls of running imports (one batched call covers 100 imports).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_POLL_INTERVAL", default_value_t = 15)]
    pub poll_interval_seconds: u64,
    /// Most ECS requests per second per AccessKey and endpoint (0 for no limit).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_RATE_LIMIT", default_value_t = crate::ecs::client::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Resources reconciled at once, per watched namespace.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Seconds between retries of errors fixed outside Kubernetes (quota, RAM role, missing object).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EXTERNAL_RETRY", default_value_t = 300)]
    pub external_retry_seconds: u64,
    /// Seconds between looks at finished imports (batched, 100 images a call): an image deleted
    /// outside the operator is imported again, changed names, descriptions and tags are set back.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_RESYNC", default_value_t = 600)]
    pub resync_seconds: u64,
    /// Address of the `/healthz` and `/readyz` endpoints.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_PROBE_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub probe_address: SocketAddr,
    /// Seconds without progress of the reconcile loop or the ImageImport watch after which
    /// `/healthz` fails and the kubelet restarts the process (3× the 10-minute resync by default).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_LIVENESS_STALL",
        default_value_t = 1800
    )]
    pub liveness_stall_seconds: u64,
    /// The ClusterRole a namespace binds to let the operator read its credentials Secrets (named
    /// in the `CredentialsSecretForbidden` message; the chart's `<release>-secret-reader`).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_SECRET_READER_ROLE",
        default_value = "ecs-image-operator-secret-reader"
    )]
    pub secret_reader_cluster_role: String,
    /// The operator's ServiceAccount as `namespace:name` (named in the same message).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_SERVICE_ACCOUNT",
        default_value = "ecs-image-operator:ecs-image-operator"
    )]
    pub service_account: String,
    /// Seconds allowed for in-flight work after SIGTERM before the process exits anyway.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_SHUTDOWN_TIMEOUT",
        default_value_t = 20
    )]
    pub shutdown_timeout_seconds: u64,
    /// Reconcile only while holding a coordination.k8s.io Lease, so that of several replicas
    /// exactly one calls ECS.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease (the operator's own namespace in a cluster).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_LEADER_ELECTION_NAMESPACE",
        default_value = "default"
    )]
    pub leader_election_namespace: String,
    /// Name of the Lease.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_LEADER_ELECTION_LEASE",
        default_value = "ecs-image-operator"
    )]
    pub leader_election_lease: String,
    /// This replica's name in the Lease (the pod name in a cluster); the host name when left out.
    #[arg(long, env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// Seconds a Lease holds without renewal; another replica takes over after it runs out.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_LEADER_ELECTION_LEASE_SECONDS",
        default_value_t = 15
    )]
    pub leader_election_lease_seconds: u64,
    /// How sources are uploaded into OSS.
    #[command(flatten)]
    pub uploads: crate::cli::UploadArgs,
}

/// Errors that stop the operator from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The kubeconfig could not be read.
    #[error("failed to read the kubeconfig: {0}")]
    Kubeconfig(String),
    /// No Kubernetes client could be built.
    #[error("failed to build a Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    /// The ECS client could not be built.
    #[error(transparent)]
    Ecs(#[from] crate::ecs::EcsError),
    /// Leader election is misconfigured.
    #[error(transparent)]
    Leader(#[from] crate::controller::leader::LeaderError),
    /// The probe address could not be bound.
    #[error("failed to listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl RunArgs {
    /// Runs the controller until SIGTERM or Ctrl-C.
    pub async fn run(self) -> Result<(), RunError> {
        let Self {
            kubeconfig,
            namespace,
            endpoints,
            attempts,
            poll_interval_seconds,
            rate_limit,
            concurrency,
            external_retry_seconds,
            resync_seconds,
            probe_address,
            liveness_stall_seconds,
            secret_reader_cluster_role,
            service_account,
            shutdown_timeout_seconds,
            leader_election,
            leader_election_namespace,
            leader_election_lease,
            leader_election_identity,
            leader_election_lease_seconds,
            uploads,
        } = self;
        let mut signals = StopSignals::watch();
        let (config, origin) = kube_config(kubeconfig.as_deref()).await?;
        let server = ApiServer {
            url: config.cluster_url.to_string(),
            origin,
        };
        tracing::info!(
            server = %server.url,
            "using the Kubernetes API server of the {}",
            server.origin
        );
        let client = kube::Client::try_from(config)?;
        let metrics = Metrics::new();
        let ecs = Arc::new(EcsClient::new(attempts.apply(ClientConfig {
            endpoint: endpoints.ecs()?,
            rate_limit: NonZeroU32::new(rate_limit),
            observer: Observer::new(Arc::new(metrics.clone())),
            sts_endpoint: endpoints.sts_endpoint.clone(),
            ..ClientConfig::default()
        }))?);
        // Without operator-wide credentials, only resources with a credentials Secret can import.
        let default_credentials = match CredentialSource::choose_from_environment(
            |name| std::env::var(name).ok(),
            &endpoints.services(),
            Vec::new(),
        ) {
            Ok(choice) => {
                tracing::info!(
                    source = choice.source.kind(),
                    "operator credentials configured"
                );
                Some(Arc::new(
                    CredentialProvider::chosen(choice).map_err(crate::ecs::EcsError::from)?,
                ))
            }
            Err(error) => {
                tracing::warn!(
                    "no operator-wide credentials ({}); resources need a credentials Secret",
                    crate::explain::explain(&error)
                );
                None
            }
        };
        let health = Health {
            liveness: Liveness::new(Duration::from_secs(liveness_stall_seconds)),
            ..Health::default()
        };
        let poll_interval = Duration::from_secs(poll_interval_seconds.max(1));
        let timing = Timing {
            poll_interval,
            watchdog: poll_interval * 4,
            external_retry: Duration::from_secs(external_retry_seconds.max(1)),
            resync_interval: Duration::from_secs(resync_seconds.max(1)),
            ..Timing::default()
        };
        let mut namespaces: Vec<String> = namespace
            .into_iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let settings = Settings {
            namespaces,
            timing,
            concurrency: concurrency.max(1),
            default_credentials,
            reporter: "ecs-image-operator".into(),
            metrics: metrics.clone(),
            watching: Arc::clone(&health.watching),
            liveness: health.liveness.clone(),
            secret_access: crate::controller::credentials::SecretAccess {
                cluster_role: secret_reader_cluster_role,
                service_account,
            },
            uploads: Some(crate::upload::Transfers::new(uploads.settings())),
        };

        let listener = tokio::net::TcpListener::bind(probe_address)
            .await
            .map_err(|source| RunError::Listen {
                address: probe_address,
                source,
            })?;
        let probes = tokio::spawn(serve_probes(listener, health.clone(), metrics.clone()));
        health.started.store(true, Ordering::SeqCst);

        // Without its CRD the operator can do nothing: say so once, stay unready, and start as
        // soon as the CRD is served (SIGTERM still ends the wait).
        tokio::select! {
            () = wait_for_crd(&client, &server) => health.crd.store(true, Ordering::SeqCst),
            () = signals.wait() => {
                tracing::info!("shutting down before the CRD was installed");
                probes.abort();
                return Ok(());
            }
        }

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        let grace = Duration::from_secs(shutdown_timeout_seconds);
        let (elector_stop_tx, elector_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut election = None;
        let mut controller = if leader_election {
            let identity = leader_election_identity
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| format!("ecs-image-operator-{}", std::process::id()));
            let defaults =
                LeaseConfig::new(leader_election_namespace, leader_election_lease, identity);
            let lease_duration = Duration::from_secs(leader_election_lease_seconds.max(3));
            let config = LeaseConfig {
                lease_duration,
                renew_interval: lease_duration / 3,
                retry_interval: lease_duration / 7,
                safety_margin: lease_duration / 5,
                ..defaults
            };
            let safety_margin = config.safety_margin;
            let elector = LeaderElector::new(client.clone(), config)?;
            let mut seen = elector.subscribe();
            let shown = metrics.clone();
            let leading_flag = Arc::clone(&health.leading);
            tokio::spawn(async move {
                loop {
                    let leading = *seen.borrow_and_update();
                    shown.set_leader(leading);
                    leading_flag.store(leading, Ordering::SeqCst);
                    if seen.changed().await.is_err() {
                        shown.set_leader(false);
                        leading_flag.store(false, Ordering::SeqCst);
                        break;
                    }
                }
            });
            let leading = elector.subscribe();
            election = Some(tokio::spawn(elector.run(async move {
                let _ = elector_stop_rx.await;
            })));
            let term_metrics = metrics.clone();
            tokio::spawn(while_leader(
                leading,
                shutdown,
                StopGrace {
                    after_loss: safety_margin / 2,
                    at_shutdown: grace,
                },
                move |cancelled| {
                    // A new term rebuilds phase counts from its own reconciles.
                    term_metrics.forget_all();
                    let client = client.clone();
                    let ecs = Arc::clone(&ecs);
                    let settings = settings.clone();
                    async move { watch::run(client, ecs, settings, cancelled).await }
                },
            ))
        } else {
            metrics.set_leader(true);
            health.leading.store(true, Ordering::SeqCst);
            tokio::spawn(watch::run(client, ecs, settings, shutdown))
        };
        tracing::info!(%probe_address, leader_election, "operator started");

        signals.wait().await;
        tracing::info!("shutting down: finishing in-flight reconciles");
        health.started.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(());
        if tokio::time::timeout(grace, &mut controller).await.is_err() {
            tracing::warn!(
                seconds = shutdown_timeout_seconds,
                "in-flight work did not finish in time; exiting anyway"
            );
            controller.abort();
            let _ = controller.await;
        }
        // The Lease is released only once the work is over, so a successor never overlaps it.
        let _ = elector_stop_tx.send(());
        if let Some(election) = election {
            let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
        }
        probes.abort();
        Ok(())
    }
}

/// The Kubernetes API server the operator talks to, and where its address came from, so a log
/// line about it names both.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiServer {
    /// Its URL.
    url: String,
    /// `kubeconfig context "NAME"` or `in-cluster service account`.
    origin: String,
}

/// The client configuration: from `path`, else the usual kubeconfig lookup (`KUBECONFIG`,
/// `~/.kube/config`), else the in-cluster service account (as `kube::Config::infer` does); with
/// where it came from.
async fn kube_config(path: Option<&std::path::Path>) -> Result<(kube::Config, String), RunError> {
    async fn from_file(file: Kubeconfig) -> Result<(kube::Config, String), String> {
        let context = match &file.current_context {
            Some(name) => format!("kubeconfig context {name:?}"),
            None => "kubeconfig (no current context)".to_string(),
        };
        kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .map(|config| (config, context))
            .map_err(|error| crate::explain::explain(&error))
    }
    if let Some(path) = path {
        let file = Kubeconfig::read_from(path)
            .map_err(|error| RunError::Kubeconfig(crate::explain::explain(&error)))?;
        return from_file(file).await.map_err(RunError::Kubeconfig);
    }
    let kubeconfig_error = match Kubeconfig::read() {
        Ok(file) => match from_file(file).await {
            Ok(found) => return Ok(found),
            Err(error) => error,
        },
        Err(error) => crate::explain::explain(&error),
    };
    match kube::Config::incluster() {
        Ok(config) => Ok((config, "in-cluster service account".to_string())),
        Err(in_cluster) => Err(RunError::Kubeconfig(format!(
            "no usable kubeconfig ({kubeconfig_error}) and no in-cluster service account ({})",
            crate::explain::explain(&in_cluster)
        ))),
    }
}

/// What `/readyz` and `/healthz` report.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// The process is up and not shutting down.
    pub started: Arc<AtomicBool>,
    /// The ImageImport CRD is served.
    pub crd: Arc<AtomicBool>,
    /// Heartbeats of the controller, for `/healthz`.
    pub liveness: Liveness,
    /// This replica holds the Lease (always, without leader election).
    pub leading: Arc<AtomicBool>,
    /// The leader's watch of ImageImports has listed them all.
    pub watching: Arc<AtomicBool>,
}

impl Health {
    /// Ready, and why: a standby replica is ready (it must be, for rolling updates to proceed);
    /// a leader only once its watch has listed every ImageImport.
    pub fn readiness(&self) -> (bool, &'static str) {
        if !self.started.load(Ordering::SeqCst) {
            return (false, "not started or shutting down");
        }
        if !self.crd.load(Ordering::SeqCst) {
            return (false, CRD_MISSING);
        }
        if !self.leading.load(Ordering::SeqCst) {
            return (true, "ready: standby (another replica holds the Lease)");
        }
        if self.watching.load(Ordering::SeqCst) {
            (true, "ready: leader, watching ImageImports")
        } else {
            (false, "leader, waiting for the first list of ImageImports")
        }
    }
}

impl Health {
    /// Live, and why: a running controller whose loop or watch has stalled is not.
    pub fn liveness(&self) -> (bool, String) {
        let verdict = self.liveness.verdict();
        let why = match verdict {
            Verdict::Idle => "ok: controller not running here (standby or waiting)".to_string(),
            Verdict::Live => "ok".to_string(),
            Verdict::LoopStalled(age) => format!(
                "reconcile loop has made no progress for {} s (limit {} s)",
                age.as_secs(),
                self.liveness.stall().as_secs()
            ),
            Verdict::WatchStalled(age) => format!(
                "ImageImport watch has made no progress for {} s (limit {} s)",
                age.as_secs(),
                self.liveness.stall().as_secs()
            ),
        };
        (verdict.is_live(), why)
    }
}

/// The CRD the operator needs, and how to install it.
pub const CRD_NAME: &str = "imageimports.ecs.image-import.dev";

const CRD_MISSING: &str = "the CRD imageimports.ecs.image-import.dev is not installed; install it with: ecs-image-operator crd | kubectl apply --server-side -f -";

/// Delay before the `attempt`-th (0-based) look for the CRD: 0.5 s doubling to at most 5 s, so a
/// CRD installed after the operator is noticed within seconds.
pub fn crd_retry_delay(attempt: u32) -> Duration {
    let millis = 500u64.saturating_mul(1u64 << attempt.min(10));
    Duration::from_millis(millis.min(5_000))
}

/// Returns once the API server serves ImageImports (discovery of `ecs.image-import.dev/v1alpha1`,
/// which every authenticated user may read). A missing CRD is logged once; other failures are
/// logged when they change, naming the server and where its address came from.
async fn wait_for_crd(client: &kube::Client, server: &ApiServer) {
    use crate::api::image_import::ImageImport;
    use kube::Resource;
    let group_version = format!("{}/{}", ImageImport::group(&()), ImageImport::version(&()));
    let plural = ImageImport::plural(&()).to_string();
    let mut attempt = 0u32;
    let mut said_missing = false;
    let mut last_error = String::new();
    loop {
        match client.list_api_group_resources(&group_version).await {
            Ok(list) if list.resources.iter().any(|r| r.name == plural) => {
                if said_missing || attempt > 0 {
                    tracing::info!(
                        crd = CRD_NAME,
                        "the CRD is installed; starting the controller"
                    );
                }
                return;
            }
            Err(kube::Error::Api(status)) if status.code != 404 => {
                let text = status.to_string();
                if text != last_error {
                    tracing::warn!(
                        crd = CRD_NAME,
                        "the Kubernetes API server at {} ({}) refused to show {group_version} \
                         (HTTP {}: {text}); cannot check for the CRD, retrying",
                        server.url,
                        server.origin,
                        status.code
                    );
                    last_error = text;
                }
            }
            Ok(_) | Err(kube::Error::Api(_)) => {
                if !said_missing {
                    tracing::error!(crd = CRD_NAME, "{CRD_MISSING}; waiting for it");
                    said_missing = true;
                }
            }
            Err(error) => {
                let text = crate::explain::explain(&error);
                if text != last_error {
                    tracing::warn!(
                        crd = CRD_NAME,
                        "cannot reach the Kubernetes API server at {} ({}): {text}; cannot \
                         check for the CRD, retrying",
                        server.url,
                        server.origin
                    );
                    last_error = text;
                }
            }
        }
        tokio::time::sleep(crd_retry_delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// SIGTERM and Ctrl-C, watched from the start of `run`: a signal that comes at any moment (while
/// the CRD is awaited, say) ends the process cleanly instead of killing it.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts watching; must be called inside the runtime.
    fn watch() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watch = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(watched) => Some(watched),
                Err(error) => {
                    tracing::warn!("cannot watch {name} ({error}); it ends the operator at once");
                    None
                }
            };
            Self {
                terminate: watch(SignalKind::terminate(), "SIGTERM"),
                interrupt: watch(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Returns at the next SIGTERM or Ctrl-C.
    async fn wait(&mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        let _ = signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut self.terminate) => {}
                () = next(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn serve_probes(listener: tokio::net::TcpListener, health: Health, metrics: Metrics) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let live = health.clone();
    let scraped = health.clone();
    // `ready` in /metrics is computed at scrape time from the same state /readyz reads, so the two
    // never disagree.
    metrics.set_ready_source(move || scraped.readiness().0);
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let live = live.clone();
                async move {
                    match live.liveness() {
                        (true, why) => (StatusCode::OK, why),
                        (false, why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    match health.readiness() {
                        (true, why) => (StatusCode::OK, why),
                        (false, why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }
            }),
        )
        .merge(metrics.router());
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!("probe server stopped: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_is_looked_for_again_within_seconds() {
        let delays: Vec<u64> = (0..8)
            .map(|n| crd_retry_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
        assert_eq!(crd_retry_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn without_the_crd_the_operator_is_not_ready_and_says_how_to_install_it() {
        let health = Health::default();
        health.started.store(true, Ordering::SeqCst);
        health.leading.store(true, Ordering::SeqCst);
        health.watching.store(true, Ordering::SeqCst);
        let (ready, why) = health.readiness();
        assert!(!ready);
        assert!(
            why.contains(CRD_NAME)
                && why.contains("ecs-image-operator crd | kubectl apply --server-side -f -")
        );
        health.crd.store(true, Ordering::SeqCst);
        assert!(health.readiness().0);
    }

    #[test]
    fn a_stalled_controller_is_not_live_and_a_standby_is() {
        let health = Health {
            liveness: Liveness::new(Duration::from_secs(1)),
            ..Health::default()
        };
        assert!(health.liveness().0, "not running: live");
        health.liveness.started();
        assert!(health.liveness().0);
        std::thread::sleep(Duration::from_millis(1_100));
        let (live, why) = health.liveness();
        assert!(!live, "{why}");
        assert!(why.contains("no progress"), "{why}");
        health.liveness.stopped();
        assert!(health.liveness().0);
    }
}
