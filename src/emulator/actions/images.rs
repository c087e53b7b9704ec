//! Images: `DescribeImages` with its filters and pages, `DeleteImage` and `ModifyImageAttribute`.

use jiff::Timestamp;

use super::import::{ARCHITECTURES, OS_TYPES};
use super::tags::check_name_and_description;
use super::{
    EcsFault, Fields, comma_list, ecs_time, flag, numbered, optional, page, region, region_and,
};
use crate::ecs::api::{MAX_IDS_PER_CALL, MAX_TAGS};
use crate::ecs::params::Params;
use crate::emulator::render::Node;
use crate::emulator::world::{ImageRec, World};

const IMAGE_STATUSES: &[&str] = &[
    "Creating",
    "Waiting",
    "Available",
    "UnAvailable",
    "CreateFailed",
    "Deprecated",
];
const OWNER_ALIASES: &[&str] = &["system", "self", "others", "marketplace"];
const FILTER_KEYS: &[&str] = &["CreationStartTime", "CreationEndTime", "NetworkType"];

fn image_node(world: &World, image: &ImageRec, now: Timestamp) -> Node {
    let (status, progress) = world.image_state(image, now);
    let remain = world.image_remain_seconds(image, now);
    let disks = image
        .disks
        .iter()
        .enumerate()
        .map(|(index, disk)| {
            Node::Obj(vec![
                ("Device", Node::s(&disk.device)),
                ("Size", Node::s(disk.size_gib.to_string())),
                ("Format", Node::s(&disk.format)),
                ("Type", Node::s(if index == 0 { "system" } else { "data" })),
                ("SnapshotId", Node::s("")),
                ("ImportOSSBucket", Node::s(&disk.bucket)),
                ("ImportOSSObject", Node::s(&disk.object)),
                ("Progress", Node::s(format!("{progress}%"))),
                ("RemainTime", Node::i(remain)),
            ])
        })
        .collect();
    let tags = image
        .tags
        .iter()
        .map(|(key, value)| Node::Obj(vec![("TagKey", Node::s(key)), ("TagValue", Node::s(value))]))
        .collect();
    Node::Obj(vec![
        ("ImageId", Node::s(&image.id)),
        ("ImageName", Node::s(&image.name)),
        ("Description", Node::s(&image.description)),
        ("Status", Node::s(status)),
        ("Progress", Node::s(format!("{progress}%"))),
        (
            "Size",
            Node::i(image.disks.first().map_or(0, |disk| disk.size_gib)),
        ),
        ("Architecture", Node::s(&image.architecture)),
        ("OSType", Node::s(&image.os_type)),
        ("Platform", Node::s(&image.platform)),
        ("OSName", Node::s(&image.platform)),
        ("OSNameEn", Node::s(&image.platform)),
        ("BootMode", Node::s(&image.boot_mode)),
        ("LicenseType", Node::s(&image.license_type)),
        ("CreationTime", Node::s(ecs_time(image.created))),
        ("ResourceGroupId", Node::s(&image.resource_group_id)),
        ("ImageOwnerAlias", Node::s("self")),
        ("Usage", Node::s("none")),
        ("IsCopied", Node::Bool(image.copy.is_some())),
        ("IsPublic", Node::Bool(false)),
        ("IsSelfShared", Node::s("")),
        (
            "Features",
            Node::Obj(vec![
                ("NvmeSupport", Node::s(&image.nvme_support)),
                ("ImdsSupport", Node::s(&image.imds_support)),
            ]),
        ),
        ("Tags", Node::Set("Tag", tags)),
        ("DiskDeviceMappings", Node::Set("DiskDeviceMapping", disks)),
    ])
}

pub(super) fn describe_images(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?;
    let ids = comma_list(params.get("ImageId"));
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(EcsFault::invalid("ImageId"));
    }
    let statuses = comma_list(optional(params, "Status"));
    let all_statuses = statuses.iter().any(|s| s.eq_ignore_ascii_case("ALL"));
    if all_statuses && statuses.len() > 1 {
        return Err(EcsFault::invalid("Status"));
    }
    if !all_statuses && statuses.iter().any(|s| !IMAGE_STATUSES.contains(s)) {
        return Err(EcsFault::invalid("Status"));
    }
    let statuses = if statuses.is_empty() {
        vec!["Available"]
    } else {
        statuses
    };
    let alias = optional(params, "ImageOwnerAlias");
    if let Some(alias) = alias
        && !OWNER_ALIASES.contains(&alias)
    {
        return Err(EcsFault::new(
            "InvalidImageOwnerAlias.ValueNotSupported",
            "The specified ImageOwnerAlias is not supported.",
        ));
    }
    if let Some(architecture) = optional(params, "Architecture")
        && !ARCHITECTURES.contains(&architecture)
    {
        return Err(EcsFault::new(
            "InvalidArchitecture",
            "The specified Architecture is not valid.",
        ));
    }
    if let Some(os_type) = optional(params, "OSType")
        && !OS_TYPES.contains(&os_type)
    {
        return Err(EcsFault::new(
            "InvalidOSType",
            "The specified OSType is not valid.",
        ));
    }
    if let Some(usage) = optional(params, "Usage")
        && !["instance", "none"].contains(&usage)
    {
        return Err(EcsFault::new(
            "InvalidUsage",
            "The specified Usage is not valid.",
        ));
    }
    if optional(params, "InstanceType").is_some() {
        // The emulator has no instance types, so no image can be checked against one.
        return Err(EcsFault::new(
            "InvalidInstanceType.ValueNotSupported",
            "The specified InstanceType is not supported.",
        ));
    }
    for (n, key) in numbered(params, "Filter", Some("Key")) {
        if !FILTER_KEYS.contains(&key) {
            return Err(EcsFault::new(
                "InvalidFilterKey.NotFound",
                format!("The specified Filter.{n}.Key is not found."),
            ));
        }
    }
    let keys = numbered(params, "Tag", Some("Key"));
    let values = numbered(params, "Tag", Some("Value"));
    if keys.len() > MAX_TAGS
        || keys
            .iter()
            .chain(&values)
            .any(|(n, _)| *n == 0 || *n > MAX_TAGS)
    {
        return Err(EcsFault::new(
            "InvalidTagCount",
            format!("The number of tag filters exceeds {MAX_TAGS}."),
        ));
    }
    if values
        .iter()
        .any(|(n, _)| !keys.iter().any(|(k, _)| k == n))
    {
        return Err(EcsFault::new(
            "InvalidTag.Mismatch",
            "A tag value is given without its key.",
        ));
    }
    let tag_filters: Vec<(&str, Option<&str>)> = keys
        .iter()
        .map(|(n, key)| {
            let value = values.iter().find(|(m, _)| m == n).map(|(_, v)| *v);
            (*key, value)
        })
        .collect();
    let (page_number, page_size) = page(params)?;
    let dry_run = flag(params, "DryRun")?;
    if dry_run {
        return Err(EcsFault::dry_run());
    }
    // Only custom images exist here: asking for system, shared or marketplace images finds none.
    let own_images_visible = alias.is_none_or(|alias| alias == "self");
    let name_filter = optional(params, "ImageName");
    let architecture = optional(params, "Architecture");
    let os_type = optional(params, "OSType");
    let resource_group = optional(params, "ResourceGroupId");
    let matched: Vec<&ImageRec> = world
        .images_among(account, region, &ids)
        .into_iter()
        .filter(|_| own_images_visible)
        .filter(|image| name_filter.is_none_or(|name| image.name.contains(name)))
        .filter(|image| architecture.is_none_or(|a| image.architecture == a))
        .filter(|image| os_type.is_none_or(|o| image.os_type == o))
        .filter(|image| resource_group.is_none_or(|g| image.resource_group_id == g))
        .filter(|image| {
            tag_filters.iter().all(|(key, value)| {
                image
                    .tags
                    .iter()
                    .any(|(k, v)| k == key && value.is_none_or(|value| v == value))
            })
        })
        .filter(|image| all_statuses || statuses.contains(&world.image_state(image, now).0))
        .collect();
    let total = matched.len();
    let images = matched
        .into_iter()
        .rev()
        // Saturating: page × size overflows for page numbers near `usize::MAX`, and a
        // page past the end is simply empty.
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|image| image_node(world, image, now))
        .collect();
    Ok(vec![
        ("RegionId", Node::s(region)),
        ("TotalCount", Node::i(total)),
        ("PageNumber", Node::i(page_number)),
        ("PageSize", Node::i(page_size)),
        ("Images", Node::Set("Image", images)),
    ])
}

pub(super) fn delete_image(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let (region, image_id) = region_and(world, params, "ImageId")?;
    flag(params, "Force")?;
    let dry_run = flag(params, "DryRun")?;
    world.delete_image(account, &region, image_id, now, dry_run)?;
    Ok(Vec::new())
}

pub(super) fn modify_image_attribute(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let (region, image_id) = region_and(world, params, "ImageId")?;
    check_name_and_description(params)?;
    let image = world
        .image(account, &region, image_id)
        .ok_or_else(EcsFault::image_not_found)?;
    if world.image_state(image, now).0 == "CreateFailed" {
        return Err(EcsFault::new(
            "IncorrectImageStatus",
            "The specified image is not available.",
        ));
    }
    if let Some(name) = params.get("ImageName")
        && world
            .images_of(account, &region)
            .any(|other| other.id != image_id && other.name == name)
    {
        return Err(EcsFault::new(
            "InvalidImageName.Duplicated",
            "The destination image is exist.",
        ));
    }
    if let Some(image) = world.image_mut(account, &region, image_id) {
        if let Some(name) = params.get("ImageName") {
            image.name = name.to_string();
        }
        if let Some(description) = params.get("Description") {
            image.description = description.to_string();
        }
    }
    Ok(Vec::new())
}
