//! The Argo CD health check (`deploy/argocd/health.lua`), run the way Argo CD runs it: the resource
//! as the global `obj`, the script's returned table read for `status` and `message`. Lua 5.1, the
//! dialect of Argo CD's interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};

fn health(object: &Value) -> (String, String) {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/argocd/health.lua"
    ))
    .unwrap();
    let lua = Lua::new();
    lua.globals()
        .set("obj", lua.to_value(object).unwrap())
        .unwrap();
    let result: Table = lua
        .load(&script)
        .set_name("health.lua")
        .call(())
        .unwrap_or_else(|error| panic!("health.lua failed on {object}: {error}"));
    (
        result.get("status").unwrap(),
        result.get("message").unwrap(),
    )
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "observedGeneration": generation, "lastTransitionTime": "2025-01-01T00:00:00Z"
    })
}

/// An ImageImport at generation 2 with this status.
fn import(status: Value) -> Value {
    let mut object = json!({
        "apiVersion": "ecs.image-import.dev/v1alpha1",
        "kind": "ImageImport",
        "metadata": {"name": "ubuntu", "namespace": "default", "generation": 2, "uid": "u-1"},
        "spec": {"regionId": "cn-hangzhou", "diskDeviceMappings": [{"ossBucket": "b", "ossObject": "o"}]}
    });
    if !status.is_null() {
        object["status"] = status;
    }
    object
}

fn available(generation: i64) -> Value {
    json!({
        "phase": "Available", "imageId": "m-bp1available", "progress": 100, "observedGeneration": generation,
        "message": "image m-bp1available is available",
        "conditions": [
            condition("Ready", "True", "Available", "the image is available", generation),
            condition("Reconciling", "False", "AsExpected", "", generation),
            condition("Stalled", "False", "AsExpected", "", generation),
        ]
    })
}

#[test]
fn ready_at_the_current_generation_is_healthy() {
    let (status, message) = health(&import(available(2)));
    assert_eq!(status, "Healthy");
    assert_eq!(message, "image m-bp1available is available");
}

#[test]
fn a_status_behind_the_spec_is_progressing_even_when_ready() {
    let (status, message) = health(&import(available(1)));
    assert_eq!(
        (status.as_str(), message.as_str()),
        (
            "Progressing",
            "the operator has not reconciled generation 2 yet"
        )
    );

    let mut ready_behind = available(2);
    ready_behind["conditions"][0]["observedGeneration"] = json!(1);
    assert_eq!(
        health(&import(ready_behind)).0,
        "Progressing",
        "Ready's own observedGeneration counts"
    );

    let mut unobserved = available(2);
    unobserved
        .as_object_mut()
        .unwrap()
        .remove("observedGeneration");
    assert_eq!(health(&import(unobserved)).0, "Progressing");
}

#[test]
fn stalled_is_degraded_with_the_ecs_code_and_message() {
    let status = json!({
        "phase": "Pending", "observedGeneration": 2, "message": "waiting for a fix",
        "conditions": [
            condition("Ready", "False", "NoSetRoletoECSServiceAcount", "not ready", 2),
            condition("Reconciling", "False", "NoSetRoletoECSServiceAcount", "", 2),
            condition("Stalled", "True", "NoSetRoletoECSServiceAcount", "NoSetRoletoECSServiceAcount: create the RAM role AliyunECSImageImportDefaultRole", 2),
        ]
    });
    let (verdict, message) = health(&import(status));
    assert_eq!(verdict, "Degraded");
    assert_eq!(
        message,
        "NoSetRoletoECSServiceAcount: create the RAM role AliyunECSImageImportDefaultRole"
    );
}

#[test]
fn a_stall_of_an_older_generation_is_progressing() {
    let status = json!({
        "phase": "Failed", "observedGeneration": 1,
        "conditions": [condition("Stalled", "True", "InvalidOSSObjectNotFound", "InvalidOSSObject.NotFound: upload the file", 1)]
    });
    assert_eq!(
        health(&import(status)).0,
        "Progressing",
        "the user has changed the spec since"
    );
}

#[test]
fn importing_is_progressing_with_the_status_message() {
    let status = json!({
        "phase": "Importing", "progress": 45, "observedGeneration": 2, "importTaskId": "t-1",
        "message": "importing t-1: 45%",
        "conditions": [
            condition("Ready", "False", "Importing", "importing", 2),
            condition("Reconciling", "True", "Importing", "ECS is importing", 2),
            condition("Stalled", "False", "AsExpected", "", 2),
        ]
    });
    assert_eq!(
        health(&import(status)),
        ("Progressing".into(), "importing t-1: 45%".into())
    );

    let without_message = json!({
        "phase": "Importing", "observedGeneration": 2,
        "conditions": [condition("Reconciling", "True", "Importing", "ECS is importing", 2)]
    });
    assert_eq!(
        health(&import(without_message)),
        ("Progressing".into(), "Importing: ECS is importing".into())
    );
}

#[test]
fn no_status_yet_is_progressing() {
    assert_eq!(
        health(&import(Value::Null)),
        ("Progressing".into(), "waiting for the operator".into())
    );
}

#[test]
fn a_failed_phase_without_a_stall_is_degraded() {
    let status = json!({"phase": "Failed", "observedGeneration": 2, "message": "the import task failed", "conditions": []});
    assert_eq!(
        health(&import(status)),
        ("Degraded".into(), "the import task failed".into())
    );
}

#[test]
fn deletion_wins_over_everything_and_says_deleting() {
    let mut object = import(available(2));
    object["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    object["status"]["message"] = json!("cancelling t-1");
    assert_eq!(
        health(&object),
        ("Progressing".into(), "deleting: cancelling t-1".into())
    );
}

#[test]
fn the_pause_annotation_suspends() {
    let mut object = import(available(1));
    object["metadata"]["annotations"] = json!({"ecs.image-import.dev/paused": "true"});
    let (status, message) = health(&object);
    assert_eq!(status, "Suspended");
    assert!(message.starts_with("paused"), "{message}");

    object["metadata"]["annotations"] = json!({"ecs.image-import.dev/paused": "false"});
    assert_eq!(health(&object).0, "Progressing", "only \"true\" pauses");
}

/// An available image with copies: `done` of `wanted` made, Ready only when all are.
fn distributed(done: usize, wanted: usize, ready: bool) -> Value {
    let mut status = available(2);
    status["copiesReady"] = json!(format!("{done}/{wanted}"));
    if !ready {
        status["message"] =
            json!("image m-bp1available is available; 1/2 copies done; copying to cn-beijing 40%");
        status["conditions"] = json!([
            condition("Ready", "False", "Distributing", "", 2),
            condition("Reconciling", "True", "Distributing", "", 2),
            condition("Stalled", "False", "AsExpected", "", 2),
        ]);
    }
    status
}

#[test]
fn copies_running_are_progressing_with_what_is_copied() {
    let (verdict, message) = health(&import(distributed(1, 2, false)));
    assert_eq!(verdict, "Progressing");
    assert!(message.contains("copying to cn-beijing 40%"), "{message}");
}

#[test]
fn ready_with_every_copy_is_healthy_and_says_how_many() {
    let (verdict, message) = health(&import(distributed(2, 2, true)));
    assert_eq!(verdict, "Healthy");
    assert_eq!(
        message,
        "image m-bp1available is available, with copies in 2 regions"
    );
}

#[test]
fn a_stall_on_a_dotted_code_says_the_exact_code_once() {
    let status = json!({
        "phase": "Failed", "observedGeneration": 2,
        "conditions": [
            condition("Ready", "False", "InvalidOSSObjectNotFound", "", 2),
            condition("Stalled", "True", "InvalidOSSObjectNotFound",
                "InvalidOSSObject.NotFound: the object does not exist; upload it", 2),
        ]
    });
    assert_eq!(
        health(&import(status)),
        (
            "Degraded".into(),
            "InvalidOSSObject.NotFound: the object does not exist; upload it".into()
        )
    );
}

#[test]
fn ready_with_copies_missing_is_not_healthy() {
    let (verdict, message) = health(&import(distributed(1, 2, true)));
    assert_eq!(verdict, "Progressing", "{message}");
    assert!(message.starts_with("copies 1/2 done"), "{message}");
}

#[test]
fn a_copy_failed_in_its_region_is_degraded_naming_the_region_and_code() {
    let mut status = distributed(1, 2, false);
    status["conditions"] = json!([
        condition("Ready", "False", "CopyFailed", "", 2),
        condition("Reconciling", "False", "CopyFailed", "", 2),
        condition(
            "Stalled",
            "True",
            "CopyFailed",
            "copy to cn-beijing failed: QuotaExceed.Image: the image quota is used up",
            2
        ),
    ]);
    let (verdict, message) = health(&import(status));
    assert_eq!(verdict, "Degraded");
    assert!(
        message.contains("cn-beijing") && message.contains("QuotaExceed.Image"),
        "{message}"
    );
}

#[test]
fn a_stall_without_a_message_is_described_by_its_reason() {
    let status = json!({
        "phase": "Failed", "observedGeneration": 2,
        "conditions": [condition("Stalled", "True", "Paused", "", 2)]
    });
    assert_eq!(
        health(&import(status)),
        ("Degraded".into(), "Paused".into())
    );
}

#[test]
fn uploading_is_progressing_with_the_upload_percent() {
    let status = json!({
        "phase": "Uploading", "progress": 37, "observedGeneration": 2,
        "message": "uploading disk 0 to oss://b/o: 37% (370 bytes of 1000)",
        "upload": {"bytesDone": 370, "bytesTotal": 1000, "percent": 37,
                   "disks": [{"disk": 0, "uploadId": "up-1", "bytesDone": 370, "partsDone": 3}]},
        "conditions": [
            condition("Ready", "False", "Uploading", "uploading", 2),
            condition("Reconciling", "True", "Uploading", "uploading", 2),
            condition("Stalled", "False", "AsExpected", "", 2),
        ]
    });
    assert_eq!(
        health(&import(status)),
        (
            "Progressing".into(),
            "uploading: 37%: uploading disk 0 to oss://b/o: 37% (370 bytes of 1000)".into()
        )
    );
}

#[test]
fn a_stalled_upload_is_degraded_with_the_source_code() {
    let said = "SourceChecksumMismatch: the file's SHA-256 is 00ff…, source.sha256 says ab12…";
    let status = json!({
        "phase": "Failed", "progress": 100, "observedGeneration": 2,
        "message": format!("{said}; fix the spec or the credentials Secret"),
        "conditions": [
            condition("Ready", "False", "SourceChecksumMismatch", said, 2),
            condition("Reconciling", "False", "SourceChecksumMismatch", said, 2),
            condition("Stalled", "True", "SourceChecksumMismatch", said, 2),
        ]
    });
    assert_eq!(health(&import(status)), ("Degraded".into(), said.into()));
}
