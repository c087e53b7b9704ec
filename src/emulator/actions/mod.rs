//! One function per ECS action: parameters in, answer fields or an ECS error out.
//!
//! Syntax checks (required parameters, enums, lengths, ranges) live here, in the order ECS
//! documents them; checks that need state (idempotency, OSS, quotas, names) live in
//! [`super::world`]. HTTP statuses come from the client's own table of codes
//! ([`crate::ecs::error::KNOWN_CODES`]), so client and emulator agree on every status.
//!
//! This file holds what every action shares: [`EcsFault`] and the status of each code, the list of
//! [`ACTIONS`], the dispatch table ([`run`]), and the parameter readers. Each concern has a file of
//! its own: `import.rs` (`ImportImage`), `tasks.rs` (`DescribeTasks`, `DescribeTaskAttribute`,
//! `CancelTask`), `images.rs` (`DescribeImages`, `DeleteImage`, `ModifyImageAttribute`), `tags.rs`
//! (the name, description and tag checks, `TagResources`, `UntagResources`), `copies.rs`
//! (`CopyImage`, `CancelCopyImage`), `shares.rs` (`ModifyImageSharePermission`,
//! `DescribeImageSharePermission`), `regions.rs` (`DescribeRegions`) and `sts.rs`
//! (`GetCallerIdentity`). A new action gets its own file, a line in [`ACTIONS`] and a line in
//! [`run`].

mod copies;
mod images;
mod import;
mod regions;
mod shares;
mod sts;
mod tags;
mod tasks;

use jiff::Timestamp;

use self::copies::{cancel_copy_image, copy_image};
use self::images::{delete_image, describe_images, modify_image_attribute};
use self::import::import_image;
use self::regions::describe_regions;
use self::shares::{describe_image_share_permission, modify_image_share_permission};
use self::sts::caller_identity;
use self::tags::{tag_resources, untag_resources};
use self::tasks::{cancel_task, describe_task_attribute, describe_tasks};
use super::render::Node;
use super::world::World;
use crate::ecs::api::MAX_IDS_PER_CALL;
use crate::ecs::error::known_code;
use crate::ecs::params::Params;

/// An ECS error answer: code and message; the HTTP status follows from the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsFault {
    /// ECS error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// Codes the emulator answers that the client's table does not list, with their statuses.
const EXTRA_CODES: &[(&str, u16)] = &[
    ("DryRunOperation", 400),
    ("InvalidResourceId.NotFound", 404),
    ("InvalidResourceType.NotFound", 404),
    ("InvalidTagKey.Malformed", 400),
    ("InvalidTagValue.Malformed", 400),
];

impl EcsFault {
    /// An error answer.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status ECS documents for this code (400 for codes nobody documents).
    pub fn http_status(&self) -> u16 {
        status_of(self.code)
    }

    /// `MissingParameter` naming the parameter, in ECS's words.
    pub fn missing(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!(
                "An input parameter \"{name}\" that is mandatory for processing the request is not supplied."
            ),
        )
    }

    /// `InvalidParameter` naming the parameter.
    pub fn invalid(name: &str) -> Self {
        Self::new(
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid."),
        )
    }

    /// An unknown region.
    pub fn invalid_region() -> Self {
        Self::new(
            "InvalidRegionId.NotFound",
            "The specified RegionId does not exist.",
        )
    }

    /// An unknown task.
    pub fn task_not_found() -> Self {
        Self::new(
            "InvalidTaskId.NotFound",
            "The specified \"TaskId\" is not found.",
        )
    }

    /// An unknown image.
    pub fn image_not_found() -> Self {
        Self::new(
            "InvalidImageId.NotFound",
            "The specified ImageId does not exist.",
        )
    }

    /// A dry run that passed every check.
    pub fn dry_run() -> Self {
        Self::new(
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set.",
        )
    }
}

/// The HTTP status of an ECS code: the client's table first, then the emulator's extras.
pub fn status_of(code: &str) -> u16 {
    if let Some(known) = known_code(code) {
        return known.http_status;
    }
    EXTRA_CODES
        .iter()
        .find(|(extra, _)| *extra == code)
        .map_or(400, |(_, status)| *status)
}

/// Every action the emulator serves.
pub const ACTIONS: &[&str] = &[
    "ImportImage",
    "DescribeTasks",
    "DescribeTaskAttribute",
    "CancelTask",
    "DescribeImages",
    "DeleteImage",
    "ModifyImageAttribute",
    "TagResources",
    "UntagResources",
    "CopyImage",
    "CancelCopyImage",
    "ModifyImageSharePermission",
    "DescribeImageSharePermission",
    "DescribeRegions",
    GET_CALLER_IDENTITY,
];

/// STS `GetCallerIdentity` (version 2015-04-01), served beside ECS so one emulator answers the
/// operator's account look-ups.
pub const GET_CALLER_IDENTITY: &str = "GetCallerIdentity";

/// The fields of a successful answer (the server adds `RequestId`).
pub type Fields = Vec<(&'static str, Node)>;

/// Runs one action for an account at emulated time `now`.
pub fn run(
    world: &mut World,
    account: &str,
    action: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    match action {
        "ImportImage" => import_image(world, account, params, now),
        "DescribeTasks" => describe_tasks(world, account, params, now),
        "DescribeTaskAttribute" => describe_task_attribute(world, account, params, now),
        "CancelTask" => cancel_task(world, account, params, now),
        "DescribeImages" => describe_images(world, account, params, now),
        "DeleteImage" => delete_image(world, account, params, now),
        "ModifyImageAttribute" => modify_image_attribute(world, account, params, now),
        "TagResources" => tag_resources(world, account, params),
        "UntagResources" => untag_resources(world, account, params),
        "CopyImage" => copy_image(world, account, params, now),
        "CancelCopyImage" => cancel_copy_image(world, account, params, now),
        "ModifyImageSharePermission" => modify_image_share_permission(world, account, params, now),
        "DescribeImageSharePermission" => {
            describe_image_share_permission(world, account, params, now)
        }
        "DescribeRegions" => describe_regions(world, params),
        GET_CALLER_IDENTITY => Ok(caller_identity(account)),
        _ => Err(EcsFault::new(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    }
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, EcsFault> {
    match params.get(name) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(EcsFault::missing(name)),
    }
}

fn optional<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).filter(|value| !value.is_empty())
}

/// `RegionId`, required and known.
fn region<'a>(world: &World, params: &'a Params) -> Result<&'a str, EcsFault> {
    let region = required(params, "RegionId")?;
    if world.region(region).is_none() {
        return Err(EcsFault::invalid_region());
    }
    Ok(region)
}

/// `RegionId`, required and known, and the required id of the resource acted on (`ImageId`…).
fn region_and<'a>(
    world: &World,
    params: &'a Params,
    name: &str,
) -> Result<(String, &'a str), EcsFault> {
    let region = region(world, params)?.to_string();
    Ok((region, required(params, name)?))
}

fn flag(params: &Params, name: &str) -> Result<bool, EcsFault> {
    match params.get(name) {
        None | Some("") => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(EcsFault::invalid(name)),
    }
}

fn page(params: &Params) -> Result<(usize, usize), EcsFault> {
    let number = match optional(params, "PageNumber") {
        None => 1,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| EcsFault::invalid("PageNumber"))?,
    };
    let size = match optional(params, "PageSize") {
        None => 10,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_IDS_PER_CALL).contains(n))
            .ok_or_else(|| EcsFault::invalid("PageSize"))?,
    };
    Ok((number, size))
}

fn ecs_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn comma_list(text: Option<&str>) -> Vec<&str> {
    text.map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// `Name.N` values for N = 1, 2, …, by N (not by the parameter's byte order).
fn numbered<'a>(params: &'a Params, prefix: &str, field: Option<&str>) -> Vec<(usize, &'a str)> {
    let mut found: Vec<(usize, &str)> = params
        .iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
            let index = match field {
                Some(field) => rest.strip_suffix(field)?.strip_suffix('.')?,
                None => rest,
            };
            Some((index.parse::<usize>().ok()?, value))
        })
        .collect();
    found.sort_by_key(|(index, _)| *index);
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn statuses_come_from_the_clients_table() {
        assert_eq!(status_of("QuotaExceed.Image"), 403);
        assert_eq!(status_of("InvalidImageId.NotFound"), 404);
        assert_eq!(status_of("DryRunOperation"), 400);
        assert_eq!(status_of("Forbbiden"), 400);
    }

    #[test]
    fn numbered_parameters_are_ordered_by_number() {
        let params: Params = [
            ("Tag.10.Key", "j"),
            ("Tag.2.Key", "b"),
            ("Tag.1.Key", "a"),
            ("Tag.1.Value", "x"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            numbered(&params, "Tag", Some("Key")),
            vec![(1, "a"), (2, "b"), (10, "j")]
        );
    }
}
