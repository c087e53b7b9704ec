//! `import -f`'s admission (`ecs_image_operator::admission`): every `deploy/examples/` file is
//! admitted and every broken variant of `tests/crd_cases` refused with its expected words, as
//! `kubectl apply` prints the refusal; unknown fields are refused strictly, lengths, CEL rules and
//! defaults are those of the generated CRD. `tests/envtest_crd.rs` holds the same verdicts against
//! the real kube-apiserver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod crd_cases;

use ecs_image_operator::admission::{Admission, ImageImportAdmission, Refusal, SchemaError};
use serde_json::{Value, json};

/// The ImageImport documents of a YAML stream (Secrets and other kinds left out).
fn image_imports(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.into_iter()
        .filter(|doc| doc["kind"] == "ImageImport")
        .collect()
}

/// The one ImageImport of a YAML stream.
fn the_image_import(yaml: &str) -> Value {
    let mut imports = image_imports(yaml);
    assert_eq!(imports.len(), 1, "one ImageImport in\n{yaml}");
    imports.remove(0)
}

fn admission() -> ImageImportAdmission {
    ImageImportAdmission::new().unwrap()
}

fn refusal(object: Value) -> Refusal {
    let mut object = object;
    match admission().admit(&mut object) {
        Ok(()) => panic!("admitted: {object:#}"),
        Err(refusal) => refusal,
    }
}

#[test]
fn every_example_is_admitted() {
    let admission = admission();
    let mut admitted = 0;
    for (file, text) in crd_cases::examples() {
        for mut object in image_imports(&text) {
            if let Err(refusal) = admission.admit(&mut object) {
                panic!("deploy/examples/{file}: {refusal}");
            }
            admitted += 1;
        }
    }
    assert!(
        admitted >= crd_cases::examples().len() - 1,
        "{admitted} ImageImports"
    );
}

#[test]
fn every_broken_example_is_refused_with_its_words() {
    let admission = admission();
    for (what, yaml, expected) in crd_cases::broken_examples() {
        let mut object = the_image_import(&yaml);
        match admission.admit(&mut object) {
            Ok(()) => panic!("{what}: admitted"),
            Err(refusal) => {
                let text = refusal.to_string();
                assert!(
                    text.contains(expected),
                    "{what}: the refusal should mention {expected:?}: {text}"
                );
            }
        }
    }
}

fn minimal() -> Value {
    the_image_import(&crd_cases::example("minimal.yaml"))
}

#[test]
fn an_unknown_field_is_refused_strictly_as_kubectl_apply_prints_it() {
    let mut object = minimal();
    object["spec"]["foo"] = json!("bar");
    let refusal = refusal(object);
    assert_eq!(refusal.fields(), ["spec.foo"]);
    assert_eq!(
        refusal.to_string(),
        "ImageImport in version \"v1alpha1\" cannot be handled as a ImageImport: strict decoding \
         error: unknown field \"spec.foo\""
    );
}

#[test]
fn a_ten_megabyte_description_is_refused_by_its_max_length() {
    let mut object = minimal();
    object["spec"]["description"] = Value::from("a".repeat(10 << 20));
    let refusal = refusal(object);
    // A blocking error: the CEL rules are not evaluated, and the refusal says so, as
    // kube-apiserver's does.
    assert_eq!(refusal.fields(), ["spec.description", "<nil>"]);
    assert_eq!(
        refusal.to_string(),
        "The ImageImport \"ubuntu-2204\" is invalid: \n\
         * spec.description: Too long: may not be more than 256 bytes\n\
         * <nil>: Invalid value: \"null\": some validation rules were not checked because the object \
         was invalid; correct the existing errors to complete validation"
    );
}

#[test]
fn arm64_with_bios_is_refused_with_the_cel_rules_message() {
    let yaml = crd_cases::example("arm64-uefi.yaml").replace("bootMode: UEFI", "bootMode: BIOS");
    let refusal = refusal(the_image_import(&yaml));
    let name = the_image_import(&yaml)["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        refusal.to_string(),
        format!(
            "The ImageImport \"{name}\" is invalid: spec: Invalid value: \"object\": arm64 images \
             boot with UEFI only: set bootMode to UEFI or leave it out"
        )
    );
}

#[test]
fn a_reserved_tag_key_is_refused() {
    let mut object = minimal();
    object["spec"]["tags"] = json!({"ecs-image-operator/uid": "forged"});
    let refusal = refusal(object);
    assert_eq!(refusal.fields(), ["spec.tags"]);
    assert!(
        refusal
            .to_string()
            .contains("must not start with ecs-image-operator/"),
        "{refusal}"
    );
}

#[test]
fn several_causes_are_listed_as_kubectl_lists_them() {
    let mut object = minimal();
    object["spec"]["licenseType"] = json!("OEM");
    object["spec"]["deletionPolicy"] = json!("Keep");
    let refusal = refusal(object);
    assert_eq!(
        refusal.to_string(),
        "The ImageImport \"ubuntu-2204\" is invalid: \n\
         * spec.deletionPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Retain\"\n\
         * spec.licenseType: Unsupported value: \"OEM\": supported values: \"Auto\", \"Aliyun\", \"BYOL\""
    );
}

#[test]
fn defaults_are_applied_and_status_left_out() {
    let mut object = minimal();
    assert!(object["spec"].get("deletionPolicy").is_none());
    object["status"] = json!({"phase": "Available"});
    admission().admit(&mut object).unwrap();
    assert_eq!(object["spec"]["deletionPolicy"], "Delete");
    assert!(object.get("status").is_none(), "{object:#}");
}

#[test]
fn a_schema_whose_rules_do_not_compile_is_an_error_not_a_panic() {
    let rule = |rule: Value| {
        json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-validations": [rule]}},
        })
    };
    for broken in [
        rule(json!({"rule": "self.a ==", "message": "m"})),
        rule(json!({"rule": "true", "messageExpression": "'a' +"})),
        json!({"type": "object", "properties": {"spec": {"description": "no type"}}}),
    ] {
        match Admission::checked(broken.clone(), "example.com", "v1", "Example") {
            Err(SchemaError::Invalid(causes)) => assert!(!causes.is_empty()),
            other => panic!("{broken}: {other:?}"),
        }
    }
}

#[test]
fn a_pattern_error_does_not_keep_the_cel_rules_from_being_evaluated() {
    // Not a blocking error (kube-apiserver evaluates the rules after it): both are said.
    let mut object = minimal();
    object["spec"]["diskDeviceMappings"][0]["ossBucket"] = json!("Not_A_Bucket");
    object["spec"]["platform"] = json!("Ubuntu");
    object["spec"]["osType"] = json!("windows");
    let refusal = refusal(object);
    let text = refusal.to_string();
    assert!(
        text.contains("spec.diskDeviceMappings[0].ossBucket"),
        "{text}"
    );
    assert!(
        text.contains("a Linux platform needs osType linux"),
        "{text}"
    );
    assert!(
        !text.contains("some validation rules were not checked"),
        "{text}"
    );
}
