//! Patches and server-side apply.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let params = PatchParams::default();
    let merged = api
        .patch(
            "a",
            &params,
            &Patch::Merge(json!({"spec": {"diskSizeGiB": 10, "osType": null}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data["spec"]["diskSizeGiB"], 10);
    assert!(merged.data["spec"].get("osType").is_none());

    let item = format!("{}/a", collection_path("default"));
    let ops = json!([
        {"op": "test", "path": "/spec/diskSizeGiB", "value": 10},
        {"op": "replace", "path": "/spec/diskSizeGiB", "value": 11},
        {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
    ]);
    let (code, patched) = raw(
        &client,
        "PATCH",
        &item,
        "application/json-patch+json",
        Some(ops),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(patched["spec"]["diskSizeGiB"], 11);
    assert_eq!(patched["metadata"]["labels"]["a"], "b");
    let failing = json!([{"op": "test", "path": "/spec/diskSizeGiB", "value": 1}]);
    let (code, status) = raw(
        &client,
        "PATCH",
        &item,
        "application/json-patch+json",
        Some(failing),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(status["kind"], "Status");

    // Custom resources refuse strategic merge patches, as on a real cluster.
    let strategic = Patch::Strategic(json!({"spec": {"tags": ["x"]}}));
    assert_eq!(
        api_error(api.patch("a", &params, &strategic).await).code,
        415
    );

    // Built-ins take them; lists are replaced and directives dropped.
    use k8s_openapi::api::core::v1::ConfigMap;
    let maps: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "default");
    let map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "m"}, "data": {"a": "1"}})).unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();
    let patch = json!({"data": {"b": "2"}, "metadata": {"finalizers": ["x/y"], "$setElementOrder/finalizers": [{"name": "x/y"}]}});
    let patched = maps
        .patch("m", &params, &Patch::Strategic(patch))
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("1", "2"));
    assert_eq!(patched.metadata.finalizers.unwrap(), ["x/y"]);
}

#[tokio::test]
async fn patch_with_stale_resource_version_conflicts() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let created = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let params = PatchParams::default();
    api.patch(
        "a",
        &params,
        &Patch::Merge(json!({"spec": {"diskSizeGiB": 1}})),
    )
    .await
    .unwrap();
    let stale = json!({"metadata": {"resourceVersion": rv}, "spec": {"diskSizeGiB": 2}});
    assert_eq!(
        api_error(api.patch("a", &params, &Patch::Merge(stale)).await).code,
        409
    );
}

#[tokio::test]
async fn server_side_apply_creates_then_updates() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let params = PatchParams::apply("operator");
    let mut config = image_import("a");
    config["spec"]["tags"] = json!(["one"]);
    config["spec"]["diskSizeGiB"] = json!(20);
    let path = format!("{}/a?fieldManager=operator", collection_path("default"));
    let (code, created) = raw(
        &client,
        "PATCH",
        &path,
        "application/apply-patch+yaml",
        Some(config.clone()),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "operator"
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );

    // Fields the manager no longer applies are removed; others stay.
    config["spec"].as_object_mut().unwrap().remove("tags");
    let updated = api
        .patch("a", &params, &Patch::Apply(&config))
        .await
        .unwrap();
    assert!(updated.data["spec"].get("tags").is_none());
    assert_eq!(updated.data["spec"]["diskSizeGiB"], 20);
    assert_eq!(updated.metadata.generation, Some(2));

    // Re-applying the same configuration changes nothing.
    let again = api
        .patch("a", &params, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        updated.metadata.resource_version
    );

    // Another manager setting the same field to another value conflicts unless forced.
    let other = json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "ImageImport",
        "metadata": {"name": "a"}, "spec": {"diskSizeGiB": 50},
    });
    let status = api_error(
        api.patch("a", &PatchParams::apply("someone"), &Patch::Apply(&other))
            .await,
    );
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("conflict with \"operator\""),
        "{}",
        status.message
    );
    assert!(
        status.message.contains(".spec.diskSizeGiB"),
        "{}",
        status.message
    );
    let forced = api
        .patch(
            "a",
            &PatchParams::apply("someone").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["diskSizeGiB"], 50);
    // The operator no longer owns diskSizeGiB, so dropping it from its config keeps the value.
    config["spec"]
        .as_object_mut()
        .unwrap()
        .remove("diskSizeGiB");
    let kept = api
        .patch("a", &params, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(kept.data["spec"]["diskSizeGiB"], 50);
}

#[tokio::test]
async fn server_side_apply_of_status() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let status = json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "ImageImport",
        "metadata": {"name": "a"},
        "status": {"phase": "Importing", "conditions": [{"type": "Ready", "status": "False", "reason": "Importing"}]},
    });
    let params = PatchParams::apply("operator").force();
    let applied = api
        .patch_status("a", &params, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Importing");
    assert_eq!(applied.metadata.generation, Some(1));
    let fields = applied.metadata.managed_fields.unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f.manager.as_deref() == Some("operator")
                && f.subresource.as_deref() == Some("status"))
    );
    // Applying the whole status again replaces it (lists are atomic).
    let next = json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "ImageImport",
        "metadata": {"name": "a"},
        "status": {"phase": "Ready", "imageId": "m-1", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let done = api
        .patch_status("a", &params, &Patch::Apply(&next))
        .await
        .unwrap();
    assert_eq!(
        done.data["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}])
    );
    // The operator's shape: no metadata at all, the name comes from the URL.
    let bare = json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "ImageImport",
        "status": {"phase": "Failed"},
    });
    let failed = api
        .patch_status("a", &params, &Patch::Apply(&bare))
        .await
        .unwrap();
    assert_eq!(failed.data["status"]["phase"], "Failed");
    assert!(failed.data["status"].get("imageId").is_none());
    // Apply to the status of a missing object is NotFound.
    let mut missing = next.clone();
    missing["metadata"]["name"] = json!("zzz");
    let missing = api_error(
        api.patch_status("zzz", &params, &Patch::Apply(&missing))
            .await,
    );
    assert_eq!(missing.code, 404);
}
