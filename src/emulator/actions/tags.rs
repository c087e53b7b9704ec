//! Names, descriptions and tags: the syntax checks that `ImportImage`, `ModifyImageAttribute` and
//! the tag actions share, and the tag actions themselves, `TagResources` and `UntagResources`.

use super::{EcsFault, Fields, flag, numbered, region, required};
use crate::ecs::api::MAX_TAGS;
use crate::ecs::params::Params;
use crate::emulator::world::World;

fn has_url(text: &str) -> bool {
    text.contains("http://") || text.contains("https://")
}

fn valid_image_name(name: &str) -> bool {
    let count = name.chars().count();
    (2..=128).contains(&count)
        && name.chars().next().is_some_and(char::is_alphabetic)
        && !name.starts_with("acs:")
        && !name.starts_with("aliyun")
        && !has_url(name)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | ':' | '_' | '-'))
}

pub(super) fn check_name_and_description(params: &Params) -> Result<(), EcsFault> {
    check_named_name_and_description(params, "ImageName", "Description")
}

/// The image name and description rules, for parameters of other names (`CopyImage`'s
/// `DestinationImageName`, `DestinationDescription`).
pub(super) fn check_named_name_and_description(
    params: &Params,
    name_param: &str,
    description_param: &str,
) -> Result<(), EcsFault> {
    if let Some(name) = params.get(name_param)
        && !valid_image_name(name)
    {
        return Err(EcsFault::new(
            "InvalidImageName.Malformed",
            "The specified destination Image name is wrongly formed.",
        ));
    }
    if let Some(description) = params.get(description_param)
        && (!(2..=256).contains(&description.chars().count())
            || description.starts_with("http://")
            || description.starts_with("https://"))
    {
        return Err(EcsFault::new(
            "InvalidDescription.Malformed",
            "The specified destination image description is wrongly formed.",
        ));
    }
    Ok(())
}

/// `Tag.N.Key` / `Tag.N.Value` (N = 1..20), checked.
pub(super) fn tags(params: &Params) -> Result<Vec<(String, String)>, EcsFault> {
    let keys = numbered(params, "Tag", Some("Key"));
    let values = numbered(params, "Tag", Some("Value"));
    if keys
        .iter()
        .chain(&values)
        .any(|(n, _)| *n == 0 || *n > MAX_TAGS)
    {
        return Err(EcsFault::new(
            "InvalidTagCount",
            format!("The number of tags exceeds {MAX_TAGS}."),
        ));
    }
    if let Some((n, _)) = values
        .iter()
        .find(|(n, _)| !keys.iter().any(|(k, _)| k == n))
    {
        return Err(EcsFault::new(
            "InvalidTagKey.Malformed",
            format!("Tag.{n}.Value is given without Tag.{n}.Key."),
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(keys.len());
    for (n, key) in keys {
        if key.is_empty()
            || key.chars().count() > 128
            || has_url(key)
            || key.starts_with("acs:")
            || key.starts_with("aliyun")
        {
            return Err(EcsFault::new(
                "InvalidTagKey.Malformed",
                format!("The specified Tag.{n}.Key is wrongly formed."),
            ));
        }
        let value = values
            .iter()
            .find(|(m, _)| *m == n)
            .map_or("", |(_, value)| *value);
        if value.chars().count() > 128 || value.starts_with("acs:") || has_url(value) {
            return Err(EcsFault::new(
                "InvalidTagValue.Malformed",
                format!("The specified Tag.{n}.Value is wrongly formed."),
            ));
        }
        if out
            .iter()
            .any(|(existing, _)| existing.eq_ignore_ascii_case(key))
        {
            return Err(EcsFault::new(
                "TagKey.Duplication",
                "The tag keys must be unique (case-insensitive).",
            ));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

fn tagged_images(
    world: &World,
    account: &str,
    region: &str,
    params: &Params,
) -> Result<Vec<String>, EcsFault> {
    let resource_type = required(params, "ResourceType")?;
    if !resource_type.eq_ignore_ascii_case("image") {
        return Err(EcsFault::new(
            "InvalidResourceType.NotFound",
            format!("The resource type {resource_type} is not supported here."),
        ));
    }
    let ids: Vec<String> = numbered(params, "ResourceId", None)
        .into_iter()
        .map(|(_, id)| id.to_string())
        .collect();
    if ids.is_empty() {
        return Err(EcsFault::missing("ResourceId.1"));
    }
    if ids.len() > crate::ecs::api::MAX_TAG_RESOURCES {
        return Err(EcsFault::invalid("ResourceId"));
    }
    if let Some(missing) = ids
        .iter()
        .find(|id| world.image(account, region, id).is_none())
    {
        return Err(EcsFault::new(
            "InvalidResourceId.NotFound",
            format!("The specified resource {missing} is not found."),
        ));
    }
    Ok(ids)
}

pub(super) fn tag_resources(
    world: &mut World,
    account: &str,
    params: &Params,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let ids = tagged_images(world, account, &region, params)?;
    let tags = tags(params)?;
    if tags.is_empty() {
        return Err(EcsFault::missing("Tag.1.Key"));
    }
    for id in &ids {
        if let Some(image) = world.image(account, &region, id) {
            let mut merged = image.tags.clone();
            for (key, value) in &tags {
                match merged.iter_mut().find(|(k, _)| k == key) {
                    Some(existing) => existing.1 = value.clone(),
                    None => merged.push((key.clone(), value.clone())),
                }
            }
            if merged.len() > MAX_TAGS {
                return Err(EcsFault::new(
                    "InvalidTagCount",
                    format!("A resource can have at most {MAX_TAGS} tags."),
                ));
            }
        }
    }
    for id in &ids {
        if let Some(image) = world.image_mut(account, &region, id) {
            for (key, value) in &tags {
                match image.tags.iter_mut().find(|(k, _)| k == key) {
                    Some(existing) => existing.1 = value.clone(),
                    None => image.tags.push((key.clone(), value.clone())),
                }
            }
        }
    }
    Ok(Vec::new())
}

pub(super) fn untag_resources(
    world: &mut World,
    account: &str,
    params: &Params,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let ids = tagged_images(world, account, &region, params)?;
    let all = flag(params, "All")?;
    let keys: Vec<String> = numbered(params, "TagKey", None)
        .into_iter()
        .map(|(_, key)| key.to_string())
        .collect();
    if keys.len() > MAX_TAGS {
        return Err(EcsFault::invalid("TagKey"));
    }
    if keys.is_empty() && !all {
        return Err(EcsFault::missing("TagKey.1"));
    }
    for id in &ids {
        if let Some(image) = world.image_mut(account, &region, id) {
            image.tags.retain(|(key, _)| !all && !keys.contains(key));
        }
    }
    Ok(Vec::new())
}
