//! Credentials Secrets in use carry the operator's finalizer ([`CREDENTIALS_FINALIZER`]), as
//! Crossplane does for credentials in use: a namespace deletion deletes Secrets and ImageImports
//! together, and without it the Secret goes first and every ImageImport is left unable to cancel
//! or delete in ECS — and the namespace `Terminating` for good.
//!
//! The finalizer goes on when a resource's credentials are read from a Secret, and comes off when
//! no resource names the Secret any more: when the last one naming it is finalized, when one moves
//! to another Secret, and — for what changed while the operator was not running — whenever a
//! watched Secret carrying it shows up unnamed. Which resources name a Secret is read from the
//! controllers' caches: a resource created a moment ago may be missing there, but its first
//! reconcile puts the finalizer back (and removing it wakes every resource naming the Secret).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::image_import::{CREDENTIALS_FINALIZER, ImageImport};

/// A Secret by (namespace, name).
pub type SecretKey = (String, String);

/// Conflicting writes to one Secret are retried this often before the caller retries later.
const ATTEMPTS: usize = 3;

/// The Secret a resource takes its credentials from, if it names one.
pub fn secret_of(import: &ImageImport) -> Option<SecretKey> {
    let reference = import.spec.credentials_secret_ref.as_ref()?;
    Some((import.namespace()?, reference.name.clone()))
}

/// Whether a resource other than the one with UID `except` names the Secret. Resources being
/// deleted count: they need the Secret until their own finalizer goes.
pub fn in_use<'a>(
    imports: impl IntoIterator<Item = &'a ImageImport>,
    secret: &SecretKey,
    except: Option<&str>,
) -> bool {
    imports.into_iter().any(|import| {
        secret_of(import).as_ref() == Some(secret)
            && except.is_none_or(|uid| import.uid().as_deref() != Some(uid))
    })
}

/// The finalizers the Secret should have to be held, or `None` when nothing is to change: it
/// holds the finalizer already, or it is being deleted (no finalizer may be added then, and the
/// resources naming it use it until it goes).
pub fn finalizers_held(meta: &ObjectMeta) -> Option<Vec<String>> {
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    if meta.deletion_timestamp.is_some() || finalizers.iter().any(|f| f == CREDENTIALS_FINALIZER) {
        return None;
    }
    finalizers.push(CREDENTIALS_FINALIZER.to_string());
    Some(finalizers)
}

/// The finalizers the Secret should have once let go, or `None` when it does not hold ours.
pub fn finalizers_released(meta: &ObjectMeta) -> Option<Vec<String>> {
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == CREDENTIALS_FINALIZER) {
        return None;
    }
    Some(
        finalizers
            .into_iter()
            .filter(|f| f != CREDENTIALS_FINALIZER)
            .collect(),
    )
}

/// The merge patch that sets `finalizers`, on the condition that the Secret is still at
/// `resourceVersion` (the API server answers `409` otherwise), so another manager's finalizer
/// added meanwhile is never lost.
fn finalizers_patch(meta: &ObjectMeta, finalizers: &[String]) -> Patch<serde_json::Value> {
    Patch::Merge(json!({
        "metadata": {"resourceVersion": meta.resource_version, "finalizers": finalizers}
    }))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which Secret each resource holds, and the caches that say which resources name a Secret.
pub struct SecretsInUse {
    client: Client,
    stores: Mutex<Vec<(Option<String>, Store<ImageImport>)>>,
    /// The Secret each resource (by UID) last took its credentials from, so moving to another
    /// Secret lets go of the old one.
    holders: Mutex<HashMap<String, SecretKey>>,
}

impl SecretsInUse {
    /// No cache registered yet.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            stores: Mutex::new(Vec::new()),
            holders: Mutex::new(HashMap::new()),
        }
    }

    /// Adds the cache of the controller watching `scope` (a namespace, or every one for `None`).
    pub fn register(&self, scope: Option<String>, store: Store<ImageImport>) {
        lock(&self.stores).push((scope, store));
    }

    /// Holds `secret`, just read for `import`'s credentials, and lets go of the Secret the
    /// resource named before, if any. Returns the Secret as it is now: holding changes its
    /// `resourceVersion`.
    pub async fn hold(&self, import: &ImageImport, secret: Secret) -> Result<Secret, kube::Error> {
        let namespace = secret.namespace().unwrap_or_default();
        let key = (namespace.clone(), secret.name_any());
        self.moved_to(import, Some(&key)).await?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let mut current = secret;
        for _ in 0..ATTEMPTS {
            let Some(finalizers) = finalizers_held(&current.metadata) else {
                return Ok(current);
            };
            match api
                .patch(
                    &key.1,
                    &PatchParams::default(),
                    &finalizers_patch(&current.metadata, &finalizers),
                )
                .await
            {
                Ok(held) => {
                    tracing::debug!(namespace, secret = key.1, "credentials Secret held");
                    return Ok(held);
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    current = api.get(&key.1).await?;
                }
                Err(error) => return Err(error),
            }
        }
        api.get(&key.1).await
    }

    /// `import` names `key`, already held (seen by its watch): lets go of the Secret the resource
    /// named before, if another.
    pub async fn named_by(&self, import: &ImageImport, key: &SecretKey) -> Result<(), kube::Error> {
        self.moved_to(import, Some(key)).await
    }

    /// `import` names no Secret: lets go of the one it named before, if any.
    pub async fn hold_none(&self, import: &ImageImport) -> Result<(), kube::Error> {
        self.moved_to(import, None).await
    }

    /// `import`'s finalizer goes: lets go of its Secret unless another resource names it.
    pub async fn let_go(&self, import: &ImageImport) -> Result<(), kube::Error> {
        let uid = import.uid().unwrap_or_default();
        let held = lock(&self.holders).remove(&uid);
        for key in held.into_iter().chain(secret_of(import)) {
            self.release(&key, Some(&uid)).await?;
        }
        Ok(())
    }

    /// A resource left the cache (its finalizer went): lets go of its Secret unless another
    /// resource names it. Two resources of one Secret finalized at once each still see the other
    /// in the cache while they let go; the later cache deletion settles it.
    pub async fn resource_gone(
        &self,
        uid: Option<&str>,
        key: &SecretKey,
    ) -> Result<(), kube::Error> {
        if let Some(uid) = uid {
            lock(&self.holders).remove(uid);
        }
        self.release(key, None).await
    }

    /// A Secret a watch reported: if it holds the finalizer and no resource names it any more
    /// (the last one was changed or deleted while the operator was not running), lets go of it.
    pub async fn sweep(&self, secret: &PartialObjectMeta<Secret>) -> Result<(), kube::Error> {
        if finalizers_released(&secret.metadata).is_none() {
            return Ok(());
        }
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        self.release(&key, None).await
    }

    async fn moved_to(
        &self,
        import: &ImageImport,
        key: Option<&SecretKey>,
    ) -> Result<(), kube::Error> {
        let uid = import.uid().unwrap_or_default();
        let before = {
            let mut holders = lock(&self.holders);
            match key {
                Some(key) => holders.insert(uid.clone(), key.clone()),
                None => holders.remove(&uid),
            }
        };
        match before {
            Some(before) if Some(&before) != key => self.release(&before, Some(&uid)).await,
            _ => Ok(()),
        }
    }

    /// Whether a resource other than `except` names the Secret, once the cache watching its
    /// namespace has listed every resource (an empty cache would say "none").
    async fn named(&self, key: &SecretKey, except: Option<&str>) -> bool {
        let stores: Vec<Store<ImageImport>> = lock(&self.stores)
            .iter()
            .filter(|(scope, _)| scope.as_ref().is_none_or(|scope| *scope == key.0))
            .map(|(_, store)| store.clone())
            .collect();
        for store in &stores {
            // A store whose writer is gone answers from what it had: the controller is ending.
            let _ = store.wait_until_ready().await;
            if in_use(store.state().iter().map(AsRef::as_ref), key, except) {
                return true;
            }
        }
        false
    }

    /// Takes the finalizer off the Secret unless a resource other than `except` names it.
    async fn release(&self, key: &SecretKey, except: Option<&str>) -> Result<(), kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.0);
        for _ in 0..ATTEMPTS {
            if self.named(key, except).await {
                return Ok(());
            }
            let Some(meta) = api.get_metadata_opt(&key.1).await? else {
                return Ok(());
            };
            let Some(finalizers) = finalizers_released(&meta.metadata) else {
                return Ok(());
            };
            match api
                .patch_metadata(
                    &key.1,
                    &PatchParams::default(),
                    &finalizers_patch(&meta.metadata, &finalizers),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(
                        namespace = key.0,
                        secret = key.1,
                        "credentials Secret let go"
                    );
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                // Gone meanwhile: nothing left to let go of.
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(
        uid: &str,
        namespace: &str,
        secret: Option<&str>,
    ) -> Result<ImageImport, serde_json::Error> {
        let mut spec = json!({
            "regionId": "cn-hangzhou",
            "diskDeviceMappings": [{"ossBucket": "b", "ossObject": "o"}],
        });
        if let Some(secret) = secret {
            spec["credentialsSecretRef"] = json!({"name": secret});
        }
        serde_json::from_value(json!({
            "apiVersion": "ecs.image-import.dev/v1alpha1",
            "kind": "ImageImport",
            "metadata": {"name": uid, "namespace": namespace, "uid": uid},
            "spec": spec,
        }))
    }

    fn key(namespace: &str, name: &str) -> SecretKey {
        (namespace.to_string(), name.to_string())
    }

    #[test]
    fn a_secret_is_in_use_while_another_resource_of_its_namespace_names_it()
    -> Result<(), serde_json::Error> {
        let imports = [
            import("a", "team", Some("key"))?,
            import("b", "team", Some("key"))?,
            import("c", "other", Some("old"))?,
            import("d", "team", None)?,
        ];
        assert!(in_use(&imports, &key("team", "key"), None));
        assert!(in_use(&imports, &key("team", "key"), Some("a")));
        assert!(!in_use(&imports[..1], &key("team", "key"), Some("a")));
        // Same name in another namespace is another Secret.
        assert!(!in_use(&imports, &key("team", "old"), None));
        assert!(!in_use(&imports, &key("other", "key"), None));
        assert!(!in_use(&[], &key("team", "key"), None));
        Ok(())
    }

    #[test]
    fn the_finalizer_is_added_once_and_never_to_a_secret_being_deleted() {
        let mut meta = ObjectMeta {
            finalizers: Some(vec!["someone.else/keep".into()]),
            ..ObjectMeta::default()
        };
        assert_eq!(
            finalizers_held(&meta),
            Some(vec![
                "someone.else/keep".into(),
                CREDENTIALS_FINALIZER.into()
            ])
        );
        meta.finalizers = finalizers_held(&meta);
        assert_eq!(finalizers_held(&meta), None);
        let deleting = ObjectMeta {
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            ..ObjectMeta::default()
        };
        assert_eq!(finalizers_held(&deleting), None);
        assert_eq!(
            finalizers_held(&ObjectMeta::default()),
            Some(vec![CREDENTIALS_FINALIZER.into()])
        );
    }

    #[test]
    fn letting_go_keeps_other_finalizers_and_is_nothing_without_ours() {
        let meta = ObjectMeta {
            finalizers: Some(vec![
                "someone.else/keep".into(),
                CREDENTIALS_FINALIZER.into(),
            ]),
            ..ObjectMeta::default()
        };
        assert_eq!(
            finalizers_released(&meta),
            Some(vec!["someone.else/keep".to_string()])
        );
        assert_eq!(finalizers_released(&ObjectMeta::default()), None);
        let patch = finalizers_patch(
            &ObjectMeta {
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            &[],
        );
        let expected = json!({"metadata": {"resourceVersion": "7", "finalizers": []}});
        assert!(matches!(patch, Patch::Merge(ref body) if *body == expected));
    }
}
