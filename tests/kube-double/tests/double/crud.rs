//! Create, read, update, delete: server-set fields, errors, selectors, paging, concurrency,
//! finalizers, generation and the status subresource.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_sets_server_fields_and_defaults_namespace() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let created = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    let rv: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(rv, server.resource_version());
    // The schema default is applied.
    assert_eq!(created.data["spec"]["region"], "cn-hangzhou");
    let fetched = api.get("a").await.unwrap();
    assert_eq!(fetched.metadata.uid, meta.uid);
}

#[tokio::test]
async fn namespace_mismatch_is_a_bad_request() {
    let server = start().await;
    let client = client(&server).await;
    let mut body = image_import("a");
    body["metadata"]["namespace"] = json!("kube-system");
    let (code, status) = raw(
        &client,
        "POST",
        &collection_path("default"),
        "application/json",
        Some(body),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status["reason"], "BadRequest");
}

#[tokio::test]
async fn missing_namespace_is_not_found() {
    let server = start().await;
    let client = client(&server).await;
    let status = api_error(
        imageimports(&client, "nowhere")
            .create(&PostParams::default(), &dynamic(image_import("a")))
            .await,
    );
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn errors_have_the_status_shape() {
    let server = start().await;
    let client = client(&server).await;
    let path = collection_path("default");
    let (code, _) = raw(
        &client,
        "POST",
        &path,
        "application/json",
        Some(image_import("a")),
    )
    .await;
    assert_eq!(code, 201);
    let (code, status) = raw(
        &client,
        "POST",
        &path,
        "application/json",
        Some(image_import("a")),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "imageimports.ecs.image-import.dev \"a\" already exists",
            "reason": "AlreadyExists",
            "details": {"name": "a", "group": GROUP, "kind": "imageimports"},
            "code": 409,
        })
    );
    let (code, status) = raw(
        &client,
        "GET",
        &format!("{path}/nope"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(
        status["message"],
        "imageimports.ecs.image-import.dev \"nope\" not found"
    );
    assert_eq!(status["details"]["name"], "nope");
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let first = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let mut update = first.clone();
    update.data["spec"]["diskSizeGiB"] = json!(40);
    let second = api
        .replace("a", &PostParams::default(), &update)
        .await
        .unwrap();
    assert_ne!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    // `update` still carries the first resourceVersion.
    update.data["spec"]["diskSizeGiB"] = json!(80);
    let status = api_error(api.replace("a", &PostParams::default(), &update).await);
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on imageimports.ecs.image-import.dev \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Custom resources refuse unconditional updates.
    update.metadata.resource_version = None;
    let status = api_error(api.replace("a", &PostParams::default(), &update).await);
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn unchanged_update_keeps_the_resource_version() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let created = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let same = api
        .replace("a", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn names_and_labels_are_validated() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let status = api_error(
        api.create(&PostParams::default(), &dynamic(image_import("Not_Valid")))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("metadata.name: Invalid value: \"Not_Valid\""),
        "{}",
        status.message
    );
    let mut body = image_import("a");
    body["metadata"]["labels"] = json!({"ok.example/name": "fine", "bad": "x".repeat(64)});
    let status = api_error(api.create(&PostParams::default(), &dynamic(body)).await);
    assert_eq!(status.code, 422);
    let causes = status.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "metadata.labels[bad]");
}

#[tokio::test]
async fn generate_name_appends_a_suffix() {
    let server = start().await;
    let client = client(&server).await;
    let mut body = image_import("");
    body["metadata"] = json!({"generateName": "import-"});
    let created = imageimports(&client, "default")
        .create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    let name = created.metadata.name.unwrap();
    assert!(
        name.starts_with("import-") && name.len() == "import-".len() + 5,
        "{name}"
    );
}

#[tokio::test]
async fn selectors_and_paging() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    for (name, tier) in [("a", "gold"), ("b", "silver"), ("c", "bronze"), ("d", "")] {
        let mut body = image_import(name);
        if !tier.is_empty() {
            body["metadata"]["labels"] = json!({"tier": tier});
        }
        api.create(&PostParams::default(), &dynamic(body))
            .await
            .unwrap();
    }
    imageimports(&client, "kube-system")
        .create(&PostParams::default(), &dynamic(image_import("e")))
        .await
        .unwrap();
    let names = |list: kube::core::ObjectList<kube::api::DynamicObject>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()
    };
    let select = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(api.list(&select("tier=gold")).await.unwrap()), ["a"]);
    assert_eq!(
        names(api.list(&select("tier!=gold")).await.unwrap()),
        ["b", "c", "d"]
    );
    assert_eq!(
        names(api.list(&select("tier in (gold,silver)")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(api.list(&select("tier notin (gold,silver)")).await.unwrap()),
        ["c", "d"]
    );
    assert_eq!(
        names(api.list(&select("tier")).await.unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(names(api.list(&select("!tier")).await.unwrap()), ["d"]);
    let by_name = ListParams::default().fields("metadata.name=c");
    assert_eq!(names(api.list(&by_name).await.unwrap()), ["c"]);
    let all: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client.clone(), &resource());
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    let in_ns = ListParams::default().fields("metadata.namespace=kube-system");
    assert_eq!(names(all.list(&in_ns).await.unwrap()), ["e"]);
    let bad = api_error(
        api.list(&ListParams::default().fields("spec.imageName=x"))
            .await,
    );
    assert_eq!(bad.code, 400);

    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    assert_eq!(names(first), ["a", "b", "c"]);
    let rest = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert!(rest.metadata.continue_.is_none());
    assert_eq!(names(rest), ["d"]);
}

#[tokio::test]
async fn finalizers_delay_deletion() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let mut body = image_import("a");
    body["metadata"]["finalizers"] = json!(["ecs.image-import.dev/cleanup"]);
    api.create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    let marked = api.delete("a", &DeleteParams::default()).await.unwrap();
    let marked = marked.left().expect("the object, still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    // The real server bumps generation when it sets deletionTimestamp on a custom resource.
    assert_eq!(marked.metadata.generation, Some(2));
    let still = api.get("a").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // No new finalizers on an object being deleted.
    let add = json!({"metadata": {"finalizers": ["ecs.image-import.dev/cleanup", "other/x"]}});
    let status = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Merge(&add))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("no new finalizers can be added"),
        "{}",
        status.message
    );
    // Spec changes are still allowed while deleting; removing the last finalizer deletes.
    let remove = json!({"metadata": {"finalizers": null}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("a").await).code, 404);
}

#[tokio::test]
async fn delete_without_finalizers_is_immediate() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("a").await).code, 404);
    assert_eq!(
        api_error(api.delete("a", &DeleteParams::default()).await).code,
        404
    );
}

#[tokio::test]
async fn generation_rises_on_spec_changes_only() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let params = PatchParams::default();
    let labels = json!({"metadata": {"labels": {"x": "y"}, "annotations": {"a": "b"}}});
    let after_labels = api
        .patch("a", &params, &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(after_labels.metadata.generation, Some(1));
    let status = json!({"status": {"phase": "Importing"}});
    let after_status = api
        .patch_status("a", &params, &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(after_status.metadata.generation, Some(1));
    let spec = json!({"spec": {"diskSizeGiB": 30}});
    let after_spec = api.patch("a", &params, &Patch::Merge(&spec)).await.unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
}

#[tokio::test]
async fn status_subresource_isolation() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    // Status in a create is dropped.
    let mut body = image_import("a");
    body["status"] = json!({"phase": "Done"});
    let created = api
        .create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    assert!(created.data.get("status").is_none());
    // Writes to /status change only status.
    let both = json!({"spec": {"diskSizeGiB": 99}, "status": {"phase": "Importing"}});
    let after = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&both))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["phase"], "Importing");
    assert!(after.data["spec"].get("diskSizeGiB").is_none());
    // Writes to the main resource ignore status.
    let mut replace = after.clone();
    replace.data["status"] = json!({"phase": "Failed"});
    replace.data["spec"]["diskSizeGiB"] = json!(5);
    let replaced = api
        .replace("a", &PostParams::default(), &replace)
        .await
        .unwrap();
    assert_eq!(replaced.data["status"]["phase"], "Importing");
    assert_eq!(replaced.data["spec"]["diskSizeGiB"], 5);
    // PUT on /status.
    let mut status_put = replaced.clone();
    status_put.data["status"] = json!({"phase": "Ready", "imageId": "m-123"});
    let done = api
        .replace_status("a", &PostParams::default(), &status_put)
        .await
        .unwrap();
    assert_eq!(done.data["status"]["imageId"], "m-123");
}

#[tokio::test]
async fn builtin_kinds_are_stored_objects() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event as CoreEvent, Secret};
    use k8s_openapi::api::events::v1::Event;
    let server = start().await;
    let client = client(&server).await;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "data": {"accessKeyId": "QUtJRA=="},
        "stringData": {"plain": "text"},
    }))
    .unwrap();
    let stored = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let data = stored.data.unwrap();
    assert_eq!(data["accessKeyId"].0, b"AKID");
    assert_eq!(data["plain"].0, b"text");
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));

    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15},
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let got = leases.get("leader").await.unwrap();
    assert_eq!(got.spec.unwrap().holder_identity.as_deref(), Some("pod-a"));

    // events.k8s.io/v1 and core v1 Events are one resource seen two ways.
    let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), "default");
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "ev1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "ecs-image-operator",
        "reportingInstance": "pod-a",
        "action": "Importing",
        "reason": "ImportStarted",
        "type": "Normal",
        "note": "import task t-1 started",
        "regarding": {"kind": "ImageImport", "name": "a", "namespace": "default"},
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let core: kube::Api<CoreEvent> = kube::Api::namespaced(client.clone(), "default");
    let seen = core.get("ev1").await.unwrap();
    assert_eq!(seen.message.as_deref(), Some("import task t-1 started"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("a"));
    let back = events.get("ev1").await.unwrap();
    assert_eq!(back.note.as_deref(), Some("import task t-1 started"));
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_contents() {
    use k8s_openapi::api::core::v1::Namespace;
    let server = start().await;
    let client = client(&server).await;
    let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api = imageimports(&client, "team");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let mut held = image_import("held");
    held["metadata"]["finalizers"] = json!(["ecs.image-import.dev/cleanup"]);
    api.create(&PostParams::default(), &dynamic(held))
        .await
        .unwrap();

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("a").await).code, 404);
    // The object with a finalizer holds the namespace in Terminating.
    assert!(
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    let terminating = namespaces.get("team").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let refused = api_error(
        api.create(&PostParams::default(), &dynamic(image_import("b")))
            .await,
    );
    assert_eq!(refused.code, 403);
    assert_eq!(
        refused.message,
        "imageimports.ecs.image-import.dev \"b\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    let release = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("held").await).code, 404);
    assert_eq!(api_error(namespaces.get("team").await).code, 404);
}

#[tokio::test]
async fn kube_runtime_recorder_publishes_and_aggregates_events() {
    use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = start().await;
    let client = client(&server).await;
    let reporter = Reporter {
        controller: "ecs-image-operator".into(),
        instance: Some("pod-a".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = ObjectReference {
        api_version: Some(format!("{GROUP}/v1")),
        kind: Some("ImageImport".into()),
        name: Some("a".into()),
        namespace: Some("default".into()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "ImportStarted".into(),
        note: Some("import task t-1 started".into()),
        action: "Import".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let core: kube::Api<CoreEvent> = kube::Api::namespaced(client.clone(), "default");
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=a,reason=ImportStarted"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let seen = &listed.items[0];
    assert_eq!(seen.message.as_deref(), Some("import task t-1 started"));
    assert_eq!(seen.series.as_ref().and_then(|s| s.count), Some(2));
}

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_and_removes_its_finalizer() {
    use std::sync::Arc;

    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    const FINALIZER: &str = "ecs.image-import.dev/cleanup";
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let reconcile = |obj: kube::api::DynamicObject| {
        let api = api.clone();
        async move {
            finalizer(&api, FINALIZER, Arc::new(obj), |event| async move {
                match event {
                    Event::Apply(_) | Event::Cleanup(_) => {
                        Ok::<_, kube::Error>(Action::await_change())
                    }
                }
            })
            .await
        }
    };
    reconcile(api.get("a").await.unwrap()).await.unwrap();
    let with = api.get("a").await.unwrap();
    assert_eq!(
        with.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_owned()][..])
    );
    reconcile(with).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    reconcile(api.get("a").await.unwrap()).await.unwrap();
    assert_eq!(api_error(api.get("a").await).code, 404);
}

#[tokio::test]
async fn objects_over_etcds_limit_are_refused_as_the_real_server_does() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let server = start().await;
    let client = client(&server).await;
    let maps: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    let map = |size: usize| -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": "big"},
            "data": {"text": "x".repeat(size)},
        }))
        .unwrap()
    };
    let refused = maps
        .create(&PostParams::default(), &map(1_600_000))
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 500);
            assert_eq!(status.message, "etcdserver: request is too large");
        }
        other => panic!("{other}"),
    }
    maps.create(&PostParams::default(), &map(1_000))
        .await
        .unwrap();
    let grown = maps
        .patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"text": "y".repeat(1_600_000)}})),
        )
        .await;
    assert!(grown.is_err(), "an update over the limit is refused too");
}
