//! `CopyImage` and `CancelCopyImage` on the world: the validated request, a copy's state computed
//! from its timestamps (`Creating` with rising progress in the destination region, then
//! `Available`), idempotency by `ClientToken`, and the checks that need state (the source, the
//! destination region, names and quotas).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::tasks::percent_done;
use super::{ImageRec, ImportTiming, World};
use crate::emulator::actions::EcsFault;

/// How long copies take by default, in emulated time: ECS copies the disks' snapshots between
/// regions, a few minutes for a small image.
pub fn default_copy_timing() -> ImportTiming {
    ImportTiming {
        base: SignedDuration::from_secs(60),
        per_gib: SignedDuration::from_secs(10),
    }
}

/// What an image made by `CopyImage` copies, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyRec {
    /// The source image (`m-…`), which may be deleted once the copy is done.
    pub source_image_id: String,
    /// The source's region.
    pub source_region: String,
    /// Start (emulated time).
    pub started: Timestamp,
    /// How long the copy takes (emulated time).
    pub duration: SignedDuration,
}

impl CopyRec {
    /// When the copy is `Available`.
    pub fn done_at(&self) -> Timestamp {
        self.started + self.duration
    }

    /// Whether the copy still runs at `now` (`CancelCopyImage` applies).
    pub fn is_running(&self, now: Timestamp) -> bool {
        now < self.done_at()
    }

    /// The copy's image status and progress at `now`.
    pub fn state(&self, now: Timestamp) -> (&'static str, u8) {
        if self.is_running(now) {
            ("Creating", percent_done(self.started, self.duration, now))
        } else {
            ("Available", 100)
        }
    }
}

/// A validated `CopyImage` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySpec {
    /// Region of the source image (`RegionId`).
    pub source_region: String,
    /// The source image.
    pub source_image_id: String,
    /// `DestinationRegionId`.
    pub destination_region: String,
    /// `DestinationImageName` (may be empty).
    pub name: String,
    /// `DestinationDescription`.
    pub description: String,
    /// Resource group of the copy (empty: the default group).
    pub resource_group_id: String,
    /// `Tag.N` of the copy.
    pub tags: Vec<(String, String)>,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// A fingerprint of every business parameter, to tell a retry from a different request.
    pub fingerprint: String,
    /// Validate only.
    pub dry_run: bool,
}

/// What a successful `CopyImage` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyResult {
    /// The copy (`m-…`), in the destination region.
    pub image_id: String,
    /// Whether this repeated an earlier request with the same `ClientToken`.
    pub replayed: bool,
}

/// An earlier `CopyImage` by `ClientToken`.
#[derive(Debug, Clone)]
pub(super) struct CopyTokenRec {
    fingerprint: String,
    image_id: String,
}

impl World {
    /// Sets how long copies take.
    pub fn set_copy_timing(&mut self, timing: ImportTiming) {
        self.copy_timing = timing;
    }

    /// Whether a copy of image `source_id` is still running at `now`.
    pub fn is_being_copied(&self, source_id: &str, now: Timestamp) -> bool {
        self.images.values().any(|image| {
            image
                .copy
                .as_ref()
                .is_some_and(|copy| copy.source_image_id == source_id && copy.is_running(now))
        })
    }

    /// Runs the checks of `CopyImage` that need the world, then creates the copy in the
    /// destination region, `Creating` until its duration has passed (a dry run answers
    /// `DryRunOperation` after every check passed).
    pub fn copy_image(
        &mut self,
        account: &str,
        spec: &CopySpec,
        now: Timestamp,
    ) -> Result<CopyResult, EcsFault> {
        let token_key = spec
            .client_token
            .as_ref()
            .map(|token| (account.to_string(), token.clone()));
        if !spec.dry_run
            && let Some(previous) = token_key.as_ref().and_then(|key| self.copy_tokens.get(key))
        {
            if previous.fingerprint != spec.fingerprint {
                return Err(EcsFault::new(
                    "IdempotentParameterMismatch",
                    "The request uses the same client token as a previous, but non-identical request.",
                ));
            }
            return Ok(CopyResult {
                image_id: previous.image_id.clone(),
                replayed: true,
            });
        }
        let source = self
            .image(account, &spec.source_region, &spec.source_image_id)
            .ok_or_else(EcsFault::image_not_found)?;
        if source
            .copy
            .as_ref()
            .is_some_and(|copy| copy.is_running(now))
        {
            return Err(EcsFault::new(
                "OperationDenied.ImageCopying",
                "The Image are coping.",
            ));
        }
        if self.image_state(source, now).0 != "Available" {
            return Err(EcsFault::new(
                "IncorrectImageStatus",
                "The image not available.",
            ));
        }
        if spec.destination_region == spec.source_region {
            return Err(EcsFault::new(
                "IncorrectDestinationRegion",
                "The destination region is not equal the target region.",
            ));
        }
        let closed = self
            .account(account)
            .closed_regions
            .contains(&spec.destination_region);
        let unsupported = [&spec.source_region, &spec.destination_region]
            .iter()
            .any(|id| self.region(id).is_none_or(|region| !region.copy_supported));
        if closed || unsupported {
            return Err(EcsFault::new(
                "RegionNotSupportCopy",
                "The region not support copy.",
            ));
        }
        if !spec.resource_group_id.is_empty() && !self.has_resource_group(&spec.resource_group_id) {
            return Err(EcsFault::new(
                "InvalidResourceGroup.NotFound",
                "The ResourceGroup provided does not exist in our records.",
            ));
        }
        if !spec.name.is_empty()
            && self
                .images_of(account, &spec.destination_region)
                .any(|image| image.name == spec.name)
        {
            return Err(EcsFault::new(
                "InvalidImageName.Duplicated",
                "The destination image is exist.",
            ));
        }
        let source = source.clone();
        self.check_image_quotas(account, &spec.destination_region, source.disks.len())?;
        if spec.dry_run {
            return Err(EcsFault::dry_run());
        }
        let gib: u64 = source.disks.iter().map(|disk| disk.size_gib).sum();
        let duration = self.copy_timing.base + self.copy_timing.per_gib.mul_f64(gib as f64);
        let image_id = format!("m-emu{:016x}", self.next_serial());
        self.images.insert(
            image_id.clone(),
            ImageRec {
                id: image_id.clone(),
                region: spec.destination_region.clone(),
                name: spec.name.clone(),
                description: spec.description.clone(),
                resource_group_id: spec.resource_group_id.clone(),
                tags: spec.tags.clone(),
                created: now,
                task_id: String::new(),
                copy: Some(CopyRec {
                    source_image_id: source.id.clone(),
                    source_region: source.region.clone(),
                    started: now,
                    duration,
                }),
                shared_with: Vec::new(),
                ..source
            },
        );
        if let Some(key) = token_key {
            self.copy_tokens.insert(
                key,
                CopyTokenRec {
                    fingerprint: spec.fingerprint.clone(),
                    image_id: image_id.clone(),
                },
            );
        }
        Ok(CopyResult {
            image_id,
            replayed: false,
        })
    }

    /// `CancelCopyImage`: a copy still running is deleted (the source stays as it is); a finished
    /// copy, or an image that is no copy, is refused.
    pub fn cancel_copy(
        &mut self,
        account: &str,
        region: &str,
        image_id: &str,
        now: Timestamp,
    ) -> Result<(), EcsFault> {
        let image = self
            .image(account, region, image_id)
            .ok_or_else(EcsFault::image_not_found)?;
        let Some(copy) = &image.copy else {
            return Err(EcsFault::new(
                "ImageCreatedNotFromCopy",
                "The specified image is not the target image of a copy action.",
            ));
        };
        if !copy.is_running(now) {
            return Err(EcsFault::new(
                "IncorrectImageStatus",
                "The image has completed copy.",
            ));
        }
        self.images.remove(image_id);
        Ok(())
    }
}
