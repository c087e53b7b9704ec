//! Request routing: discovery, the REST paths of every served resource, and the admin paths.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::discovery;
use crate::error::ApiError;
use crate::faults::FaultRule;
use crate::patch::{self, PatchKind};
use crate::protobuf;
use crate::resource::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::App;
use crate::store::{Deleted, Ownership, Subresource, WriteCtx};
use crate::table;
use crate::watch::{self, WatchParams};

/// Largest request body accepted, well above any object the operator writes.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Query parameters, percent-decoded.
pub(crate) struct Query(HashMap<String, String>);

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let map = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Self(map)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn is_watch(&self) -> bool {
        self.flag("watch")
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The response for a failure.
pub(crate) fn error_response(error: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &error.to_status())
}

fn text_response(text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A parsed request.
struct Call {
    method: Method,
    segments: Vec<String>,
    query: Query,
    accept: String,
    content_type: String,
    user_agent: String,
    body: bytes::Bytes,
}

/// Handles one request (faults already applied).
pub(crate) async fn handle(app: Arc<App>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error_response(&ApiError::bad_request("failed to read the request body")),
    };
    let call = Call {
        method: parts.method.clone(),
        segments: parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect(),
        query: Query::parse(parts.uri.query()),
        accept: header(header::ACCEPT),
        content_type: header(header::CONTENT_TYPE),
        user_agent: header(header::USER_AGENT),
        body,
    };
    tracing::debug!(method = %call.method, uri = %parts.uri, "request");
    match route(&app, call) {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

fn route(app: &Arc<App>, call: Call) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let get = call.method == Method::GET;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez"] if get => Ok(text_response("ok")),
        ["version"] if get => ok(discovery::version()),
        ["_double", "faults"] => admin_faults(app, &call),
        ["_double", "requests"] if get => {
            ok(serde_json::to_value(app.requests.snapshot()).unwrap_or(Value::Null))
        }
        ["_double", "close-watches"] if call.method == Method::POST => {
            app.faults.close_watches();
            ok(json!({}))
        }
        ["api"] if get => {
            negotiate_discovery(&call.accept)?;
            ok(discovery::core_versions(&app.address))
        }
        ["apis"] if get => {
            negotiate_discovery(&call.accept)?;
            ok(discovery::groups(&app.store.lock()))
        }
        ["api", "v1"] if get => ok(discovery::resources(&app.store.lock(), "", "v1")?),
        ["apis", group] if get => ok(discovery::group(&app.store.lock(), group)?),
        ["apis", group, version] if get => {
            ok(discovery::resources(&app.store.lock(), group, version)?)
        }
        ["openapi", "v3"] if get => ok(discovery::openapi_root(&app.store.lock())),
        ["openapi", "v3", "api", "v1"] if get => ok(discovery::openapi_group_version(
            &app.store.lock(),
            "",
            "v1",
        )?),
        ["openapi", "v3", "apis", group, version] if get => ok(discovery::openapi_group_version(
            &app.store.lock(),
            group,
            version,
        )?),
        ["api", "v1", rest @ ..] => resource(app, &call, "", "v1", rest),
        ["apis", group, version, rest @ ..] => resource(app, &call, group, version, rest),
        _ => Err(ApiError::no_route()),
    }
}

fn negotiate_discovery(accept: &str) -> Result<(), ApiError> {
    if discovery::accepts_plain_json(accept) {
        Ok(())
    } else {
        Err(ApiError::not_acceptable(
            "only the unaggregated discovery format (application/json) is served",
        ))
    }
}

fn admin_faults(app: &Arc<App>, call: &Call) -> Result<Response<Body>, ApiError> {
    match call.method {
        Method::GET => Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(app.faults.rules()).unwrap_or(Value::Null),
        )),
        Method::POST => {
            let rule: FaultRule = serde_json::from_slice(&call.body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault rule: {e}")))?;
            app.faults.add(rule);
            Ok(json_response(StatusCode::CREATED, &json!({})))
        }
        Method::DELETE => {
            app.faults.clear();
            Ok(json_response(StatusCode::OK, &json!({})))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Where a resource path points.
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn resolve(app: &Arc<App>, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let state = app.store.lock();
    let find = |plural: &str| state.find_type(group, version, plural);
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|t| t.namespaced) => {
            (Some((*ns).to_owned()), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Err(ApiError::no_route()),
    };
    let rt = find(plural).ok_or_else(ApiError::no_route)?;
    // A namespaced kind's objects are only addressed inside a namespace; its bare collection path
    // lists across all namespaces.
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    if !rt.namespaced && namespace.is_some() {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        subresource,
    })
}

fn write_ctx(call: &Call, subresource: Subresource) -> WriteCtx {
    let manager = match call.query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => call
            .user_agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
    };
    WriteCtx {
        manager,
        strict: call.query.get("fieldValidation") == Some("Strict"),
        dry_run: call.query.get("dryRun") == Some("All"),
        subresource,
    }
}

fn parse_body(call: &Call) -> Result<Value, ApiError> {
    if call.content_type.contains("protobuf") {
        return protobuf::to_json(&call.body);
    }
    if call.content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ]));
    }
    let text = std::str::from_utf8(&call.body)
        .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
    if call.content_type.contains("yaml") {
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    }
}

fn resource(
    app: &Arc<App>,
    call: &Call,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    let target = resolve(app, group, version, rest)?;
    let rt = target.rt.clone();
    let ns = target.namespace.clone().unwrap_or_default();
    let subresource = match target.subresource.as_deref() {
        None => Subresource::Main,
        Some("status") if rt.status_subresource => Subresource::Status,
        Some(_) => return Err(ApiError::no_route()),
    };
    let Some(name) = target.name.clone() else {
        return collection(app, call, &target);
    };
    let ctx = write_ctx(call, subresource);
    let respond = |code: StatusCode, obj: Value| -> Result<Response<Body>, ApiError> {
        if table::wants_table(&call.accept) && code == StatusCode::OK && call.method == Method::GET
        {
            let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
            let include = call.query.get("includeObject").unwrap_or("Metadata");
            return Ok(json_response(
                code,
                &table::render(&rt, &[obj], meta, include),
            ));
        }
        if table::wants_metadata(&call.accept) {
            return Ok(json_response(code, &table::partial_metadata(&obj)));
        }
        Ok(json_response(code, &obj))
    };
    match call.method {
        Method::GET => {
            let obj = app.store.lock().get(&rt, &ns, &name)?;
            respond(StatusCode::OK, obj)
        }
        Method::PUT => {
            let body = parse_body(call)?;
            let obj = app.store.lock().update(&rt, &ns, &name, body, &ctx)?;
            respond(StatusCode::OK, obj)
        }
        Method::PATCH => {
            let kind = PatchKind::from_content_type(&call.content_type)?;
            let force = call.query.flag("force");
            if force && kind != PatchKind::Apply {
                return Err(ApiError::bad_request(
                    "force may only be set for apply patches",
                ));
            }
            let mut state = app.store.lock();
            let existed = state.current(&rt, &ns, &name).is_some();
            let obj = patch::patch(&mut state, &rt, &ns, &name, kind, &call.body, &ctx, force)?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            respond(code, obj)
        }
        Method::DELETE if subresource == Subresource::Main => {
            let options = if call.body.is_empty() {
                Value::Null
            } else {
                parse_body(call)?
            };
            let dry_run = ctx.dry_run
                || options
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            match app
                .store
                .lock()
                .delete(&rt, &ns, &name, &options, dry_run)?
            {
                Deleted::Object(obj) => respond(StatusCode::OK, obj),
                Deleted::Status(status) => Ok(json_response(StatusCode::OK, &status)),
            }
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn collection(app: &Arc<App>, call: &Call, target: &Target) -> Result<Response<Body>, ApiError> {
    let rt = &target.rt;
    let labels = LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""), rt)?;
    match call.method {
        Method::GET if call.query.is_watch() => {
            let seconds = call
                .query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0);
            let params = WatchParams {
                namespace: target.namespace.clone(),
                labels,
                fields,
                resource_version: call.query.get("resourceVersion").map(str::to_owned),
                resource_version_match: call.query.get("resourceVersionMatch").map(str::to_owned),
                bookmarks: call.query.flag("allowWatchBookmarks"),
                send_initial_events: call.query.flag("sendInitialEvents"),
                timeout: seconds.map_or(app.options.watch_timeout, Duration::from_secs),
                bookmark_interval: app.options.bookmark_interval,
                metadata_only: table::wants_metadata(&call.accept),
                table: table::wants_table(&call.accept).then(|| {
                    call.query
                        .get("includeObject")
                        .unwrap_or("Metadata")
                        .to_owned()
                }),
            };
            let body = watch::start(app.store.clone(), rt.clone(), params)?;
            let mut response = Response::new(body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        Method::GET => {
            let limit = call
                .query
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok());
            let page = app.store.lock().list(
                rt,
                target.namespace.as_deref(),
                &labels,
                &fields,
                limit,
                call.query.get("continue"),
            )?;
            let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(map) = meta.as_object_mut() {
                if let Some(token) = page.continue_token {
                    map.insert("continue".into(), Value::String(token));
                }
                if let Some(remaining) = page.remaining {
                    map.insert("remainingItemCount".into(), json!(remaining));
                }
            }
            if table::wants_table(&call.accept) {
                let include = call.query.get("includeObject").unwrap_or("Metadata");
                return Ok(json_response(
                    StatusCode::OK,
                    &table::render(rt, &page.items, meta, include),
                ));
            }
            if table::wants_metadata(&call.accept) {
                let items: Vec<Value> = page.items.iter().map(table::partial_metadata).collect();
                return Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta,
                        "items": items,
                    }),
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", rt.kind),
                    "apiVersion": rt.api_version(),
                    "metadata": meta,
                    "items": page.items,
                }),
            ))
        }
        Method::POST => {
            let Some(ns) = target
                .namespace
                .clone()
                .or_else(|| (!rt.namespaced).then(String::new))
            else {
                return Err(ApiError::no_route());
            };
            let body = parse_body(call)?;
            let ctx = write_ctx(call, Subresource::Main);
            let obj = app
                .store
                .lock()
                .create(rt, &ns, body, &ctx, Ownership::Update)?;
            Ok(json_response(StatusCode::CREATED, &obj))
        }
        Method::DELETE => {
            let ctx = write_ctx(call, Subresource::Main);
            let items = app.store.lock().delete_collection(
                rt,
                target.namespace.as_deref(),
                &labels,
                &fields,
                ctx.dry_run,
            )?;
            let rv = app.store.lock().resource_version();
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", rt.kind),
                    "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": items,
                }),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
