//! [`CredentialsError`]: what can go wrong while obtaining credentials, none of it carrying a secret.

use std::path::PathBuf;

use crate::ecs::error::ApiError;

/// Errors while obtaining credentials. None of them carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A required key is absent from the credentials Secret.
    #[error("the credentials Secret has no {0:?} key")]
    SecretKeyMissing(&'static str),
    /// A key of the credentials Secret is not UTF-8 text.
    #[error("the credentials Secret key {0:?} is not UTF-8 text")]
    SecretKeyNotUtf8(&'static str),
    /// No source of credentials is configured.
    #[error(
        "no Alibaba Cloud credentials: set a credentials Secret on the resource, \
         ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET, RRSA (ALIBABA_CLOUD_ROLE_ARN, \
         ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE), or run on an ECS instance with a RAM role"
    )]
    NotConfigured,
    /// Half of an AccessKey pair is set in the environment.
    #[error("{0} is set but {1} is not")]
    IncompleteEnvironment(&'static str, &'static str),
    /// The OIDC token file cannot be read.
    #[error("failed to read the OIDC token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// STS refused `AssumeRoleWithOIDC`.
    #[error("STS refused AssumeRoleWithOIDC: {0}")]
    Sts(Box<ApiError>),
    /// The metadata service refused or had no role.
    #[error("the ECS metadata service gave no credentials: {0}")]
    Metadata(String),
    /// STS or the metadata service could not be reached.
    #[error("failed to reach {service}: {source}")]
    Transport {
        /// `STS` or `the ECS metadata service`.
        service: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// STS or the metadata service answered something unreadable.
    #[error("unreadable answer from {service} (HTTP {status}): {detail}")]
    Decode {
        /// `STS` or `the ECS metadata service`.
        service: &'static str,
        /// HTTP status.
        status: u16,
        /// What could not be read.
        detail: String,
    },
    /// STS or the metadata service answered more than
    /// [`CREDENTIALS_BODY_LIMIT`](super::CREDENTIALS_BODY_LIMIT) bytes.
    #[error("the answer of {service} is larger than {limit} bytes; not read")]
    ResponseTooLarge {
        /// `STS` or `the ECS metadata service`.
        service: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A configured STS or metadata endpoint is unusable.
    #[error("invalid credentials endpoint: {0}")]
    Endpoint(String),
    /// `ALIBABA_CLOUD_ECS_METADATA_DISABLED` turns the last source of the chain, the instance
    /// RAM role, off.
    #[error("{} is true", super::env_vars::ECS_METADATA_DISABLED)]
    MetadataDisabled,
    /// Every source of the chain was tried and none gave credentials: what each one was and why
    /// it was not usable, in the order tried (the last one's reason is `last`, kept as the
    /// source so its code, its transience and its causes stay).
    #[error("no usable Alibaba Cloud credentials; tried, in order: {}", tried.join("; "))]
    NoneUsable {
        /// One entry per source, `"<source>: <why not>"`, in order; the last one ends with
        /// `last`'s message. Never a secret: names of variables, files and URLs only.
        tried: Vec<String>,
        /// Why the last source failed.
        #[source]
        last: Box<CredentialsError>,
    },
}

impl CredentialsError {
    /// Whether trying again later may succeed without any change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::ResponseTooLarge { .. } => true,
            Self::Decode { status, .. } => *status >= 500,
            Self::Sts(error) => error.class().is_retryable(),
            Self::NoneUsable { last, .. } => last.is_transient(),
            _ => false,
        }
    }

    /// A stable name for conditions and metrics.
    pub fn code(&self) -> &str {
        match self {
            Self::SecretKeyMissing(_) | Self::SecretKeyNotUtf8(_) => "InvalidCredentialsSecret",
            Self::NotConfigured | Self::IncompleteEnvironment(..) | Self::MetadataDisabled => {
                "CredentialsNotConfigured"
            }
            Self::TokenFile { .. } => "OIDCTokenFileUnreadable",
            Self::Sts(error) => &error.code,
            Self::Metadata(_) => "MetadataCredentialsUnavailable",
            Self::Transport { .. } => "CredentialsServiceUnreachable",
            Self::Decode { .. } => "CredentialsServiceUnreadable",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Endpoint(_) => "InvalidCredentialsEndpoint",
            Self::NoneUsable { last, .. } => last.code(),
        }
    }
}
