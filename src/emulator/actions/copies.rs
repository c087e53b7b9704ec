//! Copies: `CopyImage` (the source's region in `RegionId`, the copy in `DestinationRegionId`) and
//! `CancelCopyImage` (the copy's region and id), with the checks and codes of their pages.

use jiff::Timestamp;

use super::import::{client_token, fingerprint};
use super::tags::{check_named_name_and_description, tags};
use super::{EcsFault, Fields, flag, optional, region_and, required};
use crate::ecs::params::Params;
use crate::emulator::render::Node;
use crate::emulator::world::{CopySpec, World};

fn copy_spec(world: &World, params: &Params) -> Result<CopySpec, EcsFault> {
    let source_region = required(params, "RegionId")?;
    if world.region(source_region).is_none() {
        return Err(EcsFault::new(
            "SourceRegion.NotFound",
            "The source region not found",
        ));
    }
    let image_id = required(params, "ImageId")?;
    // Optional on the page; without it the copy would land beside its source, which ECS refuses.
    let destination = optional(params, "DestinationRegionId").unwrap_or(source_region);
    if world.region(destination).is_none() {
        return Err(EcsFault::new(
            "DestinationRegion.NotFound",
            "The destination region not found",
        ));
    }
    let client_token = client_token(params)?;
    let dry_run = flag(params, "DryRun")?;
    check_named_name_and_description(params, "DestinationImageName", "DestinationDescription")?;
    let encrypted = flag(params, "Encrypted")?;
    if optional(params, "KMSKeyId").is_some() && !encrypted {
        return Err(EcsFault::new(
            "InvalidParameter.EncryptedIllegal",
            "The specified parameter Encrypted must be true when kmsKeyId is not empty.",
        ));
    }
    let tags = tags(params)?;
    Ok(CopySpec {
        source_region: source_region.to_string(),
        source_image_id: image_id.to_string(),
        destination_region: destination.to_string(),
        name: params
            .get("DestinationImageName")
            .unwrap_or_default()
            .to_string(),
        description: params
            .get("DestinationDescription")
            .unwrap_or_default()
            .to_string(),
        resource_group_id: params
            .get("ResourceGroupId")
            .unwrap_or_default()
            .to_string(),
        tags,
        client_token: client_token.map(str::to_string),
        fingerprint: fingerprint(params),
        dry_run,
    })
}

pub(super) fn copy_image(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let spec = copy_spec(world, params)?;
    let result = world.copy_image(account, &spec, now)?;
    Ok(vec![("ImageId", Node::s(result.image_id))])
}

pub(super) fn cancel_copy_image(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let (region, image_id) = region_and(world, params, "ImageId")?;
    world.cancel_copy(account, &region, image_id, now)?;
    Ok(Vec::new())
}
