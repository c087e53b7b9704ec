//! The real controller, in process, between a Kubernetes API and the ECS emulator: a rig that
//! starts them, creates `ImageImport`s and waits for what their status says.
//!
//! The Kubernetes back-end is a parameter ([`Tier`]): the API double by default, or a real
//! kube-apiserver (see `tests/envtest_support`) when `ECS_IMAGE_OPERATOR_TIER=envtest` and
//! `KUBEBUILDER_ASSETS` are set. The scenarios are the same; on the real server, shared by every
//! test of the binary, each rig has a namespace of its own ([`Rig::ns`]) and its controller
//! watches only that namespace.
#![allow(dead_code)] // each test crate uses its own subset

#[path = "../envtest_support/mod.rs"]
pub mod envtest;
pub mod process;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ecs_image_operator::api::image_import::{ImageImport, Phase};
use ecs_image_operator::controller::decision::Timing;
pub use ecs_image_operator::controller::port::EcsPort;
use ecs_image_operator::controller::reconciler::Settings;
use ecs_image_operator::ecs::api::{ALL_IMAGE_STATUSES, DescribeImagesRequest, Image, TagFilter};
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::retry::Backoff;
use ecs_image_operator::ecs::{ClientConfig, CredentialProvider, Credentials, EcsClient};
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use ecs_image_operator::emulator::world::AccountPatch;
use ecs_image_operator::emulator::{EmulatorConfig, EmulatorHandle};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use kube_double::{Server, ServerOptions};

use crate::emulator_support;

/// Namespace of every test resource on the double (on the real server: [`Rig::ns`]).
pub const NS: &str = "default";

/// The variable that selects the back-end of the rig: `envtest` for the real API server.
pub const TIER_VAR: &str = "ECS_IMAGE_OPERATOR_TIER";

/// Which Kubernetes API the rig runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// `tests/kube-double`, one per rig.
    Double,
    /// The binary's kube-apiserver (`KUBEBUILDER_ASSETS`), a namespace per rig.
    Envtest,
}

impl Tier {
    /// The tier `ECS_IMAGE_OPERATOR_TIER` selects (`envtest`, else the double).
    pub fn selected() -> Self {
        match std::env::var(TIER_VAR).as_deref() {
            Ok("envtest") => Self::Envtest,
            Ok("double") | Ok("") | Err(_) => Self::Double,
            Ok(other) => panic!("{TIER_VAR}={other}: expected `envtest` or `double`"),
        }
    }
}

/// The Kubernetes API of a rig.
pub enum Kube {
    /// The double: the test may inject faults and read its request log.
    Double(Server),
    /// The real API server, shared by the binary's tests.
    Envtest(&'static envtest::Envtest),
}

impl Kube {
    /// Whether this is the double.
    pub fn is_double(&self) -> bool {
        matches!(self, Self::Double(_))
    }

    /// The double's fault injection; the real server has none, so a test that needs it runs
    /// only on the double.
    pub fn faults(&self) -> &kube_double::Faults {
        match self {
            Self::Double(server) => server.faults(),
            Self::Envtest(_) => panic!("fault injection exists only on the double"),
        }
    }

    /// Writes a kubeconfig for the operator process (the admin token on the real server).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> Result<(), String> {
        match self {
            Self::Double(server) => server.write_kubeconfig(path).map_err(|e| e.to_string()),
            Self::Envtest(envtest) => std::fs::write(
                path,
                envtest.kubeconfig_yaml(envtest.admin_token(), "default"),
            )
            .map_err(|e| e.to_string()),
        }
    }

    /// A client for the test's own reads and writes (admin on the real server).
    pub async fn client(&self) -> Client {
        match self {
            Self::Double(server) => kube_client(server).await,
            Self::Envtest(envtest) => envtest.admin_client().await,
        }
    }
}

/// How long a test waits for a status before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The double, the emulator, clients of both, and the controller when it runs.
pub struct Rig {
    /// The Kubernetes API (the double, or the real server), with the operator's CRD.
    pub kube: Kube,
    /// The namespace of this rig's resources: [`NS`] on the double, a fresh one on the real server.
    pub ns: String,
    /// The ECS emulator.
    pub emulator: EmulatorHandle,
    /// A Kubernetes client for the test's own reads and writes.
    pub client: Client,
    /// The ECS client the operator uses, with its own rate budget.
    pub ecs: Arc<EcsClient>,
    /// Timings the controller runs with.
    pub timing: Timing,
    controller: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The transfers of the running controller (a killed controller's die with it).
    uploads: Option<Arc<ecs_image_operator::upload::Transfers>>,
}

/// Timings fast enough for tests.
pub fn fast_timing() -> Timing {
    Timing {
        poll_interval: Duration::from_millis(200),
        watchdog: Duration::from_secs(1),
        resync_interval: Duration::from_secs(5),
        external_retry: Duration::from_secs(2),
        settle_time: Duration::from_secs(1),
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(500),
        },
        waiting_notice: Duration::from_secs(1),
    }
}

/// A client of the emulator as the operator would build it (retries on, fast backoff).
pub fn ecs_client(emulator: &EmulatorHandle) -> EcsClient {
    EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&emulator.url()).unwrap(),
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(100),
        },
        max_attempts: 4,
        rate_limit: NonZeroU32::new(2_000),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    })
    .unwrap()
}

/// Raises the test account's image and snapshot quotas in `emulator` to `to`.
pub fn raise_quotas(emulator: &EmulatorHandle, to: u32) {
    emulator.patch_account(
        "default",
        AccountPatch {
            image_quota: Some(to),
            snapshot_quota: Some(to),
            ..Default::default()
        },
    );
}

/// A Kubernetes client of the double.
pub async fn kube_client(kube: &Server) -> Client {
    ecs_image_operator::ecs::ensure_tls_provider();
    let kubeconfig = Kubeconfig::from_yaml(&kube.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

impl Rig {
    /// The double with the CRD and an emulator with the test world, at the given time scale.
    pub async fn start(time_scale: f64) -> Self {
        Self::start_with(EmulatorConfig {
            time_scale,
            ..emulator_support::config()
        })
        .await
    }

    /// As [`Rig::start`], with an emulator configured by the caller.
    pub async fn start_with(config: EmulatorConfig) -> Self {
        let (kube, ns) = match Tier::selected() {
            Tier::Double => {
                let server = Server::start(ServerOptions::default()).await.unwrap();
                server
                    .apply_yaml(&ecs_image_operator::api::crd_yaml().unwrap())
                    .unwrap();
                (Kube::Double(server), NS.to_string())
            }
            Tier::Envtest => {
                let envtest = envtest::get()
                    .unwrap_or_else(|| panic!("{TIER_VAR}=envtest needs {}", envtest::ASSETS_VAR));
                let ns = envtest.fresh_namespace("rig").await;
                (Kube::Envtest(envtest), ns)
            }
        };
        let emulator = emulator_support::start_with(config).await;
        let client = kube.client().await;
        let ecs = Arc::new(ecs_client(&emulator));
        Self {
            kube,
            ns,
            emulator,
            client,
            ecs,
            timing: fast_timing(),
            controller: None,
            uploads: None,
        }
    }

    /// Raises the test account's image and snapshot quotas to `to`, for runs of many imports.
    pub fn raise_quotas(&self, to: u32) {
        raise_quotas(&self.emulator, to);
    }

    /// Makes ECS answer `ImportImage` after 1.5 s: long enough to stop or kill the operator
    /// between ECS accepting an import and the status write that records its IDs.
    pub fn slow_imports(&self) {
        self.emulator.set_faults(FaultSettings {
            actions: [(
                "ImportImage".to_string(),
                FaultSpec {
                    latency_ms: 1_500,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        });
    }

    /// Settings of the controller: the emulator's key as operator-wide credentials; every
    /// namespace on the double, the rig's own on the shared real server.
    pub fn settings(&self) -> Settings {
        Settings {
            namespaces: self.watched(),
            timing: self.timing,
            concurrency: 16,
            default_credentials: Some(Arc::new(emulator_support::creds())),
            reporter: "ecs-image-operator".into(),
            metrics: ecs_image_operator::metrics::Metrics::new(),
            watching: Arc::default(),
            liveness: Default::default(),
            secret_access: Default::default(),
            uploads: Some(ecs_image_operator::upload::Transfers::new(
                ecs_image_operator::upload::Settings {
                    part_size: 100 * 1024,
                    parts_in_flight: 2,
                    allow_loopback_sources: true,
                    oss_endpoint: Some(self.emulator.url()),
                    ..Default::default()
                },
            )),
        }
    }

    /// The namespaces a controller of this rig watches: all (none named) on the double, only the
    /// rig's own on the real server, where other tests' resources live too.
    pub fn watched(&self) -> Vec<String> {
        if self.kube.is_double() {
            Vec::new()
        } else {
            vec![self.ns.clone()]
        }
    }

    /// `--namespace` flags for an operator process with [`Rig::watched`].
    pub fn namespace_flags(&self) -> Vec<String> {
        self.watched()
            .into_iter()
            .flat_map(|ns| ["--namespace".to_string(), ns])
            .collect()
    }

    /// Another namespace for this rig, created: `name` itself on the double (one per rig), and
    /// `<rig namespace>-<name>` on the shared real server.
    pub async fn sibling_namespace(&self, name: &str) -> String {
        let full = if self.kube.is_double() {
            name.to_string()
        } else {
            format!("{}-{name}", self.ns)
        };
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let object =
            serde_json::from_value(serde_json::json!({"metadata": {"name": full}})).unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        full
    }

    /// Starts the controller in this process.
    pub async fn start_controller(&mut self) {
        let settings = self.settings();
        self.start_controller_with(settings).await;
    }

    /// Starts the controller with these settings.
    pub async fn start_controller_with(&mut self, settings: Settings) {
        assert!(self.controller.is_none(), "the controller already runs");
        self.uploads = settings.uploads.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = self.kube.client().await;
        let task = tokio::spawn(ecs_image_operator::controller::watch::run(
            client,
            Arc::clone(&self.ecs),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
        self.controller = Some((stop, task));
    }

    /// Stops the controller abruptly, as a crash would: in-flight work is dropped.
    pub async fn kill_controller(&mut self) {
        if let Some((_, task)) = self.controller.take() {
            task.abort();
            let _ = task.await;
        }
        // As in a crash, the process's uploads end with it.
        if let Some(uploads) = self.uploads.take() {
            for key in uploads.running() {
                uploads.stop(&key).await;
            }
        }
    }

    /// The ImageImport API of the test namespace.
    pub fn imports(&self) -> Api<ImageImport> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates an ImageImport from YAML, in the rig's namespace.
    pub async fn create(&self, yaml: &str) -> ImageImport {
        let mut object: ImageImport = serde_saphyr::from_str(yaml).unwrap();
        object.metadata.namespace = Some(self.ns.clone());
        self.imports()
            .create(&PostParams::default(), &object)
            .await
            .unwrap()
    }

    /// Creates the minimal ImageImport of [`minimal`].
    pub async fn create_minimal(&self, name: &str) -> ImageImport {
        self.create(&minimal(name)).await
    }

    /// Merge-patches an ImageImport (spec or metadata).
    pub async fn patch(&self, name: &str, patch: serde_json::Value) -> ImageImport {
        self.imports()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap()
    }

    /// Deletes an ImageImport (the finalizer keeps it until the operator lets go).
    pub async fn delete(&self, name: &str) {
        self.imports()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Polls the resource until `done` holds, and returns it; fails after [`PATIENCE`], showing the
    /// last status seen.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        mut done: impl FnMut(&ImageImport) -> bool,
    ) -> ImageImport {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Some(object) = self.imports().get_opt(name).await.unwrap() {
                if done(&object) {
                    return object;
                }
                last = Some(object);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: waited {PATIENCE:?} for {what}; last seen: {:#?}",
                last.map(|o| o.status)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the resource is `Available` and Ready.
    pub async fn wait_available(&self, name: &str) -> ImageImport {
        self.wait_for(name, "phase Available and Ready=True", |o| {
            phase(o) == Some(Phase::Available) && condition(o, "Ready").is_some_and(|c| c.0)
        })
        .await
    }

    /// Waits until a flag is set.
    pub async fn wait_for_flag(&self, flag: &std::sync::atomic::AtomicBool, what: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the Events of the test namespace include what `wanted` accepts (Events follow
    /// the status write they describe), and returns those.
    pub async fn wait_for_events(&self, what: &str, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let found: Vec<Event> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|event| wanted(event))
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the resource is gone from the API.
    pub async fn wait_gone(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let object = self.imports().get_opt(name).await.unwrap();
            let Some(object) = object else { return };
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} still exists after {PATIENCE:?}: finalizers {:?}, status {:#?}",
                object.finalizers(),
                object.status
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Images in the emulator that carry this UID tag, in any status.
    pub async fn images_of(&self, uid: &str) -> Vec<Image> {
        self.images_in(emulator_support::REGION, uid).await
    }

    /// Images carrying this UID tag in `region` (copies), in any status.
    pub async fn images_in(&self, region: &str, uid: &str) -> Vec<Image> {
        let request = DescribeImagesRequest {
            region_id: region.into(),
            image_owner_alias: Some("self".into()),
            statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
            tags: vec![TagFilter {
                key: ecs_image_operator::api::image_import::UID_TAG.into(),
                value: Some(uid.into()),
            }],
            page_size: Some(100),
            ..Default::default()
        };
        self.ecs
            .call(&emulator_support::creds(), &request)
            .await
            .unwrap()
            .images
    }

    /// Creates or replaces a credentials Secret in the test namespace.
    pub async fn put_secret(&self, name: &str, id: &str, secret: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let object: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns},
            "stringData": {"accessKeyId": id, "accessKeySecret": secret},
        }))
        .unwrap();
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    }
}

/// A credentials provider for another key of the emulator.
pub fn creds_of(id: &str, secret: &str) -> CredentialProvider {
    CredentialProvider::fixed(Credentials::new(id, secret))
}

/// The smallest valid ImageImport: one system disk from the emulator's test world.
pub fn minimal(name: &str) -> String {
    format!(
        r#"
apiVersion: ecs.image-import.dev/v1alpha1
kind: ImageImport
metadata:
  name: {name}
  namespace: {NS}
spec:
  regionId: cn-hangzhou
  imageName: {name}
  diskDeviceMappings:
    - ossBucket: images-hz
      ossObject: ubuntu-22.04.qcow2
"#
    )
}

/// The phase in status.
pub fn phase(object: &ImageImport) -> Option<Phase> {
    object.status.as_ref().and_then(|s| s.phase)
}

/// A condition as (status is "True", reason, message).
pub fn condition(object: &ImageImport, kind: &str) -> Option<(bool, String, String)> {
    object
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
}
