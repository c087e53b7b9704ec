//! `deploy/`: the plain manifests are exactly what the chart renders with default values, every
//! example `ImageImport` passes the CRD's schema and CEL rules (on the Kubernetes API double), and
//! the Argo CD files agree with the chart and with `health.lua`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;
mod crd_cases;

use chart_support::{NAMESPACE, RELEASE, kind, name, parse_documents, repo, template};
use crd_cases::examples;
use kube_double::{Server, ServerOptions};
use serde_json::Value;

const MANIFESTS: &str = "deploy/manifests/ecs-image-operator.yaml";
const REGENERATE: &str = "ECS_IMAGE_OPERATOR_REGENERATE";

/// What precedes the chart's output in the plain manifests: how they were made, and the namespace
/// (which `helm template` does not render), enforcing the restricted Pod Security Standard.
fn manifests_header() -> String {
    format!(
        "# Generated from charts/ecs-image-operator with default values; do not edit: a test fails when\n\
         # this file drifts from the chart. Regenerate with `{REGENERATE}=1 cargo test --test deploy`.\n\
         # The same as: helm template {RELEASE} charts/ecs-image-operator --namespace {NAMESPACE} --skip-tests\n\
         # Install: kubectl apply --server-side -f {MANIFESTS}\n\
         ---\n\
         apiVersion: v1\n\
         kind: Namespace\n\
         metadata:\n  \
           name: {NAMESPACE}\n  \
           labels:\n    \
             pod-security.kubernetes.io/enforce: restricted\n"
    )
}

#[test]
fn the_plain_manifests_match_the_chart_with_default_values() {
    // Without the `helm test` Pod: kubectl apply would run it once, as an ordinary Pod.
    let rendered = template(&[], &["--skip-tests"]).unwrap_or_else(|error| panic!("{error}"));
    let expected = format!("{}{rendered}", manifests_header());
    let path = repo().join(MANIFESTS);
    if std::env::var_os(REGENERATE).is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{MANIFESTS} drifted from the chart: regenerate it with `{REGENERATE}=1 cargo test --test deploy`"
    );
    let objects = parse_documents(&committed);
    let kinds: Vec<&str> = objects.iter().map(kind).collect();
    for wanted in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "Deployment",
    ] {
        assert!(
            kinds.contains(&wanted),
            "{MANIFESTS} lacks a {wanted}: {kinds:?}"
        );
    }
}

async fn api_with_the_crd() -> Server {
    let server = Server::start(ServerOptions::default()).await.unwrap();
    let crd = std::fs::read_to_string(repo().join("crds/imageimports.ecs.image-import.dev.yaml"))
        .unwrap();
    server.apply_yaml(&crd).unwrap();
    server
}

#[tokio::test]
async fn every_example_is_accepted_by_the_crd() {
    let server = api_with_the_crd().await;
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(
        names,
        [
            "arm64-uefi.yaml",
            "credentials-secret.yaml",
            "data-disks.yaml",
            "distribution.yaml",
            "minimal.yaml",
            "upload.yaml",
            "windows-byol.yaml"
        ]
    );
    for (file, text) in &examples {
        let sent = parse_documents(text);
        let stored = server
            .apply_yaml(text)
            .unwrap_or_else(|error| panic!("deploy/examples/{file} is refused: {error}"));
        assert_eq!(stored.len(), sent.len(), "{file}");
        for (sent, stored) in sent.iter().zip(&stored) {
            assert_eq!(kind(stored), kind(sent), "{file}");
            if kind(sent) == "ImageImport" {
                // Pruning would silently drop a misspelt field: what was sent must all be kept.
                assert_eq!(
                    stored["spec"],
                    with_defaults(&sent["spec"]),
                    "{file}: fields were pruned"
                );
            }
        }
        let imports = stored.iter().filter(|o| kind(o) == "ImageImport").count();
        assert_eq!(imports, 1, "{file}: one ImageImport per example");
    }

    let (_, with_secret) = examples
        .iter()
        .find(|(f, _)| f == "credentials-secret.yaml")
        .unwrap();
    let objects = parse_documents(with_secret);
    let secret = objects.iter().find(|o| kind(o) == "Secret").unwrap();
    let import = objects.iter().find(|o| kind(o) == "ImageImport").unwrap();
    assert_eq!(import["spec"]["credentialsSecretRef"]["name"], name(secret));
    for key in ["accessKeyId", "accessKeySecret"] {
        let value = secret["stringData"][key].as_str().unwrap();
        assert!(
            value.starts_with("REPLACE-WITH-"),
            "{key} must be a placeholder, not {value:?}"
        );
    }
}

/// The spec as the API server stores it: `deletionPolicy` defaults to `Delete`.
fn with_defaults(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if spec.get("deletionPolicy").is_none() {
        spec["deletionPolicy"] = Value::from("Delete");
    }
    spec
}

#[tokio::test]
async fn the_validation_that_accepts_the_examples_refuses_broken_ones() {
    let server = api_with_the_crd().await;
    let examples = examples();
    let broken = crd_cases::broken_examples();
    for (what, yaml, expected) in broken {
        let original = examples.iter().any(|(_, t)| *t == yaml);
        assert!(
            !original,
            "{what}: the replacement did not change the example"
        );
        match server.apply_yaml(&yaml) {
            Ok(_) => panic!("{what}: accepted"),
            Err(kube_double::Error::Api(error)) => {
                assert_eq!(error.code, 422, "{what}: {error:?}");
                let text = format!("{} {:?}", error.message, error.details);
                assert!(
                    text.contains(expected),
                    "{what}: the error should mention {expected:?}: {text}"
                );
            }
            Err(other) => panic!("{what}: {other:?}"),
        }
    }
}

fn read_yaml(relative: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(relative)).unwrap();
    let mut docs = parse_documents(&text);
    assert_eq!(docs.len(), 1, "{relative}: one document");
    docs.remove(0)
}

#[test]
fn the_argocd_cm_patch_carries_health_lua_verbatim() {
    let lua = std::fs::read_to_string(repo().join("deploy/argocd/health.lua")).unwrap();
    let patch = read_yaml("deploy/argocd/argocd-cm-patch.yaml");
    assert_eq!(kind(&patch), "ConfigMap");
    assert_eq!(name(&patch), "argocd-cm");
    let entry = &patch["data"]["resource.customizations.health.ecs.image-import.dev_ImageImport"];
    assert!(
        entry.as_str() == Some(lua.as_str()),
        "deploy/argocd/argocd-cm-patch.yaml differs from deploy/argocd/health.lua: copy the script \
         into the data entry, indented by four spaces"
    );
}

#[test]
fn the_argocd_application_installs_this_chart_with_valid_values() {
    let app = read_yaml("deploy/argocd/application.yaml");
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(kind(&app), "Application");
    let source = &app["spec"]["source"];
    assert_eq!(source["path"], "charts/ecs-image-operator");
    assert!(
        repo()
            .join(source["path"].as_str().unwrap())
            .join("Chart.yaml")
            .is_file()
    );
    let namespace = app["spec"]["destination"]["namespace"].as_str().unwrap();
    assert_eq!(namespace, NAMESPACE);
    let options: Vec<&str> = app["spec"]["syncPolicy"]["syncOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(options.contains(&"CreateNamespace=true"), "{options:?}");

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.json");
    std::fs::write(&values, source["helm"]["valuesObject"].to_string()).unwrap();
    let rendered = template(&[values.to_str().unwrap()], &[])
        .unwrap_or_else(|error| panic!("the Application's values do not render: {error}"));
    assert!(
        parse_documents(&rendered)
            .iter()
            .any(|o| kind(o) == "Deployment")
    );
}

#[test]
fn deleting_the_argocd_application_deletes_neither_the_crd_nor_any_image() {
    let app = read_yaml("deploy/argocd/application.yaml");
    // Without Argo CD's resources finalizer, deleting the Application orphans what it installed.
    let finalizers: Vec<&str> = app["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !finalizers
            .iter()
            .any(|f| f.starts_with("resources-finalizer.argocd.argoproj.io")),
        "the Application cascade-deletes: {finalizers:?}"
    );
    let source = &app["spec"]["source"];
    assert_eq!(
        source["helm"]["skipTests"], true,
        "the helm test Pod on every sync"
    );
    let automated = &app["spec"]["syncPolicy"]["automated"];
    assert_ne!(
        automated["allowEmpty"], true,
        "an empty rendering would prune everything"
    );

    // What Argo CD renders (helm template with the Application's values, tests skipped): a CRD
    // it never prunes, never deletes, and syncs before the rest.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.json");
    std::fs::write(&values, source["helm"]["valuesObject"].to_string()).unwrap();
    let rendered = template(&[values.to_str().unwrap()], &["--skip-tests"]).unwrap();
    let objects = parse_documents(&rendered);
    assert!(
        objects.iter().all(|o| kind(o) != "Pod"),
        "the helm test Pod is rendered"
    );
    let crd = objects
        .iter()
        .find(|o| kind(o) == "CustomResourceDefinition")
        .expect("the Application installs the CRD");
    let annotations = &crd["metadata"]["annotations"];
    let options = chart_support::sync_options(crd);
    assert!(options.contains(&"Prune=false"), "{options:?}");
    assert!(options.contains(&"Delete=false"), "{options:?}");
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    for object in objects
        .iter()
        .filter(|o| kind(o) != "CustomResourceDefinition")
    {
        assert!(
            chart_support::sync_wave(crd) < chart_support::sync_wave(object),
            "{} {}",
            kind(object),
            name(object)
        );
    }

    // The file documents the waves and why it does not cascade.
    let text = std::fs::read_to_string(repo().join("deploy/argocd/application.yaml")).unwrap();
    for needle in [
        "sync-wave",
        "wave -1",
        "resources-finalizer.argocd.argoproj.io",
    ] {
        assert!(
            text.contains(needle),
            "application.yaml does not explain {needle:?}"
        );
    }
}
