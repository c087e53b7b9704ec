//! `DescribeRegions` (api-reference §6): the regions an account can use.

use serde::{Deserialize, Deserializer, Serialize};

use super::{Action, Wrapped, wrapped_list};
use crate::ecs::error::EcsError;
use crate::ecs::params::Params;

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

wrapped_list!(regions, RegionsWire, "Region", Region);
