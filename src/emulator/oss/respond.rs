//! How the OSS endpoint answers: its XML error bodies, the headers of a stored body, and the
//! faults drawn for an OSS action.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::StreamExt as _;
use jiff::Timestamp;

use super::digest::Content;
use super::{OssFault, xml_document};
use crate::emulator::faults::Fault;
use crate::emulator::server::{DropConnection, Shared};
use crate::emulator::stats::{Hostile, Outcome};

/// Answers a drawn fault, or `None` when it does not apply to OSS (the request is then served).
pub(super) async fn faulted(
    shared: &Shared,
    name: &'static str,
    delayed: bool,
    request_id: &str,
    host: &str,
    head: bool,
    fault: Fault,
) -> Option<Response> {
    let record = |outcome| shared.stats.record(Some(name), outcome, delayed);
    let error = |fault: OssFault| {
        shared
            .stats
            .record(Some(name), Outcome::Error(fault.code), delayed);
        Some(fault_response(head, request_id, host, &fault))
    };
    match fault {
        Fault::Drop => {
            record(Outcome::Dropped);
            Some(dropped())
        }
        Fault::Throttle => error(OssFault::new(
            503,
            "ServiceUnavailable",
            "Please reduce your request rate.",
        )),
        Fault::ServerError(500) => {
            shared.stats.record_server_error();
            error(OssFault::new(
                500,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ))
        }
        Fault::ServerError(_) => {
            shared.stats.record_server_error();
            error(OssFault::new(
                503,
                "ServiceUnavailable",
                "Service is unavailable. Please try again.",
            ))
        }
        Fault::HtmlBadGateway => {
            record(Outcome::Hostile(Hostile::HtmlBadGateway));
            let mut response = Response::new(Body::from(
                "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
            ));
            *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
            set(&mut response, "content-type", "text/html");
            Some(response)
        }
        Fault::InvalidJson => {
            record(Outcome::Hostile(Hostile::InvalidJson));
            Some(xml("{\"not\": \"xml\"".to_string()))
        }
        Fault::MissingFields => {
            record(Outcome::Hostile(Hostile::MissingFields));
            Some(xml(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response/>".to_string(),
            ))
        }
        Fault::Truncated => {
            record(Outcome::Hostile(Hostile::Truncated));
            let whole = xml_document("Response", &[("RequestId", request_id)]).into_bytes();
            let half = Bytes::copy_from_slice(&whole[..whole.len() / 2]);
            let cut = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("truncated by the emulator's faults"))
            });
            let chunks = futures::stream::iter([Ok::<Bytes, std::io::Error>(half)]).chain(cut);
            let mut response = xml(String::new());
            *response.body_mut() = Body::from_stream(chunks);
            set(&mut response, "content-length", &whole.len().to_string());
            Some(response)
        }
        Fault::Hang(limit) => {
            record(Outcome::Hostile(Hostile::Hung));
            tokio::time::sleep(limit).await;
            Some(dropped())
        }
        Fault::Oversized(_) | Fault::Answer(_) => None,
    }
}

fn dropped() -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(DropConnection);
    response
}

pub(super) fn fault_response(
    head: bool,
    request_id: &str,
    host: &str,
    fault: &OssFault,
) -> Response {
    // A HEAD answer has no body: the code travels in `x-oss-ec`'s place only as the status.
    let mut response = if head {
        empty(fault.status)
    } else {
        xml(fault.body(request_id, host))
    };
    *response.status_mut() = fault.status_code();
    set(&mut response, "x-oss-request-id", request_id);
    response
}

pub(super) fn stored(content: &Content) -> Response {
    let mut response = empty(200);
    set(&mut response, "etag", &content.etag());
    set(&mut response, "content-md5", &content.content_md5());
    set(
        &mut response,
        "x-oss-hash-crc64ecma",
        &content.crc64.to_string(),
    );
    response
}

pub(super) fn empty(status: u16) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    response
}

pub(super) fn xml(body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    set(&mut response, "content-type", "application/xml");
    response
}

pub(super) fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// An HTTP date (`Last-Modified`, `Date`).
pub(super) fn http_date(at: Timestamp) -> String {
    at.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
