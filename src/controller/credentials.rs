//! Where a resource's credentials come from: its own Secret (read when it changes, cached by
//! `resourceVersion`, held with the credentials-in-use finalizer), or the operator's; and the
//! account they belong to, asked of STS once per AccessKey.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::decision::Failure;
use super::engine::failure_from;
use super::port::EcsPort;
use super::reconciler::{Context, lock};
use super::secrets_in_use::{self, SecretKey};
use crate::api::image_import::{CREDENTIALS_FINALIZER, ImageImport};
use crate::ecs::{CredentialProvider, Credentials, CredentialsError, EcsError};

/// What a namespace admin binds so the operator may read credentials Secrets in that namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAccess {
    /// The ClusterRole with the Secret access the operator needs (the chart's
    /// `<release>-secret-reader`).
    pub cluster_role: String,
    /// The operator's ServiceAccount as `namespace:name`.
    pub service_account: String,
}

impl Default for SecretAccess {
    fn default() -> Self {
        Self {
            cluster_role: "ecs-image-operator-secret-reader".into(),
            service_account: "ecs-image-operator:ecs-image-operator".into(),
        }
    }
}

impl SecretAccess {
    /// Why the operator may not `verb` the Secret (read it, or put its finalizer on), and the one
    /// command that opts the namespace in.
    pub fn forbidden_message(&self, verb: &str, namespace: &str, name: &str) -> String {
        if self.cluster_role.is_empty() {
            return format!(
                "the operator may not {verb} Secret {namespace}/{name}: list {namespace} in the chart's \
                 credentials.secretNamespaces (a Role and RoleBinding there); the import starts on \
                 its own once they exist"
            );
        }
        format!(
            "the operator may not {verb} Secret {namespace}/{name}: a namespace admin opts the namespace \
             in with `kubectl -n {namespace} create rolebinding ecs-image-operator-secrets \
             --clusterrole={} --serviceaccount={}` (or the chart's credentials.secretNamespaces lists \
             it); the import starts on its own once the RoleBinding exists",
            self.cluster_role, self.service_account
        )
    }
}

impl<P: EcsPort> Context<P> {
    /// The resource's credentials, their Secret's `resourceVersion` and the account they belong
    /// to; or the one failure of reading them or asking STS (with the version, when the Secret
    /// was read), which the decision takes as its input.
    pub(super) async fn credentials_and_account(
        &self,
        object: &ImageImport,
    ) -> Result<(Arc<CredentialProvider>, Option<String>, String), (Failure, Option<String>)> {
        let (credentials, version) = self.credentials(object).await.map_err(|f| (f, None))?;
        let account = self
            .account_of(&credentials)
            .await
            .map_err(|f| (f, version.clone()))?;
        Ok((credentials, version, account))
    }

    /// The account the credentials belong to, asked of STS once per AccessKey.
    pub(super) async fn account_of(
        &self,
        credentials: &CredentialProvider,
    ) -> Result<String, Failure> {
        let key_id = credentials
            .credentials()
            .await
            .map_err(|error| failure_from(&EcsError::from(error)))?
            .access_key_id()
            .to_string();
        // One cell per key: reconciles that need the same key at once (a restart, a burst of
        // creations) wait for one STS call instead of each making their own; a failure leaves the
        // cell empty, so the next reconcile asks again.
        let cell = Arc::clone(lock(&self.accounts).entry(key_id).or_default());
        cell.get_or_try_init(|| async {
            // STS judges the credentials as ECS would (an unknown key, a wrong secret): the
            // failure keeps its own code and class.
            self.ecs.account_id(credentials).await.map_err(|error| {
                let mut failure = failure_from(&error);
                failure.message = format!(
                    "failed to learn the account of the credentials (STS GetCallerIdentity): {}",
                    failure.message
                );
                failure
            })
        })
        .await
        .cloned()
    }

    /// The resource's credentials: its Secret (re-read every time, cached by resourceVersion), or the
    /// operator's own. Returns the Secret's resourceVersion with them.
    pub(super) async fn credentials(
        &self,
        object: &ImageImport,
    ) -> Result<(Arc<CredentialProvider>, Option<String>), Failure> {
        let Some(reference) = &object.spec.credentials_secret_ref else {
            self.let_go_of_old_secret(object).await;
            return self
                .default_credentials
                .clone()
                .map(|provider| (provider, None))
                .ok_or_else(|| {
                    let error = CredentialsError::NotConfigured;
                    Failure::minted(error.code(), error.to_string())
                });
        };
        let namespace = object.namespace().unwrap_or_default();
        let key = (namespace.clone(), reference.name.clone());
        if let Some(cached) = self.unchanged_secret(&key) {
            self.secrets_in_use
                .named_by(object, &key)
                .await
                .map_err(|error| {
                    Failure::minted(
                        "CredentialsSecretNotHeld",
                        format!(
                            "failed to take the finalizer {CREDENTIALS_FINALIZER} off the Secret \
                             this resource named before: {error}"
                        ),
                    )
                })?;
            return Ok(cached);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let secret = match secrets.get_opt(&reference.name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Failure::minted(
                    "CredentialsSecretNotFound",
                    format!("Secret {namespace}/{} does not exist", reference.name),
                ));
            }
            Err(kube::Error::Api(status)) if status.is_forbidden() => {
                return Err(Failure::minted(
                    "CredentialsSecretForbidden",
                    self.secret_access
                        .forbidden_message("read", &namespace, &reference.name),
                ));
            }
            Err(error) => {
                return Err(Failure::minted(
                    "CredentialsSecretUnreadable",
                    format!(
                        "failed to read Secret {namespace}/{}: {error}",
                        reference.name
                    ),
                ));
            }
        };
        self.secret_watches.ensure(&namespace);
        let secret = match self.secrets_in_use.hold(object, secret).await {
            Ok(secret) => secret,
            Err(kube::Error::Api(status)) if status.is_forbidden() => {
                return Err(Failure::minted(
                    "CredentialsSecretForbidden",
                    self.secret_access.forbidden_message(
                        "put its finalizer on",
                        &namespace,
                        &reference.name,
                    ),
                ));
            }
            Err(error) => {
                return Err(Failure::minted(
                    "CredentialsSecretNotHeld",
                    format!(
                        "failed to put the finalizer {CREDENTIALS_FINALIZER} on Secret \
                         {namespace}/{} (it keeps the Secret while this resource needs it): {error}",
                        reference.name
                    ),
                ));
            }
        };
        let version = secret.resource_version().unwrap_or_default();
        let key = (namespace.clone(), reference.name.clone());
        if let Some((cached_version, provider)) = lock(&self.secret_credentials).get(&key)
            && *cached_version == version
        {
            return Ok((Arc::clone(provider), Some(version)));
        }
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect();
        let credentials = Credentials::from_secret_data(&data).map_err(|error| {
            Failure::minted(
                error.code(),
                format!("Secret {namespace}/{}: {error}", reference.name),
            )
        })?;
        let provider = Arc::new(CredentialProvider::fixed(credentials));
        lock(&self.secret_credentials).insert(key, (version.clone(), Arc::clone(&provider)));
        Ok((provider, Some(version)))
    }

    /// The request headers of a source's headers Secret: each data key a header name, each value
    /// (UTF-8) its value, kept secret. Read under the same access rules as a credentials Secret.
    pub(super) async fn source_headers(
        &self,
        object: &ImageImport,
        name: &str,
    ) -> Result<Vec<(String, secrecy::SecretString)>, Failure> {
        let namespace = object.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let secret = match secrets.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Failure::minted(
                    "SourceHeadersSecretNotFound",
                    format!("the source's headers Secret {namespace}/{name} does not exist"),
                ));
            }
            Err(kube::Error::Api(status)) if status.is_forbidden() => {
                return Err(Failure::minted(
                    "SourceHeadersSecretForbidden",
                    self.secret_access
                        .forbidden_message("read", &namespace, name),
                ));
            }
            Err(error) => {
                return Err(Failure::minted(
                    "SourceHeadersSecretUnreadable",
                    format!(
                        "failed to read the source's headers Secret {namespace}/{name}: {error}"
                    ),
                ));
            }
        };
        let mut headers = Vec::new();
        for (key, value) in secret.data.unwrap_or_default() {
            let Ok(text) = String::from_utf8(value.0) else {
                return Err(Failure::minted(
                    "InvalidSourceHeadersSecret",
                    format!("Secret {namespace}/{name}: the value of {key} is not UTF-8 text"),
                ));
            };
            headers.push((key, secrecy::SecretString::from(text)));
        }
        Ok(headers)
    }

    /// The cached credentials of a Secret whose watched metadata shows it unchanged since they
    /// were read (same `resourceVersion`) and already held: no GET needed.
    fn unchanged_secret(
        &self,
        key: &SecretKey,
    ) -> Option<(Arc<CredentialProvider>, Option<String>)> {
        let seen = self.secret_watches.seen(&key.0, &key.1)?;
        if secrets_in_use::finalizers_held(&seen.metadata).is_some() {
            return None;
        }
        let version = seen.metadata.resource_version?;
        let cache = lock(&self.secret_credentials);
        let (cached_version, provider) = cache.get(key)?;
        (*cached_version == version).then(|| (Arc::clone(provider), Some(version)))
    }

    /// The resource names no Secret: lets go of the one it named before. Known from memory while
    /// the operator runs; after a restart the Secret watch of the namespace finds it, so it is
    /// started here when the status shows credentials from a Secret were used.
    pub(super) async fn let_go_of_old_secret(&self, object: &ImageImport) {
        let used_secret = object
            .status
            .as_ref()
            .is_some_and(|status| status.observed_credentials_version.is_some());
        if let (true, Some(namespace)) = (used_secret, object.namespace()) {
            self.secret_watches.ensure(&namespace);
        }
        if let Err(error) = self.secrets_in_use.hold_none(object).await {
            tracing::warn!(
                namespace = object.namespace(),
                name = object.name_any(),
                "could not take the credentials-in-use finalizer off the Secret this resource \
                 named before: {error}"
            );
        }
    }
}
