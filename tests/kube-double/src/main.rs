//! The double as a standalone process, for pointing the operator binary or `kubectl` at it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube_double::{Error, Server, ServerOptions};

/// A local Kubernetes API server double (plain HTTP on 127.0.0.1).
#[derive(Debug, Parser)]
#[command(name = "kube-double", version)]
struct Args {
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long, env = "KUBE_DOUBLE_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, env = "KUBE_DOUBLE_PORT", default_value_t = 0)]
    port: u16,
    /// Events kept for watch resumption (older versions get 410 Gone).
    #[arg(long, env = "KUBE_DOUBLE_HISTORY_LIMIT", default_value_t = 10_000)]
    history_limit: usize,
    /// Interval between watch bookmarks, in milliseconds.
    #[arg(
        long,
        env = "KUBE_DOUBLE_BOOKMARK_INTERVAL_MS",
        default_value_t = 5_000
    )]
    bookmark_interval_ms: u64,
    /// Manifests (CRDs, namespaces, ...) to load at start-up.
    #[arg(long = "load")]
    load: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    Args::parse().run().await
}

impl Args {
    async fn run(self) -> Result<(), Error> {
        let Self {
            kubeconfig_out,
            port,
            history_limit,
            bookmark_interval_ms,
            load,
        } = self;
        let server = Server::start(ServerOptions {
            port,
            history_limit,
            bookmark_interval: Duration::from_millis(bookmark_interval_ms),
            ..ServerOptions::default()
        })
        .await?;
        for path in load {
            let yaml = std::fs::read_to_string(&path).map_err(|source| Error::File {
                path: path.display().to_string(),
                source,
            })?;
            server.apply_yaml(&yaml)?;
        }
        if let Some(path) = kubeconfig_out {
            server.write_kubeconfig(&path)?;
        }
        println!("{}", server.url());
        wait_for_signal().await?;
        drop(server);
        Ok(())
    }
}

async fn wait_for_signal() -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map_err(Error::Signal),
        _ = term.recv() => Ok(()),
    }
}
