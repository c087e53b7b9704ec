//! OpenAPI schema validation, pruning and CEL rules of the CRD.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::*;

/// Creates `body` through the raw API and returns the code and Status.
async fn create_raw(client: &kube::Client, body: Value, query: &str) -> (u16, Value) {
    let path = format!("{}{query}", collection_path("default"));
    raw(client, "POST", &path, "application/json", Some(body)).await
}

fn causes(status: &Value) -> Vec<(String, String, String)> {
    status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["reason"].as_str().unwrap().to_owned(),
                c["field"].as_str().unwrap().to_owned(),
                c["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn schema_violations_are_422_invalid_with_causes() {
    let server = start().await;
    let client = client(&server).await;
    let mut body = image_import("bad");
    body["spec"]["source"] = json!({"bucket": "ab"});
    body["spec"]["osType"] = json!("mac");
    body["spec"]["diskSizeGiB"] = json!(0);
    body["spec"]["imageName"] = json!("9starts-with-digit");
    body["spec"]["tags"] = json!(["a", "b", "c", "d"]);
    body["spec"]["labels"] = json!({"a": "1", "b": "2", "c": "3"});
    let (code, status) = create_raw(&client, body, "").await;
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["kind"], "ImageImport");
    assert_eq!(status["details"]["group"], GROUP);
    let found = causes(&status);
    let expect = |reason: &str, field: &str, message: &str| {
        assert!(
            found.contains(&(reason.to_owned(), field.to_owned(), message.to_owned())),
            "missing {reason} {field} {message} in {found:#?}"
        );
    };
    expect("FieldValueRequired", "spec.source.object", "Required value");
    expect(
        "FieldValueInvalid",
        "spec.source.bucket",
        "Invalid value: \"ab\": spec.source.bucket in body should be at least 3 chars long",
    );
    expect(
        "FieldValueNotSupported",
        "spec.osType",
        "Unsupported value: \"mac\": supported values: \"linux\", \"windows\"",
    );
    expect(
        "FieldValueInvalid",
        "spec.diskSizeGiB",
        "Invalid value: 0: spec.diskSizeGiB in body should be greater than or equal to 1",
    );
    expect(
        "FieldValueInvalid",
        "spec.imageName",
        "Invalid value: \"9starts-with-digit\": spec.imageName in body should match '^[a-zA-Z][a-zA-Z0-9._-]*$'",
    );
    expect(
        "FieldValueTooMany",
        "spec.tags",
        "Too many: 4: must have at most 3 items",
    );
    expect(
        "FieldValueTooMany",
        "spec.labels",
        "Too many: 3: must have at most 2 items",
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("ImageImport.ecs.image-import.dev \"bad\" is invalid: [")
    );
}

#[tokio::test]
async fn types_required_and_special_keywords() {
    let server = start().await;
    let client = client(&server).await;
    let mut body = image_import("t");
    body["spec"]["diskSizeGiB"] = json!("ten");
    let (code, status) = create_raw(&client, body, "").await;
    assert_eq!(code, 422);
    // A blocking error: the CEL rules are not evaluated, and kube-apiserver says so.
    assert_eq!(
        causes(&status),
        [
            (
                "FieldValueTypeInvalid".to_owned(),
                "spec.diskSizeGiB".to_owned(),
                "Invalid value: \"string\": spec.diskSizeGiB in body must be of type integer: \"string\"".to_owned()
            ),
            (
                "FieldValueInvalid".to_owned(),
                "<nil>".to_owned(),
                "Invalid value: \"null\": some validation rules were not checked because the \
                 object was invalid; correct the existing errors to complete validation"
                    .to_owned()
            )
        ]
    );
    let mut body = image_import("t");
    body.as_object_mut().unwrap().remove("spec");
    let (code, status) = create_raw(&client, body, "").await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "ImageImport.ecs.image-import.dev \"t\" is invalid: [spec: Required value, <nil>: Invalid \
         value: \"null\": some validation rules were not checked because the object was invalid; \
         correct the existing errors to complete validation]"
    );

    // int-or-string, nullable, preserve-unknown-fields, and pruning of unknown fields.
    let mut body = image_import("ok");
    body["spec"]["port"] = json!("https");
    body["spec"]["bootMode"] = Value::Null;
    body["spec"]["extra"] = json!({"anything": {"goes": 1}});
    body["spec"]["unknownField"] = json!(true);
    body["topLevelUnknown"] = json!(1);
    let (code, created) = create_raw(&client, body, "").await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["port"], "https");
    assert!(created["spec"]["bootMode"].is_null() && created["spec"].get("bootMode").is_some());
    assert_eq!(created["spec"]["extra"]["anything"]["goes"], 1);
    assert!(created["spec"].get("unknownField").is_none());
    assert!(created.get("topLevelUnknown").is_none());

    // String formats.
    let api = imageimports(&client, "default");
    let bad_time = json!({"status": {"startedAt": "yesterday"}});
    let status = api_error(
        api.patch_status("ok", &PatchParams::default(), &Patch::Merge(&bad_time))
            .await,
    );
    assert_eq!(
        status.message,
        "ImageImport.ecs.image-import.dev \"ok\" is invalid: [status.startedAt: Invalid value: \"yesterday\": status.startedAt in body must be of type date-time: \"yesterday\", <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    let good_time = json!({"status": {"startedAt": "2026-11-28T16:22:16.123456Z"}});
    api.patch_status("ok", &PatchParams::default(), &Patch::Merge(&good_time))
        .await
        .unwrap();

    // fieldValidation=Strict turns pruning into an error, as for kubectl's default.
    let mut body = image_import("strict");
    body["spec"]["unknownField"] = json!(true);
    let (code, status) = create_raw(&client, body, "?fieldValidation=Strict").await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "ImageImport in version \"v1\" cannot be handled as a ImageImport: strict decoding error: unknown field \"spec.unknownField\""
    );
}

#[tokio::test]
async fn cel_rules_with_self_and_transition_rules_with_old_self() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");

    let mut body = image_import("c");
    body["spec"]["source"]["object"] = json!("elsewhere/disk.qcow2");
    let (code, status) = create_raw(&client, body, "").await;
    assert_eq!(code, 422);
    assert_eq!(
        causes(&status),
        [(
            "FieldValueInvalid".to_owned(),
            "spec.source".to_owned(),
            "Invalid value: \"object\": object must be under images/ or exports/".to_owned()
        )]
    );

    let mut body = image_import("c");
    body["spec"]["source"]["object"] = json!("exports/disk.qcow2");
    body["spec"]["tags"] = json!(["Prod"]);
    let (code, status) = create_raw(&client, body, "").await;
    assert_eq!(code, 422);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("tags must be lower case")
    );

    // The transition rule is not evaluated on create.
    let mut body = image_import("c");
    body["spec"]["tags"] = json!(["prod"]);
    api.create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    let params = PatchParams::default();
    let change = json!({"spec": {"imageName": "renamed"}});
    let status = api_error(api.patch("c", &params, &Patch::Merge(&change)).await);
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "ImageImport.ecs.image-import.dev \"c\" is invalid: spec: Invalid value: \"object\": imageName is immutable"
    );
    let fine = json!({"spec": {"diskSizeGiB": 5}});
    api.patch("c", &params, &Patch::Merge(&fine)).await.unwrap();
}

#[tokio::test]
async fn non_structural_crds_and_bad_rules_are_refused() {
    let server = start().await;
    let client = client(&server).await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "x-kubernetes-validations": [{"rule": "self.size >"}],
                            "properties": {
                                "size": {"description": "no type"},
                                "items": {"type": "array"},
                            },
                        },
                    },
                }},
            }],
        },
    });
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, status) = raw(&client, "POST", path, "application/json", Some(crd)).await;
    assert_eq!(code, 422, "{status}");
    let fields: Vec<String> = causes(&status).into_iter().map(|c| c.1).collect();
    let root = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
    assert_eq!(
        fields,
        [
            format!("{root}.properties[items].items"),
            format!("{root}.properties[size].type"),
            format!("{root}.x-kubernetes-validations[0].rule"),
        ]
    );
}

/// The operator's generated CRD must install: a real server would refuse a non-structural schema
/// or a rule that does not compile, and so does the double.
#[tokio::test]
async fn the_operators_crd_installs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/imageimports.ecs.image-import.dev.yaml"
    );
    let yaml = std::fs::read_to_string(path).unwrap();
    let server = kube_double::Server::start(Default::default())
        .await
        .unwrap();
    let installed = server.apply_yaml(&yaml).unwrap();
    assert_eq!(
        installed[0]["status"]["conditions"][1]["type"],
        "Established"
    );
    let client = client(&server).await;
    let discovery = kube::discovery::Discovery::new(client).run().await.unwrap();
    let group = discovery.get(GROUP).unwrap();
    let (resource, _) = group.recommended_kind("ImageImport").unwrap();
    assert_eq!(resource.plural, "imageimports");
}
