//! The life-cycle engine that both shells drive — `run` (the kube-runtime controller) and
//! `import -f` (the one-shot CLI): observe what ECS reports of a resource's external objects
//! (failures kept as values), decide the plan (pure, in `decision`), record it, act, and
//! conclude from the outcome. What differs between the shells — where credentials come from,
//! how a running import is followed, where status goes — is the [`Shell`] trait.
//!
//! Each kind of external object has its observe and act parts in a file of its own:
//! `source.rs` (the imported image and its task), `distribution.rs` (copies and shares) and
//! `upload.rs` (sources streamed into OSS before the import).

pub mod distribution;
pub mod source;
pub mod upload;

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use super::decision::{
    self, CopyObserved, Failure, ImageView, Lookup, Observed, Outcome, Plan, Resource, Timing,
};
use super::port::EcsPort;
use crate::api::image_import::{
    ABANDON_ANNOTATION, ImageImport, ImageImportStatus, PAUSED_ANNOTATION,
};
use crate::ecs::CredentialProvider;

pub(crate) use source::failure_from;
pub use source::import_request;

/// The credentials a resource is reconciled with.
#[derive(Clone)]
pub struct Identity {
    /// Where the credentials come from.
    pub credentials: Arc<CredentialProvider>,
    /// `resourceVersion` of the credentials Secret, when the resource names one.
    pub version: Option<String>,
    /// The account they belong to.
    pub account: String,
}

/// What a shell knows of a resource's recorded images.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    /// The source image.
    pub source: Lookup<ImageView>,
    /// The recorded copies of wanted regions.
    pub copies: Vec<CopyObserved>,
}

/// Why a resource's credentials could not be had, as the decision reads it.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// The failure (reading the Secret, or asking STS for the account).
    pub failure: Failure,
    /// `resourceVersion` of the credentials Secret, when it was read.
    pub version: Option<String>,
}

/// What a shell gives the engine.
pub trait Shell: Sync {
    /// The way to ECS.
    type Port: EcsPort;
    /// Why recording a plan failed.
    type Error;

    /// The way to ECS.
    fn port(&self) -> &Self::Port;
    /// How often to look and how long to wait.
    fn timing(&self) -> &Timing;
    /// Consecutive failed reconciles of this resource so far.
    fn failures(&self, object: &ImageImport) -> u32;
    /// The resource's credentials and their account.
    fn identity(
        &self,
        object: &ImageImport,
    ) -> impl Future<Output = Result<Identity, Blocked>> + Send;
    /// What is known of the recorded images (the source, and each copy of a wanted region)
    /// without a look-up of the engine's own: the batched poller's view for `run` (`NotAsked`
    /// until its first round), a direct look for `import`.
    fn latest(
        &self,
        object: &ImageImport,
        identity: &Identity,
        status: &ImageImportStatus,
    ) -> impl Future<Output = Latest> + Send;
    /// Runs `work` (ECS calls for `action`), saying in status that it is outstanding when it is
    /// slow; returns whether it wrote status meanwhile.
    fn patiently<T: Send>(
        &self,
        object: &ImageImport,
        base: &ImageImportStatus,
        action: &'static str,
        work: impl Future<Output = T> + Send,
    ) -> impl Future<Output = (T, bool)> + Send;
    /// Records a plan: its status (unless `stored`, what is known to be stored, is equal) and its
    /// Events.
    fn record(
        &self,
        object: &ImageImport,
        stored: Option<&ImageImportStatus>,
        plan: &Plan,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// The process's transfers, when this shell uploads sources (`None`: a mapping with a
    /// `source` waits).
    fn transfers(&self) -> Option<&crate::upload::Transfers>;
    /// Whether a `source.file` on this machine may be read (only the one-shot `import -f`).
    fn local_files(&self) -> bool {
        false
    }
    /// The request headers in the source's headers Secret `name` (in the resource's namespace),
    /// under the same opt-in rules as a credentials Secret.
    fn source_headers(
        &self,
        object: &ImageImport,
        name: &str,
    ) -> impl Future<Output = Result<Vec<(String, secrecy::SecretString)>, Failure>> + Send;
    /// The plan is final for this reconcile: count or forget failures, follow the image.
    fn settle(
        &self,
        object: &ImageImport,
        identity: Option<&Identity>,
        plan: &Plan,
    ) -> impl Future<Output = ()> + Send;
}

/// One pass of the life cycle over `object`: observe, decide, record, act, conclude, record.
/// Returns the final plan (its requeue, and whether the finalizer may go).
pub async fn step<S: Shell>(shell: &S, object: &ImageImport) -> Result<Plan, S::Error> {
    let stored = object.status.clone().unwrap_or_default();
    let failures = shell.failures(object);
    let asks_ecs = decision::needs_ecs(&resource(object, &stored, None, None));
    let identity = match asks_ecs {
        true => Some(shell.identity(object).await),
        false => None,
    };
    if !asks_ecs && object.metadata.deletion_timestamp.is_some() {
        // A deletion that leaves OSS and ECS alone still stops what this process uploads.
        upload::stop_all(shell.transfers(), object).await;
    }
    let (version, account) = match &identity {
        Some(Ok(found)) => (found.version.as_deref(), Some(found.account.as_str())),
        Some(Err(blocked)) => (blocked.version.as_deref(), None),
        None => (None, None),
    };
    let resource = resource(object, &stored, version, account);
    let mut observed = Observed {
        failures,
        upload: upload::observe(shell.transfers(), object, &resource),
        local_files: shell.local_files(),
        ..Observed::default()
    };
    let mut known = Some(&stored);
    match &identity {
        Some(Ok(identity)) => {
            let latest = match resource.deleting || stored.image_id.is_none() {
                true => Latest::default(),
                false => shell.latest(object, identity, &stored).await,
            };
            let ecs = shell.port();
            let observing = source::observe(ecs, object, &resource, identity, latest.source);
            let (source, wrote) = shell
                .patiently(object, &stored, "DescribeImages", observing)
                .await;
            observed.source = source;
            known = known.filter(|_| !wrote);
            let copies = latest.copies;
            let looking =
                distribution::observe(ecs, object, &resource, identity, &observed.source, copies);
            (observed.copies, observed.shares) = looking.await;
        }
        Some(Err(blocked)) => observed.blocked = Some(blocked.failure.clone()),
        None => {}
    }
    let timing = shell.timing();
    let plan = decision::decide(&resource, &observed, timing, Timestamp::now());
    let identity = identity.as_ref().and_then(|found| found.as_ref().ok());
    let plan = match (identity, plan.steps.is_empty()) {
        (Some(identity), false) => {
            shell.record(object, known, &plan).await?;
            upload::recorded(shell.transfers(), object, &observed.upload);
            let (outcome, wrote) = act(shell, object, &resource, &plan, identity).await;
            let now = Timestamp::now();
            let concluded = decision::conclude(&resource, &plan, &outcome, failures, timing, now);
            let known = Some(&plan.status).filter(|_| !wrote);
            shell.record(object, known, &concluded).await?;
            concluded
        }
        _ => {
            shell.record(object, known, &plan).await?;
            upload::recorded(shell.transfers(), object, &observed.upload);
            plan
        }
    };
    shell.settle(object, identity, &plan).await;
    Ok(plan)
}

/// Carries out the plan's steps in order; the first failure stops the rest.
async fn act<S: Shell>(
    shell: &S,
    object: &ImageImport,
    resource: &Resource<'_>,
    plan: &Plan,
    identity: &Identity,
) -> (Outcome, bool) {
    // The planned status carries what the steps need (the ClientToken's re-import count).
    let acting = Resource {
        status: &plan.status,
        ..*resource
    };
    let mut outcome = Outcome::default();
    let mut wrote = false;
    let credentials = &identity.credentials;
    for step in &plan.steps {
        if step.is_upload() {
            let action = step.name();
            let (done, slow) = shell
                .patiently(
                    object,
                    &plan.status,
                    action,
                    act_upload(shell, object, &acting, step, identity),
                )
                .await;
            wrote |= slow;
            if let Err(failure) = done {
                outcome.failure = Some(failure);
                break;
            }
            continue;
        }
        // Each kind of external object carries out its own steps.
        let work = async {
            if step.is_source() {
                let imported = source::act(shell.port(), &acting, step, credentials).await?;
                Ok::<_, crate::ecs::EcsError>((imported, Ok(distribution::Done::Nothing)))
            } else {
                let done = distribution::act(shell.port(), &acting, step, credentials).await?;
                Ok((None, done))
            }
        };
        let (done, slow) = shell
            .patiently(object, &plan.status, step.name(), work)
            .await;
        wrote |= slow;
        match done {
            Ok((imported, copied)) => {
                outcome.imported = imported.or(outcome.imported);
                match copied {
                    Ok(distribution::Done::Copied(region, id)) => outcome.copied.push((region, id)),
                    Ok(distribution::Done::Nothing) => {}
                    Err(refused) => outcome.copy_failures.push(refused),
                }
            }
            Err(error) => {
                outcome.failure = Some(failure_from(&error));
                break;
            }
        }
    }
    (outcome, wrote)
}

/// Carries out an upload step with the shell's transfers (and the source's headers Secret).
async fn act_upload<S: Shell>(
    shell: &S,
    object: &ImageImport,
    resource: &Resource<'_>,
    step: &decision::EcsAction,
    identity: &Identity,
) -> Result<(), Failure> {
    let Some(transfers) = shell.transfers() else {
        return Err(Failure::minted(
            "InvalidRequest",
            "this shell cannot upload sources".into(),
        ));
    };
    let secret = match step {
        decision::EcsAction::Upload { disk } => usize::try_from(*disk)
            .ok()
            .and_then(|index| resource.spec.disk_device_mappings.get(index))
            .and_then(|mapping| mapping.source.as_ref())
            .and_then(|source| source.headers_secret_ref.as_ref())
            .map(|secret| secret.name.clone()),
        _ => None,
    };
    let headers = match secret {
        Some(name) => shell.source_headers(object, &name).await?,
        None => Vec::new(),
    };
    let uploading = upload::Uploading {
        transfers,
        object,
        credentials: &identity.credentials,
        headers,
    };
    upload::act(&uploading, resource, step).await
}

/// The decision's view of a resource.
pub fn resource<'a>(
    object: &'a ImageImport,
    status: &'a ImageImportStatus,
    credentials_version: Option<&'a str>,
    credentials_account: Option<&'a str>,
) -> Resource<'a> {
    let annotated = |key: &str| {
        object
            .annotations()
            .get(key)
            .is_some_and(|value| value == "true")
    };
    Resource {
        uid: object.metadata.uid.as_deref().unwrap_or_default(),
        namespace: object.metadata.namespace.as_deref().unwrap_or_default(),
        name: object.metadata.name.as_deref().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
        spec: &object.spec,
        status,
        paused: annotated(PAUSED_ANNOTATION),
        credentials_version,
        credentials_account,
        abandon: annotated(ABANDON_ANNOTATION),
        deleting: object.metadata.deletion_timestamp.is_some(),
    }
}
