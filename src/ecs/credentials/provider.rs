//! [`CredentialProvider`]: hands out credentials from one source, caching temporary ones and
//! refreshing them before they expire. The fetches themselves live with their source (`oidc.rs`,
//! `metadata.rs`).

use std::fmt;

use tokio::sync::Mutex;

use super::metadata::{METADATA_REFRESH_MARGIN, METADATA_TIMEOUT};
use super::oidc::OIDC_REFRESH_MARGIN;
use super::{ChainChoice, CredentialSource, Credentials, CredentialsError, MetadataConfig};

/// Hands out credentials from one source, caching temporary ones until shortly before they expire.
pub struct CredentialProvider {
    source: CredentialSource,
    /// What the environment chain passed over before `source`, when it chose it: the instance
    /// RAM role's failure then lists them all ([`CredentialsError::NoneUsable`]).
    tried: Option<Vec<String>>,
    pub(super) http: reqwest::Client,
    cached: Mutex<Option<Credentials>>,
}

impl fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProvider")
            .field("source", &self.source)
            .field("tried", &self.tried)
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
            tried: None,
            http,
            cached: Mutex::new(None),
        })
    }

    /// A provider for the source the environment chain chose
    /// ([`CredentialSource::choose_from_environment`]). When that is the last fallback, the
    /// instance RAM role, and it gives no credentials, the error is
    /// [`CredentialsError::NoneUsable`]: every source tried, in order, the role last.
    pub fn chosen(choice: ChainChoice) -> Result<Self, CredentialsError> {
        let mut provider = Self::new(choice.source)?;
        provider.tried = Some(choice.tried);
        Ok(provider)
    }

    /// A provider for a fixed AccessKey.
    pub fn fixed(credentials: Credentials) -> Self {
        crate::ecs::ensure_tls_provider();
        Self {
            source: CredentialSource::Static(credentials),
            tried: None,
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
            CredentialSource::Metadata(config) => self
                .fetch_from_metadata(config)
                .await
                .map_err(|error| self.none_usable(config, error))?,
        };
        tracing::debug!(source = self.source.kind(), access_key_id = fresh.access_key_id(), expiration = ?fresh.expiration, "obtained credentials");
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// The instance RAM role, the chain's last fallback, failed with `error`: with the chain's
    /// record, every source tried and why, the role last.
    fn none_usable(&self, config: &MetadataConfig, error: CredentialsError) -> CredentialsError {
        let Some(tried) = &self.tried else {
            return error;
        };
        let mut tried = tried.clone();
        tried.push(format!(
            "instance role: metadata service at {}: {error}",
            shown_endpoint(&config.endpoint)
        ));
        CredentialsError::NoneUsable {
            tried,
            last: Box::new(error),
        }
    }

    /// Drops cached temporary credentials, so the next call fetches new ones (after ECS rejected a token).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// An endpoint as it may be shown: scheme, host, port and path, without user info, query or
/// fragment (none of which a metadata URL needs, and user info may hold a password).
fn shown_endpoint(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => "an unparseable URL".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::super::{ServiceEndpoints, env_vars};
    use super::*;

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn an_unreachable_instance_role_after_the_chain_lists_every_source_tried() {
        let port = closed_port();
        let endpoints = ServiceEndpoints {
            sts: None,
            metadata: Some(format!("http://user:hunter2@127.0.0.1:{port}")),
        };
        let choice = CredentialSource::choose_from_environment(
            |name| (name == env_vars::IMDSV1_DISABLED).then(|| "true".to_string()),
            &endpoints,
            vec!["Secret document: none in example.yaml".into()],
        )
        .unwrap();
        let provider = CredentialProvider::chosen(choice).unwrap();
        let error = provider.credentials().await.unwrap_err();
        let CredentialsError::NoneUsable { tried, last } = &error else {
            panic!("expected NoneUsable, got {error:?}");
        };
        let sources: Vec<&str> = tried
            .iter()
            .map(|entry| entry.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            sources,
            ["Secret document", "environment", "RRSA", "instance role"]
        );
        assert!(
            tried[3].starts_with(&format!(
                "instance role: metadata service at http://127.0.0.1:{port}: failed to reach"
            )),
            "{tried:?}"
        );
        assert!(
            matches!(**last, CredentialsError::Transport { .. }),
            "{last:?}"
        );
        // The last source's code and transience, its causes once, and no password.
        assert_eq!(error.code(), "CredentialsServiceUnreachable");
        assert!(error.is_transient());
        let text = crate::explain::explain(&error);
        assert_eq!(crate::explain::repeated_fragment(&text), None, "{text}");
        for source in ["Secret document", "environment:", "RRSA:", "instance role:"] {
            assert_eq!(text.matches(source).count(), 1, "{source} once: {text}");
        }
        assert!(!format!("{text} {error:?}").contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn a_provider_made_without_the_chain_keeps_the_sources_own_error() {
        let provider = CredentialProvider::new(CredentialSource::Metadata(MetadataConfig {
            role_name: None,
            endpoint: format!("http://127.0.0.1:{}", closed_port()),
            imdsv1_disabled: true,
        }))
        .unwrap();
        let error = provider.credentials().await.unwrap_err();
        assert!(
            matches!(error, CredentialsError::Transport { .. }),
            "{error:?}"
        );
    }
}
