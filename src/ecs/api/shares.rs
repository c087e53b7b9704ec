//! `ModifyImageSharePermission` and `DescribeImageSharePermission`: the accounts a custom image is
//! shared with, changed at most [`MAX_SHARE_ACCOUNTS_PER_CALL`] at a time and read by page.

use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Acknowledged, Action, MAX_SHARE_ACCOUNTS_PER_CALL, Wrapped, flexible_u64, region_and, set_page,
    wrapped_list,
};
use crate::ecs::error::EcsError;
use crate::ecs::params::Params;

/// `ModifyImageSharePermission`: share image `image_id` with `add_accounts` and unshare it from
/// `remove_accounts`, up to [`MAX_SHARE_ACCOUNTS_PER_CALL`] of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModifyImageSharePermissionRequest {
    /// Region of the image.
    pub region_id: String,
    /// `m-…`.
    pub image_id: String,
    /// Account IDs to share with (`AddAccount.N`).
    pub add_accounts: Vec<String>,
    /// Account IDs to unshare from (`RemoveAccount.N`).
    pub remove_accounts: Vec<String>,
}

impl Action for ModifyImageSharePermissionRequest {
    const NAME: &'static str = "ModifyImageSharePermission";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        // ECS silently ignores accounts past the tenth: refuse here rather than lose them.
        let most = self.add_accounts.len().max(self.remove_accounts.len());
        if most > MAX_SHARE_ACCOUNTS_PER_CALL {
            return Err(EcsError::InvalidRequest(format!(
                "{most} accounts given; ModifyImageSharePermission takes at most \
                 {MAX_SHARE_ACCOUNTS_PER_CALL} to add and {MAX_SHARE_ACCOUNTS_PER_CALL} to remove"
            )));
        }
        let mut params = region_and(&self.region_id, "ImageId", &self.image_id);
        params.set_string_list("AddAccount", self.add_accounts.iter().cloned());
        params.set_string_list("RemoveAccount", self.remove_accounts.iter().cloned());
        Ok(params)
    }
}

/// `DescribeImageSharePermission`: one page of the accounts an image is shared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeImageSharePermissionRequest {
    /// Region of the image.
    pub region_id: String,
    /// `m-…`.
    pub image_id: String,
    /// Page number, from 1.
    pub page_number: Option<u32>,
    /// Page size, 1–100 (ECS's default is 10).
    pub page_size: Option<u32>,
}

impl Action for DescribeImageSharePermissionRequest {
    const NAME: &'static str = "DescribeImageSharePermission";
    type Response = DescribeImageSharePermissionResponse;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        let mut params = region_and(&self.region_id, "ImageId", &self.image_id);
        set_page(&mut params, self.page_number, self.page_size);
        Ok(params)
    }
}

/// What `DescribeImageSharePermission` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeImageSharePermissionResponse {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// Region of the image.
    #[serde(default)]
    pub region_id: String,
    /// The image.
    #[serde(default)]
    pub image_id: String,
    /// Accounts shared with, in all pages.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub total_count: u64,
    /// This page.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub page_number: u64,
    /// Page size.
    #[serde(default, deserialize_with = "flexible_u64")]
    pub page_size: u64,
    /// The accounts on this page. Required, as `DescribeImages`' list is: an answer without it
    /// must not read as "shared with nobody".
    #[serde(rename = "Accounts", deserialize_with = "shared_accounts")]
    pub accounts: Vec<SharedAccount>,
    /// Groups shared with (`all` for a community image).
    #[serde(default, rename = "ShareGroups", deserialize_with = "share_groups")]
    pub share_groups: Vec<ShareGroup>,
}

/// An account an image is shared with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SharedAccount {
    /// The account ID.
    #[serde(default)]
    pub aliyun_id: String,
    /// When it was shared (newer answers only).
    #[serde(default)]
    pub shared_time: String,
}

/// A group an image is shared with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShareGroup {
    /// e.g. `all`.
    #[serde(default)]
    pub group: String,
}

wrapped_list!(
    shared_accounts,
    SharedAccountsWire,
    "Account",
    SharedAccount
);
wrapped_list!(share_groups, ShareGroupsWire, "ShareGroup", ShareGroup);

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn modify_share_permission_numbers_accounts_and_refuses_more_than_ecs_reads() {
        let mut request = ModifyImageSharePermissionRequest {
            region_id: "cn-hangzhou".into(),
            image_id: "m-1".into(),
            add_accounts: vec!["111".into(), "222".into()],
            remove_accounts: vec!["333".into()],
        };
        let params = request.params().unwrap();
        assert_eq!(
            params.iter().collect::<Vec<_>>(),
            [
                ("AddAccount.1", "111"),
                ("AddAccount.2", "222"),
                ("ImageId", "m-1"),
                ("RegionId", "cn-hangzhou"),
                ("RemoveAccount.1", "333"),
            ]
        );
        request.add_accounts = (0..11).map(|n| n.to_string()).collect();
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
    }

    #[test]
    fn reads_the_documented_answer_and_refuses_one_without_accounts() {
        let page: DescribeImageSharePermissionResponse = serde_json::from_str(
            r#"{"ShareGroups":{"ShareGroup":[{"Group":"all"}]},
                "Accounts":{"Account":[{"AliyunId":"1234567890"}]},
                "ImageId":"m-1","PageNumber":1,"PageSize":10,"RegionId":"cn-qingdao",
                "TotalCount":"1","RequestId":"R"}"#,
        )
        .unwrap();
        assert_eq!(page.accounts[0].aliyun_id, "1234567890");
        assert_eq!(page.share_groups[0].group, "all");
        assert_eq!(page.total_count, 1);
        let missing = serde_json::from_str::<DescribeImageSharePermissionResponse>(
            r#"{"RequestId":"R","TotalCount":0}"#,
        );
        assert!(missing.is_err());
    }
}
