//! Accounts: their status, RAM roles and quotas, partial updates from the admin API, and the
//! resource groups every account may use.

use serde::{Deserialize, Serialize};

use super::{World, yes};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Everything allowed.
    #[default]
    Active,
    /// Image import not enabled for the account: `Forbbiden` (ECS's spelling).
    ImportForbidden,
    /// Not on the import allow-list: `UserNotInTheWhiteList`.
    NotWhitelisted,
    /// Overdue payment: `Account.Arrearage`.
    Arrears,
    /// OSS not activated: `InvalidAccountStatus.OSSDisabled`.
    OssDisabled,
}

/// Per-account settings; every AccessKey belongs to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Whether `AliyunECSImageImportDefaultRole` exists (`NoSetRoletoECSServiceAcount` otherwise).
    #[serde(default = "yes")]
    pub import_role: bool,
    /// Other RAM roles ECS may assume for imports (`RoleName`).
    #[serde(default)]
    pub extra_roles: Vec<String>,
    /// Custom images the account may hold (`QuotaExceed.Image`).
    #[serde(default = "default_image_quota")]
    pub image_quota: u32,
    /// Snapshots the account may hold; every imported disk takes one (`QuotaExceed.Snapshot`).
    #[serde(default = "default_snapshot_quota")]
    pub snapshot_quota: u32,
    /// Whether the account may import at all.
    #[serde(default)]
    pub status: AccountStatus,
}

fn default_image_quota() -> u32 {
    DEFAULT_IMAGE_QUOTA
}

fn default_snapshot_quota() -> u32 {
    DEFAULT_SNAPSHOT_QUOTA
}

/// ECS's default custom image quota per region is 100; the emulator counts per account.
pub const DEFAULT_IMAGE_QUOTA: u32 = 100;
/// Snapshot quota per account.
pub const DEFAULT_SNAPSHOT_QUOTA: u32 = 1000;

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            import_role: true,
            extra_roles: Vec::new(),
            image_quota: DEFAULT_IMAGE_QUOTA,
            snapshot_quota: DEFAULT_SNAPSHOT_QUOTA,
            status: AccountStatus::Active,
        }
    }
}

/// A partial update of account settings (admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// See [`AccountSettings::import_role`].
    pub import_role: Option<bool>,
    /// See [`AccountSettings::extra_roles`].
    pub extra_roles: Option<Vec<String>>,
    /// See [`AccountSettings::image_quota`].
    pub image_quota: Option<u32>,
    /// See [`AccountSettings::snapshot_quota`].
    pub snapshot_quota: Option<u32>,
    /// See [`AccountSettings::status`].
    pub status: Option<AccountStatus>,
}

impl World {
    /// Adds a resource group every account may use.
    pub fn add_resource_group(&mut self, id: String) {
        if !self.resource_groups.contains(&id) {
            self.resource_groups.push(id);
        }
    }

    /// Whether a resource group exists.
    pub fn has_resource_group(&self, id: &str) -> bool {
        self.resource_groups.iter().any(|group| group == id)
    }

    /// Settings of an account (the defaults until changed).
    pub fn account(&self, account: &str) -> &AccountSettings {
        self.accounts.get(account).unwrap_or(&self.default_account)
    }

    /// Sets the defaults of accounts not configured otherwise.
    pub fn set_default_account(&mut self, settings: AccountSettings) {
        self.default_account = settings;
    }

    /// Replaces an account's settings.
    pub fn set_account(&mut self, account: &str, settings: AccountSettings) {
        self.accounts.insert(account.to_string(), settings);
    }

    /// Changes some of an account's settings and returns the result.
    pub fn patch_account(&mut self, account: &str, patch: AccountPatch) -> AccountSettings {
        let mut settings = self.account(account).clone();
        if let Some(value) = patch.import_role {
            settings.import_role = value;
        }
        if let Some(value) = patch.extra_roles {
            settings.extra_roles = value;
        }
        if let Some(value) = patch.image_quota {
            settings.image_quota = value;
        }
        if let Some(value) = patch.snapshot_quota {
            settings.snapshot_quota = value;
        }
        if let Some(value) = patch.status {
            settings.status = value;
        }
        self.accounts.insert(account.to_string(), settings.clone());
        settings
    }
}
