//! The chart's RBAC under real authorization (kube-apiserver with `--authorization-mode=RBAC`,
//! `KUBEBUILDER_ASSETS`): `helm template` renders the chart, its ServiceAccount, roles and bindings
//! are applied, and the operator binary runs with a TokenRequest token of that ServiceAccount —
//! never admin — and leader election on, as the chart's Deployment configures it.
//!
//! Cluster-wide and `watchNamespaces`: an import reaches Ready, a deletion finishes, the Lease is
//! held, and the operator's log has no forbidden request. With one rule removed from the rendered
//! ClusterRole the import does not get far, and the log names the forbidden request.
//!
//! The tests share one server and a cluster-wide operator sees every namespace, so they run one
//! at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;
mod emulator_support;
mod operator_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecs_image_operator::api::image_import::{ImageImport, Phase};
use ecs_image_operator::emulator::{EmulatorConfig, EmulatorHandle};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use operator_support::envtest::{self, Envtest};
use operator_support::{condition, minimal, phase};
use serde_json::{Value, json};

/// One test at a time (see the module doc).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The identity the operator's Lease names (the Deployment takes it from the Pod's name).
const POD_NAME: &str = "ecs-image-operator-rbac-test";

/// The chart rendered for `release` in namespace `release_ns`, with `--set` values.
fn render(release: &str, release_ns: &str, set: &[&str]) -> Vec<Value> {
    let chart = chart_support::chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        release_ns,
    ];
    // No `--kube-version 1.28.7`: Helm then refuses the chart's `kubeVersion: ">=1.29.0-0"`.
    // Rendered for Helm's default version and applied with kubectl, the RBAC objects are the
    // same, and 1.28 has everything the operator uses (see ../shared/envtest/README.md).
    for value in set {
        args.extend(["--set", value]);
    }
    let yaml = chart_support::run_helm(&args).unwrap_or_else(|e| panic!("helm template: {e}"));
    chart_support::parse_documents(&yaml)
}

/// The RBAC objects of a rendering: ServiceAccount, (Cluster)Role, (Cluster)RoleBinding.
fn rbac_objects(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| {
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            ]
            .contains(&chart_support::kind(o))
        })
        .cloned()
        .collect()
}

/// `kubectl apply` of these objects as admin.
fn apply(envtest: &Envtest, objects: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    envtest
        .kubectl(&["apply", "-f", "-"], Some(&list.to_string()))
        .unwrap_or_else(|e| panic!("kubectl apply: {e}"));
}

/// The operator's container env of the rendered Deployment: the values that decide what it
/// watches, which Lease it holds, and which Secret reader it names.
fn deployment_env(objects: &[Value]) -> Vec<(String, String)> {
    let deployment = chart_support::one(objects, "Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| {
            let name = entry["name"].as_str()?;
            let value = entry["value"].as_str()?;
            [
                "ECS_IMAGE_OPERATOR_NAMESPACE",
                "ECS_IMAGE_OPERATOR_LEADER_ELECTION",
                "ECS_IMAGE_OPERATOR_LEADER_ELECTION_LEASE",
                "ECS_IMAGE_OPERATOR_SECRET_READER_ROLE",
                "ECS_IMAGE_OPERATOR_SERVICE_ACCOUNT",
            ]
            .contains(&name)
            .then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// The operator binary with a ServiceAccount token; its log kept in a file; killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    fn spawn(
        envtest: &Envtest,
        token: &str,
        release_ns: &str,
        env: &[(String, String)],
        emulator: &EmulatorHandle,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, envtest.kubeconfig_yaml(token, release_ns)).unwrap();
        let log = dir.path().join("operator.log");
        let child = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
            .args(["run", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--ecs-endpoint", &emulator.url()])
            .args(["--probe-address", "127.0.0.1:0"])
            .args(["--poll-interval-seconds", "1"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("ECS_IMAGE_OPERATOR_LEADER_ELECTION_NAMESPACE", release_ns)
            .env("POD_NAME", POD_NAME)
            .env("ECS_IMAGE_OPERATOR_LOG", "info")
            .env("NO_COLOR", "1")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                emulator_support::AK_SECRET,
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of the log that report a request the API server refused (its message says
    /// `... is forbidden: User ... cannot ...`, its reason `Forbidden`; a bare "403" would also
    /// match timestamps).
    fn forbidden(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create_import(client: &Client, namespace: &str, name: &str) {
    let mut object: ImageImport = serde_saphyr::from_str(&minimal(name)).unwrap();
    object.metadata.namespace = Some(namespace.to_string());
    Api::<ImageImport>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

/// Polls until `done` holds for the import; fails after 60 s with its status and the log.
async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    operator: &Operator,
    what: &str,
    done: impl Fn(Option<&ImageImport>) -> bool,
) {
    let api = Api::<ImageImport>::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let object = api.get_opt(name).await.unwrap();
        if done(object.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name}: waited 60 s for {what}; status {:#?}\noperator log:\n{}",
            object.and_then(|o| o.status),
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ready(object: Option<&ImageImport>) -> bool {
    object.is_some_and(|o| {
        phase(o) == Some(Phase::Available) && condition(o, "Ready").is_some_and(|c| c.0)
    })
}

async fn emulator() -> EmulatorHandle {
    emulator_support::start_with(EmulatorConfig {
        time_scale: 600.0,
        ..emulator_support::config()
    })
    .await
}

/// The chart's ServiceAccount (the one subject of its bindings).
fn service_account(objects: &[Value]) -> String {
    chart_support::name(chart_support::one(objects, "ServiceAccount")).to_string()
}

/// Renders, applies the RBAC, and runs the operator under it; an import in each of
/// `import_namespaces` reaches Ready and its deletion finishes; the Lease is held; nothing is
/// forbidden.
async fn an_import_and_a_deletion_under_the_chart_rbac(
    envtest: &Envtest,
    release: &str,
    set: &[String],
    release_ns: &str,
    import_namespaces: &[String],
) {
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let objects = render(release, release_ns, &set);
    apply(envtest, &rbac_objects(&objects));
    let token = envtest
        .service_account_token(release_ns, &service_account(&objects))
        .await;
    let emulator = emulator().await;
    let operator = Operator::spawn(
        envtest,
        &token,
        release_ns,
        &deployment_env(&objects),
        &emulator,
    );
    let admin = envtest.admin_client().await;
    // Image names are unique per region and account: each resource names its own.
    for namespace in import_namespaces {
        create_import(&admin, namespace, &format!("import-{namespace}")).await;
    }
    for namespace in import_namespaces {
        let name = format!("import-{namespace}");
        wait_for(&admin, namespace, &name, &operator, "Ready", ready).await;
        Api::<ImageImport>::namespaced(admin.clone(), namespace)
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
        wait_for(&admin, namespace, &name, &operator, "gone", |o| o.is_none()).await;
    }
    let lease_name = deployment_env(&objects)
        .into_iter()
        .find(|(k, _)| k == "ECS_IMAGE_OPERATOR_LEADER_ELECTION_LEASE")
        .map(|(_, v)| v)
        .expect("leader election is on by default in the chart");
    let lease = Api::<Lease>::namespaced(admin.clone(), release_ns)
        .get(&lease_name)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(POD_NAME),
        "the operator holds the chart's Lease"
    );
    let forbidden = operator.forbidden();
    assert!(forbidden.is_empty(), "forbidden requests: {forbidden:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_the_chart_rbac_lets_the_operator_import_delete_and_lead() {
    let Some(envtest) = envtest::get_or_say_why("RBAC cluster-wide") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let release_ns = envtest.fresh_namespace("operator").await;
    let team = envtest.fresh_namespace("team").await;
    an_import_and_a_deletion_under_the_chart_rbac(
        envtest,
        "cluster-wide",
        &[],
        &release_ns,
        &[team],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_namespaces_the_chart_roles_let_the_operator_import_delete_and_lead() {
    let Some(envtest) = envtest::get_or_say_why("RBAC watchNamespaces") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let release_ns = envtest.fresh_namespace("operator").await;
    let a = envtest.fresh_namespace("team-a").await;
    let b = envtest.fresh_namespace("team-b").await;
    let set = vec![
        format!("watchNamespaces[0]={a}"),
        format!("watchNamespaces[1]={b}"),
    ];
    an_import_and_a_deletion_under_the_chart_rbac(
        envtest,
        "per-namespace",
        &set,
        &release_ns,
        &[a, b],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_removed_from_the_cluster_role_fails_naming_the_forbidden_request() {
    let Some(envtest) = envtest::get_or_say_why("RBAC with a rule removed") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let release_ns = envtest.fresh_namespace("operator").await;
    let team = envtest.fresh_namespace("team").await;
    let objects = render("broken", &release_ns, &[]);
    let mut rbac = rbac_objects(&objects);
    let role = rbac
        .iter_mut()
        .find(|o| chart_support::kind(o) == "ClusterRole")
        .unwrap();
    let rules = role["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|rule| rule["resources"] != json!(["imageimports/status"]));
    assert_eq!(rules.len(), before - 1, "the status rule was in the chart");
    apply(envtest, &rbac);
    let token = envtest
        .service_account_token(&release_ns, &service_account(&objects))
        .await;
    let emulator = emulator().await;
    let operator = Operator::spawn(
        envtest,
        &token,
        &release_ns,
        &deployment_env(&objects),
        &emulator,
    );
    let admin = envtest.admin_client().await;
    create_import(&admin, &team, "broken-import").await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let wanted = "cannot patch resource \\\"imageimports/status\\\"";
    let plain = "cannot patch resource \"imageimports/status\"";
    let line = loop {
        if let Some(line) = operator
            .forbidden()
            .into_iter()
            .find(|l| l.contains(wanted) || l.contains(plain))
        {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no forbidden status write in 60 s; log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("the operator's log names the refused request: {line}");
    assert!(
        line.contains(&format!("system:serviceaccount:{release_ns}:")),
        "{line}"
    );
    let object = Api::<ImageImport>::namespaced(admin.clone(), &team)
        .get("broken-import")
        .await
        .unwrap();
    assert!(!ready(Some(&object)), "Ready without a status write?");

    // Leave nothing for the next test's cluster-wide operator: drop the finalizer and delete.
    drop(operator);
    let api = Api::<ImageImport>::namespaced(admin.clone(), &team);
    api.patch(
        "broken-import",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    api.delete("broken-import", &DeleteParams::default())
        .await
        .unwrap();
}

/// A credentials Secret with the emulator's key, and an ImageImport naming it, in `namespace`.
async fn secret_and_import(client: &Client, namespace: &str, name: &str) {
    use k8s_openapi::api::core::v1::Secret;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "team-key", "namespace": namespace},
        "stringData": {
            "accessKeyId": emulator_support::AK_ID,
            "accessKeySecret": emulator_support::AK_SECRET,
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut object: ImageImport = serde_saphyr::from_str(&minimal(name).replace(
        "  regionId:",
        "  credentialsSecretRef:\n    name: team-key\n  regionId:",
    ))
    .unwrap();
    object.metadata.namespace = Some(namespace.to_string());
    Api::<ImageImport>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_only_where_a_namespace_opted_in_and_the_quoted_command_opts_in() {
    let Some(envtest) = envtest::get_or_say_why("RBAC Secret opt-in") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let release_ns = envtest.fresh_namespace("operator").await;
    let opted = envtest.fresh_namespace("opted").await;
    let other = envtest.fresh_namespace("other").await;
    let objects = render(
        "secret-opt-in",
        &release_ns,
        &[&format!("credentials.secretNamespaces[0]={opted}")],
    );
    apply(envtest, &rbac_objects(&objects));
    let token = envtest
        .service_account_token(&release_ns, &service_account(&objects))
        .await;
    let emulator = emulator().await;
    let mut env = deployment_env(&objects);
    env.push(("ECS_IMAGE_OPERATOR_EXTERNAL_RETRY".into(), "1".into()));
    let operator = Operator::spawn(envtest, &token, &release_ns, &env, &emulator);
    let admin = envtest.admin_client().await;
    secret_and_import(&admin, &opted, "with-access").await;
    secret_and_import(&admin, &other, "without-access").await;

    wait_for(&admin, &opted, "with-access", &operator, "Ready", ready).await;
    let api = Api::<ImageImport>::namespaced(admin.clone(), &other);
    wait_for(
        &admin,
        &other,
        "without-access",
        &operator,
        "a CredentialsSecretForbidden stall",
        |o| {
            o.and_then(|o| condition(o, "Stalled"))
                .is_some_and(|(on, reason, _)| on && reason == "CredentialsSecretForbidden")
        },
    )
    .await;
    let stalled = api.get("without-access").await.unwrap();
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    // The message quotes the one command a namespace admin runs; run it as it is written.
    let command = message
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted command in {message}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args.first(), Some(&"kubectl"), "{command}");
    envtest
        .kubectl(&args[1..], None)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    // Access granted: the import starts without a restart or a change to the resource.
    wait_for(&admin, &other, "without-access", &operator, "Ready", ready).await;
    // The role lets the operator keep the Secrets in use (their finalizer), in both namespaces.
    for namespace in [&opted, &other] {
        let secret =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), namespace)
                .get("team-key")
                .await
                .unwrap();
        assert!(
            secret
                .finalizers()
                .iter()
                .any(|f| f == ecs_image_operator::api::image_import::CREDENTIALS_FINALIZER),
            "{namespace}/team-key: {:?}; operator log:\n{}",
            secret.finalizers(),
            operator.log()
        );
    }
}
