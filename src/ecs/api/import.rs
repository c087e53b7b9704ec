//! `ImportImage` (api-reference §1.1): the request with its disks and features, and the answer
//! naming the new image and its task.

use serde::{Deserialize, Serialize};

use super::{Action, MAX_DISK_DEVICE_MAPPINGS, Tag, check_client_token, set_tags};
use crate::ecs::error::EcsError;
use crate::ecs::params::Params;

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
        check_client_token(self.client_token.as_ref())?;
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
}
