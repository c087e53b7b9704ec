//! Shared test helpers: a loopback HTTP server that records requests and answers from a script.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    /// Query and form body parameters together, decoded.
    pub fn params(&self) -> ecs_image_operator::ecs::params::Params {
        let mut params =
            ecs_image_operator::ecs::params::Params::from_form(self.uri.query().unwrap_or(""))
                .expect("query decodes");
        params.extend_from_form(&self.body).expect("body decodes");
        params
    }
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: std::time::Duration,
}

impl Canned {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            headers: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Recorded) -> Option<Canned> + Send + Sync;

#[derive(Clone)]
struct State {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Canned>>>,
    responder: Arc<Responder>,
}

/// A loopback server: answers from the script queue first, then from the responder.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    state: State,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    /// Starts a server whose answers come from `script` in order, then from `responder`.
    pub async fn start(
        script: Vec<Canned>,
        responder: impl Fn(&Recorded) -> Option<Canned> + Send + Sync + 'static,
    ) -> Self {
        let state = State {
            recorded: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
            responder: Arc::new(responder),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.recorded.lock().expect("lock").clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method,
        uri,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    state.recorded.lock().expect("lock").push(recorded.clone());
    let next = state.script.lock().expect("lock").pop_front();
    let canned = next.or_else(|| (state.responder)(&recorded));
    let Some(canned) = canned else {
        return (StatusCode::NOT_FOUND, "no scripted answer").into_response();
    };
    if !canned.delay.is_zero() {
        tokio::time::sleep(canned.delay).await;
    }
    let mut response = (
        StatusCode::from_u16(canned.status).expect("status"),
        canned.body,
    )
        .into_response();
    for (name, value) in canned.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    response
}

/// An ECS-shaped error body.
pub fn ecs_error(code: &str, message: &str) -> String {
    serde_json::json!({"RequestId": "REQ-1", "HostId": "ecs.test", "Code": code, "Message": message}).to_string()
}
