//! The [`Credentials`] type, and reading it from a credentials Secret.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};

use super::CredentialsError;

/// Secret keys of a credentials Secret.
pub mod secret_keys {
    /// The AccessKey ID.
    pub const ACCESS_KEY_ID: &str = "accessKeyId";
    /// The AccessKey secret.
    pub const ACCESS_KEY_SECRET: &str = "accessKeySecret";
    /// Optional STS security token, for temporary credentials.
    pub const SECURITY_TOKEN: &str = "securityToken";
}

/// One set of credentials: an AccessKey pair, with a security token and expiry when temporary.
#[derive(Clone)]
pub struct Credentials {
    pub(super) access_key_id: String,
    pub(super) access_key_secret: SecretString,
    pub(super) security_token: Option<SecretString>,
    pub(super) expiration: Option<Timestamp>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl Credentials {
    /// A long-lived AccessKey pair.
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: SecretString::from(access_key_secret.into()),
            security_token: None,
            expiration: None,
        }
    }

    /// Adds the STS security token of temporary credentials.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(SecretString::from(token.into()));
        self
    }

    /// Adds the moment temporary credentials stop working.
    pub fn with_expiration(mut self, expiration: Timestamp) -> Self {
        self.expiration = Some(expiration);
        self
    }

    /// The AccessKey ID (an identifier, not a secret: it travels in every request).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The AccessKey secret, for signing only.
    pub fn access_key_secret(&self) -> &str {
        self.access_key_secret.expose_secret()
    }

    /// The STS security token, for temporary credentials.
    pub fn security_token(&self) -> Option<&str> {
        self.security_token
            .as_ref()
            .map(|token| token.expose_secret())
    }

    /// When temporary credentials expire.
    pub fn expiration(&self) -> Option<Timestamp> {
        self.expiration
    }

    /// Reads a credentials Secret's `data` (`accessKeyId`, `accessKeySecret`, optional `securityToken`).
    ///
    /// Surrounding whitespace is dropped: a trailing newline from `echo … | base64` is the most common
    /// mistake in hand-made Secrets and would otherwise fail every signature.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, CredentialsError> {
        let read = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match data.get(key) {
                None => Ok(None),
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| CredentialsError::SecretKeyNotUtf8(key))?;
                    let text = text.trim();
                    Ok((!text.is_empty()).then(|| text.to_string()))
                }
            }
        };
        let id = read(secret_keys::ACCESS_KEY_ID)?.ok_or(CredentialsError::SecretKeyMissing(
            secret_keys::ACCESS_KEY_ID,
        ))?;
        let secret = read(secret_keys::ACCESS_KEY_SECRET)?.ok_or(
            CredentialsError::SecretKeyMissing(secret_keys::ACCESS_KEY_SECRET),
        )?;
        let mut credentials = Self::new(id, secret);
        if let Some(token) = read(secret_keys::SECURITY_TOKEN)? {
            credentials = credentials.with_security_token(token);
        }
        Ok(credentials)
    }

    pub(super) fn expires_within(&self, margin: Duration) -> bool {
        match self.expiration {
            None => false,
            Some(expiration) => {
                let margin =
                    jiff::SignedDuration::try_from(margin).unwrap_or(jiff::SignedDuration::MAX);
                Timestamp::now()
                    .saturating_add(margin)
                    .is_ok_and(|limit| limit >= expiration)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails loudly by design
mod tests {
    use super::*;
    use crate::ecs::credentials::CredentialProvider;
    use crate::ecs::credentials::oidc::OIDC_REFRESH_MARGIN;

    #[test]
    fn secret_data_is_read_and_trimmed() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("accessKeyId".to_string(), b"LTAI-id\n".to_vec()),
            ("accessKeySecret".to_string(), b"s3cr3t".to_vec()),
            ("securityToken".to_string(), b" tok ".to_vec()),
        ]
        .into();
        let credentials = Credentials::from_secret_data(&data);
        let credentials = credentials.as_ref().ok();
        assert_eq!(credentials.map(Credentials::access_key_id), Some("LTAI-id"));
        assert_eq!(
            credentials.map(Credentials::access_key_secret),
            Some("s3cr3t")
        );
        assert_eq!(
            credentials.and_then(Credentials::security_token),
            Some("tok")
        );
    }

    #[test]
    fn secret_data_without_a_secret_is_refused_by_name() {
        let data: BTreeMap<String, Vec<u8>> = [("accessKeyId".to_string(), b"id".to_vec())].into();
        let error = Credentials::from_secret_data(&data)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the credentials Secret has no \"accessKeySecret\" key")
        );
        let data: BTreeMap<String, Vec<u8>> = [
            ("accessKeyId".to_string(), b"id".to_vec()),
            ("accessKeySecret".to_string(), vec![0xff]),
        ]
        .into();
        assert!(matches!(
            Credentials::from_secret_data(&data),
            Err(CredentialsError::SecretKeyNotUtf8("accessKeySecret"))
        ));
    }

    #[test]
    fn debug_never_shows_secret_or_token() {
        let credentials = Credentials::new("LTAI-id", "very-secret-value")
            .with_security_token("CAIS-token-value");
        let shown = format!(
            "{credentials:?} {:?}",
            CredentialProvider::fixed(credentials.clone())
        );
        assert!(shown.contains("LTAI-id"), "{shown}");
        assert!(
            !shown.contains("very-secret-value") && !shown.contains("CAIS-token-value"),
            "{shown}"
        );
    }

    #[test]
    fn expiry_margin_is_honoured() {
        let soon = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(60))
            .ok();
        let later = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(3600))
            .ok();
        let (Some(soon), Some(later)) = (soon, later) else {
            panic!("timestamps")
        };
        assert!(
            Credentials::new("a", "b")
                .with_expiration(soon)
                .expires_within(OIDC_REFRESH_MARGIN)
        );
        assert!(
            !Credentials::new("a", "b")
                .with_expiration(later)
                .expires_within(OIDC_REFRESH_MARGIN)
        );
        assert!(!Credentials::new("a", "b").expires_within(OIDC_REFRESH_MARGIN));
    }
}
