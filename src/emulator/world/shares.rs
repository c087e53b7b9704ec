//! Shares: the accounts a custom image is shared with (`ModifyImageSharePermission`,
//! `DescribeImageSharePermission`), which must exist, and which keep the image from deletion.

use jiff::Timestamp;
use serde::Serialize;

use super::World;
use crate::emulator::actions::EcsFault;

/// One account an image is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareRec {
    /// The account (`AliyunId`).
    pub account: String,
    /// When it was shared (emulated time).
    pub at: Timestamp,
}

impl World {
    /// The accounts image `image_id` of `account` in `region` is shared with, oldest first.
    pub fn shares(
        &self,
        account: &str,
        region: &str,
        image_id: &str,
    ) -> Result<&[ShareRec], EcsFault> {
        self.image(account, region, image_id)
            .map(|image| image.shared_with.as_slice())
            .ok_or_else(EcsFault::image_not_found)
    }

    /// `ModifyImageSharePermission`: unshares `remove`, then shares with `add`, all or nothing.
    /// Every account named must exist and be another than the owner; an image is shared only once
    /// it is `Available`, with at most the owner's share quota of accounts.
    pub fn modify_shares(
        &mut self,
        account: &str,
        region: &str,
        image_id: &str,
        add: &[&str],
        remove: &[&str],
        now: Timestamp,
    ) -> Result<(), EcsFault> {
        let image = self
            .image(account, region, image_id)
            .ok_or_else(EcsFault::image_not_found)?;
        if self.image_state(image, now).0 != "Available" {
            return Err(EcsFault::new(
                "IncorrectImageStatus",
                "The specified image is not available.",
            ));
        }
        for other in add.iter().chain(remove) {
            if *other == account {
                return Err(EcsFault::new(
                    "InvalidAccount.Forbbiden",
                    "The specified Account does not yourself.",
                ));
            }
            if !self.account_exists(other) {
                return Err(EcsFault::new(
                    "InvalidAccount.NotFound",
                    "The specified parameter \"AddAccount.n\" or \"RemoveAccount.n\" does not exist.",
                ));
            }
        }
        let mut shared = image.shared_with.clone();
        shared.retain(|share| !remove.contains(&share.account.as_str()));
        for other in add {
            if !shared.iter().any(|share| share.account == *other) {
                shared.push(ShareRec {
                    account: (*other).to_string(),
                    at: now,
                });
            }
        }
        if shared.len() > self.account(account).share_quota as usize {
            return Err(EcsFault::new(
                "QuotaExceed.ShareImageUser",
                "The shared Image user Quota exceeds.",
            ));
        }
        if let Some(image) = self.image_mut(account, region, image_id) {
            image.shared_with = shared;
        }
        Ok(())
    }
}
