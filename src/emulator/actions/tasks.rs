//! Import tasks: `DescribeTasks`, `DescribeTaskAttribute` and `CancelTask`.

use std::borrow::Cow;

use jiff::Timestamp;

use super::{
    EcsFault, Fields, comma_list, ecs_time, numbered, optional, page, region, region_and, required,
};
use crate::ecs::api::{MAX_IDS_PER_CALL, parse_ecs_time};
use crate::ecs::params::Params;
use crate::emulator::render::Node;
use crate::emulator::world::{TaskRec, TaskState, World};

const TASK_ACTIONS: &[&str] = &[
    "ImportImage",
    "ExportImage",
    "RedeployInstance",
    "ModifyDiskSpec",
    "ArchiveSnapshot",
];
/// The only `TaskStatus` filter values ECS honours; others are ignored.
const TASK_STATUS_FILTERS: &[&str] = &["Finished", "Processing", "Failed"];

fn task_summary(task: &TaskRec, now: Timestamp) -> Node {
    let state = task.state(now);
    Node::Obj(vec![
        ("TaskId", Node::s(&task.id)),
        ("TaskAction", Node::s("ImportImage")),
        ("TaskStatus", Node::s(state.status())),
        (
            "SupportCancel",
            Node::s(if state.is_running() { "true" } else { "false" }),
        ),
        ("CreationTime", Node::s(ecs_time(task.created))),
        (
            "FinishedTime",
            Node::s(state.finished_at().map(ecs_time).unwrap_or_default()),
        ),
        ("ResourceId", Node::s(&task.image_id)),
    ])
}

pub(super) fn describe_tasks(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?;
    let ids = comma_list(params.get("TaskIds"));
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(EcsFault::invalid("TaskIds"));
    }
    let resource_ids: Vec<&str> = numbered(params, "ResourceIds", None)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    if resource_ids.len() > MAX_IDS_PER_CALL {
        return Err(EcsFault::invalid("ResourceIds"));
    }
    let action = optional(params, "TaskAction");
    if let Some(action) = action
        && !TASK_ACTIONS.contains(&action)
    {
        return Err(EcsFault::invalid("TaskAction"));
    }
    let status =
        optional(params, "TaskStatus").filter(|status| TASK_STATUS_FILTERS.contains(status));
    let (page_number, page_size) = page(params)?;
    let start = time_filter(params, "StartTime")?;
    let end = time_filter(params, "EndTime")?;
    let matched: Vec<&TaskRec> = world
        .tasks_among(account, region, &ids)
        .into_iter()
        .filter(|task| start.is_none_or(|start| task.created >= start))
        .filter(|task| end.is_none_or(|end| task.created <= end))
        .filter(|task| resource_ids.is_empty() || resource_ids.contains(&task.image_id.as_str()))
        .filter(|_| action.is_none_or(|action| action == "ImportImage"))
        .filter(|task| status.is_none_or(|status| task.state(now).status() == status))
        .collect();
    let total = matched.len();
    let tasks = matched
        .into_iter()
        .rev()
        // Saturating: page × size overflows for page numbers near `usize::MAX`, and a
        // page past the end is simply empty.
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|task| task_summary(task, now))
        .collect();
    Ok(vec![
        ("RegionId", Node::s(region)),
        ("TotalCount", Node::i(total)),
        ("PageNumber", Node::i(page_number)),
        ("PageSize", Node::i(page_size)),
        ("TaskSet", Node::Set("Task", tasks)),
    ])
}

/// A creation-time bound, `yyyy-MM-ddTHH:mm[:ss]Z`.
fn time_filter(params: &Params, name: &str) -> Result<Option<Timestamp>, EcsFault> {
    optional(params, name)
        .map(|text| parse_ecs_time(text).ok_or_else(|| EcsFault::invalid(name)))
        .transpose()
}

pub(super) fn describe_task_attribute(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?;
    let task_id = required(params, "TaskId")?;
    let task = world
        .task(account, region, task_id)
        .ok_or_else(EcsFault::task_not_found)?;
    let state = task.state(now);
    let (operation_status, error_code, error_msg) = match &state {
        TaskState::Processing { .. } => ("Processing", "", Cow::Borrowed("")),
        TaskState::Finished { .. } => ("Success", "", Cow::Borrowed("")),
        TaskState::Failed { code, message, .. } => ("Failed", *code, Cow::Owned(message.clone())),
        TaskState::Cancelled { .. } => (
            "Failed",
            "TaskCancelled",
            Cow::Borrowed("The task was cancelled."),
        ),
    };
    let operations: Vec<Node> = task
        .disks
        .iter()
        .map(|disk| {
            Node::Obj(vec![
                ("OperationStatus", Node::s(operation_status)),
                ("ErrorCode", Node::s(error_code)),
                ("ErrorMsg", Node::s(error_msg.as_ref())),
                (
                    "RelatedItemSet",
                    Node::Set(
                        "RelatedItem",
                        vec![
                            related("OSSBucket", &disk.bucket),
                            related("OSSObject", &disk.object),
                            related("ImageFormat", &disk.format),
                            related("ImageId", &task.image_id),
                        ],
                    ),
                ),
            ])
        })
        .collect();
    let disks = task.disks.len();
    let (success, failed) = match operation_status {
        "Success" => (disks, 0),
        "Failed" => (0, disks),
        _ => (0, 0),
    };
    Ok(vec![
        ("TaskId", Node::s(&task.id)),
        ("RegionId", Node::s(region)),
        ("TaskAction", Node::s("ImportImage")),
        ("TaskStatus", Node::s(state.status())),
        ("TaskProcess", Node::s(format!("{}%", state.progress()))),
        (
            "SupportCancel",
            Node::s(if state.is_running() { "true" } else { "false" }),
        ),
        ("CreationTime", Node::s(ecs_time(task.created))),
        (
            "FinishedTime",
            Node::s(state.finished_at().map(ecs_time).unwrap_or_default()),
        ),
        ("TotalCount", Node::i(disks)),
        ("SuccessCount", Node::i(success)),
        ("FailedCount", Node::i(failed)),
        (
            "OperationProgressSet",
            Node::Set("OperationProgress", operations),
        ),
    ])
}

fn related(name: &str, value: &str) -> Node {
    Node::Obj(vec![("Name", Node::s(name)), ("Value", Node::s(value))])
}

pub(super) fn cancel_task(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let (region, task_id) = region_and(world, params, "TaskId")?;
    world.cancel(account, &region, task_id, now)?;
    Ok(Vec::new())
}
