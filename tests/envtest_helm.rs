//! The chart's life cycle with real Helm against kube-apiserver (`KUBEBUILDER_ASSETS`): install a
//! previous release whose CRD lacks a field, upgrade to this chart, uninstall, install again.
//! - The previous schema prunes the new field (the bug a CRD in Helm's `crds/` folder leaves for
//!   ever); after `helm upgrade` the API server stores it.
//! - `helm uninstall` deletes the operator's objects but neither the CRD nor any ImageImport.
//! - A release installed with the CRD in the old `crds/` folder (chart 0.1.0's layout) upgrades
//!   with `--take-ownership`, as the chart README says, and not without it.
//!
//! Pods never run here (no kubelet): Helm is not told to wait, and only what the API server
//! stores is checked. Both charts are copies with `kubeVersion` widened to 1.28 (the server's
//! version; the chart asks for 1.29), nothing else changed but what the test says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;
mod envtest_support;

use std::path::Path;
use std::process::Command;

use chart_support::{
    CHART_CRD, FIELD_ADDED_SINCE, copy_chart, helm, previous_chart, spec_properties,
};
use envtest_support::Envtest;
use serde_json::{Value, json};

const CRD: &str = "imageimports.ecs.image-import.dev";
const RELEASE: &str = "ecs";

/// Lets the chart copy in `chart` install on kube-apiserver 1.28.
fn allow_kube_1_28(chart: &Path) {
    let path = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = "kubeVersion: \">=1.29.0-0\"";
    assert!(text.contains(line), "Chart.yaml no longer says {line}");
    std::fs::write(&path, text.replace(line, "kubeVersion: \">=1.28.0-0\"")).unwrap();
}

fn run_helm(envtest: &Envtest, args: &[&str]) -> Result<String, String> {
    let output = Command::new(helm())
        .args(args)
        .arg("--kubeconfig")
        .arg(envtest.admin_kubeconfig())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn helm_ok(envtest: &Envtest, args: &[&str]) -> String {
    run_helm(envtest, args).unwrap_or_else(|error| panic!("helm {args:?}: {error}"))
}

fn kubectl(envtest: &Envtest, args: &[&str], stdin: Option<&str>) -> String {
    envtest
        .kubectl(args, stdin)
        .unwrap_or_else(|error| panic!("kubectl {args:?}: {error}"))
}

fn get_json(envtest: &Envtest, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    serde_json::from_str(&kubectl(envtest, &all, None)).unwrap()
}

fn crd_fields(envtest: &Envtest) -> Vec<String> {
    let crd = get_json(envtest, &["get", "crd", CRD]);
    spec_properties(&crd).keys().cloned().collect()
}

fn established(envtest: &Envtest) {
    kubectl(
        envtest,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{CRD}"),
        ],
        None,
    );
}

/// Creates an ImageImport with spec.description (`validate`: kubectl's `--validate`, i.e. the
/// server's field validation) and returns the spec the API server stored, or its refusal.
fn create_import(
    envtest: &Envtest,
    namespace: &str,
    name: &str,
    validate: &str,
) -> Result<Value, String> {
    let object = json!({
        "apiVersion": "ecs.image-import.dev/v1alpha1",
        "kind": "ImageImport",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "regionId": "cn-hangzhou",
            "imageName": "ubuntu-22.04-base",
            FIELD_ADDED_SINCE: "added by a later release",
            "diskDeviceMappings": [{"ossBucket": "my-images", "ossObject": "ubuntu.qcow2"}],
        },
    });
    envtest.kubectl(
        &["create", &format!("--validate={validate}"), "-f", "-"],
        Some(&object.to_string()),
    )?;
    Ok(get_json(envtest, &["get", "imageimport", name, "-n", namespace])["spec"].clone())
}

fn names(envtest: &Envtest, kind: &str, namespace: &str) -> Vec<String> {
    let list = get_json(envtest, &["get", kind, "-n", namespace]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The envtest server starts with the CRD applied by kubectl; these tests install it with Helm.
fn delete_crd(envtest: &Envtest) {
    kubectl(
        envtest,
        &[
            "delete",
            "crd",
            CRD,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
}

#[test]
fn install_upgrade_and_uninstall_keep_the_crd_current_and_the_imports() {
    let Some(envtest) = envtest_support::get_or_say_why("helm install, upgrade, uninstall") else {
        return;
    };
    delete_crd(envtest);
    let dir = tempfile::tempdir().unwrap();
    let previous = dir.path().join("previous");
    previous_chart(&previous);
    allow_kube_1_28(&previous);
    let current = dir.path().join("current");
    copy_chart(&current);
    allow_kube_1_28(&current);
    let namespace = "helm-life";
    kubectl(envtest, &["create", "namespace", namespace], None);
    let chart = |path: &Path| path.to_str().unwrap().to_string();

    // The previous release: its schema has no spec.description, so the API server prunes it.
    helm_ok(
        envtest,
        &["install", RELEASE, &chart(&previous), "-n", namespace],
    );
    established(envtest);
    assert!(!crd_fields(envtest).contains(&FIELD_ADDED_SINCE.to_string()));
    // kubectl's strict field validation refuses it; any client that does not ask for it (an
    // older kubectl, kube-rs, Argo CD without ServerSideApply) has it dropped without a word.
    let refused = create_import(envtest, namespace, "refused", "strict").unwrap_err();
    assert!(
        refused.contains(&format!("unknown field \"spec.{FIELD_ADDED_SINCE}\"")),
        "{refused}"
    );
    let before = create_import(envtest, namespace, "before-upgrade", "false").unwrap();
    assert!(
        before.get(FIELD_ADDED_SINCE).is_none(),
        "the previous schema kept {FIELD_ADDED_SINCE}: {before}"
    );

    // helm upgrade applies the new CRD: the field is in the schema and stored.
    helm_ok(
        envtest,
        &["upgrade", RELEASE, &chart(&current), "-n", namespace],
    );
    established(envtest);
    assert!(
        crd_fields(envtest).contains(&FIELD_ADDED_SINCE.to_string()),
        "helm upgrade did not upgrade the CRD"
    );
    let after = create_import(envtest, namespace, "after-upgrade", "strict").unwrap();
    assert_eq!(after[FIELD_ADDED_SINCE], "added by a later release");
    assert_eq!(
        names(envtest, "deployment", namespace),
        ["ecs-ecs-image-operator"]
    );

    // helm uninstall: the operator goes, the CRD and every ImageImport stay.
    let said = helm_ok(envtest, &["uninstall", RELEASE, "-n", namespace]);
    assert!(
        said.contains(CRD),
        "helm did not say it kept the CRD: {said}"
    );
    assert!(names(envtest, "deployment", namespace).is_empty());
    assert!(
        names(envtest, "serviceaccount", namespace)
            .iter()
            .all(|n| n != "ecs-ecs-image-operator")
    );
    let crd = get_json(envtest, &["get", "crd", CRD]);
    assert!(
        crd["metadata"]["deletionTimestamp"].is_null(),
        "the CRD is being deleted"
    );
    assert_eq!(
        names(envtest, "imageimport", namespace),
        ["after-upgrade", "before-upgrade"]
    );

    // Installing again adopts the kept CRD (its Helm annotations still name this release).
    helm_ok(
        envtest,
        &["install", RELEASE, &chart(&current), "-n", namespace],
    );
    assert_eq!(
        names(envtest, "deployment", namespace),
        ["ecs-ecs-image-operator"]
    );
    helm_ok(envtest, &["uninstall", RELEASE, "-n", namespace]);

    migrate_from_the_crds_folder(envtest, dir.path(), &current);
}

/// Chart 0.1.0 shipped the CRD in `crds/`: Helm created it without ownership metadata, so the
/// first upgrade to a chart that templates it must take ownership.
fn migrate_from_the_crds_folder(envtest: &Envtest, dir: &Path, current: &Path) {
    delete_crd(envtest);
    let old = dir.join("old-layout");
    previous_chart(&old);
    allow_kube_1_28(&old);
    std::fs::remove_file(old.join("templates/crd.yaml")).unwrap();
    std::fs::create_dir_all(old.join("crds")).unwrap();
    std::fs::rename(
        old.join(CHART_CRD),
        old.join("crds/imageimports.ecs.image-import.dev.yaml"),
    )
    .unwrap();
    let namespace = "helm-migrate";
    kubectl(envtest, &["create", "namespace", namespace], None);
    let old = old.to_str().unwrap();
    let current = current.to_str().unwrap();
    helm_ok(envtest, &["install", RELEASE, old, "-n", namespace]);
    established(envtest);
    assert!(!crd_fields(envtest).contains(&FIELD_ADDED_SINCE.to_string()));

    let refused = run_helm(envtest, &["upgrade", RELEASE, current, "-n", namespace])
        .expect_err("the upgrade took over a CRD it does not own");
    assert!(refused.contains(CRD), "{refused}");
    helm_ok(
        envtest,
        &[
            "upgrade",
            RELEASE,
            current,
            "-n",
            namespace,
            "--take-ownership",
        ],
    );
    established(envtest);
    assert!(crd_fields(envtest).contains(&FIELD_ADDED_SINCE.to_string()));
    let crd = get_json(envtest, &["get", "crd", CRD]);
    assert_eq!(
        crd["metadata"]["annotations"]["meta.helm.sh/release-name"],
        RELEASE
    );
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    helm_ok(envtest, &["uninstall", RELEASE, "-n", namespace]);
    assert!(get_json(envtest, &["get", "crd", CRD])["metadata"]["deletionTimestamp"].is_null());
}
