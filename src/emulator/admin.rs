//! The admin API under `/_emulator/`: no signature, no faults, JSON in and out.
//!
//! | Method and path | What |
//! |---|---|
//! | `GET /_emulator/stats` | counters per action and code, faults served, `ImportImage` calls |
//! | `POST /_emulator/reset` | zero counters; forget images, tasks, tokens, nonces |
//! | `GET`/`POST /_emulator/objects` | list / add OSS objects (one object or a list, JSON or YAML) |
//! | `GET`/`POST /_emulator/keys` | list key IDs and accounts (never secrets) / add a key |
//! | `GET`/`PUT /_emulator/accounts/{account}` | read / change role, quotas, status, closed regions |
//! | `GET`/`PUT /_emulator/faults` | read / replace fault settings |
//! | `PUT /_emulator/import-failure-rate` | `{"rate":0.2}`: share of imports that fail |
//! | `GET /_emulator/images`, `GET /_emulator/tasks` | every image and task with its state now |
//! | `GET /_emulator/time`, `POST /_emulator/time/advance` | emulated time; `{"seconds":600}` jumps ahead |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jiff::SignedDuration;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::auth::AccessKey;
use super::faults::FaultSettings;
use super::server::Shared;
use super::world::{AccountPatch, OssObject};

/// Where the admin API lives on the emulator's listener.
pub const PREFIX: &str = "/_emulator";

/// The admin routes (nested under [`PREFIX`]).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .route("/objects", get(list_objects).post(add_objects))
        .route("/keys", get(list_keys).post(add_key))
        .route("/accounts/{account}", get(get_account).put(patch_account))
        .route("/faults", get(get_faults).put(set_faults))
        .route("/import-failure-rate", put(set_failure_rate))
        .route("/images", get(list_images))
        .route("/tasks", get(list_tasks))
        .route("/time", get(time))
        .route("/time/advance", post(advance))
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// JSON, or YAML (a superset that also reads the objects file's syntax).
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    serde_json::from_str(text).or_else(|json_error| {
        serde_saphyr::from_str(text)
            .map_err(|_| format!("body is neither valid JSON nor YAML: {json_error}"))
    })
}

fn unavailable() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "world state unusable\n").into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    match serde_json::to_value(shared.stats_snapshot()) {
        Ok(value) => ok(value),
        Err(error) => bad_request(error.to_string()),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    ok(json!({ "reset": true }))
}

async fn list_objects(State(shared): State<Arc<Shared>>) -> Response {
    shared
        .with_world(|world| ok(json!({ "objects": world.objects().collect::<Vec<_>>() })))
        .unwrap_or_else(unavailable)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

async fn add_objects(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let objects = match parse::<OneOrMany<OssObject>>(&body) {
        Ok(OneOrMany::One(object)) => vec![object],
        Ok(OneOrMany::Many(objects)) => objects,
        Err(message) => return bad_request(message),
    };
    let count = objects.len();
    shared
        .with_world(|world| {
            for object in objects {
                world.add_object(object);
            }
            ok(json!({ "added": count }))
        })
        .unwrap_or_else(unavailable)
}

async fn list_keys(State(shared): State<Arc<Shared>>) -> Response {
    let keys: Vec<Value> = shared
        .verifier
        .key_summaries()
        .into_iter()
        .map(|(id, account, temporary)| {
            json!({ "access_key_id": id, "account": account, "temporary": temporary })
        })
        .collect();
    ok(json!({ "keys": keys }))
}

async fn add_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<AccessKey>(&body) {
        Ok(key) => {
            let id = key.access_key_id.clone();
            shared.with_world(|world| world.add_account(&key.account));
            shared.verifier.add_key(key);
            ok(json!({ "access_key_id": id }))
        }
        Err(message) => bad_request(message),
    }
}

async fn get_account(State(shared): State<Arc<Shared>>, Path(account): Path<String>) -> Response {
    shared
        .with_world(|world| ok(json!(world.account(&account))))
        .unwrap_or_else(unavailable)
}

async fn patch_account(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    match parse::<AccountPatch>(&body) {
        Ok(patch) => shared
            .with_world(|world| ok(json!(world.patch_account(&account, patch))))
            .unwrap_or_else(unavailable),
        Err(message) => bad_request(message),
    }
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    ok(json!(shared.faults.get()))
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<FaultSettings>(&body) {
        Ok(settings) => {
            shared.faults.set(settings);
            ok(json!(shared.faults.get()))
        }
        Err(message) => bad_request(message),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rate {
    rate: f64,
}

async fn set_failure_rate(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<Rate>(&body) {
        Ok(Rate { rate }) => shared
            .with_world(|world| {
                world.set_import_failure_rate(rate);
                ok(json!({ "rate": world.import_failure_rate() }))
            })
            .unwrap_or_else(unavailable),
        Err(message) => bad_request(message),
    }
}

async fn list_images(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.clock.now();
    shared
        .with_world(|world| {
            let images: Vec<Value> = world
                .all_images()
                .map(|image| {
                    let (status, progress) = world.image_state(image, now);
                    json!({ "image": image, "status": status, "progress": progress })
                })
                .collect();
            ok(json!({ "now": now, "images": images }))
        })
        .unwrap_or_else(unavailable)
}

async fn list_tasks(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.clock.now();
    shared
        .with_world(|world| {
            let tasks: Vec<Value> = world
                .all_tasks()
                .map(|task| json!({ "task": task, "state": task.state(now) }))
                .collect();
            ok(json!({ "now": now, "tasks": tasks }))
        })
        .unwrap_or_else(unavailable)
}

async fn time(State(shared): State<Arc<Shared>>) -> Response {
    ok(json!({ "now": shared.clock.now(), "time_scale": shared.clock.scale() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<Advance>(&body) {
        Ok(Advance { seconds }) if seconds.is_finite() && seconds >= 0.0 => {
            shared.clock.advance(SignedDuration::from_secs_f64(seconds));
            ok(json!({ "now": shared.clock.now() }))
        }
        Ok(_) => bad_request("seconds must be a finite number ≥ 0".into()),
        Err(message) => bad_request(message),
    }
}
