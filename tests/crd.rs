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
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Phase", "Progress", "Image ID", "Region", "Copies", "Age"]
    );
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
