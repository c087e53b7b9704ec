//! Accounts: which exist, their status, RAM roles, quotas and closed regions, partial updates
//! from the admin API, the image and snapshot quota checks, and the resource groups every account
//! may use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{World, yes};
use crate::emulator::actions::EcsFault;

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
    /// Custom images the account may hold in one region, by region (`QuotaExceed.Image`), on top
    /// of [`Self::image_quota`]; a region not listed has no limit of its own.
    #[serde(default)]
    pub region_image_quotas: BTreeMap<String, u32>,
    /// Regions not open to the account: a copy into one is `RegionNotSupportCopy`.
    #[serde(default)]
    pub closed_regions: Vec<String>,
    /// Accounts one image may be shared with (`QuotaExceed.ShareImageUser`).
    #[serde(default = "default_share_quota")]
    pub share_quota: u32,
}

fn default_image_quota() -> u32 {
    DEFAULT_IMAGE_QUOTA
}

fn default_snapshot_quota() -> u32 {
    DEFAULT_SNAPSHOT_QUOTA
}

fn default_share_quota() -> u32 {
    DEFAULT_SHARE_QUOTA
}

/// ECS's default custom image quota per region is 100; the emulator counts per account.
pub const DEFAULT_IMAGE_QUOTA: u32 = 100;
/// Snapshot quota per account.
pub const DEFAULT_SNAPSHOT_QUOTA: u32 = 1000;
/// ECS shares one custom image with at most 50 accounts (`ModifyImageSharePermission`).
pub const DEFAULT_SHARE_QUOTA: u32 = 50;

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            import_role: true,
            extra_roles: Vec::new(),
            image_quota: DEFAULT_IMAGE_QUOTA,
            snapshot_quota: DEFAULT_SNAPSHOT_QUOTA,
            status: AccountStatus::Active,
            region_image_quotas: BTreeMap::new(),
            closed_regions: Vec::new(),
            share_quota: DEFAULT_SHARE_QUOTA,
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
    /// See [`AccountSettings::region_image_quotas`].
    pub region_image_quotas: Option<BTreeMap<String, u32>>,
    /// See [`AccountSettings::closed_regions`].
    pub closed_regions: Option<Vec<String>>,
    /// See [`AccountSettings::share_quota`].
    pub share_quota: Option<u32>,
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
        if let Some(value) = patch.region_image_quotas {
            settings.region_image_quotas = value;
        }
        if let Some(value) = patch.closed_regions {
            settings.closed_regions = value;
        }
        if let Some(value) = patch.share_quota {
            settings.share_quota = value;
        }
        self.accounts.insert(account.to_string(), settings.clone());
        settings
    }

    /// Makes an account exist (one that owns an AccessKey, say) without settings of its own.
    pub fn add_account(&mut self, account: &str) {
        self.known_accounts.insert(account.to_string());
    }

    /// Whether an account exists: it owns a key or has settings of its own. Images can be shared
    /// only with accounts that exist (`InvalidAccount.NotFound` otherwise).
    pub fn account_exists(&self, account: &str) -> bool {
        self.known_accounts.contains(account) || self.accounts.contains_key(account)
    }

    /// Whether one more image with `disks` disks fits the account's quotas in `region`: images in
    /// all regions and in that region (`QuotaExceed.Image`), snapshots, one per disk
    /// (`QuotaExceed.Snapshot`).
    pub(super) fn check_image_quotas(
        &self,
        account: &str,
        region: &str,
        disks: usize,
    ) -> Result<(), EcsFault> {
        let settings = self.account(account);
        let owned = self
            .images
            .values()
            .filter(|image| image.account == account);
        let (images, in_region, snapshots) = owned.fold(
            (0u64, 0u64, 0u64),
            |(images, in_region, snapshots), image| {
                (
                    images + 1,
                    in_region + u64::from(image.region == region),
                    snapshots + image.disks.len() as u64,
                )
            },
        );
        let region_full = settings
            .region_image_quotas
            .get(region)
            .is_some_and(|quota| in_region >= u64::from(*quota));
        if images >= u64::from(settings.image_quota) || region_full {
            return Err(EcsFault::new(
                "QuotaExceed.Image",
                "The Image Quota exceeds.",
            ));
        }
        if snapshots + disks as u64 > u64::from(settings.snapshot_quota) {
            return Err(EcsFault::new(
                "QuotaExceed.Snapshot",
                "The maximum number of snapshots is exceeded.",
            ));
        }
        Ok(())
    }
}
