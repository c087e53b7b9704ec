//! [`CredentialProvider`]: hands out credentials from one source, caching temporary ones and
//! refreshing them before they expire. The fetches themselves live with their source (`oidc.rs`,
//! `metadata.rs`).

use std::fmt;

use tokio::sync::Mutex;

use super::metadata::{METADATA_REFRESH_MARGIN, METADATA_TIMEOUT};
use super::oidc::OIDC_REFRESH_MARGIN;
use super::{CredentialSource, Credentials, CredentialsError};

/// Hands out credentials from one source, caching temporary ones until shortly before they expire.
pub struct CredentialProvider {
    source: CredentialSource,
    pub(super) http: reqwest::Client,
    cached: Mutex<Option<Credentials>>,
}

impl fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProvider")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl CredentialProvider {
    /// A provider for `source`, with its own small HTTP client for STS and the metadata service.
    pub fn new(source: CredentialSource) -> Result<Self, CredentialsError> {
        crate::ecs::ensure_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(METADATA_TIMEOUT)
            .build()
            .map_err(|source| CredentialsError::Transport {
                service: "STS",
                source,
            })?;
        Ok(Self {
            source,
            http,
            cached: Mutex::new(None),
        })
    }

    /// A provider for a fixed AccessKey.
    pub fn fixed(credentials: Credentials) -> Self {
        crate::ecs::ensure_tls_provider();
        Self {
            source: CredentialSource::Static(credentials),
            http: reqwest::Client::new(),
            cached: Mutex::new(None),
        }
    }

    /// The source behind this provider.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// Current credentials, fetching or refreshing temporary ones when needed.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let margin = match &self.source {
            CredentialSource::Static(credentials) => return Ok(credentials.clone()),
            CredentialSource::Oidc(_) => OIDC_REFRESH_MARGIN,
            CredentialSource::Metadata(_) => METADATA_REFRESH_MARGIN,
        };
        // One refresh at a time: concurrent callers wait for it instead of stampeding STS.
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref().filter(|c| !c.expires_within(margin)) {
            return Ok(credentials.clone());
        }
        let fresh = match &self.source {
            CredentialSource::Static(credentials) => credentials.clone(),
            CredentialSource::Oidc(config) => self.assume_role_with_oidc(config).await?,
            CredentialSource::Metadata(config) => self.fetch_from_metadata(config).await?,
        };
        tracing::debug!(source = self.source.kind(), access_key_id = fresh.access_key_id(), expiration = ?fresh.expiration, "obtained credentials");
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drops cached temporary credentials, so the next call fetches new ones (after ECS rejected a token).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}
