//! Import tasks (api-reference §2): `DescribeTasks`, `DescribeTaskAttribute` and `CancelTask`, with
//! the task's status, summary and detail.

use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Acknowledged, Action, Wrapped, check_id_count, flexible_bool, flexible_u64, parse_percent,
    region_and, set_page, shown_task_code, shown_task_message, wrapped_list,
};
use crate::ecs::error::EcsError;
use crate::ecs::params::Params;

/// `DescribeTasks`: the state of up to 100 tasks in one call (api-reference §2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTasksRequest {
    /// Region of the tasks.
    pub region_id: String,
    /// Up to 100 task IDs, sent comma-separated.
    pub task_ids: Vec<String>,
    /// Filter by action, e.g. `ImportImage`.
    pub task_action: Option<String>,
    /// Filter: `Finished`, `Processing` or `Failed`.
    pub task_status: Option<String>,
    /// Filter by resource IDs (`ResourceIds.N`), up to 100.
    pub resource_ids: Vec<String>,
    /// Page number, from 1.
    pub page_number: Option<u32>,
    /// Page size, 1–100.
    pub page_size: Option<u32>,
}

impl Action for DescribeTasksRequest {
    const NAME: &'static str = "DescribeTasks";
    type Response = DescribeTasksResponse;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        check_id_count("task IDs", self.task_ids.len())?;
        check_id_count("resource IDs", self.resource_ids.len())?;
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        if !self.task_ids.is_empty() {
            params.set("TaskIds", self.task_ids.join(","));
        }
        params.set_opt("TaskAction", self.task_action.as_ref());
        params.set_opt("TaskStatus", self.task_status.as_ref());
        params.set_string_list("ResourceIds", self.resource_ids.iter().cloned());
        set_page(&mut params, self.page_number, self.page_size);
        Ok(params)
    }
}

/// What `DescribeTasks` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTasksResponse {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// Region.
    #[serde(default)]
    pub region_id: String,
    /// Tasks matched in all pages.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub total_count: u64,
    /// This page.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub page_number: u64,
    /// Page size.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub page_size: u64,
    /// The tasks on this page. Required, like `DescribeImages`' list: an answer without it is
    /// unreadable, not "no such task".
    #[serde(rename = "TaskSet", deserialize_with = "task_set")]
    pub tasks: Vec<TaskSummary>,
}

/// One task as `DescribeTasks` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskSummary {
    /// `t-…`.
    pub task_id: String,
    /// e.g. `ImportImage`.
    #[serde(default)]
    pub task_action: String,
    /// `Waiting`, `Processing`, `Finished`, `Failed`, or something newer; see [`TaskStatus`].
    #[serde(default)]
    pub task_status: String,
    /// Whether `CancelTask` applies now.
    #[serde(default, deserialize_with = "flexible_bool")]
    pub support_cancel: bool,
    /// When the task was created.
    #[serde(default)]
    pub creation_time: String,
    /// When the task ended; empty while it runs.
    #[serde(default)]
    pub finished_time: String,
    /// The resource the task works on (the image, for imports); only newer answers carry it.
    #[serde(default)]
    pub resource_id: String,
}

impl TaskSummary {
    /// The status as an enum.
    pub fn status(&self) -> TaskStatus {
        TaskStatus::parse(&self.task_status)
    }
}

/// The states a task is documented to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// Queued.
    Waiting,
    /// Running.
    Processing,
    /// Done, successfully.
    Finished,
    /// Done, unsuccessfully.
    Failed,
    /// Cancelled (the exact spelling ECS uses is unconfirmed; both are accepted).
    Cancelled,
    /// Anything else (`Deleted`, `Paused`, or a value added later): not terminal, but suspicious.
    Other(String),
}

impl TaskStatus {
    /// Reads a status string.
    pub fn parse(status: &str) -> Self {
        match status {
            "Waiting" => Self::Waiting,
            "Processing" => Self::Processing,
            "Finished" => Self::Finished,
            "Failed" => Self::Failed,
            "Cancelled" | "Canceled" | "Cancelling" | "Canceling" => Self::Cancelled,
            other => Self::Other(other.to_string()),
        }
    }

    /// Whether the task has stopped for good.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Cancelled)
    }
}

/// `DescribeTaskAttribute`: one task in detail, including its progress (api-reference §2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTaskAttributeRequest {
    /// Region of the task.
    pub region_id: String,
    /// `t-…`.
    pub task_id: String,
}

impl Action for DescribeTaskAttributeRequest {
    const NAME: &'static str = "DescribeTaskAttribute";
    type Response = TaskAttribute;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        Ok(region_and(&self.region_id, "TaskId", &self.task_id))
    }
}

/// What `DescribeTaskAttribute` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskAttribute {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// `t-…`.
    pub task_id: String,
    /// Region.
    #[serde(default)]
    pub region_id: String,
    /// e.g. `ImportImage`.
    #[serde(default)]
    pub task_action: String,
    /// See [`TaskStatus`].
    #[serde(default)]
    pub task_status: String,
    /// Progress with a percent sign, e.g. `"45%"`.
    #[serde(default)]
    pub task_process: String,
    /// Whether `CancelTask` applies now.
    #[serde(default, deserialize_with = "flexible_bool")]
    pub support_cancel: bool,
    /// When the task was created.
    #[serde(default)]
    pub creation_time: String,
    /// When the task ended.
    #[serde(default)]
    pub finished_time: String,
    /// Sub-operations in all.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub total_count: u64,
    /// Sub-operations that succeeded.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub success_count: u64,
    /// Sub-operations that failed.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub failed_count: u64,
    /// Per sub-operation detail, with the error of a failed import.
    #[serde(
        default,
        rename = "OperationProgressSet",
        deserialize_with = "operation_progress_set"
    )]
    pub operations: Vec<OperationProgress>,
}

impl TaskAttribute {
    /// The status as an enum.
    pub fn status(&self) -> TaskStatus {
        TaskStatus::parse(&self.task_status)
    }

    /// Progress as a number from 0 to 100, when ECS gave one.
    pub fn progress_percent(&self) -> Option<u8> {
        parse_percent(&self.task_process)
    }

    /// The first error a failed sub-operation reports, as (code, message).
    pub fn first_error(&self) -> Option<(&str, &str)> {
        self.operations
            .iter()
            .find(|operation| !operation.error_code.is_empty())
            .map(|operation| (operation.error_code.as_str(), operation.error_msg.as_str()))
    }
}

/// One sub-operation of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationProgress {
    /// e.g. `Success`, `Failed`.
    #[serde(default)]
    pub operation_status: String,
    /// Error code; empty on success. Checked as it is read ([`crate::ecs::redact::shown_code`]): a
    /// code no ECS code looks like reads as [`crate::ecs::redact::UNUSABLE_CODE`].
    #[serde(default, deserialize_with = "shown_task_code")]
    pub error_code: String,
    /// Error message; empty on success. Cut of ECS's string to sign and bounded as it is read
    /// ([`crate::ecs::redact::shown_text`]); the client has removed the request's secrets already.
    #[serde(default, deserialize_with = "shown_task_message")]
    pub error_msg: String,
    /// Name/value pairs such as `OSSBucket`, `OSSObject`, `ImageFormat`.
    #[serde(
        default,
        rename = "RelatedItemSet",
        deserialize_with = "related_item_set"
    )]
    pub related_items: Vec<RelatedItem>,
}

/// A name/value pair of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RelatedItem {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// `CancelTask`: stop a running import (api-reference §2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelTaskRequest {
    /// Region of the task.
    pub region_id: String,
    /// `t-…`.
    pub task_id: String,
}

impl Action for CancelTaskRequest {
    const NAME: &'static str = "CancelTask";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        Ok(region_and(&self.region_id, "TaskId", &self.task_id))
    }
}

wrapped_list!(task_set, TaskSetWire, "Task", TaskSummary);
wrapped_list!(
    operation_progress_set,
    OperationProgressWire,
    "OperationProgress",
    OperationProgress
);
wrapped_list!(
    related_item_set,
    RelatedItemWire,
    "RelatedItem",
    RelatedItem
);

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn describe_tasks_joins_ids_and_caps_them_at_one_hundred() {
        let request = DescribeTasksRequest {
            region_id: "cn-hangzhou".into(),
            task_ids: vec!["t-1".into(), "t-2".into()],
            task_action: Some("ImportImage".into()),
            resource_ids: vec!["m-1".into()],
            page_size: Some(500),
            ..Default::default()
        };
        let params = request.params().unwrap();
        assert_eq!(params.get("TaskIds"), Some("t-1,t-2"));
        assert_eq!(params.get("ResourceIds.1"), Some("m-1"));
        assert_eq!(params.get("PageSize"), Some("100"));
        let too_many = DescribeTasksRequest {
            task_ids: vec!["t".into(); 101],
            ..request
        };
        assert!(matches!(
            too_many.params(),
            Err(EcsError::InvalidRequest(_))
        ));
    }

    #[test]
    fn reads_describe_tasks_in_the_sdk_shape_and_the_doc_shape() {
        let sdk = r#"{"RequestId":"r","RegionId":"cn-hangzhou","TotalCount":1,"PageNumber":1,"PageSize":10,
            "TaskSet":{"Task":[{"TaskId":"t-1","TaskAction":"ImportImage","TaskStatus":"Processing",
            "SupportCancel":"true","CreationTime":"2024-05-01T12:35Z","FinishedTime":"","ResourceId":"m-1"}]}}"#;
        let parsed: DescribeTasksResponse = serde_json::from_str(sdk).unwrap();
        assert_eq!(parsed.tasks.len(), 1);
        assert!(parsed.tasks[0].support_cancel);
        assert_eq!(parsed.tasks[0].status(), TaskStatus::Processing);
        let doc = r#"{"RequestId":"r","TotalCount":"1","TaskSet":[{"Task":[{"TaskId":"t-2","TaskStatus":"Finished","SupportCancel":false}]}]}"#;
        let parsed: DescribeTasksResponse = serde_json::from_str(doc).unwrap();
        assert_eq!(parsed.total_count, 1);
        assert_eq!(parsed.tasks[0].task_id, "t-2");
        assert!(!parsed.tasks[0].support_cancel);
        assert!(parsed.tasks[0].status().is_terminal());
    }

    #[test]
    fn reads_task_attribute_progress_and_errors() {
        let body = r#"{"RequestId":"r","TaskId":"t-1","TaskStatus":"Failed","TaskProcess":"45%","SupportCancel":"false",
            "OperationProgressSet":{"OperationProgress":[{"OperationStatus":"Failed","ErrorCode":"InvalidImageFormat.Malformed",
            "ErrorMsg":"bad","RelatedItemSet":{"RelatedItem":[{"Name":"OSSObject","Value":"a.raw"}]}}]}}"#;
        let parsed: TaskAttribute = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.progress_percent(), Some(45));
        assert_eq!(
            parsed.first_error(),
            Some(("InvalidImageFormat.Malformed", "bad"))
        );
        assert_eq!(parsed.operations[0].related_items[0].value, "a.raw");
    }
}
