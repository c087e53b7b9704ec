//! `spec.distribution` and what status says of it: copies of the imported image in other regions
//! (ECS `CopyImage`) and the accounts the image and every copy are shared with
//! (`ModifyImageSharePermission`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::image_import::{LastError, Phase};

/// Most copies one resource asks for.
pub const MAX_COPY_REGIONS: usize = 20;
/// Most accounts one image can be shared with (ECS's limit per image).
pub const MAX_SHARE_ACCOUNTS: usize = 50;

/// Where else the imported image is made available, once it is `Available`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Copies of the image in other regions, made with ECS `CopyImage` once the image is
    /// available (at most 20, each region once, never the image's own `regionId`). Adding a region
    /// copies; removing one deletes its copy (or keeps it, by `deletionPolicy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub regions: Vec<RegionCopy>,
    /// Alibaba Cloud account IDs that the image and every copy are shared with (at most 50, ECS's
    /// limit per image). Adding or removing an account changes the permissions in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub share_with: Vec<AccountId>,
}

/// An Alibaba Cloud account ID: digits only.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct AccountId(
    #[schemars(length(min = 5, max = 32), regex(pattern = r"^[0-9]+$"))] pub String,
);

/// One copy of the image in another region.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionCopy {
    /// The region of the copy, e.g. `cn-shanghai`; another than the image's own `regionId`.
    #[schemars(
        length(min = 2, max = 64),
        regex(pattern = r"^[a-z]{2,}(-[a-z0-9]+)+$")
    )]
    pub region_id: String,
    /// Name of the copy (the image's `imageName` when absent), with the same rules; editable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 128),
        regex(pattern = r"^[A-Za-z\p{Han}][A-Za-z0-9\p{Han}.:_-]*$")
    )]
    pub image_name: Option<String>,
    /// Description of the copy (the image's `description` when absent); editable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 256))]
    pub description: Option<String>,
    /// Encrypt the copy, with `kmsKeyId` or, without it, the region's default key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// KMS key of an encrypted copy; needs `encrypted: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub kms_key_id: Option<String>,
}

/// A copy as status records it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    /// The region of the copy.
    pub region_id: String,
    /// ID of the copy in that region (`m-…`), recorded as soon as ECS answers `CopyImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// `Pending` → `Importing` (copying) → `Available`, or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Copy progress in percent, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress: Option<u8>,
    /// When the operator started this copy (recorded before `CopyImage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// The `ClientToken` of this copy's `CopyImage`, recorded before the call: a retry after a
    /// crash (or on a stale view of this status) asks for the same copy, and ECS answers with
    /// it. A copy made again (gone from its region, or refused before) gets the next token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub client_token: Option<String>,
    /// The last error of this copy, with the ECS code; the other regions carry on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

impl Distribution {
    /// Whether a copy in `region_id` is wanted (by `distribution`, when the spec has one).
    pub fn wants(distribution: Option<&Self>, region_id: &str) -> bool {
        distribution.is_some_and(|d| d.regions.iter().any(|r| r.region_id == region_id))
    }

    /// The account IDs to share with, sorted, each once.
    pub fn accounts(&self) -> Vec<String> {
        let mut accounts: Vec<String> = self.share_with.iter().map(|a| a.0.clone()).collect();
        accounts.sort();
        accounts.dedup();
        accounts
    }
}

/// CEL rule of `spec`: no copy in the image's own region.
pub fn not_the_own_region() -> kube::core::Rule {
    kube::core::Rule::new(
        "!has(self.distribution) || !has(self.distribution.regions) || \
         self.distribution.regions.all(r, r.regionId != self.regionId)",
    )
    .message("distribution.regions repeats the image's own regionId: the image is already there")
    .reason(kube::core::Reason::FieldValueInvalid)
}

/// CEL rule of `spec`: one copy per region, each account once.
pub fn each_once() -> kube::core::Rule {
    kube::core::Rule::new(
        "!has(self.distribution) || \
         ((!has(self.distribution.regions) || self.distribution.regions.all(r, \
            self.distribution.regions.exists_one(s, s.regionId == r.regionId))) && \
          (!has(self.distribution.shareWith) || self.distribution.shareWith.all(a, \
            self.distribution.shareWith.exists_one(b, b == a))))",
    )
    .message(
        "distribution names a region or an account twice: one copy per region, each account once",
    )
    .reason(kube::core::Reason::FieldValueInvalid)
}

/// CEL rule of `spec`: a KMS key only for an encrypted copy.
pub fn key_needs_encryption() -> kube::core::Rule {
    kube::core::Rule::new(
        "!has(self.distribution) || !has(self.distribution.regions) || \
         self.distribution.regions.all(r, !has(r.kmsKeyId) || (has(r.encrypted) && r.encrypted))",
    )
    .message(
        "distribution.regions: kmsKeyId needs encrypted: true (without a key, the region's \
         default key encrypts)",
    )
    .reason(kube::core::Reason::FieldValueInvalid)
}
