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
use crate::controller::reconciler::{self, Settings};
use crate::ecs::credentials::ServiceEndpoints;
use crate::ecs::endpoint::EcsEndpoint;
use crate::ecs::{ClientConfig, CredentialProvider, CredentialSource, EcsClient};

/// Options of the controller.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kubeconfig file; without it, the in-cluster service account or the usual kubeconfig lookup.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch only this namespace (all namespaces when left out).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Send ECS requests here instead of `https://ecs.<region>.aliyuncs.com` (an emulator, a proxy or a
    /// VPC endpoint); plain http only to loopback hosts.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ECS_ENDPOINT")]
    pub ecs_endpoint: Option<String>,
    /// STS endpoint for RRSA (OIDC) credentials.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// Metadata service for ECS instance RAM role credentials.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_METADATA_ENDPOINT")]
    pub metadata_endpoint: Option<String>,
    /// Seconds between polls of running imports (one batched call covers 100 imports).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_POLL_INTERVAL", default_value_t = 15)]
    pub poll_interval_seconds: u64,
    /// Most ECS requests per second per AccessKey and endpoint (0 for no limit).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_RATE_LIMIT", default_value_t = crate::ecs::client::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Resources reconciled at once.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Seconds between retries of errors fixed outside Kubernetes (quota, RAM role, missing object).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EXTERNAL_RETRY", default_value_t = 300)]
    pub external_retry_seconds: u64,
    /// Address of the `/healthz` and `/readyz` endpoints.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_PROBE_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub probe_address: SocketAddr,
    /// Seconds allowed for in-flight work after SIGTERM before the process exits anyway.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_SHUTDOWN_TIMEOUT",
        default_value_t = 20
    )]
    pub shutdown_timeout_seconds: u64,
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
            ecs_endpoint,
            sts_endpoint,
            metadata_endpoint,
            poll_interval_seconds,
            rate_limit,
            concurrency,
            external_retry_seconds,
            probe_address,
            shutdown_timeout_seconds,
        } = self;
        let config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(&path)
                    .map_err(|error| RunError::Kubeconfig(error.to_string()))?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|error| RunError::Kubeconfig(error.to_string()))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|error| RunError::Kubeconfig(error.to_string()))?,
        };
        let client = kube::Client::try_from(config)?;
        let endpoint = match ecs_endpoint {
            Some(url) => EcsEndpoint::override_url(&url).map_err(crate::ecs::EcsError::Endpoint)?,
            None => EcsEndpoint::Regional,
        };
        let ecs = Arc::new(EcsClient::new(ClientConfig {
            endpoint,
            rate_limit: NonZeroU32::new(rate_limit),
            ..ClientConfig::default()
        })?);
        let endpoints = ServiceEndpoints {
            sts: sts_endpoint,
            metadata: metadata_endpoint,
        };
        // Without operator-wide credentials, only resources with a credentials Secret can import.
        let default_credentials = match CredentialSource::from_environment(
            |name| std::env::var(name).ok(),
            &endpoints,
        ) {
            Ok(source) => {
                tracing::info!(source = source.kind(), "operator credentials configured");
                Some(Arc::new(
                    CredentialProvider::new(source).map_err(crate::ecs::EcsError::from)?,
                ))
            }
            Err(error) => {
                tracing::warn!(
                    "no operator-wide credentials ({error}); resources need a credentials Secret"
                );
                None
            }
        };
        let timing = Timing {
            poll_interval: Duration::from_secs(poll_interval_seconds.max(1)),
            external_retry: Duration::from_secs(external_retry_seconds.max(1)),
            ..Timing::default()
        };
        let settings = Settings {
            namespace,
            timing,
            concurrency: concurrency.max(1),
            default_credentials,
            reporter: "ecs-image-operator".into(),
        };

        let ready = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind(probe_address)
            .await
            .map_err(|source| RunError::Listen {
                address: probe_address,
                source,
            })?;
        let probes = tokio::spawn(serve_probes(listener, Arc::clone(&ready)));

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        let controller = tokio::spawn(reconciler::run(client, ecs, settings, shutdown));
        ready.store(true, Ordering::SeqCst);
        tracing::info!(%probe_address, "operator started");

        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight reconciles");
        ready.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(());
        let grace = Duration::from_secs(shutdown_timeout_seconds);
        if tokio::time::timeout(grace, controller).await.is_err() {
            tracing::warn!(
                seconds = shutdown_timeout_seconds,
                "in-flight work did not finish in time; exiting anyway"
            );
        }
        probes.abort();
        Ok(())
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!("cannot watch SIGTERM ({error}); only Ctrl-C stops the operator");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve_probes(listener: tokio::net::TcpListener, ready: Arc<AtomicBool>) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    if ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!("probe server stopped: {error}");
    }
}
