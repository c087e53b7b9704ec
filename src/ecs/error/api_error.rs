//! [`ApiError`], ECS's error answer, and reading it off the wire: the JSON or XML body, made safe
//! to show, and the `x-acs-retry-after` header.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{ErrorClass, classify, known_code};
use crate::ecs::redact::{self, Secrets};

/// An error answer from ECS: HTTP status plus the body's `Code`, `Message`, `RequestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The ECS action that failed.
    pub action: &'static str,
    /// HTTP status of the answer.
    pub http_status: u16,
    /// ECS error code, e.g. `InvalidOSSObject.NotFound`.
    pub code: String,
    /// ECS error message.
    pub message: String,
    /// ECS request ID, to quote to Alibaba support.
    pub request_id: Option<String>,
    /// The answering host.
    pub host_id: Option<String>,
    /// The diagnosis URL newer gateways add.
    pub recommend: Option<String>,
    /// `x-acs-retry-after`, when a throttled answer says how long to wait.
    pub retry_after: Option<Duration>,
}

impl std::error::Error for ApiError {}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ECS {} failed: {}: {} (HTTP {}",
            self.action, self.code, self.message, self.http_status
        )?;
        if let Some(request_id) = &self.request_id {
            write!(f, ", request {request_id}")?;
        }
        write!(f, ")")
    }
}

impl ApiError {
    /// The class of this error: from the table of known codes, else from the HTTP status.
    pub fn class(&self) -> ErrorClass {
        classify(&self.code, self.http_status)
    }

    /// What the user can do, for codes where ECS's own message does not say.
    ///
    /// `None` when the message already says it (the wrong-secret hint is part of the shown message).
    pub fn hint(&self) -> Option<&'static str> {
        known_code(&self.code)
            .and_then(|known| known.hint)
            .filter(|hint| !self.message.contains(hint))
    }

    /// Parses an error body, JSON or XML (`<Error>…</Error>`, what `Format=XML` returns), made
    /// safe to show without knowing the request's secrets: see [`ApiError::parse_redacted`].
    ///
    /// Returns `None` when the body has no error code, so the caller can report it as unreadable.
    pub fn parse(action: &'static str, http_status: u16, body: &str) -> Option<Self> {
        Self::parse_redacted(action, http_status, body, &Secrets::none())
    }

    /// Parses an error body and keeps only what may be shown ([`crate::ecs::redact`]): the message
    /// without ECS's string to sign or any form of `secrets`, with the AccessKeySecret hint for
    /// a wrong-secret code, and bounded; the code checked (else
    /// [`crate::ecs::redact::UNUSABLE_CODE`], the code's shown form then leads the message);
    /// request ID, host and diagnosis URL redacted and bounded too.
    ///
    /// Returns `None` when the body has no error code, so the caller can report it as unreadable.
    pub fn parse_redacted(
        action: &'static str,
        http_status: u16,
        body: &str,
        secrets: &Secrets,
    ) -> Option<Self> {
        let wire = parse_error_body(body)?;
        let raw_code = wire.code.filter(|code| !code.is_empty())?;
        let mut message =
            redact::shown_message(&raw_code, wire.message.as_deref().unwrap_or(""), secrets);
        let code = match redact::shown_code(&raw_code, secrets) {
            Ok(code) => code,
            Err(shown) => {
                message = redact::shown_text(
                    &format!("ECS sent an unusable error code {shown:?}: {message}"),
                    secrets,
                    redact::MAX_MESSAGE_CHARS,
                );
                redact::UNUSABLE_CODE.to_string()
            }
        };
        let field = |value: Option<String>| {
            value
                .map(|value| redact::shown_text(&value, secrets, redact::MAX_FIELD_CHARS))
                .filter(|value| !value.is_empty())
        };
        Some(Self {
            action,
            http_status,
            code,
            message,
            request_id: field(wire.request_id),
            host_id: field(wire.host_id),
            recommend: field(wire.recommend),
            retry_after: None,
        })
    }
}

/// Reads an `x-acs-retry-after` header: seconds, possibly fractional; `None` when unusable.
///
/// A wait too long for a `Duration` (`1e300`) reads as the longest one; the caller caps it anyway.
/// (`Duration::from_secs_f64` would panic on it.)
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// The error body as ECS sends it; the Tea SDK also accepts lowercase names, so do we.
#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(rename = "Code", alias = "code")]
    code: Option<String>,
    #[serde(rename = "Message", alias = "message")]
    message: Option<String>,
    #[serde(rename = "RequestId", alias = "requestId")]
    request_id: Option<String>,
    #[serde(rename = "HostId", alias = "hostId")]
    host_id: Option<String>,
    #[serde(rename = "Recommend", alias = "recommend")]
    recommend: Option<String>,
}

fn parse_error_body(body: &str) -> Option<WireError> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('<') {
        // ECS never sends a DTD, and quick-xml 0.38's deserializer panics on one between two runs
        // of text (`<Code>a<!DOCTYPE x>b</Code>`, tafia/quick-xml#964): refuse it unread.
        if contains_ignore_ascii_case(trimmed, "<!doctype") {
            return None;
        }
        quick_xml::de::from_str(trimmed).ok()
    } else {
        serde_json::from_str(trimmed).ok()
    }
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_json_error_body_with_extra_fields() {
        let body = r#"{"RequestId":"540CFF28-1","HostId":"ecs.aliyuncs.com","Code":"InvalidTaskId.NotFound",
            "Message":"The specified \"TaskId\" is not found.","Recommend":"https://example.invalid/x","Extra":1}"#;
        let error = ApiError::parse("CancelTask", 400, body);
        let error = error.as_ref();
        assert_eq!(
            error.map(|e| e.code.as_str()),
            Some("InvalidTaskId.NotFound")
        );
        assert_eq!(
            error.map(|e| e.message.as_str()),
            Some("The specified \"TaskId\" is not found.")
        );
        assert_eq!(
            error.and_then(|e| e.request_id.as_deref()),
            Some("540CFF28-1")
        );
        assert_eq!(
            error.and_then(|e| e.host_id.as_deref()),
            Some("ecs.aliyuncs.com")
        );
    }

    #[test]
    fn parses_an_xml_error_body() {
        let body = "<?xml version='1.0' encoding='UTF-8'?><Error><RequestId>C8B26B44-0189</RequestId>\
            <HostId>ecs.aliyuncs.com</HostId><Code>QuotaExceed.Image</Code><Message>The Image Quota exceeds.</Message></Error>";
        let error = ApiError::parse("ImportImage", 403, body);
        assert_eq!(
            error.as_ref().map(|e| e.code.as_str()),
            Some("QuotaExceed.Image")
        );
        assert_eq!(
            error.as_ref().map(|e| e.message.as_str()),
            Some("The Image Quota exceeds.")
        );
        assert_eq!(
            error.as_ref().and_then(|e| e.request_id.as_deref()),
            Some("C8B26B44-0189")
        );
        assert_eq!(error.map(|e| e.class()), Some(ErrorClass::External));
    }

    #[test]
    fn accepts_lowercase_field_names_and_rejects_bodies_without_a_code() {
        let error = ApiError::parse(
            "DescribeTasks",
            400,
            r#"{"code":"Throttling.User","message":"flow control","requestId":"r"}"#,
        );
        assert_eq!(error.map(|e| e.class()), Some(ErrorClass::Retryable));
        assert_eq!(
            ApiError::parse("DescribeTasks", 502, "<html>bad gateway</html>"),
            None
        );
        assert_eq!(
            ApiError::parse("DescribeTasks", 200, r#"{"RequestId":"r"}"#),
            None
        );
    }

    #[test]
    fn display_quotes_code_message_and_request_id() {
        let error = ApiError {
            action: "ImportImage",
            http_status: 403,
            code: "QuotaExceed.Image".into(),
            message: "The Image Quota exceeds.".into(),
            request_id: Some("R-1".into()),
            host_id: None,
            recommend: None,
            retry_after: None,
        };
        assert_eq!(
            error.to_string(),
            "ECS ImportImage failed: QuotaExceed.Image: The Image Quota exceeds. (HTTP 403, request R-1)"
        );
    }
}
