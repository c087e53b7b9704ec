//! Reading what STS and the metadata service answer: bounded bodies, errors that quote nothing,
//! and the `Credentials` object both return.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Credentials, CredentialsError};
use crate::ecs::client::BodyError;
use crate::ecs::redact::{self, Secrets};

/// Largest STS or metadata answer read, in bytes: an STS answer is about 2 KB (the security token
/// is the bulk of it), so 64 KiB is ample, and a hostile or broken service costs no more.
pub const CREDENTIALS_BODY_LIMIT: usize = 64 * 1024;

pub(super) fn transport(service: &'static str, source: reqwest::Error) -> CredentialsError {
    CredentialsError::Transport {
        service,
        source: redact::scrub_transport(source),
    }
}

/// Reads an STS or metadata answer, at most [`CREDENTIALS_BODY_LIMIT`] bytes.
pub(super) async fn read_answer(
    service: &'static str,
    response: reqwest::Response,
) -> Result<String, CredentialsError> {
    crate::ecs::client::read_body(response, CREDENTIALS_BODY_LIMIT)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => CredentialsError::ResponseTooLarge {
                service,
                limit: CREDENTIALS_BODY_LIMIT,
            },
            BodyError::Transport(source) => transport(service, source),
        })
}

/// A credentials answer serde could not read, described without quoting it: serde's own message
/// quotes values (`invalid type: string "…"`), and these answers carry keys and tokens.
pub(super) fn unreadable(
    service: &'static str,
    status: u16,
    error: &serde_json::Error,
) -> CredentialsError {
    CredentialsError::Decode {
        service,
        status,
        detail: format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ),
    }
}

/// The `Credentials` object STS and the metadata service both return.
#[derive(Deserialize)]
pub(super) struct WireCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: SecretString,
    #[serde(rename = "SecurityToken")]
    security_token: SecretString,
    #[serde(rename = "Expiration")]
    expiration: String,
}

impl WireCredentials {
    pub(super) fn secrets(&self) -> Secrets {
        Secrets::none()
            .with(self.access_key_secret.expose_secret())
            .with(self.security_token.expose_secret())
    }

    pub(super) fn into_credentials(
        self,
        service: &'static str,
        status: u16,
    ) -> Result<Credentials, CredentialsError> {
        let expiration = crate::ecs::api::parse_ecs_time(&self.expiration).ok_or_else(|| {
            CredentialsError::Decode {
                service,
                status,
                detail: format!(
                    "unreadable Expiration {:?}",
                    redact::shown_text(&self.expiration, &self.secrets(), redact::MAX_FIELD_CHARS)
                ),
            }
        })?;
        Ok(Credentials {
            access_key_id: self.access_key_id,
            access_key_secret: self.access_key_secret,
            security_token: Some(self.security_token),
            expiration: Some(expiration),
        })
    }
}
