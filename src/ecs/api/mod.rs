//! Typed requests and responses of the ECS actions this operator calls (api-reference §1–§3, §6).
//!
//! Each request knows its action name and turns itself into flat RPC parameters through
//! [`Params`]' flattening helpers, the one place `Name.N.Field` is spelled. Enum-like values
//! (architecture, platform…) stay strings here: ECS adds values over time, and the resource's
//! schema is where they are validated.
//!
//! Responses are read leniently where ECS is known to vary (`SupportCancel` as string or boolean,
//! `TaskSet` as object or array, sizes as numbers or strings, times with or without seconds).
//!
//! This file holds what every action shares: the API version and ECS's limits, the [`Action`]
//! trait, [`Acknowledged`], [`Tag`], and the lenient readers. Each concern has a file of its own,
//! re-exported here so every item keeps its `crate::ecs::api::X` path: `images.rs` (images and
//! their tags), `tasks.rs` (import tasks), `import.rs` (`ImportImage`), `copies.rs` (`CopyImage`,
//! `CancelCopyImage`), `shares.rs` (`ModifyImageSharePermission`, `DescribeImageSharePermission`)
//! and `regions.rs` (`DescribeRegions`). A new action gets its own file beside them, a `mod` line
//! and a `pub use` line here.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::EcsError;
use super::params::Params;

mod copies;
mod images;
mod import;
mod regions;
mod shares;
mod tasks;

pub use copies::*;
pub use images::*;
pub use import::*;
pub use regions::*;
pub use shares::*;
pub use tasks::*;

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
/// `ModifyImageSharePermission` takes at most this many `AddAccount.N` and as many
/// `RemoveAccount.N`; ECS ignores the rest.
pub const MAX_SHARE_ACCOUNTS_PER_CALL: usize = 10;
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

/// The parameters of a request about one resource: `RegionId` and `name` = `id`
/// (`ImageId`, `TaskId`).
fn region_and(region: &str, name: &str, id: &str) -> Params {
    let mut params = Params::new();
    params.set("RegionId", region);
    params.set(name, id);
    params
}

/// `PageNumber` and `PageSize`, the size capped at ECS's 100.
fn set_page(params: &mut Params, number: Option<u32>, size: Option<u32>) {
    params.set_opt("PageNumber", number);
    params.set_opt(
        "PageSize",
        size.map(|size| size.min(MAX_IDS_PER_CALL as u32)),
    );
}

fn check_client_token(token: Option<&String>) -> Result<(), EcsError> {
    if let Some(token) = token
        && (token.is_empty() || token.len() > MAX_CLIENT_TOKEN_LEN || !token.is_ascii())
    {
        return Err(EcsError::InvalidRequest(format!(
            "ClientToken must be 1 to {MAX_CLIENT_TOKEN_LEN} ASCII characters"
        )));
    }
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

// Each file reads its own lists with `wrapped_list!`, next to the type it fills.
use wrapped_list;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

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
