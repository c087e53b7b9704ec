//! The ECS instance RAM role: credentials from the instance metadata service (IMDSv2, with the
//! IMDSv1 fallback the official SDKs have).

use std::time::Duration;

use serde::Deserialize;

use super::wire::{WireCredentials, read_answer, transport, unreadable};
use super::{CredentialProvider, Credentials, CredentialsError};
use crate::ecs::endpoint::{self, Scheme};
use crate::ecs::redact::{self, Secrets};

/// The default metadata service of ECS instances (plain HTTP by design of the service).
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// Refresh instance-role credentials this long before they expire, as the official SDKs do.
pub(super) const METADATA_REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// The metadata service answers in milliseconds on an instance; anything slower means it is absent.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(1);
/// IMDSv2 token lifetime asked for.
const METADATA_TOKEN_TTL_SECONDS: &str = "21600";

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

impl CredentialProvider {
    pub(super) async fn fetch_from_metadata(
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
