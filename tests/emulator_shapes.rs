//! Response shapes: JSON as the SDK models read it, XML as `Format=XML` (and the V1 default)
//! returns it, for successes and errors alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use ecs_image_operator::ecs::ApiError;
use ecs_image_operator::ecs::api::{DescribeImagesResponse, DescribeTasksResponse, TaskAttribute};
use emulator_support::*;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TasksXml {
    request_id: String,
    total_count: u64,
    task_set: TaskSetXml,
}

#[derive(Debug, Deserialize)]
struct TaskSetXml {
    #[serde(rename = "Task", default)]
    tasks: Vec<TaskXml>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskXml {
    task_id: String,
    task_status: String,
    support_cancel: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImportXml {
    image_id: String,
    task_id: String,
    region_id: String,
}

async fn import_one(emulator: &ecs_image_operator::emulator::EmulatorHandle) -> Value {
    let params = signed(
        "POST",
        "ImportImage",
        &[
            ("RegionId", REGION),
            ("ImageName", "shapes"),
            ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
            ("DiskDeviceMapping.1.OSSObject", "ubuntu-22.04.qcow2"),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "a & b <c>"),
        ],
    );
    let (status, body) = post_form(emulator, &params).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn json_answers_have_the_sdk_shapes() {
    let emulator = start().await;
    let created = import_one(&emulator).await;
    for field in ["RequestId", "ImageId", "TaskId", "RegionId"] {
        assert!(created[field].is_string(), "{field} in {created}");
    }
    let task_id = created["TaskId"].as_str().unwrap();

    let params = signed(
        "POST",
        "DescribeTasks",
        &[("RegionId", REGION), ("TaskIds", task_id)],
    );
    let (_, body) = post_form(&emulator, &params).await;
    let raw: Value = serde_json::from_str(&body).unwrap();
    let task = &raw["TaskSet"]["Task"][0];
    assert_eq!(task["SupportCancel"], "true");
    assert_eq!(task["TaskAction"], "ImportImage");
    assert!(raw["TotalCount"].is_number());
    let typed: DescribeTasksResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(typed.tasks[0].task_id, task_id);

    let params = signed(
        "POST",
        "DescribeTaskAttribute",
        &[("RegionId", REGION), ("TaskId", task_id)],
    );
    let (_, body) = post_form(&emulator, &params).await;
    let raw: Value = serde_json::from_str(&body).unwrap();
    assert!(raw["TaskProcess"].as_str().unwrap().ends_with('%'));
    let items =
        &raw["OperationProgressSet"]["OperationProgress"][0]["RelatedItemSet"]["RelatedItem"];
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["Name"] == "OSSObject")
    );
    let typed: TaskAttribute = serde_json::from_str(&body).unwrap();
    assert_eq!(typed.operations.len(), 1);

    let params = signed(
        "POST",
        "DescribeImages",
        &[("RegionId", REGION), ("Status", "Creating")],
    );
    let (_, body) = post_form(&emulator, &params).await;
    let raw: Value = serde_json::from_str(&body).unwrap();
    let image = &raw["Images"]["Image"][0];
    assert_eq!(image["Status"], "Creating");
    assert!(image["DiskDeviceMappings"]["DiskDeviceMapping"][0]["Size"].is_string());
    assert_eq!(image["Tags"]["Tag"][0]["TagValue"], "a & b <c>");
    let typed: DescribeImagesResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(typed.images[0].tag("team"), Some("a & b <c>"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn xml_answers_parse_and_are_the_v1_default() {
    let emulator = start().await;
    let created = import_one(&emulator).await;
    let task_id = created["TaskId"].as_str().unwrap();

    // No Format at all: V1 answers XML.
    let mut params = signed(
        "GET",
        "DescribeTasks",
        &[("RegionId", REGION), ("TaskIds", task_id)],
    );
    params.remove("Format");
    resign(&mut params, "GET", AK_SECRET);
    let (status, body) = get_query(&emulator, &params).await;
    assert_eq!(status, 200);
    assert!(body.contains("<DescribeTasksResponse>"), "{body}");
    let tasks: TasksXml = quick_xml::de::from_str(&body).unwrap();
    assert_eq!(tasks.total_count, 1);
    assert!(!tasks.request_id.is_empty());
    assert_eq!(tasks.task_set.tasks[0].task_id, task_id);
    assert_eq!(tasks.task_set.tasks[0].task_status, "Processing");
    assert_eq!(tasks.task_set.tasks[0].support_cancel, "true");

    let params = signed(
        "POST",
        "ImportImage",
        &[
            ("Format", "XML"),
            ("RegionId", REGION),
            ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
            ("DiskDeviceMapping.1.OSSObject", "images/CentOS 7.raw"),
        ],
    );
    let (_, body) = post_form(&emulator, &params).await;
    assert!(body.starts_with("<?xml"), "{body}");
    let import: ImportXml = quick_xml::de::from_str(&body).unwrap();
    assert!(import.image_id.starts_with("m-") && import.task_id.starts_with("t-"));
    assert_eq!(import.region_id, REGION);

    // Errors in XML: <Error> with the same fields, readable by the client's parser.
    let params = signed(
        "POST",
        "CancelTask",
        &[
            ("Format", "XML"),
            ("RegionId", REGION),
            ("TaskId", "t-none"),
        ],
    );
    let (status, body) = post_form(&emulator, &params).await;
    let error = ApiError::parse("CancelTask", status, &body).unwrap();
    assert_eq!(error.code, "InvalidTaskId.NotFound");
    assert_eq!(error.message, "The specified \"TaskId\" is not found.");
    assert!(error.request_id.is_some() && error.host_id.is_some());
    emulator.shutdown().await;
}
