//! The upload layer's one error: the source (refused, unavailable, too large), OSS's answers (its
//! code, message and request id kept as data), the integrity checks, credentials.
//!
//! URLs in these messages are already shown without query string and user info (see
//! [`super::source::display_url`]); request headers never appear. Each message says its cause once.

use crate::ecs::ErrorClass;

/// Why an upload failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The source URL (or one it redirected to) is not allowed.
    #[error("source {url} refused: {reason}")]
    SourceRefused {
        /// The URL, without query or user info.
        url: String,
        /// Why (scheme, address class, redirects).
        reason: String,
    },
    /// The source answered an HTTP error status.
    #[error("source {url} answered HTTP {status}")]
    SourceStatus {
        /// The URL, without query or user info.
        url: String,
        /// The status.
        status: u16,
    },
    /// The source could not be read (connection refused or cut, timeout, a file error).
    #[error("source {url} could not be read: {detail}")]
    SourceTransport {
        /// The URL (or the file's path), without query or user info.
        url: String,
        /// What went wrong underneath.
        detail: String,
    },
    /// The source is larger than the size cap.
    #[error("source {url} is larger than the limit of {limit} bytes{}", declared.map(|d| format!(" (it declares {d})")).unwrap_or_default())]
    SourceTooLarge {
        /// The URL, without query or user info.
        url: String,
        /// The cap.
        limit: u64,
        /// The size it declared, when it did.
        declared: Option<u64>,
    },
    /// The source's SHA-256 is not the expected one.
    #[error("the source's SHA-256 is {actual}, not the expected {expected}")]
    ChecksumMismatch {
        /// The digest the job expects.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// The source's size is not the expected (or declared) one.
    #[error("the source has {actual} bytes, not the expected {expected}")]
    SizeMismatch {
        /// The size the job expects (or the source declared).
        expected: u64,
        /// The bytes read.
        actual: u64,
    },
    /// The source's magic bytes show another format than the declared one.
    #[error("the source was declared {declared} but its bytes show {detected}")]
    FormatMismatch {
        /// The declared format.
        declared: String,
        /// The format its bytes show.
        detected: String,
    },
    /// OSS answered an error.
    #[error("OSS {action} failed with {code} (HTTP {status}): {message}{}", request_id.as_ref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
    Oss {
        /// The OSS action (`UploadPart`…).
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// OSS's error code, as OSS sends it (`HTTP 403` when the body had none).
        code: String,
        /// OSS's message.
        message: String,
        /// OSS's request id, when it sent one.
        request_id: Option<String>,
    },
    /// OSS could not be reached, or its answer could not be read.
    #[error("OSS {action} did not answer: {detail}")]
    OssTransport {
        /// The OSS action.
        action: &'static str,
        /// What went wrong underneath.
        detail: String,
        /// Whether it timed out.
        timeout: bool,
    },
    /// No credentials for OSS.
    #[error("no credentials for OSS: {detail}")]
    Credentials {
        /// The credentials layer's code.
        code: String,
        /// Its message.
        detail: String,
        /// Whether trying again may succeed.
        transient: bool,
    },
    /// The job itself is unusable (an expected SHA-256 that is not 64 hex digits…).
    #[error("invalid upload job: {0}")]
    InvalidJob(String),
}

impl UploadError {
    /// The CamelCase code for conditions and Events: the `Source…` codes, or OSS's own.
    pub fn code(&self) -> &str {
        match self {
            Self::SourceRefused { .. } | Self::InvalidJob(_) => "SourceRefused",
            Self::SourceStatus { .. } | Self::SourceTransport { .. } => "SourceUnavailable",
            Self::SourceTooLarge { .. } => "SourceTooLarge",
            Self::ChecksumMismatch { .. } => "SourceChecksumMismatch",
            Self::SizeMismatch { .. } => "SourceSizeMismatch",
            Self::FormatMismatch { .. } => "SourceFormatMismatch",
            Self::Oss { code, .. } => code,
            Self::OssTransport { .. } => "OssUnavailable",
            Self::Credentials { code, .. } => code,
        }
    }

    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::SourceRefused { .. }
            | Self::InvalidJob(_)
            | Self::SourceTooLarge { .. }
            | Self::ChecksumMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::FormatMismatch { .. } => ErrorClass::InvalidRequest,
            Self::SourceStatus { status, .. } => match status {
                408 | 429 | 500.. => ErrorClass::Retryable,
                401 | 403 | 404 | 410 => ErrorClass::External,
                _ => ErrorClass::InvalidRequest,
            },
            Self::SourceTransport { .. } | Self::OssTransport { .. } => ErrorClass::Retryable,
            Self::Oss { status, code, .. } => oss_class(*status, code),
            Self::Credentials { transient, .. } => {
                if *transient {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::External
                }
            }
        }
    }
}

/// OSS codes by what fixes them.
fn oss_class(status: u16, code: &str) -> ErrorClass {
    match code {
        "InternalError" | "ServiceUnavailable" | "RequestTimeout" | "NoSuchUpload" => {
            ErrorClass::Retryable
        }
        "SecurityTokenExpired" | "InvalidSecurityToken" | "RequestTimeTooSkewed" => {
            ErrorClass::RefreshCredentials
        }
        "NoSuchBucket"
        | "AccessDenied"
        | "InvalidAccessKeyId"
        | "UserDisable"
        | "AccessKeyIdAndSecurityTokenNotMatch" => ErrorClass::External,
        _ if status >= 500 || code.ends_with("NotConfirmed") => ErrorClass::Retryable,
        _ => ErrorClass::InvalidRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_classes() {
        let oss = |status, code: &str| UploadError::Oss {
            action: "UploadPart",
            status,
            code: code.into(),
            message: "m".into(),
            request_id: Some("R1".into()),
        };
        assert_eq!(oss(404, "NoSuchBucket").code(), "NoSuchBucket");
        assert_eq!(oss(404, "NoSuchBucket").class(), ErrorClass::External);
        assert_eq!(oss(403, "AccessDenied").class(), ErrorClass::External);
        assert_eq!(
            oss(503, "ServiceUnavailable").class(),
            ErrorClass::Retryable
        );
        assert_eq!(oss(502, "HTTP 502").class(), ErrorClass::Retryable);
        assert_eq!(
            oss(400, "EntityTooSmall").class(),
            ErrorClass::InvalidRequest
        );
        assert!(
            oss(404, "NoSuchBucket")
                .to_string()
                .contains("request id R1")
        );
        let mismatch = UploadError::ChecksumMismatch {
            expected: "aa".into(),
            actual: "bb".into(),
        };
        assert_eq!(mismatch.code(), "SourceChecksumMismatch");
        assert_eq!(mismatch.class(), ErrorClass::InvalidRequest);
        let status = |status| UploadError::SourceStatus {
            url: "u".into(),
            status,
        };
        assert_eq!(status(503).class(), ErrorClass::Retryable);
        assert_eq!(status(404).class(), ErrorClass::External);
        assert_eq!(status(503).code(), "SourceUnavailable");
    }
}
