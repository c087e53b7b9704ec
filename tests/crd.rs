//! The generated CRD: the committed copy in `crds/` matches what the binary prints, the names are
//! the design's, and every field is documented for `kubectl explain`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use ecs_image_operator::api::{ImageImport, crd_yaml};
use kube::CustomResourceExt;
use serde_json::Value;

const CRD_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crds/imageimports.ecs.image-import.dev.yaml"
);

#[test]
fn the_committed_crd_matches_the_generated_one() {
    let committed = std::fs::read_to_string(CRD_FILE).unwrap();
    let generated = crd_yaml().unwrap();
    assert!(
        committed == generated,
        "crds/ drifted from the code: run `cargo run -- crd > crds/imageimports.ecs.image-import.dev.yaml`"
    );
}

#[test]
fn the_binary_prints_the_same_crd() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        crd_yaml().unwrap()
    );
}

#[test]
fn names_follow_the_design() {
    let crd = serde_json::to_value(ImageImport::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "imageimports.ecs.image-import.dev");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "ecs.image-import.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "ImageImport");
    assert_eq!(spec["names"]["plural"], "imageimports");
    assert_eq!(spec["names"]["shortNames"], serde_json::json!(["imgimp"]));
    assert_eq!(
        spec["names"]["categories"],
        serde_json::json!(["alibabacloud"])
    );
    let version = &spec["versions"][0];
    assert_eq!(
        (
            version["name"].as_str(),
            version["served"].as_bool(),
            version["storage"].as_bool()
        ),
        (Some("v1alpha1"), Some(true), Some(true))
    );
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<(&str, i64)> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Phase", 0),
            ("Progress", 0),
            ("Image ID", 0),
            ("Region", 0),
            ("Copies", 0),
            ("Ready", 0),
            ("Age", 0),
            ("Reason", 1),
            ("Message", 1),
        ],
        "Reason and Message only with -o wide"
    );
    let path_of = |name: &str| {
        version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["jsonPath"].as_str().unwrap().to_string())
            .unwrap()
    };
    for (column, field) in [
        ("Ready", "status"),
        ("Reason", "reason"),
        ("Message", "message"),
    ] {
        assert_eq!(
            path_of(column),
            format!(".status.conditions[?(@.type==\"Ready\")].{field}")
        );
    }
}

/// `status.conditions` carries what the Go type `metav1.Condition` declares (its kubebuilder
/// markers), and merges by `type` under server-side apply.
#[test]
fn conditions_carry_the_upstream_condition_validations() {
    let crd = serde_json::to_value(ImageImport::crd()).unwrap();
    let conditions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let item = &conditions["items"];
    assert_eq!(
        item["required"],
        serde_json::json!(["lastTransitionTime", "message", "reason", "status", "type"])
    );
    let field = |name: &str| &item["properties"][name];
    assert_eq!(
        field("type")["pattern"],
        r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
    );
    assert_eq!(field("type")["maxLength"], 316);
    assert_eq!(
        field("status")["enum"],
        serde_json::json!(["True", "False", "Unknown"])
    );
    assert_eq!(
        field("reason")["pattern"],
        "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    );
    assert_eq!(
        (&field("reason")["minLength"], &field("reason")["maxLength"]),
        (&serde_json::json!(1), &serde_json::json!(1024))
    );
    assert_eq!(field("message")["maxLength"], 32768);
    assert_eq!(field("observedGeneration")["minimum"], 0.0);
    assert_eq!(field("lastTransitionTime")["format"], "date-time");
}

fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let here = format!("{path}.{name}");
            let documented = property
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            // apiVersion, kind and metadata are documented by Kubernetes itself.
            if !documented && !matches!(here.as_str(), ".apiVersion" | ".kind" | ".metadata") {
                out.push(here.clone());
            }
            undocumented(property, &here, out);
            if let Some(items) = property.get("items") {
                undocumented(items, &format!("{here}[]"), out);
            }
        }
    }
}

#[test]
fn every_field_has_kubectl_explain_text() {
    let crd = serde_json::to_value(ImageImport::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    undocumented(schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}
