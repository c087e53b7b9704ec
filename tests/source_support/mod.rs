//! A local HTTP/1.1 source server for the upload tests: the URL a `source` names. Each path is
//! configured on its own ([`Route`]): a deterministic body ([`SourceBody`]) served with or without
//! `Range`, slowly, with faults (a cut connection, error statuses for the first requests, wrong
//! bytes, a lying `Content-Length`), a required header, or a redirect. The handle counts requests,
//! bytes served and the ranges asked for, and stops the server (cutting open connections) when
//! dropped.
#![allow(dead_code)] // each test crate uses its own subset

pub mod body;
mod stream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use body::{SourceBody, sha256_hex};
use stream::Generated;
pub use stream::{SourceStream, slow_chunk};

/// What every `Serve` route says its bytes last changed; fixed, so `If-Range` with it matches.
pub const LAST_MODIFIED_DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

/// What one path answers.
#[derive(Clone, Debug)]
pub enum Route {
    /// A body, with the behaviours [`Serve`] configures.
    Serve(Serve),
    /// `302 Found` with `Location: to` (a path on this server or any URL); two routes redirecting
    /// to each other make a loop.
    Redirect {
        /// The `Location` header's value.
        to: String,
    },
    /// `404 Not Found` (as is every path no route names).
    NotFound,
}

impl Route {
    /// A `302` to `to`.
    pub fn redirect(to: &str) -> Self {
        Self::Redirect { to: to.to_string() }
    }
}

impl From<Serve> for Route {
    fn from(serve: Serve) -> Self {
        Self::Serve(serve)
    }
}

/// A body and how it is served. Start from [`Serve::range`] or [`Serve::no_range`]; the other
/// methods add one behaviour each and compose (a slow source that honours `Range` is what a
/// kill-mid-upload test needs).
#[derive(Clone, Debug)]
pub struct Serve {
    body: SourceBody,
    ranges: bool,
    bytes_per_second: Option<u64>,
    fault: Option<Fault>,
    fault_requests: Option<u32>,
    required_header: Option<(String, String)>,
}

/// What goes wrong on a [`Serve`] route (for every request, or the first few: [`Serve::only_first`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The response's headers promise the whole (range's) length; the connection is cut after
    /// `bytes` bytes of that response's body.
    CutAfter {
        /// Bytes of the response body sent before the cut.
        bytes: u64,
    },
    /// This status (500, 503, ...) instead of the body, with a short text.
    Status {
        /// The status code.
        status: u16,
    },
    /// Every byte from body offset `offset` on is inverted (XOR 0xFF): same length, same ETag,
    /// other digest.
    WrongBytesFrom {
        /// The first wrong byte's offset in the body (not in the response).
        offset: u64,
    },
    /// A GET's `Content-Length` says `length` while the body sent is the real length (HEAD tells
    /// the truth). Larger than the real length: the body ends early and the connection closes,
    /// so the client sees a premature end. Smaller: HTTP/1.1 frames the message by
    /// `Content-Length`, so the client reads exactly `length` bytes, a complete but short
    /// response (hyper trims what is past it; such bytes never reach a client as body anyway).
    DeclaredLength {
        /// The `Content-Length` a GET claims.
        length: u64,
    },
}

impl Serve {
    /// `Range` honoured: `206` with `Content-Range`, `416` for unsatisfiable ranges,
    /// `Accept-Ranges: bytes`, `If-Range` against the ETag or `Last-Modified`; a multi-range
    /// request or an unparsable `Range` is ignored (`200`, as RFC 9110 allows).
    pub fn range(body: SourceBody) -> Self {
        Self {
            body,
            ranges: true,
            bytes_per_second: None,
            fault: None,
            fault_requests: None,
            required_header: None,
        }
    }

    /// `Range` ignored: always `200` with the whole body, no `Accept-Ranges`.
    pub fn no_range(body: SourceBody) -> Self {
        Self {
            ranges: false,
            ..Self::range(body)
        }
    }

    /// At most `bytes_per_second` (plus one chunk of [`slow_chunk`] bytes) sent per second.
    pub fn slow(mut self, bytes_per_second: u64) -> Self {
        self.bytes_per_second = Some(bytes_per_second.max(1));
        self
    }

    /// Adds a fault (replacing any other); it applies to every request unless [`Self::only_first`].
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Cuts the connection after `bytes` bytes of each response's body.
    pub fn cut_after(self, bytes: u64) -> Self {
        self.fault(Fault::CutAfter { bytes })
    }

    /// Answers `status` to the first `requests` requests (HEAD and GET alike), then serves.
    pub fn fail_first(self, status: u16, requests: u32) -> Self {
        self.fault(Fault::Status { status }).only_first(requests)
    }

    /// Serves inverted bytes from body offset `offset` on.
    pub fn wrong_bytes_from(self, offset: u64) -> Self {
        self.fault(Fault::WrongBytesFrom { offset })
    }

    /// A GET claims `Content-Length: length` whatever it sends.
    pub fn declared_length(self, length: u64) -> Self {
        self.fault(Fault::DeclaredLength { length })
    }

    /// The fault applies only to the path's first `requests` requests (counted from the route
    /// being set); later ones are served as if it had none.
    pub fn only_first(mut self, requests: u32) -> Self {
        self.fault_requests = Some(requests);
        self
    }

    /// Answers `401` (with `WWW-Authenticate: Bearer`) unless the request carries header `name`
    /// with exactly `value`; checked before any fault.
    pub fn require_header(mut self, name: &str, value: &str) -> Self {
        self.required_header = Some((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request path (no query).
    pub path: String,
    /// The `Range` header as sent, whether or not the route honours it.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// A route and what has happened on it.
struct Entry {
    route: Route,
    requests: u32,
    bytes: Arc<AtomicU64>,
}

struct Shared {
    routes: Mutex<HashMap<String, Entry>>,
    log: Mutex<Vec<Logged>>,
    bytes: Arc<AtomicU64>,
}

/// Configures the paths, then [`Self::start`]s.
#[derive(Default)]
pub struct SourceServer {
    routes: Vec<(String, Route)>,
}

impl SourceServer {
    /// A server with no paths yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `path` (starting with `/`) as `route` says.
    pub fn route(mut self, path: &str, route: impl Into<Route>) -> Self {
        self.routes.push((path.to_string(), route.into()));
        self
    }

    /// Listens on 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(self) -> SourceHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            bytes: Arc::new(AtomicU64::new(0)),
        });
        let (stop, stopped) = watch::channel(false);
        for (path, route) in self.routes {
            let entry = Entry {
                route,
                requests: 0,
                bytes: Arc::default(),
            };
            lock(&shared.routes).insert(path, entry);
        }
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        SourceHandle {
            addr,
            shared,
            stop,
            task: Some(task),
        }
    }
}

/// A running source server; dropping it stops the server and cuts its open connections.
pub struct SourceHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SourceHandle {
    /// Stops the server and returns once it no longer accepts connections (dropping the handle
    /// stops it too, without waiting).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` (starting with `/`).
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Sets or replaces what `path` answers (a source that changes between two reads); the
    /// path's request count, which [`Serve::only_first`] counts against, starts again at zero.
    pub fn set_route(&self, path: &str, route: impl Into<Route>) {
        let mut routes = lock(&self.shared.routes);
        let bytes = routes
            .get(path)
            .map(|entry| entry.bytes.clone())
            .unwrap_or_default();
        let entry = Entry {
            route: route.into(),
            requests: 0,
            bytes,
        };
        routes.insert(path.to_string(), entry);
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared.log).clone()
    }

    /// Requests so far, to any path.
    pub fn requests(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Requests so far to `path`.
    pub fn requests_to(&self, path: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|logged| logged.path == path)
            .count()
    }

    /// Body bytes handed to connections so far, all paths (a cut or closed connection may have
    /// dropped the last chunk of them).
    pub fn bytes_served(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Body bytes handed to connections so far for `path`.
    pub fn bytes_served_to(&self, path: &str) -> u64 {
        lock(&self.shared.routes)
            .get(path)
            .map_or(0, |entry| entry.bytes.load(Ordering::Relaxed))
    }

    /// The `Range` headers asked for so far, all paths, in order.
    pub fn ranges(&self) -> Vec<String> {
        lock(&self.shared.log)
            .iter()
            .filter_map(|logged| logged.range.clone())
            .collect()
    }

    /// The `Range` headers asked for so far on `path`, in order.
    pub fn ranges_to(&self, path: &str) -> Vec<String> {
        lock(&self.shared.log)
            .iter()
            .filter(|logged| logged.path == path)
            .filter_map(|logged| logged.range.clone())
            .collect()
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::task::yield_now().await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |request| {
            let response = respond(&shared, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // On stop the connection is dropped, not shut down gracefully: a slow multi-GiB body
            // would otherwise keep it open long after the test.
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Answers one request and logs it.
fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<SourceStream> {
    let path = request.uri().path().to_string();
    let range = header_str(request, header::RANGE).map(str::to_string);
    let found = {
        let mut routes = lock(&shared.routes);
        routes.get_mut(&path).map(|entry| {
            let index = entry.requests;
            entry.requests = entry.requests.saturating_add(1);
            (entry.route.clone(), index, entry.bytes.clone())
        })
    };
    let response = match found {
        None | Some((Route::NotFound, _, _)) => text(StatusCode::NOT_FOUND, "no such source\n"),
        Some((Route::Redirect { to }, _, _)) => {
            let mut response = text(StatusCode::FOUND, "moved\n");
            if let Ok(location) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Some((Route::Serve(serve), index, bytes)) => {
            let counters = [bytes, shared.bytes.clone()];
            serve_body(&serve, index, request, counters)
        }
    };
    lock(&shared.log).push(Logged {
        method: request.method().to_string(),
        path,
        range,
        status: response.status().as_u16(),
    });
    response
}

/// The part of the body a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// `start..end`, end exclusive, never empty.
    Part(u64, u64),
    Unsatisfiable,
}

fn serve_body(
    serve: &Serve,
    index: u32,
    request: &Request<Incoming>,
    counters: [Arc<AtomicU64>; 2],
) -> Response<SourceStream> {
    if let Some((name, value)) = &serve.required_header
        && header_str(request, name.as_str()) != Some(value.as_str())
    {
        let mut response = text(StatusCode::UNAUTHORIZED, "credentials required\n");
        let challenge = HeaderValue::from_static("Bearer");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
        return response;
    }
    let fault = serve
        .fault
        .filter(|_| serve.fault_requests.is_none_or(|first| index < first));
    if let Some(Fault::Status { status }) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return text(status, "the source failed on purpose\n");
    }
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
        let allow = HeaderValue::from_static("GET, HEAD");
        response.headers_mut().insert(header::ALLOW, allow);
        return response;
    }

    let body = &serve.body;
    let size = body.size();
    let etag = body.etag();
    let wanted = if serve.ranges {
        let if_range = header_str(request, header::IF_RANGE);
        let current = if_range.is_none_or(|v| v == etag || v == LAST_MODIFIED_DATE);
        match header_str(request, header::RANGE) {
            Some(range) if current => wanted(range, size),
            _ => Wanted::Whole,
        }
    } else {
        Wanted::Whole
    };
    let (status, start, end) = match wanted {
        Wanted::Whole => (StatusCode::OK, 0, size),
        Wanted::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Wanted::Unsatisfiable => {
            let mut response = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
            let all = format!("bytes */{size}");
            set(&mut response, header::CONTENT_RANGE, &all);
            set(&mut response, header::ACCEPT_RANGES, "bytes");
            return response;
        }
    };

    let head = method == Method::HEAD;
    let declared = match fault {
        Some(Fault::DeclaredLength { length }) if !head => length,
        _ => end - start,
    };
    let stream = if head {
        SourceStream::empty()
    } else {
        SourceStream::generated(Generated {
            body: body.clone(),
            at: start,
            end,
            cut_at: match fault {
                Some(Fault::CutAfter { bytes }) => Some(start.saturating_add(bytes).min(end)),
                _ => None,
            },
            wrong_from: match fault {
                Some(Fault::WrongBytesFrom { offset }) => Some(offset),
                _ => None,
            },
            bytes_per_second: serve.bytes_per_second,
            counters,
        })
    };
    let mut response = Response::new(stream);
    *response.status_mut() = status;
    set(&mut response, header::CONTENT_LENGTH, &declared.to_string());
    set(
        &mut response,
        header::CONTENT_TYPE,
        "application/octet-stream",
    );
    set(&mut response, header::ETAG, &etag);
    set(&mut response, header::LAST_MODIFIED, LAST_MODIFIED_DATE);
    if serve.ranges {
        set(&mut response, header::ACCEPT_RANGES, "bytes");
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{size}", end - 1);
        set(&mut response, header::CONTENT_RANGE, &range);
    }
    if matches!(fault, Some(Fault::DeclaredLength { .. })) {
        set(&mut response, header::CONNECTION, "close");
    }
    response
}

/// Reads one `bytes=` range; anything else is ignored as RFC 9110 allows.
fn wanted(range: &str, size: u64) -> Wanted {
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return match last.parse::<u64>() {
            Ok(0) => Wanted::Unsatisfiable,
            Ok(_) if size == 0 => Wanted::Unsatisfiable,
            Ok(suffix) => Wanted::Part(size - suffix.min(size), size),
            Err(_) => Wanted::Whole,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Wanted::Whole;
    };
    let end = if last.is_empty() {
        size
    } else {
        match last.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(size),
            _ => return Wanted::Whole,
        }
    };
    if start >= size {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(start, end)
    }
}

fn header_str<K: header::AsHeaderName>(request: &Request<Incoming>, name: K) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn text(status: StatusCode, message: &'static str) -> Response<SourceStream> {
    let mut response = Response::new(SourceStream::once(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    set(&mut response, header::CONTENT_TYPE, "text/plain");
    response
}

fn set(response: &mut Response<SourceStream>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
