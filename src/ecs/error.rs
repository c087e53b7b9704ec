//! ECS errors: one typed error for the ECS layer, the parsed API error body, and the classification
//! of every error code this operator can meet (api-reference §1.3, §2–§3, §7 and the original
//! `ImportImage` page), which decides between retrying, refreshing credentials and stalling.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::CredentialsError;
use super::redact::{self, Secrets, WRONG_SECRET_HINT};

/// The error of the ECS layer.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// ECS answered with an error body.
    #[error(transparent)]
    Api(#[from] Box<ApiError>),
    /// The request never got an answer (connection refused or reset, DNS, TLS).
    #[error("failed to reach ECS for {action}: {source}")]
    Transport {
        /// The ECS action.
        action: &'static str,
        /// What went wrong underneath.
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the configured total timeout.
    #[error("ECS did not answer {action} within {timeout:?}")]
    Timeout {
        /// The ECS action.
        action: &'static str,
        /// The configured total timeout.
        timeout: Duration,
    },
    /// ECS answered, but not with anything we can read. `detail` is redacted and bounded where
    /// the client builds it ([`super::redact::shown_text`]).
    #[error("failed to read the ECS {action} response (HTTP {status}): {detail}")]
    Decode {
        /// The ECS action.
        action: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// What could not be read.
        detail: String,
    },
    /// The answer was larger than the client reads (a hostile or broken server, or a proxy's
    /// error page): refused unread past the limit, and retried, as a gateway hiccup would be.
    #[error("the ECS {action} answer is larger than {limit} bytes; not read")]
    ResponseTooLarge {
        /// The ECS action.
        action: &'static str,
        /// The configured limit ([`super::ClientConfig::max_response_bytes`]).
        limit: usize,
    },
    /// No usable credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The endpoint configuration is unusable (e.g. plain http to a non-loopback host).
    #[error("invalid ECS endpoint: {0}")]
    Endpoint(String),
    /// The request was refused before sending because ECS would refuse it too.
    #[error("invalid ECS request: {0}")]
    InvalidRequest(String),
}

impl EcsError {
    /// How a caller should react to this error: ECS's codes by [`KNOWN_CODES`], the operator's own
    /// by [`OPERATOR_CODES`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(error) => error.class(),
            // A refused OIDC token is fixed by the kubelet's next token or by RAM, never by the
            // resource: retry slowly unless STS says it is transient.
            Self::Credentials(CredentialsError::Sts(error)) if error.class().is_retryable() => {
                error.class()
            }
            Self::Credentials(CredentialsError::Sts(_)) => ErrorClass::External,
            _ => operator_code_class(self.code()),
        }
    }

    /// The ECS error code, or a stable name for errors that never reached ECS.
    ///
    /// Conditions, Events and metrics use it as a reason, so it must not carry variable text.
    pub fn code(&self) -> &str {
        match self {
            Self::Api(error) => &error.code,
            Self::Transport { .. } => "NetworkError",
            Self::Timeout { .. } => "Timeout",
            Self::Decode { .. } => "UnreadableResponse",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Credentials(error) => error.code(),
            Self::Endpoint(_) => "InvalidEndpoint",
            Self::InvalidRequest(_) => "InvalidRequest",
        }
    }

    /// Whether ECS does not know the task asked for (`InvalidTaskId.NotFound`): the task is
    /// missing, which is an observation, not a failure.
    pub fn is_unknown_task(&self) -> bool {
        self.code() == "InvalidTaskId.NotFound"
    }

    /// The parsed ECS error, when ECS answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) => Some(error),
            _ => None,
        }
    }
}

/// What waiting, refreshing or the user can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: throttling, 5xx, network, a resource busy for now. Retry with backoff.
    Retryable,
    /// Temporary credentials went stale or were rejected as such: refresh them, then retry.
    RefreshCredentials,
    /// The request itself is wrong (bad parameter, bad credentials): retrying the same request fails
    /// the same way until the user changes the spec or the Secret.
    InvalidRequest,
    /// Blocked by something outside Kubernetes (quota, RAM role, an OSS object not there yet, the
    /// account): the user fixes it elsewhere, so a slow retry will notice when they have.
    External,
}

impl ErrorClass {
    /// Whether the client may retry at once (with backoff) on its own.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable | Self::RefreshCredentials)
    }
}

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

    /// Parses an error body and keeps only what may be shown ([`super::redact`]): the message
    /// without ECS's string to sign or any form of `secrets`, with the AccessKeySecret hint for
    /// a wrong-secret code, and bounded; the code checked (else
    /// [`super::redact::UNUSABLE_CODE`], the code's shown form then leads the message); request
    /// ID, host and diagnosis URL redacted and bounded too.
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

/// One error code the operator knows, with the HTTP status ECS documents for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCode {
    /// The ECS code, spelled as ECS spells it (`Forbbiden`, `NoSetRoletoECSServiceAcount`).
    pub code: &'static str,
    /// The documented HTTP status.
    pub http_status: u16,
    /// How to react.
    pub class: ErrorClass,
    /// What the user can do, when ECS's message does not say.
    pub hint: Option<&'static str>,
}

const fn known(code: &'static str, http_status: u16, class: ErrorClass) -> KnownCode {
    KnownCode {
        code,
        http_status,
        class,
        hint: None,
    }
}

const fn hinted(
    code: &'static str,
    http_status: u16,
    class: ErrorClass,
    hint: &'static str,
) -> KnownCode {
    KnownCode {
        code,
        http_status,
        class,
        hint: Some(hint),
    }
}

/// What to do about a missing image-import role, as the original `ImportImage` page explains it.
pub const IMPORT_ROLE_HINT: &str = "ECS may not read your OSS yet: create the RAM role \
    AliyunECSImageImportDefaultRole with the trust policy {\"Statement\":[{\"Action\":\"sts:AssumeRole\",\
    \"Effect\":\"Allow\",\"Principal\":{\"Service\":[\"ecs.aliyuncs.com\"]}}],\"Version\":\"1\"} and attach \
    the system policy AliyunECSImageImportRolePolicy (or a custom policy allowing oss:GetObject, \
    oss:GetBucketLocation and oss:GetBucketInfo)";

use ErrorClass::{External, InvalidRequest, RefreshCredentials, Retryable};

/// Every error code this operator knows, with its documented status and class.
///
/// Codes not listed fall back to [`classify`]'s rules (`Throttling*` and 5xx retry, the rest is
/// treated as an invalid request).
pub const KNOWN_CODES: &[KnownCode] = &[
    // Gateway and common errors (api-reference §7.2).
    known("Throttling", 400, Retryable),
    known("Throttling.User", 400, Retryable),
    known("Throttling.Api", 400, Retryable),
    known("Rejected.Throttling", 400, Retryable),
    known("ServiceUnavailable", 503, Retryable),
    known("ServiceUnavailable.RegionMaintaining", 503, Retryable),
    known("InternalError", 500, Retryable),
    known("UnknownError", 400, Retryable),
    known("LastTokenProcessing", 403, Retryable),
    known("OperationConflict", 409, Retryable),
    // A reused nonce is fixed by re-signing, which every attempt does.
    known("SignatureNonceUsed", 400, Retryable),
    // The wrong-secret codes (redact::WRONG_SECRET_CODES): the shown message carries the hint.
    hinted(
        "SignatureDoesNotMatch",
        400,
        InvalidRequest,
        WRONG_SECRET_HINT,
    ),
    hinted(
        "IncompleteSignature",
        400,
        InvalidRequest,
        WRONG_SECRET_HINT,
    ),
    hinted(
        "InvalidAccessKeySecret",
        400,
        InvalidRequest,
        WRONG_SECRET_HINT,
    ),
    hinted(
        "InvalidAccessKeyId.NotFound",
        404,
        InvalidRequest,
        "check accessKeyId in the credentials Secret",
    ),
    hinted(
        "InvalidAccessKeyId.Inactive",
        400,
        InvalidRequest,
        "the AccessKey is disabled: enable it or use another",
    ),
    known("InvalidSecurityToken.Expired", 400, RefreshCredentials),
    known("InvalidSecurityToken.Malformed", 400, RefreshCredentials),
    known(
        "InvalidSecurityToken.MismatchWithAccessKey",
        400,
        RefreshCredentials,
    ),
    known("MissingSecurityToken", 400, RefreshCredentials),
    hinted(
        "InvalidTimeStamp.Expired",
        400,
        External,
        "the operator's clock is more than 15 minutes off",
    ),
    known("IllegalTimestamp", 400, InvalidRequest),
    known("InvalidAction.NotFound", 404, InvalidRequest),
    known("InvalidAction", 403, InvalidRequest),
    known("InvalidVersion", 400, InvalidRequest),
    hinted(
        "Forbidden.RAM",
        403,
        External,
        "grant the RAM user or role the ECS actions the operator calls",
    ),
    known("Forbidden.AccessKeyDisabled", 403, External),
    known("Forbidden.Unauthorized", 403, External),
    known("Forbidden.SubUser", 403, External),
    known("Forbidden.RiskControl", 403, External),
    known("IdempotentParameterMismatch", 400, InvalidRequest),
    known("MissingParameter", 400, InvalidRequest),
    known("InvalidParameter", 400, InvalidRequest),
    known("InvalidRegionId.NotFound", 400, InvalidRequest),
    // ImportImage (api-reference §1.3).
    known("UnsupportedSuffix.OSSObject", 400, InvalidRequest),
    known("InvalidImageName.Malformed", 400, InvalidRequest),
    known("InvalidDescription.Malformed", 400, InvalidRequest),
    known("InvalidArchitecture.Malformed", 400, InvalidRequest),
    known("InvalidPlatform.Malformed", 400, InvalidRequest),
    known("InvalidOSType.Malformed", 400, InvalidRequest),
    known("InvalidImageFormat.Malformed", 400, InvalidRequest),
    known("InvalidBootMode.Malformed", 400, InvalidRequest),
    known("InvalidOSSObject.Malformed", 400, InvalidRequest),
    known("InvalidOSSBucket.Malformed", 400, InvalidRequest),
    hinted(
        "InvalidImageName.Duplicated",
        400,
        External,
        "an image with this name exists: rename one of them",
    ),
    known("InvalidImageSize", 400, InvalidRequest),
    known("InvalidDataDiskSize", 400, InvalidRequest),
    hinted(
        "InvalidOSSObject.Size",
        400,
        External,
        "the OSS object is empty: upload the image file again",
    ),
    hinted(
        "InvalidOSSBucket.NotFound",
        400,
        External,
        "create the bucket in the image's region",
    ),
    hinted(
        "InvalidOSSObject.NotFound",
        400,
        External,
        "upload the image file to the bucket",
    ),
    hinted(
        "InvalidOSSObject.NeedRestore",
        400,
        External,
        "restore the Archive-class object first",
    ),
    known("InvalidOSSBucket.NotMatched", 400, InvalidRequest),
    known("InvalidOSSBucket.FlowLimit", 400, Retryable),
    hinted(
        "InvalidRegion.NotSupport",
        403,
        InvalidRequest,
        "this region does not support image import",
    ),
    known("InvalidImageFormat.RegionNotSupported", 400, InvalidRequest),
    known("InvalidLicenseType.NotSupported", 400, InvalidRequest),
    known("InvalidLicenseType.BYOLOnly", 400, InvalidRequest),
    known("InvalidParameter.DetectionStrategy", 400, InvalidRequest),
    known("InvalidBootMode.NotSupport", 400, InvalidRequest),
    known("InvalidParameter.FeaturesImdsSupport", 400, InvalidRequest),
    known("InvalidClientToken.Malformed", 400, InvalidRequest),
    hinted(
        "Account.Arrearage",
        400,
        External,
        "the account has an overdue payment",
    ),
    known("ImageIsImporting", 403, Retryable),
    hinted(
        "QuotaExceed.Image",
        403,
        External,
        "the custom image quota is used up: delete images or raise the quota",
    ),
    hinted(
        "QuotaExceed.Snapshot",
        403,
        External,
        "the snapshot quota is used up: delete snapshots or raise the quota",
    ),
    hinted(
        "ImportImageFailed",
        403,
        External,
        "ECS could not import the image: contact Alibaba Cloud support",
    ),
    hinted(
        "UserNotInTheWhiteList",
        403,
        External,
        "the account may not import images: open a ticket to enable it",
    ),
    hinted(
        "NoSetRoletoECSServiceAcount",
        403,
        External,
        IMPORT_ROLE_HINT,
    ),
    hinted(
        "NoSetRoletoECSServiceAccount",
        403,
        External,
        IMPORT_ROLE_HINT,
    ),
    known("InvalidParameter.Malformed", 403, InvalidRequest),
    known("MissingParameter.DiskDeviceMapping", 403, InvalidRequest),
    hinted(
        "InvalidOSS.NotAuthorized",
        403,
        External,
        "let the import role read the bucket and object",
    ),
    known("InvalidBlockSize.NotSupport", 403, External),
    known("InvalidVHDImage.IncorrectSize", 403, External),
    known("ImageCheckUnsupported.WindowsImage", 403, InvalidRequest),
    known("InvalidOSSBucket.EncryptUnsupported", 403, External),
    known(
        "InvalidArchitecture.PlatformUnsupported",
        403,
        InvalidRequest,
    ),
    hinted(
        "InvalidAccountStatus.OSSDisabled",
        403,
        External,
        "activate OSS for the account",
    ),
    known("InvalidStorageLocation.NotFound", 403, InvalidRequest),
    known(
        "InvalidOperation.CloudBoxImageImportRoleRequired",
        403,
        External,
    ),
    known(
        "InvalidOperation.CloudBoxImageImportUnsupported",
        403,
        InvalidRequest,
    ),
    known("TagKey.Duplication", 403, InvalidRequest),
    known("InvalidResourceGroup.NotFound", 404, InvalidRequest),
    // Only on the original (Japanese) ImportImage page.
    hinted(
        "Forbbiden",
        400,
        External,
        "the account cannot import images now: open a ticket to enable image import",
    ),
    known("IncorrectImageStatus", 400, External),
    known("InvalidFormat.Malformed", 400, InvalidRequest),
    known("RegionId.NotFound", 400, InvalidRequest),
    // Tasks (api-reference §2).
    known("InvalidTaskId.NotFound", 400, InvalidRequest),
    known("InvalidTaskId.TaskActionNotSupport", 403, InvalidRequest),
    known("InvalidTaskId.IncorrectTaskStatus", 403, InvalidRequest),
    known("CancelTaskFailed", 403, Retryable),
    // Images (api-reference §3).
    known(
        "InvalidImageOwnerAlias.ValueNotSupported",
        400,
        InvalidRequest,
    ),
    known("InvalidTag.Mismatch", 400, InvalidRequest),
    known("InvalidTagCount", 400, InvalidRequest),
    known("InvalidInstanceType.ValueNotSupported", 400, InvalidRequest),
    known("InvalidFilterKey.NotFound", 404, InvalidRequest),
    known("InvalidUsage", 404, InvalidRequest),
    known("InvalidOSType", 404, InvalidRequest),
    known("InvalidArchitecture", 404, InvalidRequest),
    hinted(
        "ImageUsingByInstance",
        403,
        External,
        "instances still use the image: release them or delete with force",
    ),
    hinted(
        "ImageUseShared",
        403,
        External,
        "the image is shared with other accounts: unshare it first",
    ),
    known("OperationDenied.ImageCopying", 403, Retryable),
    known("ImageIsExporting", 403, Retryable),
    known("ImageIsCreating", 403, Retryable),
    hinted(
        "ImageIsPublic",
        403,
        External,
        "the image is published as a community image: unpublish it first",
    ),
    known("InvalidImageId.NotFound", 404, InvalidRequest),
];

/// Every code the operator mints itself (for errors that never got an ECS code), with its class.
///
/// The class is decided here once, when the error happens, and stored with it in status
/// (`lastError.retry`): a stall read back after a restart is retried by the same rule.
pub const OPERATOR_CODES: &[KnownCode] = &[
    // The ECS layer (`EcsError`).
    known("NetworkError", 0, Retryable),
    known("Timeout", 0, Retryable),
    // An answer that cannot be read (invalid JSON, missing fields, an HTML page from a gateway) is
    // most likely a proxy or gateway hiccup, whatever its status: retry it with backoff.
    known("UnreadableResponse", 0, Retryable),
    known("ResponseTooLarge", 0, Retryable),
    known("InvalidEndpoint", 0, InvalidRequest),
    known("InvalidRequest", 0, InvalidRequest),
    // Credentials (`CredentialsError`).
    hinted(
        "InvalidCredentialsSecret",
        0,
        InvalidRequest,
        "the credentials Secret needs accessKeyId and accessKeySecret (and securityToken for STS keys) as UTF-8 text",
    ),
    known("CredentialsNotConfigured", 0, External),
    known("OIDCTokenFileUnreadable", 0, External),
    known("MetadataCredentialsUnavailable", 0, External),
    known("CredentialsServiceUnreachable", 0, Retryable),
    known("CredentialsServiceUnreadable", 0, Retryable),
    known("InvalidCredentialsEndpoint", 0, InvalidRequest),
    // The controller's own (the credentials Secret named by a resource).
    known("CredentialsSecretNotFound", 0, InvalidRequest),
    known("CredentialsSecretUnreadable", 0, Retryable),
    known("CredentialsSecretNotHeld", 0, Retryable),
    known("CredentialsSecretForbidden", 0, External),
    known("CredentialsAccountChanged", 0, InvalidRequest),
];

/// The class of an operator-minted code; an unlisted one is retried with backoff, so a code
/// forgotten in [`OPERATOR_CODES`] can never wedge a resource.
pub fn operator_code_class(code: &str) -> ErrorClass {
    OPERATOR_CODES
        .iter()
        .find(|known| known.code == code)
        .map_or(ErrorClass::Retryable, |known| known.class)
}

/// Looks a code up in [`KNOWN_CODES`].
pub fn known_code(code: &str) -> Option<&'static KnownCode> {
    KNOWN_CODES.iter().find(|known| known.code == code)
}

/// The class of an error code: the table first, then `Throttling*` and 5xx retry, else invalid.
pub fn classify(code: &str, http_status: u16) -> ErrorClass {
    if let Some(known) = known_code(code) {
        return known.class;
    }
    if code.starts_with("Throttling")
        || code.ends_with(".Throttling")
        || http_status >= 500
        || http_status == 429
    {
        ErrorClass::Retryable
    } else if code.starts_with("InvalidSecurityToken") {
        ErrorClass::RefreshCredentials
    } else {
        ErrorClass::InvalidRequest
    }
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
    fn unknown_codes_fall_back_to_status_and_prefix_rules() {
        assert_eq!(
            classify("Throttling.Something.New", 400),
            ErrorClass::Retryable
        );
        assert_eq!(classify("Whatever", 503), ErrorClass::Retryable);
        assert_eq!(
            classify("InvalidSecurityToken.New", 400),
            ErrorClass::RefreshCredentials
        );
        assert_eq!(
            classify("InvalidSomething.Malformed", 400),
            ErrorClass::InvalidRequest
        );
    }

    #[test]
    fn the_table_has_no_duplicate_codes() {
        for (i, a) in KNOWN_CODES.iter().enumerate() {
            assert!(
                KNOWN_CODES[i + 1..].iter().all(|b| b.code != a.code),
                "duplicate {}",
                a.code
            );
        }
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
