//! Regions: what each supports, and the default table.

use serde::{Deserialize, Serialize};

use super::{World, yes};

/// A region and what it supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionDef {
    /// e.g. `cn-hangzhou`.
    pub id: String,
    /// Name shown by `DescribeRegions`.
    #[serde(default)]
    pub local_name: String,
    /// Whether `ImportImage` works here (`InvalidRegion.NotSupport` otherwise).
    #[serde(default = "yes")]
    pub import_supported: bool,
    /// Whether `CopyImage` may copy into or out of this region (`RegionNotSupportCopy` otherwise).
    #[serde(default = "yes")]
    pub copy_supported: bool,
    /// Whether VMDK (an invitational preview) may be imported here
    /// (`InvalidImageFormat.RegionNotSupported` otherwise).
    #[serde(default)]
    pub vmdk_supported: bool,
}

/// The default regions: the public list of api-reference §6. Two of them are marked as not
/// supporting import nor copies (`me-east-1`, `ap-south-1`), a fiction that lets tests reach
/// `InvalidRegion.NotSupport` and `RegionNotSupportCopy`; a `regions:` list in the objects file
/// replaces the whole table.
pub fn default_regions() -> Vec<RegionDef> {
    const REGIONS: &[(&str, &str)] = &[
        ("cn-qingdao", "China (Qingdao)"),
        ("cn-beijing", "China (Beijing)"),
        ("cn-zhangjiakou", "China (Zhangjiakou)"),
        ("cn-huhehaote", "China (Hohhot)"),
        ("cn-wulanchabu", "China (Ulanqab)"),
        ("cn-hangzhou", "China (Hangzhou)"),
        ("cn-shanghai", "China (Shanghai)"),
        ("cn-shenzhen", "China (Shenzhen)"),
        ("cn-heyuan", "China (Heyuan)"),
        ("cn-guangzhou", "China (Guangzhou)"),
        ("cn-chengdu", "China (Chengdu)"),
        ("cn-hongkong", "China (Hong Kong)"),
        ("ap-northeast-1", "Japan (Tokyo)"),
        ("ap-southeast-1", "Singapore"),
        ("ap-southeast-2", "Australia (Sydney)"),
        ("ap-southeast-3", "Malaysia (Kuala Lumpur)"),
        ("ap-southeast-5", "Indonesia (Jakarta)"),
        ("ap-south-1", "India (Mumbai)"),
        ("us-west-1", "US (Silicon Valley)"),
        ("us-east-1", "US (Virginia)"),
        ("eu-central-1", "Germany (Frankfurt)"),
        ("eu-west-1", "UK (London)"),
        ("me-east-1", "UAE (Dubai)"),
    ];
    REGIONS
        .iter()
        .map(|(id, name)| RegionDef {
            id: (*id).to_string(),
            local_name: (*name).to_string(),
            import_supported: !matches!(*id, "me-east-1" | "ap-south-1"),
            copy_supported: !matches!(*id, "me-east-1" | "ap-south-1"),
            vmdk_supported: *id == "cn-hangzhou",
        })
        .collect()
}

impl World {
    /// All regions.
    pub fn regions(&self) -> &[RegionDef] {
        &self.regions
    }

    /// One region.
    pub fn region(&self, id: &str) -> Option<&RegionDef> {
        self.regions.iter().find(|region| region.id == id)
    }
}
