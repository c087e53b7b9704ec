//! RRSA / OIDC: exchanging the pod's service-account token for STS credentials
//! (`AssumeRoleWithOIDC`).

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use super::wire::{WireCredentials, read_answer, transport, unreadable};
use super::{CredentialProvider, Credentials, CredentialsError};
use crate::ecs::endpoint::{self, Scheme};
use crate::ecs::error::ApiError;
use crate::ecs::params::Params;
use crate::ecs::redact::Secrets;

/// The default session length asked of STS; its minimum is 900 s.
pub const DEFAULT_OIDC_DURATION: Duration = Duration::from_secs(3600);
/// Refresh OIDC credentials this long before they expire (Alibaba's Go SDK uses 180 s).
pub(super) const OIDC_REFRESH_MARGIN: Duration = Duration::from_secs(180);
/// STS is a remote service; keep its calls bounded but not tight.
const STS_TIMEOUT: Duration = Duration::from_secs(10);

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

pub(super) fn default_sts_endpoint(region: Option<&str>, vpc: bool) -> String {
    match (region, vpc) {
        (Some(region), true) => format!("https://sts-vpc.{region}.aliyuncs.com"),
        (Some(region), false) => format!("https://sts.{region}.aliyuncs.com"),
        (None, _) => "https://sts.aliyuncs.com".to_string(),
    }
}

pub(super) fn default_session_name() -> String {
    format!("ecs-image-operator-{}", Timestamp::now().as_second())
}

impl CredentialProvider {
    pub(super) async fn assume_role_with_oidc(
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
        query.set(
            "Timestamp",
            crate::ecs::client::ecs_timestamp(Timestamp::now()),
        );
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
}
