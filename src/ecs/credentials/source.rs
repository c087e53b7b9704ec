//! Where credentials come from ([`CredentialSource`]), and the chain that picks the operator's own
//! from its environment: an AccessKey, then RRSA/OIDC, then the ECS instance RAM role.

use std::path::PathBuf;

use super::metadata::{DEFAULT_METADATA_ENDPOINT, MetadataConfig};
use super::oidc::{DEFAULT_OIDC_DURATION, OidcConfig, default_session_name, default_sts_endpoint};
use super::{Credentials, CredentialsError};

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

/// The source the environment chain chose, and what it looked at before it, in order.
///
/// `tried` holds one entry per source passed over, `"<source>: <why not>"` (names of variables,
/// files and URLs, never a value of them), after whatever the caller put in front. A
/// [`CredentialProvider::chosen`](super::CredentialProvider::chosen) built from it lists them all
/// when the last fallback, the instance RAM role, gives no credentials.
#[derive(Debug, Clone)]
pub struct ChainChoice {
    /// The source chosen.
    pub source: CredentialSource,
    /// The sources passed over before it, in order.
    pub tried: Vec<String>,
}

/// The RRSA variables, in the order they are named.
const RRSA_VARS: [&str; 3] = [
    env_vars::ROLE_ARN,
    env_vars::OIDC_PROVIDER_ARN,
    env_vars::OIDC_TOKEN_FILE,
];

impl CredentialSource {
    /// Chooses the operator's own source from environment variables: AccessKey, then RRSA, then the
    /// instance RAM role (unless `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`).
    ///
    /// `lookup` reads one variable; pass `|name| std::env::var(name).ok()` in production.
    pub fn from_environment(
        lookup: impl Fn(&str) -> Option<String>,
        endpoints: &ServiceEndpoints,
    ) -> Result<Self, CredentialsError> {
        Self::choose_from_environment(lookup, endpoints, Vec::new()).map(|choice| choice.source)
    }

    /// As [`CredentialSource::from_environment`], recording what each source passed over was and
    /// why it was not usable. `earlier` are sources the caller tried first (`import -f` puts
    /// `"Secret document: …"` there); they stay in front of the chain's own entries.
    ///
    /// With the instance RAM role turned off and nothing else set, the error is
    /// [`CredentialsError::NoneUsable`] listing every source, in order.
    pub fn choose_from_environment(
        lookup: impl Fn(&str) -> Option<String>,
        endpoints: &ServiceEndpoints,
        earlier: Vec<String>,
    ) -> Result<ChainChoice, CredentialsError> {
        let mut tried = earlier;
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
                return Ok(ChainChoice {
                    source: Self::Static(credentials),
                    tried,
                });
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
            (None, None) => tried.push(format!(
                "environment: {} and {} not set",
                env_vars::ACCESS_KEY_ID,
                env_vars::ACCESS_KEY_SECRET
            )),
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
            return Ok(ChainChoice {
                source: Self::Oidc(OidcConfig {
                    role_arn,
                    oidc_provider_arn,
                    token_file: PathBuf::from(token_file),
                    role_session_name: get(env_vars::ROLE_SESSION_NAME)
                        .unwrap_or_else(default_session_name),
                    duration: DEFAULT_OIDC_DURATION,
                    sts_endpoint,
                }),
                tried,
            });
        }
        let (set, unset): (Vec<&str>, Vec<&str>) =
            RRSA_VARS.into_iter().partition(|name| get(name).is_some());
        tried.push(if set.is_empty() {
            format!("RRSA: {} not set", unset.join(", "))
        } else {
            format!(
                "RRSA: {} not set (only {} set)",
                unset.join(", "),
                set.join(", ")
            )
        });
        if is_true(env_vars::ECS_METADATA_DISABLED) {
            let last = CredentialsError::MetadataDisabled;
            tried.push(format!("instance role: {last}"));
            return Err(CredentialsError::NoneUsable {
                tried,
                last: Box::new(last),
            });
        }
        Ok(ChainChoice {
            source: Self::Metadata(MetadataConfig {
                role_name: get(env_vars::ECS_METADATA),
                endpoint: endpoints
                    .metadata
                    .clone()
                    .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.to_string()),
                imdsv1_disabled: is_true(env_vars::IMDSV1_DISABLED),
            }),
            tried,
        })
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

#[cfg(test)]
#[allow(clippy::panic)] // a test fails loudly by design
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
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
        assert!(
            matches!(&disabled, Err(CredentialsError::NoneUsable { last, .. })
                if matches!(**last, CredentialsError::MetadataDisabled)),
            "{disabled:?}"
        );
        let half =
            CredentialSource::from_environment(env(&[(env_vars::ACCESS_KEY_ID, "id")]), &endpoints);
        assert!(matches!(
            half,
            Err(CredentialsError::IncompleteEnvironment(..))
        ));
    }

    #[test]
    fn the_chain_records_each_source_it_passes_over_in_order_after_the_callers() {
        let endpoints = ServiceEndpoints {
            sts: None,
            metadata: Some("http://127.0.0.1:9".into()),
        };
        let earlier = vec!["Secret document: none in example.yaml".to_string()];
        let choice = match CredentialSource::choose_from_environment(
            env(&[]),
            &endpoints,
            earlier.clone(),
        ) {
            Ok(choice) => choice,
            Err(error) => panic!("expected the instance role, got {error:?}"),
        };
        assert_eq!(choice.source.kind(), "ecs-ram-role");
        assert_eq!(
            choice.tried,
            [
                "Secret document: none in example.yaml",
                "environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET not set",
                "RRSA: ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, \
                 ALIBABA_CLOUD_OIDC_TOKEN_FILE not set",
            ]
        );
        // Half an RRSA configuration says which half.
        let partial = CredentialSource::choose_from_environment(
            env(&[(env_vars::ROLE_ARN, "acs:ram::1:role/r")]),
            &endpoints,
            Vec::new(),
        )
        .map(|choice| choice.tried);
        assert_eq!(
            partial
                .ok()
                .as_deref()
                .and_then(|tried| tried.last().cloned()),
            Some(
                "RRSA: ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE not set \
                 (only ALIBABA_CLOUD_ROLE_ARN set)"
                    .to_string()
            )
        );
        // An AccessKey is chosen after the caller's sources, with nothing passed over.
        let key = CredentialSource::choose_from_environment(
            env(&[
                (env_vars::ACCESS_KEY_ID, "id"),
                (env_vars::ACCESS_KEY_SECRET, "the-secret"),
            ]),
            &endpoints,
            earlier,
        )
        .map(|choice| choice.tried);
        assert_eq!(
            key.ok(),
            Some(vec!["Secret document: none in example.yaml".to_string()])
        );
        // With the instance role off, the error lists all three, once each, in order.
        let off = CredentialSource::choose_from_environment(
            env(&[(env_vars::ECS_METADATA_DISABLED, "true")]),
            &endpoints,
            Vec::new(),
        );
        let Err(error) = off else {
            panic!("expected an error, got {off:?}");
        };
        let text = crate::explain::explain(&error);
        assert_eq!(
            text,
            "no usable Alibaba Cloud credentials; tried, in order: environment: \
             ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET not set; RRSA: \
             ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE \
             not set; instance role: ALIBABA_CLOUD_ECS_METADATA_DISABLED is true"
        );
        assert_eq!(crate::explain::repeated_fragment(&text), None, "{text}");
        assert_eq!(error.code(), "CredentialsNotConfigured");
        assert!(!error.is_transient());
    }
}
