//! Images (api-reference §3): `DescribeImages`, `DeleteImage`, `ModifyImageAttribute`, and the tag
//! actions `TagResources` and `UntagResources` that keep an image's tags.

use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Acknowledged, Action, MAX_TAGS, Tag, Wrapped, check_id_count, flexible_u64, parse_percent,
    region_and, set_page, set_tags, wrapped_list,
};
use crate::ecs::error::EcsError;
use crate::ecs::params::Params;

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
    /// [`ALL_IMAGE_STATUSES`](super::ALL_IMAGE_STATUSES).
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
        set_page(&mut params, self.page_number, self.page_size);
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

/// The states an image is documented to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStatus {
    /// Being made (imported or copied).
    Creating,
    /// Queued.
    Waiting,
    /// Usable.
    Available,
    /// Broken.
    UnAvailable,
    /// Making it failed.
    CreateFailed,
    /// Marked deprecated: still usable.
    Deprecated,
    /// Anything else (a value added later): neither usable nor failed.
    Other(String),
}

impl ImageStatus {
    /// Reads a status string.
    pub fn parse(status: &str) -> Self {
        match status {
            "Creating" => Self::Creating,
            "Waiting" => Self::Waiting,
            "Available" => Self::Available,
            "UnAvailable" => Self::UnAvailable,
            "CreateFailed" => Self::CreateFailed,
            "Deprecated" => Self::Deprecated,
            other => Self::Other(other.to_string()),
        }
    }

    /// The status as ECS spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Creating => "Creating",
            Self::Waiting => "Waiting",
            Self::Available => "Available",
            Self::UnAvailable => "UnAvailable",
            Self::CreateFailed => "CreateFailed",
            Self::Deprecated => "Deprecated",
            Self::Other(other) => other,
        }
    }

    /// Whether instances can be made from it.
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Available | Self::Deprecated)
    }

    /// Whether making it failed for good.
    pub fn is_failed(&self) -> bool {
        matches!(self, Self::CreateFailed | Self::UnAvailable)
    }
}

impl std::fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Image {
    /// The status, read.
    pub fn state(&self) -> ImageStatus {
        ImageStatus::parse(&self.status)
    }

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
        let mut params = region_and(&self.region_id, "ImageId", &self.image_id);
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
        let mut params = region_and(&self.region_id, "ImageId", &self.image_id);
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

wrapped_list!(images, ImagesWire, "Image", Image);
wrapped_list!(image_disks, ImageDisksWire, "DiskDeviceMapping", ImageDisk);

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
    use crate::ecs::api::ALL_IMAGE_STATUSES;

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
}
