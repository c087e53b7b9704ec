//! Credentials for signing ECS requests (api-reference §8).
//!
//! Sources, in the order the operator tries them for a resource: the resource's Secret
//! ([`Credentials::from_secret_data`]); then the operator's own environment
//! ([`CredentialSource::from_environment`]): an AccessKey in environment variables, OIDC/RRSA through
//! STS `AssumeRoleWithOIDC`, or the ECS instance RAM role from the metadata service.
//! Temporary credentials are cached by [`CredentialProvider`] and refreshed before they expire.
//!
//! Secrets are held in [`SecretString`]: `Debug` prints `[REDACTED]`, and no error or log line here
//! carries a secret, a security token or an OIDC token.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::client::BodyError;
use super::endpoint::{self, Scheme};
use super::error::ApiError;
use super::params::Params;
use super::redact::{self, Secrets};

/// Secret keys of a credentials Secret.
pub mod secret_keys {
    /// The AccessKey ID.
    pub const ACCESS_KEY_ID: &str = "accessKeyId";
    /// The AccessKey secret.
    pub const ACCESS_KEY_SECRET: &str = "accessKeySecret";
    /// Optional STS security token, for temporary credentials.
    pub const SECURITY_TOKEN: &str = "securityToken";
}

/// Environment variables read, as Alibaba's own credential chain names them.
pub mod env_vars {
    /// AccessKey ID.
    pub const ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
    /// AccessKey secret.
    pub const ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
    /// STS token that goes with a temporary AccessKey.
    pub const SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
    /// RRSA: the RAM role to assume.
    pub const ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
    /// RRSA: the OIDC provider of the cluster.
    pub const OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
    /// RRSA: the projected service-account token file.
    pub const OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
    /// RRSA: session name (optional).
    pub const ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
    /// STS region, selecting `sts.<region>.aliyuncs.com` (optional).
    pub const STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
    /// `true` selects the VPC STS endpoint (optional).
    pub const VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
    /// ECS RAM role name, skipping its discovery (optional).
    pub const ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
    /// `true` turns the metadata service off.
    pub const ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
    /// `true` forbids falling back to IMDSv1 when no v2 token can be had.
    pub const IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";
}

/// The default metadata service of ECS instances (plain HTTP by design of the service).
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// The default session length asked of STS; its minimum is 900 s.
pub const DEFAULT_OIDC_DURATION: Duration = Duration::from_secs(3600);
/// Refresh OIDC credentials this long before they expire (Alibaba's Go SDK uses 180 s).
const OIDC_REFRESH_MARGIN: Duration = Duration::from_secs(180);
/// Refresh instance-role credentials this long before they expire, as the official SDKs do.
const METADATA_REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// The metadata service answers in milliseconds on an instance; anything slower means it is absent.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);
/// STS is a remote service; keep its calls bounded but not tight.
const STS_TIMEOUT: Duration = Duration::from_secs(10);
/// IMDSv2 token lifetime asked for.
const METADATA_TOKEN_TTL_SECONDS: &str = "21600";

/// One set of credentials: an AccessKey pair, with a security token and expiry when temporary.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    access_key_secret: SecretString,
    security_token: Option<SecretString>,
    expiration: Option<Timestamp>,
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

    fn expires_within(&self, margin: Duration) -> bool {
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
    /// STS or the metadata service answered more than [`CREDENTIALS_BODY_LIMIT`] bytes.
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
}

impl CredentialsError {
    /// Whether trying again later may succeed without any change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::ResponseTooLarge { .. } => true,
            Self::Decode { status, .. } => *status >= 500,
            Self::Sts(error) => error.class().is_retryable(),
            _ => false,
        }
    }

    /// A stable name for conditions and metrics.
    pub fn code(&self) -> &str {
        match self {
            Self::SecretKeyMissing(_) | Self::SecretKeyNotUtf8(_) => "InvalidCredentialsSecret",
            Self::NotConfigured | Self::IncompleteEnvironment(..) => "CredentialsNotConfigured",
            Self::TokenFile { .. } => "OIDCTokenFileUnreadable",
            Self::Sts(error) => &error.code,
            Self::Metadata(_) => "MetadataCredentialsUnavailable",
            Self::Transport { .. } => "CredentialsServiceUnreachable",
            Self::Decode { .. } => "CredentialsServiceUnreadable",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Endpoint(_) => "InvalidCredentialsEndpoint",
        }
    }
}

/// RRSA / OIDC settings: exchange the pod's service-account token for STS credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `acs:ram::<account>:role/<name>`.
    pub role_arn: String,
    /// `acs:ram::<account>:oidc-provider/<name>`.
    pub oidc_provider_arn: String,
    /// The token file; re-read on every refresh because the kubelet rotates it.
    pub token_file: PathBuf,
    /// Session name recorded by STS.
    pub role_session_name: String,
    /// Session length asked for (STS minimum 900 s).
    pub duration: Duration,
    /// STS base URL, e.g. `https://sts.aliyuncs.com`.
    pub sts_endpoint: String,
}

/// ECS instance RAM role settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConfig {
    /// The role name; discovered from the metadata service when absent.
    pub role_name: Option<String>,
    /// Metadata base URL, `http://100.100.100.200` on ECS.
    pub endpoint: String,
    /// Refuse IMDSv1 when no IMDSv2 token can be had.
    pub imdsv1_disabled: bool,
}

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// A fixed AccessKey (from a Secret or the environment).
    Static(Credentials),
    /// RRSA: STS `AssumeRoleWithOIDC`.
    Oidc(OidcConfig),
    /// The ECS instance RAM role.
    Metadata(MetadataConfig),
}

/// Endpoint overrides for the credential services, so tests run them on loopback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    /// STS base URL instead of the regional default.
    pub sts: Option<String>,
    /// Metadata base URL instead of `http://100.100.100.200`.
    pub metadata: Option<String>,
}

impl CredentialSource {
    /// Chooses the operator's own source from environment variables: AccessKey, then RRSA, then the
    /// instance RAM role (unless `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`).
    ///
    /// `lookup` reads one variable; pass `|name| std::env::var(name).ok()` in production.
    pub fn from_environment(
        lookup: impl Fn(&str) -> Option<String>,
        endpoints: &ServiceEndpoints,
    ) -> Result<Self, CredentialsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let is_true =
            |name: &str| get(name).is_some_and(|value| value.eq_ignore_ascii_case("true"));
        match (
            get(env_vars::ACCESS_KEY_ID),
            get(env_vars::ACCESS_KEY_SECRET),
        ) {
            (Some(id), Some(secret)) => {
                let mut credentials = Credentials::new(id, secret);
                if let Some(token) = get(env_vars::SECURITY_TOKEN) {
                    credentials = credentials.with_security_token(token);
                }
                return Ok(Self::Static(credentials));
            }
            (Some(_), None) => {
                return Err(CredentialsError::IncompleteEnvironment(
                    env_vars::ACCESS_KEY_ID,
                    env_vars::ACCESS_KEY_SECRET,
                ));
            }
            (None, Some(_)) => {
                return Err(CredentialsError::IncompleteEnvironment(
                    env_vars::ACCESS_KEY_SECRET,
                    env_vars::ACCESS_KEY_ID,
                ));
            }
            (None, None) => {}
        }
        if let (Some(role_arn), Some(oidc_provider_arn), Some(token_file)) = (
            get(env_vars::ROLE_ARN),
            get(env_vars::OIDC_PROVIDER_ARN),
            get(env_vars::OIDC_TOKEN_FILE),
        ) {
            let sts_endpoint = match &endpoints.sts {
                Some(url) => url.clone(),
                None => default_sts_endpoint(
                    get(env_vars::STS_REGION).as_deref(),
                    is_true(env_vars::VPC_ENDPOINT_ENABLED),
                ),
            };
            return Ok(Self::Oidc(OidcConfig {
                role_arn,
                oidc_provider_arn,
                token_file: PathBuf::from(token_file),
                role_session_name: get(env_vars::ROLE_SESSION_NAME)
                    .unwrap_or_else(default_session_name),
                duration: DEFAULT_OIDC_DURATION,
                sts_endpoint,
            }));
        }
        if is_true(env_vars::ECS_METADATA_DISABLED) {
            return Err(CredentialsError::NotConfigured);
        }
        Ok(Self::Metadata(MetadataConfig {
            role_name: get(env_vars::ECS_METADATA),
            endpoint: endpoints
                .metadata
                .clone()
                .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.to_string()),
            imdsv1_disabled: is_true(env_vars::IMDSV1_DISABLED),
        }))
    }

    /// A short name of the source for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Static(_) => "access-key",
            Self::Oidc(_) => "oidc",
            Self::Metadata(_) => "ecs-ram-role",
        }
    }
}

fn default_sts_endpoint(region: Option<&str>, vpc: bool) -> String {
    match (region, vpc) {
        (Some(region), true) => format!("https://sts-vpc.{region}.aliyuncs.com"),
        (Some(region), false) => format!("https://sts.{region}.aliyuncs.com"),
        (None, _) => "https://sts.aliyuncs.com".to_string(),
    }
}

fn default_session_name() -> String {
    format!("ecs-image-operator-{}", Timestamp::now().as_second())
}

/// Hands out credentials from one source, caching temporary ones until shortly before they expire.
pub struct CredentialProvider {
    source: CredentialSource,
    http: reqwest::Client,
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

    async fn assume_role_with_oidc(
        &self,
        config: &OidcConfig,
    ) -> Result<Credentials, CredentialsError> {
        const SERVICE: &str = "STS";
        let url = endpoint::validate_base_url(&config.sts_endpoint, Scheme::HttpsUnlessLoopback)
            .map_err(CredentialsError::Endpoint)?;
        let token = tokio::fs::read_to_string(&config.token_file)
            .await
            .map_err(|source| CredentialsError::TokenFile {
                path: config.token_file.clone(),
                source,
            })?;
        let mut query = Params::new();
        query.set("Action", "AssumeRoleWithOIDC");
        query.set("Version", "2015-04-01");
        query.set("Format", "JSON");
        query.set("Timestamp", super::client::ecs_timestamp(Timestamp::now()));
        let mut body = Params::new();
        body.set("RoleArn", &config.role_arn);
        body.set("OIDCProviderArn", &config.oidc_provider_arn);
        body.set("OIDCToken", token.trim());
        body.set("RoleSessionName", &config.role_session_name);
        body.set(
            "DurationSeconds",
            config.duration.as_secs().max(900).to_string(),
        );
        let response = self
            .http
            .post(format!("{url}?{}", query.to_form()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.to_form())
            .timeout(STS_TIMEOUT)
            .send()
            .await
            .map_err(|source| transport(SERVICE, source))?;
        let status = response.status().as_u16();
        let text = read_answer(SERVICE, response).await?;
        if !(200..300).contains(&status) {
            // STS may quote the OIDC token it refuses; nothing of it may be shown.
            let secrets = Secrets::none().with(token.trim()).with(&token);
            return Err(
                match ApiError::parse_redacted("AssumeRoleWithOIDC", status, &text, &secrets) {
                    Some(error) => CredentialsError::Sts(Box::new(error)),
                    None => CredentialsError::Decode {
                        service: SERVICE,
                        status,
                        detail: "an error without a code".into(),
                    },
                },
            );
        }
        #[derive(Deserialize)]
        struct AssumeRoleResponse {
            #[serde(rename = "Credentials")]
            credentials: WireCredentials,
        }
        let parsed: AssumeRoleResponse =
            serde_json::from_str(&text).map_err(|error| unreadable(SERVICE, status, &error))?;
        parsed.credentials.into_credentials(SERVICE, status)
    }

    async fn fetch_from_metadata(
        &self,
        config: &MetadataConfig,
    ) -> Result<Credentials, CredentialsError> {
        const SERVICE: &str = "the ECS metadata service";
        let base = endpoint::validate_base_url(&config.endpoint, Scheme::HttpAllowed)
            .map_err(CredentialsError::Endpoint)?;
        let transport = |source| transport(SERVICE, source);
        let token = match self
            .http
            .put(format!("{base}/latest/api/token"))
            .header(
                "X-aliyun-ecs-metadata-token-ttl-seconds",
                METADATA_TOKEN_TTL_SECONDS,
            )
            .timeout(METADATA_TIMEOUT)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => {
                Some(read_answer(SERVICE, response).await?)
            }
            Ok(response) if config.imdsv1_disabled => {
                return Err(CredentialsError::Metadata(format!(
                    "no IMDSv2 token (HTTP {}) and IMDSv1 is disabled",
                    response.status().as_u16()
                )));
            }
            Err(source) if config.imdsv1_disabled => return Err(transport(source)),
            // IMDSv1 fallback, as the official SDKs do unless told not to.
            Ok(_) | Err(_) => None,
        };
        let get = |path: String| {
            let mut request = self
                .http
                .get(format!("{base}{path}"))
                .timeout(METADATA_TIMEOUT);
            if let Some(token) = &token {
                request = request.header("X-aliyun-ecs-metadata-token", token.trim());
            }
            request.send()
        };
        let role = match &config.role_name {
            Some(role) => role.clone(),
            None => {
                let response = get("/latest/meta-data/ram/security-credentials/".into())
                    .await
                    .map_err(transport)?;
                let status = response.status().as_u16();
                let text = read_answer(SERVICE, response).await?;
                let role = text.lines().next().unwrap_or("").trim().to_string();
                if status != 200 || role.is_empty() {
                    return Err(CredentialsError::Metadata(format!(
                        "no RAM role is attached to this instance (HTTP {status})"
                    )));
                }
                role
            }
        };
        let response = get(format!("/latest/meta-data/ram/security-credentials/{role}"))
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let text = read_answer(SERVICE, response).await?;
        // The role name came from the metadata service: shown bounded.
        let shown_role = redact::shown_text(&role, &Secrets::none(), redact::MAX_FIELD_CHARS);
        if status != 200 {
            return Err(CredentialsError::Metadata(format!(
                "role {shown_role:?}: HTTP {status}"
            )));
        }
        #[derive(Deserialize)]
        struct MetadataResponse {
            #[serde(rename = "Code")]
            code: String,
            #[serde(flatten)]
            credentials: WireCredentials,
        }
        let parsed: MetadataResponse =
            serde_json::from_str(&text).map_err(|error| unreadable(SERVICE, status, &error))?;
        if parsed.code != "Success" {
            // The answer may hold keys next to an odd code: the code is shown checked, if at all.
            let code = redact::shown_code(&parsed.code, &parsed.credentials.secrets())
                .unwrap_or_else(|_| redact::UNUSABLE_CODE.to_string());
            return Err(CredentialsError::Metadata(format!(
                "role {shown_role:?}: code {code}"
            )));
        }
        parsed.credentials.into_credentials(SERVICE, status)
    }
}

/// Largest STS or metadata answer read, in bytes: an STS answer is about 2 KB (the security token
/// is the bulk of it), so 64 KiB is ample, and a hostile or broken service costs no more.
pub const CREDENTIALS_BODY_LIMIT: usize = 64 * 1024;

fn transport(service: &'static str, source: reqwest::Error) -> CredentialsError {
    CredentialsError::Transport {
        service,
        source: redact::scrub_transport(source),
    }
}

/// Reads an STS or metadata answer, at most [`CREDENTIALS_BODY_LIMIT`] bytes.
async fn read_answer(
    service: &'static str,
    response: reqwest::Response,
) -> Result<String, CredentialsError> {
    super::client::read_body(response, CREDENTIALS_BODY_LIMIT)
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
fn unreadable(service: &'static str, status: u16, error: &serde_json::Error) -> CredentialsError {
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
struct WireCredentials {
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
    fn secrets(&self) -> Secrets {
        Secrets::none()
            .with(self.access_key_secret.expose_secret())
            .with(self.security_token.expose_secret())
    }

    fn into_credentials(
        self,
        service: &'static str,
        status: u16,
    ) -> Result<Credentials, CredentialsError> {
        let expiration = super::api::parse_ecs_time(&self.expiration).ok_or_else(|| {
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

#[cfg(test)]
#[allow(clippy::panic)] // a test fails loudly by design
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

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
    fn environment_chain_prefers_access_key_then_oidc_then_metadata() {
        let endpoints = ServiceEndpoints::default();
        let source = CredentialSource::from_environment(
            env(&[
                (env_vars::ACCESS_KEY_ID, "id"),
                (env_vars::ACCESS_KEY_SECRET, "s"),
                (env_vars::ROLE_ARN, "r"),
            ]),
            &endpoints,
        );
        assert_eq!(source.map(|s| s.kind()).ok(), Some("access-key"));
        let oidc = [
            (env_vars::ROLE_ARN, "acs:ram::1:role/r"),
            (env_vars::OIDC_PROVIDER_ARN, "acs:ram::1:oidc-provider/p"),
            (env_vars::OIDC_TOKEN_FILE, "/var/run/token"),
            (env_vars::STS_REGION, "cn-beijing"),
            (env_vars::VPC_ENDPOINT_ENABLED, "true"),
        ];
        match CredentialSource::from_environment(env(&oidc), &endpoints) {
            Ok(CredentialSource::Oidc(config)) => {
                assert_eq!(
                    config.sts_endpoint,
                    "https://sts-vpc.cn-beijing.aliyuncs.com"
                );
                assert_eq!(config.token_file, PathBuf::from("/var/run/token"));
            }
            other => panic!("expected OIDC, got {other:?}"),
        }
        match CredentialSource::from_environment(
            env(&[(env_vars::ECS_METADATA, "my-role")]),
            &endpoints,
        ) {
            Ok(CredentialSource::Metadata(config)) => {
                assert_eq!(config.role_name.as_deref(), Some("my-role"));
                assert_eq!(config.endpoint, DEFAULT_METADATA_ENDPOINT);
            }
            other => panic!("expected metadata, got {other:?}"),
        }
        let disabled = CredentialSource::from_environment(
            env(&[(env_vars::ECS_METADATA_DISABLED, "TRUE")]),
            &endpoints,
        );
        assert!(matches!(disabled, Err(CredentialsError::NotConfigured)));
        let half =
            CredentialSource::from_environment(env(&[(env_vars::ACCESS_KEY_ID, "id")]), &endpoints);
        assert!(matches!(
            half,
            Err(CredentialsError::IncompleteEnvironment(..))
        ));
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
