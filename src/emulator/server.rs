//! The HTTP side: one listener serving the ECS API on `/`, the admin API under `/_emulator/`, and
//! path-style OSS (`/bucket/key`, see [`super::oss`]) on every other path.
//!
//! Connections are served by hyper directly (HTTP/1.1, keep-alive) rather than `axum::serve`, so a
//! fault can close a connection without any answer: the ECS handler marks its response, and the
//! connection's service turns the mark into an error, on which hyper drops the connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::actions::{self, ACTIONS, EcsFault};
use super::auth::{AuthRequest, Verifier};
use super::config::EmulatorConfig;
use super::faults::{Fault, Faults};
use super::render::{self, Format, Node};
use super::stats::{Outcome, Stats, StatsSnapshot};
use super::world::World;
use super::{EmulatorError, EmulatorHandle, SimClock, admin};
use crate::ecs::api::API_VERSION;
use crate::ecs::params::Params;
use crate::ecs::sts::STS_API_VERSION;

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    /// The world; held only for the duration of one action.
    pub world: Mutex<World>,
    /// Keys and nonces.
    pub verifier: Verifier,
    /// Fault settings.
    pub faults: Faults,
    /// Counters.
    pub stats: Stats,
    /// Emulated time.
    pub clock: SimClock,
    /// Multipart uploads and uploaded objects' digests (the OSS endpoint).
    pub oss: Mutex<super::oss::Store>,
    request_ids: RequestIds,
}

impl Shared {
    /// Runs `f` with the world locked (`None` if a panic poisoned the lock).
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> Option<T> {
        self.world.lock().ok().map(|mut world| f(&mut world))
    }

    /// A fresh request ID.
    pub fn next_request_id(&self) -> String {
        self.request_ids.next()
    }

    /// Counters plus the import log.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let calls = self
            .with_world(|world| world.import_calls())
            .unwrap_or_default();
        self.stats.snapshot(calls)
    }

    /// Zeroes counters and forgets images, tasks, tokens and nonces.
    pub fn reset(&self) {
        self.stats.reset();
        self.verifier.clear_nonces();
        self.with_world(World::reset);
    }
}

/// ECS-shaped request IDs (`8-4-4-4-12` uppercase hex): a random prefix per process and a counter,
/// unique without any lock.
#[derive(Debug)]
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            self.prefix >> 32,
            (self.prefix >> 16) & 0xFFFF,
            self.prefix & 0xFFFF,
            (n >> 48) & 0xFFFF,
            n & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Marks a response whose connection must be dropped instead.
#[derive(Debug, Clone, Copy)]
pub(super) struct DropConnection;

pub(super) async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
    if !config.listen.ip().is_loopback() && !config.allow_remote {
        return Err(EmulatorError::RemoteBind(config.listen));
    }
    let shared = Arc::new(build_shared(&config));
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let router = router(shared.clone());
    let (shutdown, stop) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, router, stop));
    Ok(EmulatorHandle {
        addr,
        shared,
        shutdown,
        task,
    })
}

fn build_shared(config: &EmulatorConfig) -> Shared {
    let mut world = World::new(config.regions.clone(), config.timing, config.seed);
    world.set_copy_timing(config.copy_timing);
    world.set_default_account(config.default_account.clone());
    for key in &config.keys {
        world.add_account(&key.account);
    }
    for (name, settings) in &config.accounts {
        world.set_account(name, settings.clone());
    }
    for group in &config.resource_groups {
        world.add_resource_group(group.clone());
    }
    for object in &config.objects {
        world.add_object(object.clone());
    }
    for bucket in &config.buckets {
        world.add_bucket(bucket.clone());
    }
    world.set_import_failure_rate(config.import_failure_rate);
    let prefix = world.random_u64() | 1;
    Shared {
        world: Mutex::new(world),
        verifier: Verifier::new(config.keys.iter().cloned()),
        faults: Faults::new(config.faults.clone(), config.seed),
        stats: Stats::default(),
        clock: SimClock::new(config.time_scale),
        oss: Mutex::new(super::oss::Store::default()),
        request_ids: RequestIds {
            prefix,
            counter: AtomicU64::new(0),
        },
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", any(ecs))
        .nest(admin::PREFIX, admin::router())
        // Path-style OSS: `/bucket` and `/bucket/key` (ECS is `/` alone).
        .route("/{bucket}", any(super::oss::serve))
        .route("/{bucket}/", any(super::oss::serve))
        .route("/{bucket}/{*key}", any(super::oss::serve))
        .fallback(not_found)
        .with_state(shared)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not an ECS path: ECS serves RPC on /\n",
    )
        .into_response()
}

async fn accept_loop(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: the next accept may work.
            tokio::task::yield_now().await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tower = TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |request| {
            let call = tower.call(request);
            async move {
                let response: Response = match call.await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if response.extensions().get::<DropConnection>().is_some() {
                    return Err(EmulatorError::ConnectionDropped);
                }
                Ok::<_, EmulatorError>(response)
            }
        });
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// The ECS API on `/`.
async fn ecs(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.stats.arrived();
    let request_id = shared.request_ids.next();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("ecs.aliyuncs.com")
        .to_string();
    let parsed = parse_request(&method, &uri, &headers, &body);
    let v3 = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.starts_with(crate::ecs::sign::V3_ALGORITHM));
    let format = response_format(v3, &headers, parsed.as_ref().ok().map(|(_, all)| all));
    let (query, params) = match parsed {
        Ok(parsed) => parsed,
        Err(fault) => {
            shared.stats.record(None, Outcome::Error(fault.code), false);
            return error_response(format, &request_id, &host, &fault);
        }
    };
    let action_name = if v3 {
        headers
            .get("x-acs-action")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string()
    } else {
        params.get("Action").unwrap_or_default().to_string()
    };
    let known_action = ACTIONS.iter().copied().find(|a| *a == action_name);

    let decision = shared.faults.decide(&action_name);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let delayed = decision.latency.is_some();
    match decision.fault {
        Some(Fault::Drop) => {
            shared.stats.record(known_action, Outcome::Dropped, delayed);
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            return response;
        }
        Some(Fault::Throttle) => {
            let fault = EcsFault::new(
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            shared
                .stats
                .record(known_action, Outcome::Error(fault.code), delayed);
            return error_response(format, &request_id, &host, &fault);
        }
        Some(Fault::ServerError(status)) => {
            let fault = if status == 503 {
                EcsFault::new(
                    "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.",
                )
            } else {
                EcsFault::new(
                    "InternalError",
                    "The request processing has failed due to some unknown error, exception or failure.",
                )
            };
            shared.stats.record_server_error();
            shared
                .stats
                .record(known_action, Outcome::Error(fault.code), delayed);
            return error_response(format, &request_id, &host, &fault);
        }
        Some(Fault::Answer(code)) => {
            let fault = EcsFault::new(code, format!("{code} (answered by the emulator's faults)"));
            shared
                .stats
                .record(known_action, Outcome::Error(fault.code), delayed);
            return error_response(format, &request_id, &host, &fault);
        }
        Some(hostile) => {
            return hostile_response(&shared, known_action, delayed, format, &request_id, hostile)
                .await;
        }
        None => {}
    }

    let result = handle(
        &shared,
        &method,
        &query,
        &params,
        &headers,
        &body,
        &action_name,
        v3,
    );
    // Parameters are not logged: they may carry a SecurityToken.
    match &result {
        Ok(_) => tracing::debug!(action = %action_name, "answered"),
        Err(fault) => tracing::debug!(action = %action_name, code = fault.code, "refused"),
    }
    match result {
        Ok(fields) => {
            shared.stats.record(known_action, Outcome::Ok, delayed);
            let mut all = Vec::with_capacity(fields.len() + 1);
            all.push(("RequestId", Node::s(request_id)));
            all.extend(fields);
            let root = format!("{action_name}Response");
            respond(StatusCode::OK, format, render::render(format, &root, &all))
        }
        Err(fault) => {
            shared
                .stats
                .record(known_action, Outcome::Error(fault.code), delayed);
            error_response(format, &request_id, &host, &fault)
        }
    }
}

#[allow(clippy::too_many_arguments)] // the parts of one request, kept apart because V1 and V3 sign different ones
fn handle(
    shared: &Shared,
    method: &Method,
    query: &Params,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    action: &str,
    v3: bool,
) -> Result<actions::Fields, EcsFault> {
    if method != Method::GET && method != Method::POST {
        return Err(EcsFault::new(
            "UnsupportedHTTPMethod",
            "ECS RPC accepts GET and POST only.",
        ));
    }
    let principal = shared.verifier.verify(
        &AuthRequest {
            method: method.as_str(),
            query,
            params,
            headers,
            body,
        },
        Timestamp::now(),
    )?;
    let version = if v3 {
        headers.get("x-acs-version").and_then(|h| h.to_str().ok())
    } else {
        params.get("Version")
    };
    // STS shares the endpoint here (one emulator serves both); each action keeps its own version.
    let wanted = if action == actions::GET_CALLER_IDENTITY {
        STS_API_VERSION
    } else {
        API_VERSION
    };
    match version {
        None | Some("") => return Err(EcsFault::missing("Version")),
        Some(version) if version == wanted => {}
        Some(_) => {
            return Err(EcsFault::new(
                "InvalidVersion",
                "Specified parameter Version is not valid.",
            ));
        }
    }
    if action.is_empty() {
        return Err(EcsFault::missing("Action"));
    }
    let now = shared.clock.now();
    shared
        .with_world(|world| actions::run(world, &principal.account, action, params, now))
        .unwrap_or_else(|| {
            Err(EcsFault::new(
                "InternalError",
                "The emulator's state is unusable after an earlier failure.",
            ))
        })
}

/// Query parameters alone, and query plus form body (the union V1 signs).
///
/// Public so the property tests can feed it arbitrary requests without a socket.
pub fn parse_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Params), EcsFault> {
    let malformed = |_| {
        EcsFault::new(
            "InvalidParameter",
            "The request parameters are not valid percent-encoded UTF-8.",
        )
    };
    let query = match uri.query() {
        Some(text) => Params::from_form(text).map_err(malformed)?,
        None => Params::new(),
    };
    let mut all = query.clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let form_body = content_type.starts_with("application/x-www-form-urlencoded")
        || (content_type.is_empty() && method == Method::POST && !body.is_empty());
    if form_body && !body.is_empty() {
        let text = std::str::from_utf8(body).map_err(|_| {
            EcsFault::new("InvalidParameter", "The request body is not valid UTF-8.")
        })?;
        all.extend_from_form(text).map_err(malformed)?;
    }
    Ok((query, all))
}

fn response_format(v3: bool, headers: &HeaderMap, params: Option<&Params>) -> Format {
    if v3 {
        let wants_xml = headers
            .get(header::ACCEPT)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|accept| accept.contains("xml"));
        return if wants_xml { Format::Xml } else { Format::Json };
    }
    // V1 answers XML unless asked for JSON (the Tea SDK sends `json` in lowercase).
    match params.and_then(|p| p.get("Format")) {
        Some(format) if format.eq_ignore_ascii_case("json") => Format::Json,
        _ => Format::Xml,
    }
}

/// The page a gateway in front of ECS shows when ECS is unreachable.
const BAD_GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>gateway</center>\r\n</body>\r\n</html>\r\n";

/// Chunk size of an oversized body: its padding is sent from one static buffer of this size.
const PAD_CHUNK: usize = 64 * 1024;
static PADDING: [u8; PAD_CHUNK] = [b' '; PAD_CHUNK];

/// The answers of [`Fault::HtmlBadGateway`] through [`Fault::Hang`], counted first.
async fn hostile_response(
    shared: &Shared,
    action: Option<&str>,
    delayed: bool,
    format: Format,
    request_id: &str,
    fault: Fault,
) -> Response {
    use super::stats::Hostile;
    let kind = match fault {
        Fault::HtmlBadGateway => Hostile::HtmlBadGateway,
        Fault::InvalidJson => Hostile::InvalidJson,
        Fault::MissingFields => Hostile::MissingFields,
        Fault::Truncated => Hostile::Truncated,
        Fault::Oversized(_) => Hostile::Oversized,
        Fault::Hang(_) => Hostile::Hung,
        // The other faults are answered by the caller; an empty drop is the safe fallback.
        Fault::Throttle | Fault::ServerError(_) | Fault::Drop | Fault::Answer(_) => {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            return response;
        }
    };
    shared.stats.record(action, Outcome::Hostile(kind), delayed);
    let only_request_id =
        || render::render(format, "Response", &[("RequestId", Node::s(request_id))]);
    match fault {
        Fault::HtmlBadGateway => {
            let mut response = Response::new(Body::from(BAD_GATEWAY_PAGE));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Fault::InvalidJson => respond(
            StatusCode::OK,
            format,
            format!("{{\"RequestId\":\"{request_id}\",,\"ImageId\":"),
        ),
        Fault::MissingFields => respond(StatusCode::OK, format, only_request_id()),
        Fault::Truncated => {
            let whole = only_request_id().into_bytes();
            let half = Bytes::copy_from_slice(&whole[..whole.len() / 2]);
            use futures::StreamExt as _;
            // The pause lets the headers and the first half reach the client before the
            // connection is cut, as when a proxy dies mid-answer.
            let cut = futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::other("truncated by the emulator's faults"))
            });
            let chunks = futures::stream::iter([Ok::<Bytes, std::io::Error>(half)]).chain(cut);
            let mut response = respond(StatusCode::OK, format, String::new());
            *response.body_mut() = Body::from_stream(chunks);
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
            response
        }
        Fault::Oversized(size) => oversized(format, request_id, size),
        Fault::Hang(limit) => {
            // hyper drops this future when the client closes the connection; the limit bounds
            // what a client that never does costs.
            tokio::time::sleep(limit).await;
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            response
        }
        Fault::Throttle | Fault::ServerError(_) | Fault::Drop | Fault::Answer(_) => {
            Response::new(Body::empty())
        }
    }
}

/// A `200` of exactly `size` bytes (or the JSON head alone, if longer): `{"RequestId":"…"`, spaces,
/// `}`: valid JSON, streamed from a static buffer so the emulator's memory does not grow with it.
fn oversized(format: Format, request_id: &str, size: u64) -> Response {
    let head = Bytes::from(format!("{{\"RequestId\":\"{request_id}\""));
    let tail = Bytes::from_static(b"}");
    let fixed = (head.len() + tail.len()) as u64;
    let mut padding = size.saturating_sub(fixed);
    let total = fixed + padding;
    let pad = futures::stream::iter(std::iter::from_fn(move || {
        if padding == 0 {
            return None;
        }
        let take = padding.min(PAD_CHUNK as u64);
        padding -= take;
        let take = usize::try_from(take).unwrap_or(PAD_CHUNK);
        Some(Bytes::from_static(&PADDING[..take]))
    }));
    use futures::StreamExt as _;
    let body = futures::stream::iter([head])
        .chain(pad)
        .chain(futures::stream::iter([tail]))
        .map(Ok::<Bytes, std::io::Error>);
    let mut response = respond(StatusCode::OK, format, String::new());
    *response.body_mut() = Body::from_stream(body);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    response
}

fn error_response(format: Format, request_id: &str, host: &str, fault: &EcsFault) -> Response {
    let fields = vec![
        ("RequestId", Node::s(request_id)),
        ("HostId", Node::s(host)),
        ("Code", Node::s(fault.code)),
        ("Message", Node::s(&fault.message)),
        (
            "Recommend",
            Node::s(format!(
                "https://api.aliyun.com/troubleshoot?q={}&product=Ecs&requestId={request_id}",
                fault.code
            )),
        ),
    ];
    let status = StatusCode::from_u16(fault.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    respond(status, format, render::render(format, "Error", &fields))
}

fn respond(status: StatusCode, format: Format, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}
