//! The envtest support itself, on a real kube-apiserver (`KUBEBUILDER_ASSETS`): it starts, the
//! admin token is admin and a ServiceAccount token is not (RBAC is real), the CRD is served, and
//! everything it started goes away with the test process, even when that process panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod envtest_support;

use std::time::{Duration, Instant};

use ecs_image_operator::api::ImageImport;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

/// Where the child test writes what it started (read by the parent test).
const REPORT_VAR: &str = "ENVTEST_TEARDOWN_REPORT";

#[tokio::test]
async fn the_admin_token_may_do_anything_and_a_service_account_token_nothing_by_default() {
    let Some(envtest) = envtest_support::get_or_say_why("admin and ServiceAccount") else {
        return;
    };
    let namespace = envtest.fresh_namespace("authz").await;
    let admin: Api<ConfigMap> = Api::namespaced(envtest.admin_client().await, &namespace);
    let object: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "probe"}})).unwrap();
    admin.create(&PostParams::default(), &object).await.unwrap();
    let imports: Api<ImageImport> = Api::namespaced(envtest.admin_client().await, &namespace);
    assert!(
        imports
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let token = envtest.service_account_token(&namespace, "nobody").await;
    let nobody: Api<ConfigMap> =
        Api::namespaced(envtest.client_with_token(&token).await, &namespace);
    match nobody.get("probe").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status
                    .message
                    .contains(&format!("system:serviceaccount:{namespace}:nobody")),
                "{}",
                status.message
            );
        }
        other => panic!("a ServiceAccount without roles read a ConfigMap: {other:?}"),
    }
}

#[tokio::test]
async fn each_test_gets_a_namespace_of_its_own() {
    let Some(envtest) = envtest_support::get_or_say_why("namespaces") else {
        return;
    };
    let a = envtest.fresh_namespace("same").await;
    let b = envtest.fresh_namespace("same").await;
    assert_ne!(a, b);
}

/// The child of [`the_server_goes_away_with_a_test_process_that_panics`]: starts the server,
/// writes its PIDs and folder to `$ENVTEST_TEARDOWN_REPORT`, and panics.
#[test]
#[ignore = "run by the_server_goes_away_with_a_test_process_that_panics in a child process"]
fn child_starts_the_server_and_panics() {
    let report = std::env::var(REPORT_VAR).expect("run by its parent test");
    let envtest = envtest_support::get().expect("KUBEBUILDER_ASSETS is set by the parent");
    // setup-envtest's layout has no controller manager; ../shared/envtest's has.
    if envtest.assets.join("kube-controller-manager").exists() {
        envtest.start_controller_manager();
    }
    let pids: Vec<String> = envtest.pids().iter().map(u32::to_string).collect();
    std::fs::write(
        &report,
        format!("{}\n{}\n", envtest.dir.display(), pids.join(" ")),
    )
    .unwrap();
    panic!("on purpose: the server must go away anyway");
}

/// Whether the process runs (a zombie does not: it only waits to be reaped by init).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn the_server_goes_away_with_a_test_process_that_panics() {
    if !envtest_support::selected() {
        println!("teardown: KUBEBUILDER_ASSETS is not set, the envtest tier was not selected");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let report = scratch.path().join("report");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_the_server_and_panics",
            "--include-ignored",
            "--nocapture",
        ])
        .env(REPORT_VAR, &report)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "the child wrote no report: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(!output.status.success(), "the child was meant to panic");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("on purpose"), "{said}");
    let mut lines = text.lines();
    let dir = std::path::PathBuf::from(lines.next().unwrap());
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // A supervisor and its server each: etcd, kube-apiserver and, when the assets have it,
    // kube-controller-manager.
    let servers = if std::path::Path::new(&std::env::var_os("KUBEBUILDER_ASSETS").unwrap())
        .join("kube-controller-manager")
        .exists()
    {
        3
    } else {
        2
    };
    assert_eq!(pids.len(), 2 * servers, "{pids:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| running(*p)).collect();
        if left.is_empty() && !dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "20 s after the child ended: processes {left:?} still run, folder {} exists: {}",
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
