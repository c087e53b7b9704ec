//! Typed requests and responses of the ECS actions this operator calls (api-reference §1–§3, §6).
//!
//! Each request knows its action name and turns itself into flat RPC parameters through
//! [`Params`]' flattening helpers, the one place `Name.N.Field` is spelled. Enum-like values
//! (architecture, platform…) stay strings here: ECS adds values over time, and the resource's
//! schema is where they are validated.
//!
//! Responses are read leniently where ECS is known to vary (`SupportCancel` as string or boolean,
//! `TaskSet` as object or array, sizes as numbers or strings, times with or without seconds).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::EcsError;
use super::params::Params;

/// The ECS API version every action here belongs to.
pub const API_VERSION: &str = "2014-05-26";
/// `DescribeTasks` takes at most this many task IDs, `DescribeImages` this many image IDs and
/// this page size.
pub const MAX_IDS_PER_CALL: usize = 100;
/// `ImportImage` takes at most this many disk mappings (system disk plus 16 data disks).
pub const MAX_DISK_DEVICE_MAPPINGS: usize = 17;
/// An image carries at most this many tags.
pub const MAX_TAGS: usize = 20;
/// `ClientToken` is ASCII and at most this long.
pub const MAX_CLIENT_TOKEN_LEN: usize = 64;
/// Image statuses an import passes through, for `DescribeImages`, which hides all but `Available`
/// unless asked.
pub const ALL_IMAGE_STATUSES: &str =
    "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated";

/// One ECS action: its name, its parameters and the shape of a successful answer.
pub trait Action: Send + Sync {
    /// The `Action` parameter.
    const NAME: &'static str;
    /// The successful response body.
    type Response: DeserializeOwned + Send;
    /// The region the request acts on; it also picks the regional endpoint.
    fn region_id(&self) -> &str;
    /// The action's own parameters (not the common ones), checked against ECS's limits.
    fn params(&self) -> Result<Params, EcsError>;
}

/// A response that carries nothing but its request ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Acknowledged {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
}

/// A tag (`Tag.N.Key` / `Tag.N.Value`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key, 1–128 characters.
    pub key: String,
    /// Value, up to 128 characters, may be empty.
    pub value: String,
}

impl Tag {
    /// A tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

fn set_tags(params: &mut Params, tags: &[Tag]) -> Result<(), EcsError> {
    if tags.len() > MAX_TAGS {
        return Err(EcsError::InvalidRequest(format!(
            "{} tags given; ECS takes at most {MAX_TAGS}",
            tags.len()
        )));
    }
    params.set_struct_list(
        "Tag",
        tags.iter().map(|tag| {
            vec![
                ("Key", Some(tag.key.clone())),
                ("Value", Some(tag.value.clone())),
            ]
        }),
    );
    Ok(())
}

fn check_id_count(what: &str, count: usize) -> Result<(), EcsError> {
    if count > MAX_IDS_PER_CALL {
        return Err(EcsError::InvalidRequest(format!(
            "{count} {what} given; ECS takes at most {MAX_IDS_PER_CALL} per call"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ImportImage
// ---------------------------------------------------------------------------------------------

/// One disk of an import (`DiskDeviceMapping.N.*`); the first is the system disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskDeviceMapping {
    /// Bucket holding the image file, in the image's region.
    pub oss_bucket: String,
    /// Object key of the image file.
    pub oss_object: String,
    /// `RAW`, `VHD`, `QCOW2` or `VMDK`; detected when absent.
    pub format: Option<String>,
    /// Disk size in GiB, at least the file's virtual size; detected when absent.
    pub disk_image_size: Option<u32>,
    /// Deprecated device name; ECS advises against sending it.
    pub device: Option<String>,
}

/// `Features.*` of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFeatures {
    /// `supported` / `unsupported`.
    pub nvme_support: Option<String>,
    /// `v1` / `v2`.
    pub imds_support: Option<String>,
}

/// `ImportImage`: register an image file in OSS as a custom image (api-reference §1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportImageRequest {
    /// Region of the bucket and of the new image.
    pub region_id: String,
    /// Image name, 2–128 characters.
    pub image_name: Option<String>,
    /// Description, 2–256 characters.
    pub description: Option<String>,
    /// `i386`, `x86_64`, `arm64`.
    pub architecture: Option<String>,
    /// `linux`, `windows`.
    pub os_type: Option<String>,
    /// OS distribution, e.g. `Ubuntu`, `Others Linux`, `Windows Server 2022`.
    pub platform: Option<String>,
    /// `BIOS`, `UEFI`.
    pub boot_mode: Option<String>,
    /// `Auto`, `Aliyun`, `BYOL`.
    pub license_type: Option<String>,
    /// RAM role ECS assumes to read OSS.
    pub role_name: Option<String>,
    /// Resource group of the image.
    pub resource_group_id: Option<String>,
    /// `Standard` runs ECS's image check.
    pub detection_strategy: Option<String>,
    /// CloudBox storage location ARN.
    pub storage_location_arn: Option<String>,
    /// NVMe and IMDS support.
    pub features: ImageFeatures,
    /// Disks, system disk first; 1 to 17.
    pub disk_device_mappings: Vec<DiskDeviceMapping>,
    /// Image tags.
    pub tags: Vec<Tag>,
    /// Idempotency token: the same token returns the same image instead of a second one.
    pub client_token: Option<String>,
    /// Only check parameters and permissions.
    pub dry_run: bool,
}

impl Action for ImportImageRequest {
    const NAME: &'static str = "ImportImage";
    type Response = ImportImageResponse;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        if self.disk_device_mappings.is_empty()
            || self.disk_device_mappings.len() > MAX_DISK_DEVICE_MAPPINGS
        {
            return Err(EcsError::InvalidRequest(format!(
                "{} disk device mappings given; ECS takes 1 to {MAX_DISK_DEVICE_MAPPINGS}",
                self.disk_device_mappings.len()
            )));
        }
        if let Some(token) = &self.client_token
            && (token.is_empty() || token.len() > MAX_CLIENT_TOKEN_LEN || !token.is_ascii())
        {
            return Err(EcsError::InvalidRequest(format!(
                "ClientToken must be 1 to {MAX_CLIENT_TOKEN_LEN} ASCII characters"
            )));
        }
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set_opt("ImageName", self.image_name.as_ref());
        params.set_opt("Description", self.description.as_ref());
        params.set_opt("Architecture", self.architecture.as_ref());
        params.set_opt("OSType", self.os_type.as_ref());
        params.set_opt("Platform", self.platform.as_ref());
        params.set_opt("BootMode", self.boot_mode.as_ref());
        params.set_opt("LicenseType", self.license_type.as_ref());
        params.set_opt("RoleName", self.role_name.as_ref());
        params.set_opt("ResourceGroupId", self.resource_group_id.as_ref());
        params.set_opt("DetectionStrategy", self.detection_strategy.as_ref());
        params.set_opt("StorageLocationArn", self.storage_location_arn.as_ref());
        params.set_opt("ClientToken", self.client_token.as_ref());
        params.set_struct(
            "Features",
            [
                ("NvmeSupport", self.features.nvme_support.clone()),
                ("ImdsSupport", self.features.imds_support.clone()),
            ],
        );
        params.set_struct_list(
            "DiskDeviceMapping",
            self.disk_device_mappings.iter().map(|disk| {
                vec![
                    ("OSSBucket", Some(disk.oss_bucket.clone())),
                    ("OSSObject", Some(disk.oss_object.clone())),
                    ("Format", disk.format.clone()),
                    (
                        "DiskImageSize",
                        disk.disk_image_size.map(|size| size.to_string()),
                    ),
                    ("Device", disk.device.clone()),
                ]
            }),
        );
        set_tags(&mut params, &self.tags)?;
        if self.dry_run {
            params.set_bool("DryRun", true);
        }
        Ok(params)
    }
}

/// What `ImportImage` returns: the new image and the task that fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportImageResponse {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// `m-…`.
    pub image_id: String,
    /// `t-…`; the 2021 doc's sample and the original page call it `ImportTaskId`.
    #[serde(alias = "ImportTaskId")]
    pub task_id: String,
    /// Region of the image.
    #[serde(default)]
    pub region_id: String,
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

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
        params.set_opt("PageNumber", self.page_number);
        params.set_opt(
            "PageSize",
            self.page_size.map(|size| size.min(MAX_IDS_PER_CALL as u32)),
        );
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
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set("TaskId", &self.task_id);
        Ok(params)
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
    /// Error code; empty on success. Checked as it is read ([`super::redact::shown_code`]): a
    /// code no ECS code looks like reads as [`super::redact::UNUSABLE_CODE`].
    #[serde(default, deserialize_with = "shown_task_code")]
    pub error_code: String,
    /// Error message; empty on success. Cut of ECS's string to sign and bounded as it is read
    /// ([`super::redact::shown_text`]); the client has removed the request's secrets already.
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
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set("TaskId", &self.task_id);
        Ok(params)
    }
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

/// A tag filter of `DescribeImages`; a filter without a value matches any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// Tag key.
    pub key: String,
    /// Tag value, or any.
    pub value: Option<String>,
}

/// `DescribeImages`: images by ID, name, status or tag (api-reference §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeImagesRequest {
    /// Region of the images.
    pub region_id: String,
    /// Up to 100 image IDs, sent comma-separated.
    pub image_ids: Vec<String>,
    /// Name (ECS matches it fuzzily).
    pub image_name: Option<String>,
    /// `self` for our own images.
    pub image_owner_alias: Option<String>,
    /// Statuses to include, sent comma-separated; ECS shows only `Available` when empty. See
    /// [`ALL_IMAGE_STATUSES`].
    pub statuses: Vec<String>,
    /// Tag filters.
    pub tags: Vec<TagFilter>,
    /// Resource group filter.
    pub resource_group_id: Option<String>,
    /// Page number, from 1.
    pub page_number: Option<u32>,
    /// Page size, 1–100.
    pub page_size: Option<u32>,
}

impl Action for DescribeImagesRequest {
    const NAME: &'static str = "DescribeImages";
    type Response = DescribeImagesResponse;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        check_id_count("image IDs", self.image_ids.len())?;
        if self.tags.len() > MAX_TAGS {
            return Err(EcsError::InvalidRequest(format!(
                "{} tag filters given; ECS takes at most {MAX_TAGS}",
                self.tags.len()
            )));
        }
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        if !self.image_ids.is_empty() {
            params.set("ImageId", self.image_ids.join(","));
        }
        params.set_opt("ImageName", self.image_name.as_ref());
        params.set_opt("ImageOwnerAlias", self.image_owner_alias.as_ref());
        if !self.statuses.is_empty() {
            params.set("Status", self.statuses.join(","));
        }
        params.set_struct_list(
            "Tag",
            self.tags
                .iter()
                .map(|tag| vec![("Key", Some(tag.key.clone())), ("Value", tag.value.clone())]),
        );
        params.set_opt("ResourceGroupId", self.resource_group_id.as_ref());
        params.set_opt("PageNumber", self.page_number);
        params.set_opt(
            "PageSize",
            self.page_size.map(|size| size.min(MAX_IDS_PER_CALL as u32)),
        );
        Ok(params)
    }
}

/// What `DescribeImages` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeImagesResponse {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// Region.
    #[serde(default)]
    pub region_id: String,
    /// Images matched in all pages.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub total_count: u64,
    /// This page.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub page_number: u64,
    /// Page size.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub page_size: u64,
    /// The images on this page. Required: ECS always sends the list (empty when nothing
    /// matches), and an answer without it must not read as "no such image" — that would make a
    /// broken gateway look like a deleted image.
    #[serde(rename = "Images", deserialize_with = "images")]
    pub images: Vec<Image>,
}

/// An image as `DescribeImages` shows it (the fields this operator reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    /// `m-…`.
    pub image_id: String,
    /// Name.
    #[serde(default)]
    pub image_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `Creating`, `Waiting`, `Available`, `UnAvailable`, `CreateFailed`, `Deprecated`.
    #[serde(default)]
    pub status: String,
    /// Progress with a percent sign, e.g. `"32%"`; may be empty.
    #[serde(default)]
    pub progress: String,
    /// System disk size in GiB.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub size: u64,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS type.
    #[serde(default, rename = "OSType")]
    pub os_type: String,
    /// Platform.
    #[serde(default)]
    pub platform: String,
    /// Boot mode.
    #[serde(default)]
    pub boot_mode: String,
    /// License type.
    #[serde(default)]
    pub license_type: String,
    /// Creation time.
    #[serde(default)]
    pub creation_time: String,
    /// Resource group.
    #[serde(default)]
    pub resource_group_id: String,
    /// Tags.
    #[serde(default, rename = "Tags", deserialize_with = "image_tags")]
    pub tags: Vec<Tag>,
    /// Disks.
    #[serde(
        default,
        rename = "DiskDeviceMappings",
        deserialize_with = "image_disks"
    )]
    pub disk_device_mappings: Vec<ImageDisk>,
}

impl Image {
    /// Progress as a number from 0 to 100, when ECS gave one.
    pub fn progress_percent(&self) -> Option<u8> {
        parse_percent(&self.progress)
    }

    /// The value of one tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|tag| tag.key == key)
            .map(|tag| tag.value.as_str())
    }
}

/// A disk of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDisk {
    /// Device name.
    #[serde(default)]
    pub device: String,
    /// Size in GiB (a string in ECS's answer; read as a number).
    #[serde(default, deserialize_with = "flexible_u64")]
    pub size: u64,
    /// Format.
    #[serde(default)]
    pub format: String,
    /// Source bucket of an imported disk.
    #[serde(default, rename = "ImportOSSBucket")]
    pub import_oss_bucket: String,
    /// Source object of an imported disk.
    #[serde(default, rename = "ImportOSSObject")]
    pub import_oss_object: String,
    /// Import progress of this disk.
    #[serde(default)]
    pub progress: String,
    /// Seconds left, when ECS estimates it.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub remain_time: u64,
}

/// `DeleteImage` (api-reference §3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteImageRequest {
    /// Region of the image.
    pub region_id: String,
    /// `m-…`.
    pub image_id: String,
    /// Delete even when instances use the image.
    pub force: bool,
}

impl Action for DeleteImageRequest {
    const NAME: &'static str = "DeleteImage";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set("ImageId", &self.image_id);
        if self.force {
            params.set_bool("Force", true);
        }
        Ok(params)
    }
}

/// `ModifyImageAttribute`: rename or redescribe an image in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModifyImageAttributeRequest {
    /// Region of the image.
    pub region_id: String,
    /// `m-…`.
    pub image_id: String,
    /// New name.
    pub image_name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

impl Action for ModifyImageAttributeRequest {
    const NAME: &'static str = "ModifyImageAttribute";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set("ImageId", &self.image_id);
        params.set_opt("ImageName", self.image_name.as_ref());
        params.set_opt("Description", self.description.as_ref());
        Ok(params)
    }
}

/// The `ResourceType` of images in the tag APIs.
pub const RESOURCE_TYPE_IMAGE: &str = "image";
/// The tag APIs take at most this many resources per call.
pub const MAX_TAG_RESOURCES: usize = 50;

/// `TagResources`: add or overwrite tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagResourcesRequest {
    /// Region of the resources.
    pub region_id: String,
    /// e.g. [`RESOURCE_TYPE_IMAGE`].
    pub resource_type: String,
    /// Resource IDs (`ResourceId.N`), up to 50.
    pub resource_ids: Vec<String>,
    /// Tags to set, up to 20.
    pub tags: Vec<Tag>,
}

impl Action for TagResourcesRequest {
    const NAME: &'static str = "TagResources";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        if self.resource_ids.is_empty() || self.resource_ids.len() > MAX_TAG_RESOURCES {
            return Err(EcsError::InvalidRequest(format!(
                "TagResources takes 1 to {MAX_TAG_RESOURCES} resource IDs"
            )));
        }
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set("ResourceType", &self.resource_type);
        params.set_string_list("ResourceId", self.resource_ids.iter().cloned());
        set_tags(&mut params, &self.tags)?;
        Ok(params)
    }
}

/// `UntagResources`: remove tags by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UntagResourcesRequest {
    /// Region of the resources.
    pub region_id: String,
    /// e.g. [`RESOURCE_TYPE_IMAGE`].
    pub resource_type: String,
    /// Resource IDs (`ResourceId.N`), up to 50.
    pub resource_ids: Vec<String>,
    /// Keys to remove (`TagKey.N`), up to 20.
    pub tag_keys: Vec<String>,
    /// Remove every tag.
    pub all: bool,
}

impl Action for UntagResourcesRequest {
    const NAME: &'static str = "UntagResources";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        if self.resource_ids.is_empty() || self.resource_ids.len() > MAX_TAG_RESOURCES {
            return Err(EcsError::InvalidRequest(format!(
                "UntagResources takes 1 to {MAX_TAG_RESOURCES} resource IDs"
            )));
        }
        if self.tag_keys.len() > MAX_TAGS {
            return Err(EcsError::InvalidRequest(format!(
                "UntagResources takes at most {MAX_TAGS} tag keys"
            )));
        }
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set("ResourceType", &self.resource_type);
        params.set_string_list("ResourceId", self.resource_ids.iter().cloned());
        params.set_string_list("TagKey", self.tag_keys.iter().cloned());
        if self.all {
            params.set_bool("All", true);
        }
        Ok(params)
    }
}

// ---------------------------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------------------------

/// `DescribeRegions`: the regions this account can use (api-reference §6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeRegionsRequest {
    /// Any valid region; it picks the endpoint.
    pub region_id: String,
    /// `zh-CN`, `en-US` or `ja`, for `LocalName`.
    pub accept_language: Option<String>,
    /// e.g. `instance`.
    pub resource_type: Option<String>,
}

impl Action for DescribeRegionsRequest {
    const NAME: &'static str = "DescribeRegions";
    type Response = DescribeRegionsResponse;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        let mut params = Params::new();
        params.set("RegionId", &self.region_id);
        params.set_opt("AcceptLanguage", self.accept_language.as_ref());
        params.set_opt("ResourceType", self.resource_type.as_ref());
        Ok(params)
    }
}

/// What `DescribeRegions` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeRegionsResponse {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// The regions.
    #[serde(default, rename = "Regions", deserialize_with = "regions")]
    pub regions: Vec<Region>,
}

/// One region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Region {
    /// e.g. `cn-hangzhou`.
    pub region_id: String,
    /// Localized name.
    #[serde(default)]
    pub local_name: String,
    /// Endpoint host.
    #[serde(default)]
    pub region_endpoint: String,
    /// `available` or `soldOut`.
    #[serde(default)]
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// Lenient readers
// ---------------------------------------------------------------------------------------------

/// Reads `"45%"`, `"45"` or `"45.5%"` as a percentage from 0 to 100.
pub fn parse_percent(text: &str) -> Option<u8> {
    let number = text.trim().trim_end_matches('%').trim();
    let value: f64 = number.parse().ok()?;
    // Truncation is intended: progress only ever shows whole percents.
    (0.0..=100.0).contains(&value).then_some(value as u8)
}

/// Reads ECS times: `2024-05-01T12:35:00Z`, and the seconds-less `2015-11-24T12:50Z` some answers use.
pub fn parse_ecs_time(text: &str) -> Option<jiff::Timestamp> {
    let text = text.trim();
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Some(timestamp);
    }
    let without_zone = text.strip_suffix('Z')?;
    format!("{without_zone}:00Z").parse().ok()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    Text(String),
}

/// A task's error code as it may be shown: empty stays empty (success).
fn shown_task_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    if raw.is_empty() {
        return Ok(raw);
    }
    Ok(
        super::redact::shown_code(&raw, &super::redact::Secrets::none())
            .unwrap_or_else(|_| super::redact::UNUSABLE_CODE.to_string()),
    )
}

/// A task's error message as it may be shown.
fn shown_task_message<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    Ok(super::redact::shown_text(
        &raw,
        &super::redact::Secrets::none(),
        super::redact::MAX_MESSAGE_CHARS,
    ))
}

fn flexible_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Option::<BoolOrString>::deserialize(deserializer)? {
        Some(BoolOrString::Bool(value)) => value,
        Some(BoolOrString::Text(text)) => text.eq_ignore_ascii_case("true"),
        None => false,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    Text(String),
}

fn flexible_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Ok(match Option::<NumberOrString>::deserialize(deserializer)? {
        Some(NumberOrString::Number(value)) => value,
        Some(NumberOrString::Text(text)) => text.trim().parse().unwrap_or(0),
        None => 0,
    })
}

/// ECS wraps lists as `{"Task": [...]}`; some doc examples wrap that again in an array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Wrapped<T> {
    Object(T),
    Array(Vec<T>),
}

impl<T> Wrapped<T> {
    fn flatten<U>(self, items: impl Fn(T) -> Vec<U>) -> Vec<U> {
        match self {
            Self::Object(inner) => items(inner),
            Self::Array(inner) => inner.into_iter().flat_map(items).collect(),
        }
    }
}

macro_rules! wrapped_list {
    ($fn_name:ident, $wrapper:ident, $field:literal, $item:ty) => {
        #[derive(Deserialize)]
        struct $wrapper {
            #[serde(default, rename = $field)]
            items: Vec<$item>,
        }

        fn $fn_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<$item>, D::Error> {
            Ok(Option::<Wrapped<$wrapper>>::deserialize(deserializer)?
                .map(|wrapped| wrapped.flatten(|inner| inner.items))
                .unwrap_or_default())
        }
    };
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
wrapped_list!(images, ImagesWire, "Image", Image);
wrapped_list!(image_disks, ImageDisksWire, "DiskDeviceMapping", ImageDisk);
wrapped_list!(regions, RegionsWire, "Region", Region);

#[derive(Deserialize)]
struct ImageTagWire {
    #[serde(default, rename = "TagKey")]
    key: String,
    #[serde(default, rename = "TagValue")]
    value: String,
}

wrapped_list!(image_tags_wire, ImageTagsWire, "Tag", ImageTagWire);

fn image_tags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Tag>, D::Error> {
    Ok(image_tags_wire(deserializer)?
        .into_iter()
        .map(|tag| Tag::new(tag.key, tag.value))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    fn full_import() -> ImportImageRequest {
        ImportImageRequest {
            region_id: "cn-hangzhou".into(),
            image_name: Some("ubuntu-2204".into()),
            description: Some("desc with space".into()),
            architecture: Some("arm64".into()),
            os_type: Some("linux".into()),
            platform: Some("Others Linux".into()),
            boot_mode: Some("UEFI".into()),
            license_type: Some("BYOL".into()),
            role_name: Some("AliyunECSImageImportDefaultRole".into()),
            resource_group_id: Some("rg-123".into()),
            detection_strategy: Some("Standard".into()),
            storage_location_arn: Some("arn:acs:cloudbox:cn-hangzhou:1:cloudbox/cb-1".into()),
            features: ImageFeatures {
                nvme_support: Some("supported".into()),
                imds_support: Some("v2".into()),
            },
            disk_device_mappings: vec![
                DiskDeviceMapping {
                    oss_bucket: "bucket".into(),
                    oss_object: "images/sys disk.qcow2".into(),
                    format: Some("QCOW2".into()),
                    disk_image_size: Some(40),
                    device: Some("/dev/xvda".into()),
                },
                DiskDeviceMapping {
                    oss_bucket: "bucket".into(),
                    oss_object: "data.raw".into(),
                    ..Default::default()
                },
            ],
            tags: vec![
                Tag::new("team", "a/b"),
                Tag::new("ecs-image-operator/uid", "u-1"),
            ],
            client_token: Some("uid-123".into()),
            dry_run: true,
        }
    }

    #[test]
    fn import_image_flattens_every_parameter() {
        let params = full_import().params().unwrap();
        let expected = [
            ("Architecture", "arm64"),
            ("BootMode", "UEFI"),
            ("ClientToken", "uid-123"),
            ("Description", "desc with space"),
            ("DetectionStrategy", "Standard"),
            ("DiskDeviceMapping.1.Device", "/dev/xvda"),
            ("DiskDeviceMapping.1.DiskImageSize", "40"),
            ("DiskDeviceMapping.1.Format", "QCOW2"),
            ("DiskDeviceMapping.1.OSSBucket", "bucket"),
            ("DiskDeviceMapping.1.OSSObject", "images/sys disk.qcow2"),
            ("DiskDeviceMapping.2.OSSBucket", "bucket"),
            ("DiskDeviceMapping.2.OSSObject", "data.raw"),
            ("DryRun", "true"),
            ("Features.ImdsSupport", "v2"),
            ("Features.NvmeSupport", "supported"),
            ("ImageName", "ubuntu-2204"),
            ("LicenseType", "BYOL"),
            ("OSType", "linux"),
            ("Platform", "Others Linux"),
            ("RegionId", "cn-hangzhou"),
            ("ResourceGroupId", "rg-123"),
            ("RoleName", "AliyunECSImageImportDefaultRole"),
            (
                "StorageLocationArn",
                "arn:acs:cloudbox:cn-hangzhou:1:cloudbox/cb-1",
            ),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "a/b"),
            ("Tag.2.Key", "ecs-image-operator/uid"),
            ("Tag.2.Value", "u-1"),
        ];
        assert_eq!(params.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn import_image_leaves_absent_options_off_the_wire() {
        let request = ImportImageRequest {
            region_id: "cn-hangzhou".into(),
            disk_device_mappings: vec![DiskDeviceMapping {
                oss_bucket: "b".into(),
                oss_object: "o".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let keys: Vec<String> = request
            .params()
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "DiskDeviceMapping.1.OSSBucket",
                "DiskDeviceMapping.1.OSSObject",
                "RegionId"
            ]
        );
    }

    #[test]
    fn import_image_refuses_what_ecs_would_refuse() {
        let mut request = full_import();
        request.disk_device_mappings = vec![DiskDeviceMapping::default(); 18];
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
        request.disk_device_mappings.clear();
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
        let mut request = full_import();
        request.client_token = Some("x".repeat(65));
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
        let mut request = full_import();
        request.tags = (0..21).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
    }

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
    fn describe_images_sends_statuses_ids_and_tag_filters() {
        let request = DescribeImagesRequest {
            region_id: "cn-hangzhou".into(),
            image_ids: vec!["m-1".into(), "m-2".into()],
            image_owner_alias: Some("self".into()),
            statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
            tags: vec![TagFilter {
                key: "ecs-image-operator/uid".into(),
                value: None,
            }],
            page_number: Some(2),
            page_size: Some(100),
            ..Default::default()
        };
        let params = request.params().unwrap();
        assert_eq!(params.get("ImageId"), Some("m-1,m-2"));
        assert_eq!(params.get("Status"), Some(ALL_IMAGE_STATUSES));
        assert_eq!(params.get("Tag.1.Key"), Some("ecs-image-operator/uid"));
        assert!(!params.contains("Tag.1.Value"));
        assert_eq!(params.get("PageNumber"), Some("2"));
    }

    #[test]
    fn tag_and_untag_flatten_resource_ids_and_keys() {
        let tag = TagResourcesRequest {
            region_id: "r".into(),
            resource_type: RESOURCE_TYPE_IMAGE.into(),
            resource_ids: vec!["m-1".into()],
            tags: vec![Tag::new("a", "1")],
        };
        let params = tag.params().unwrap();
        assert_eq!(params.get("ResourceId.1"), Some("m-1"));
        assert_eq!(params.get("Tag.1.Value"), Some("1"));
        let untag = UntagResourcesRequest {
            region_id: "r".into(),
            resource_type: RESOURCE_TYPE_IMAGE.into(),
            resource_ids: vec!["m-1".into()],
            tag_keys: vec!["a".into(), "b".into()],
            all: false,
        };
        let params = untag.params().unwrap();
        assert_eq!(params.get("TagKey.2"), Some("b"));
        assert!(!params.contains("All"));
        let empty = TagResourcesRequest {
            resource_ids: vec![],
            ..tag
        };
        assert!(empty.params().is_err());
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

    #[test]
    fn reads_images_with_tags_disks_and_string_sizes() {
        let body = r#"{"RequestId":"r","TotalCount":1,"PageNumber":1,"PageSize":10,"Images":{"Image":[{"ImageId":"m-1",
            "Status":"Creating","Progress":"32%","Size":40,"OSType":"linux","Tags":{"Tag":[{"TagKey":"k","TagValue":"v"}]},
            "DiskDeviceMappings":{"DiskDeviceMapping":[{"Size":"40","ImportOSSBucket":"b","ImportOSSObject":"o","RemainTime":120}]}}]}}"#;
        let parsed: DescribeImagesResponse = serde_json::from_str(body).unwrap();
        let image = &parsed.images[0];
        assert_eq!(image.progress_percent(), Some(32));
        assert_eq!(image.tag("k"), Some("v"));
        assert_eq!(image.os_type, "linux");
        assert_eq!(image.disk_device_mappings[0].size, 40);
        assert_eq!(image.disk_device_mappings[0].remain_time, 120);
        let empty: DescribeImagesResponse =
            serde_json::from_str(r#"{"RequestId":"r","TotalCount":0,"Images":{"Image":[]}}"#)
                .unwrap();
        assert!(empty.images.is_empty());
    }

    #[test]
    fn reads_import_image_with_either_task_field_name() {
        let current: ImportImageResponse = serde_json::from_str(
            r#"{"RequestId":"r","ImageId":"m-1","TaskId":"t-1","RegionId":"cn-hangzhou"}"#,
        )
        .unwrap();
        let original: ImportImageResponse =
            serde_json::from_str(r#"{"RequestId":"r","ImageId":"m-1","ImportTaskId":"t-1"}"#)
                .unwrap();
        assert_eq!(current.task_id, "t-1");
        assert_eq!(original.task_id, "t-1");
    }

    #[test]
    fn parses_percentages_and_both_time_shapes() {
        assert_eq!(parse_percent("100%"), Some(100));
        assert_eq!(parse_percent(" 7 "), Some(7));
        assert_eq!(parse_percent(""), None);
        assert_eq!(parse_percent("150%"), None);
        assert_eq!(
            parse_ecs_time("2015-11-24T12:50Z").map(|t| t.as_second()),
            parse_ecs_time("2015-11-24T12:50:00Z").map(|t| t.as_second())
        );
        assert!(parse_ecs_time("2015-11-24T12:50Z").is_some());
        assert!(parse_ecs_time("yesterday").is_none());
    }
}
