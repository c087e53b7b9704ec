//! The loopback HTTP server: accept loop, fault injection, and the handle tests hold.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{ApiError, Error};
use crate::faults::{FaultAction, Faults};
use crate::http::{self, Query};
use crate::kubeconfig;
use crate::patch::{self, PatchKind};
use crate::requests::{RecordedRequest, RequestLog};
use crate::store::{State, Store, Subresource, WriteCtx};

/// Field manager of objects loaded through [`Server::apply_yaml`].
const LOADER_MANAGER: &str = "kube-double";

/// How the server behaves; `Default` suits most tests.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Events kept for watch resumption; resuming from an older version is `410 Gone`.
    pub history_limit: usize,
    /// How often open watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds`.
    pub watch_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            port: 0,
            // Large enough that normal tests never see 410; tests of 410 lower it.
            history_limit: 10_000,
            // The real server sends one about every minute; tests want them sooner.
            bookmark_interval: Duration::from_secs(5),
            // The real server picks 30 to 60 minutes.
            watch_timeout: Duration::from_secs(1800),
        }
    }
}

/// Shared state of the request handlers.
#[derive(Debug)]
pub(crate) struct App {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub options: ServerOptions,
    pub address: String,
    pub requests: RequestLog,
}

/// A running double; dropping it stops the server and ends every connection.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Server {
    /// Binds 127.0.0.1 and starts serving in the background of the current tokio runtime.
    pub async fn start(options: ServerOptions) -> Result<Self, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let store = Arc::new(Store::new(options.history_limit));
        let app = Arc::new(App {
            faults: Faults::new(store.clone()),
            store,
            options,
            address: addr.to_string(),
            requests: RequestLog::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, app.clone()));
        tracing::info!(%addr, "kube-double listening");
        Ok(Self { app, addr, accept })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (context `kube-double`, namespace `default`) pointing at this server.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url())
    }

    /// Writes [`Server::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })
    }

    /// The fault hooks.
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    /// The requests answered so far (the last 10 000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.requests.snapshot()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.app.requests.clear();
    }

    /// The latest resource version.
    pub fn resource_version(&self) -> u64 {
        self.app.store.lock().resource_version()
    }

    /// Creates or updates every object of a (multi-document) YAML manifest, like
    /// `kubectl apply --server-side --force-conflicts` (field manager `kube-double`).
    /// CRDs take effect at once. Returns the stored objects.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, Error> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).map_err(Error::Yaml)?;
        let mut out = Vec::new();
        for doc in docs.into_iter().filter(|d| d.is_object()) {
            out.push(self.apply_object(&doc).map_err(Error::Api)?);
        }
        Ok(out)
    }

    fn apply_object(&self, doc: &Value) -> Result<Value, ApiError> {
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut state = self.app.store.lock();
        let rt = find_kind(&state, group, version, kind).ok_or_else(|| {
            ApiError::bad_request(format!("no resource of kind {kind} in {api_version}"))
        })?;
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = if rt.namespaced {
            doc.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
        } else {
            ""
        };
        let ctx = WriteCtx {
            manager: LOADER_MANAGER.to_owned(),
            strict: false,
            dry_run: false,
            subresource: Subresource::Main,
        };
        let body = serde_json::to_vec(doc).unwrap_or_default();
        patch::patch(
            &mut state,
            &rt,
            ns,
            name,
            PatchKind::Apply,
            &body,
            &ctx,
            true,
        )
    }
}

fn find_kind(
    state: &State,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<Arc<crate::resource::ResourceType>> {
    state
        .types()
        .iter()
        .find(|t| t.group == group && t.version == version && t.kind == kind)
        .cloned()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.app.faults.close_watches();
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, app: Arc<App>) {
    // Dropping the set when this task is aborted ends every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| serve(app.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Records the request and its outcome around [`answer`].
async fn serve(
    app: Arc<App>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Error> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut record = RecordedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        content_type: header(header::CONTENT_TYPE),
        status: None,
    };
    let result = answer(app.clone(), req).await;
    record.status = result.as_ref().ok().map(|r| r.status().as_u16());
    if !record.path.starts_with("/_double/") {
        app.requests.record(record);
    }
    result
}

/// Applies the faults, then handles the request; an `Err` makes hyper drop the connection.
async fn answer(
    app: Arc<App>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Error> {
    let is_watch = Query::parse(req.uri().query()).is_watch();
    let verdict = app
        .faults
        .verdict(req.method().as_str(), req.uri().path(), is_watch);
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    match verdict.failure {
        None | Some(FaultAction::Delay { .. }) => Ok(http::handle(app, req).await),
        Some(FaultAction::Drop) => Err(Error::InjectedDrop),
        Some(FaultAction::Status { code }) => {
            let mut error = ApiError::internal("injected failure");
            error.code = code;
            if code != 500 {
                error.reason = StatusCode::from_u16(code)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                    .unwrap_or("Unknown")
                    .replace(' ', "");
            }
            Ok(http::error_response(&error))
        }
        Some(FaultAction::TooManyRequests {
            retry_after_seconds,
        }) => {
            let mut response =
                http::error_response(&ApiError::too_many_requests(retry_after_seconds));
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(response)
        }
    }
}
