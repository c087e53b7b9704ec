//! STS `GetCallerIdentity`: which Alibaba Cloud account a set of credentials belongs to.
//!
//! An image belongs to the account that imported it. Credentials may be rotated (a new AccessKey
//! of the same account is simply used), but credentials of another account must never be used to
//! follow, cancel or delete that image: in the other account the image does not exist, so a
//! deletion would "succeed" and leave the real image behind, unowned.

use serde::Deserialize;

/// The STS API version.
pub const STS_API_VERSION: &str = "2015-04-01";

/// STS's public endpoint, used when neither `--sts-endpoint` nor a loopback ECS endpoint says
/// otherwise.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";

/// What `GetCallerIdentity` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallerIdentity {
    /// The account the credentials belong to (its numeric id).
    pub account_id: String,
    /// The RAM user or role session.
    #[serde(default)]
    pub arn: String,
    /// `Account`, `RAMUser` or `AssumedRoleUser`.
    #[serde(default)]
    pub identity_type: String,
    /// STS request ID.
    #[serde(default)]
    pub request_id: String,
}
