//! `ImportImage` on the world: the validated request, its result and the call log, how long
//! imports take, and the checks that need state (idempotency, the account, the RAM role, OSS,
//! names and quotas) before the image and its task are created.

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::Serialize;

use super::{AccountStatus, DiskRec, GIB, ImageRec, PlannedFailure, TaskRec, TokenRec, World};
use crate::emulator::actions::EcsFault;

/// The RAM role ECS assumes to read OSS when `RoleName` is not given.
pub const DEFAULT_IMPORT_ROLE: &str = "AliyunECSImageImportDefaultRole";

/// A validated `ImportImage` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSpec {
    /// Region.
    pub region: String,
    /// Name (may be empty).
    pub name: String,
    /// Description.
    pub description: String,
    /// Architecture.
    pub architecture: String,
    /// OS type.
    pub os_type: String,
    /// Platform.
    pub platform: String,
    /// Boot mode.
    pub boot_mode: String,
    /// License type.
    pub license_type: String,
    /// RAM role for reading OSS.
    pub role_name: String,
    /// Resource group.
    pub resource_group_id: String,
    /// NVMe support.
    pub nvme_support: String,
    /// IMDS support.
    pub imds_support: String,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Disks as requested.
    pub disks: Vec<DiskSpec>,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// A fingerprint of every business parameter, to tell a retry from a different request.
    pub fingerprint: String,
    /// Validate only.
    pub dry_run: bool,
}

/// One requested disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSpec {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub object: String,
    /// Declared format, uppercase; `None` means detect.
    pub format: Option<String>,
    /// Requested size in GiB.
    pub size_gib: Option<u64>,
    /// Device name.
    pub device: Option<String>,
}

/// What a successful `ImportImage` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportResult {
    /// `m-…`.
    pub image_id: String,
    /// `t-…`.
    pub task_id: String,
    /// Whether this repeated an earlier request with the same `ClientToken`.
    pub replayed: bool,
}

/// A record of one `ImportImage` call, for the stats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCall {
    /// Account.
    pub account: String,
    /// Region asked for.
    pub region: String,
    /// `ClientToken`, if any.
    pub client_token: Option<String>,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// The image created or returned.
    pub image_id: Option<String>,
    /// The task created or returned.
    pub task_id: Option<String>,
    /// `created`, `replayed`, or the error code.
    pub outcome: String,
    /// When the call was served, in emulated time (a created task starts at this instant).
    pub at: Timestamp,
    /// When the call was served, by the wall clock (emulated time runs faster; this is for
    /// measuring real latencies such as resource created → `ImportImage` received).
    pub received_at: Timestamp,
}

/// How long imports take, in emulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportTiming {
    /// Fixed part of every import.
    pub base: SignedDuration,
    /// Added per GiB of object data.
    pub per_gib: SignedDuration,
}

impl Default for ImportTiming {
    fn default() -> Self {
        // About what ECS takes for small images: a few minutes, longer for larger files.
        Self {
            base: SignedDuration::from_secs(60),
            per_gib: SignedDuration::from_secs(30),
        }
    }
}

/// The import log keeps this many calls, so a long benchmark cannot grow it without bound.
const MAX_IMPORT_CALLS: usize = 100_000;

impl World {
    /// Share of new imports that will fail with `ImportImageFailed`.
    pub fn set_import_failure_rate(&mut self, rate: f64) {
        self.import_failure_rate = rate.clamp(0.0, 1.0);
    }

    /// The share set by [`Self::set_import_failure_rate`].
    pub fn import_failure_rate(&self) -> f64 {
        self.import_failure_rate
    }

    /// Every `ImportImage` call so far (the newest [`MAX_IMPORT_CALLS`]).
    pub fn import_calls(&self) -> Vec<ImportCall> {
        self.import_calls.iter().cloned().collect()
    }

    /// Records an `ImportImage` call.
    pub fn record_import_call(&mut self, call: ImportCall) {
        if self.import_calls.len() >= MAX_IMPORT_CALLS {
            self.import_calls.pop_front();
        }
        self.import_calls.push_back(call);
    }

    /// Runs the checks of `ImportImage` that need the world, then creates the image and its task
    /// (unless it is a dry run, which answers `DryRunOperation` after every check passed).
    ///
    /// Parameter syntax is checked by the caller; this checks what depends on state: idempotency,
    /// the account, the RAM role, OSS, names and quotas.
    pub fn import(
        &mut self,
        account: &str,
        spec: &ImportSpec,
        now: Timestamp,
    ) -> Result<ImportResult, EcsFault> {
        let settings = self.account(account).clone();
        match settings.status {
            AccountStatus::Active => {}
            AccountStatus::ImportForbidden => {
                return Err(EcsFault::new(
                    "Forbbiden",
                    "User not authorized to operate on the specified resource",
                ));
            }
            AccountStatus::NotWhitelisted => {
                return Err(EcsFault::new(
                    "UserNotInTheWhiteList",
                    "The user is not in the white list of image import.",
                ));
            }
            AccountStatus::Arrears => {
                return Err(EcsFault::new(
                    "Account.Arrearage",
                    "Your account has an outstanding payment.",
                ));
            }
            AccountStatus::OssDisabled => {
                return Err(EcsFault::new(
                    "InvalidAccountStatus.OSSDisabled",
                    "OSS is not activated for this account.",
                ));
            }
        }
        if !spec.dry_run
            && let Some(token) = &spec.client_token
            && let Some(previous) = self.tokens.get(&(account.to_string(), token.clone()))
        {
            if previous.fingerprint != spec.fingerprint {
                return Err(EcsFault::new(
                    "IdempotentParameterMismatch",
                    "The request uses the same client token as a previous, but non-identical request.",
                ));
            }
            return Ok(ImportResult {
                image_id: previous.image_id.clone(),
                task_id: previous.task_id.clone(),
                replayed: true,
            });
        }
        if !spec.resource_group_id.is_empty() && !self.has_resource_group(&spec.resource_group_id) {
            return Err(EcsFault::new(
                "InvalidResourceGroup.NotFound",
                "The ResourceGroup provided does not exist in our records.",
            ));
        }
        let role_ok = if spec.role_name == DEFAULT_IMPORT_ROLE {
            settings.import_role
        } else {
            settings.extra_roles.contains(&spec.role_name)
        };
        if !role_ok {
            return Err(EcsFault::new(
                "NoSetRoletoECSServiceAcount",
                "You have not authorized ECS to access your OSS: create the RAM role \
                 AliyunECSImageImportDefaultRole and attach AliyunECSImageImportRolePolicy.",
            ));
        }
        let region = self
            .region(&spec.region)
            .cloned()
            .ok_or_else(EcsFault::invalid_region)?;
        let mut disks = Vec::with_capacity(spec.disks.len());
        let mut total_bytes = 0u64;
        let mut failure = None;
        for (index, disk) in spec.disks.iter().enumerate() {
            let object = self.check_object(&region, disk)?;
            total_bytes = total_bytes.saturating_add(object.size);
            let virtual_gib = object.virtual_gib();
            if let Some(size) = disk.size_gib
                && size < virtual_gib
            {
                return Err(EcsFault::new(
                    "InvalidImageSize",
                    format!(
                        "The specified \"DiskDeviceMapping.{}.DiskImageSize\" should be not less \
                         than system device size ({virtual_gib} GiB).",
                        index + 1
                    ),
                ));
            }
            if let Some(declared) = &disk.format
                && !declared.eq_ignore_ascii_case(&object.format)
                && failure.is_none()
            {
                failure = Some(PlannedFailure {
                    code: "InvalidImageFormat.Malformed",
                    message: format!(
                        "The image file {}/{} is not in the declared format {declared}.",
                        disk.bucket, disk.object
                    ),
                });
            }
            // A VHD file ends in a 512-byte footer; any other length is a damaged file.
            if object.format.eq_ignore_ascii_case("VHD")
                && object.size % 512 != 0
                && failure.is_none()
            {
                failure = Some(PlannedFailure {
                    code: "InvalidVHDImage.IncorrectSize",
                    message: format!(
                        "The size of the VHD file {}/{} is not a multiple of 512 bytes.",
                        disk.bucket, disk.object
                    ),
                });
            }
            disks.push(DiskRec {
                bucket: disk.bucket.clone(),
                object: disk.object.clone(),
                format: disk
                    .format
                    .clone()
                    .unwrap_or_else(|| object.format.to_ascii_uppercase()),
                size_gib: disk.size_gib.unwrap_or(virtual_gib),
                device: disk
                    .device
                    .clone()
                    .unwrap_or_else(|| format!("/dev/xvd{}", char::from(b'a' + index as u8))),
            });
        }
        if !spec.name.is_empty()
            && self
                .images_of(account, &spec.region)
                .any(|image| image.name == spec.name)
        {
            return Err(EcsFault::new(
                "InvalidImageName.Duplicated",
                "The destination image is exist.",
            ));
        }
        self.check_image_quotas(account, &spec.region, disks.len())?;
        if spec.dry_run {
            return Err(EcsFault::new(
                "DryRunOperation",
                "Request validation has been passed with DryRun flag set.",
            ));
        }
        if failure.is_none()
            && self.import_failure_rate > 0.0
            && self.rng.random_bool(self.import_failure_rate)
        {
            failure = Some(PlannedFailure {
                code: "ImportImageFailed",
                message: "Import image failed, please contact the administrator.".into(),
            });
        }
        let serial = self.next_serial();
        let image_id = format!("m-emu{serial:016x}");
        let task_id = format!("t-emu{serial:016x}");
        let gib = total_bytes as f64 / GIB as f64;
        let duration = self.timing.base + self.timing.per_gib.mul_f64(gib);
        self.tasks.insert(
            task_id.clone(),
            TaskRec {
                id: task_id.clone(),
                account: account.to_string(),
                region: spec.region.clone(),
                image_id: image_id.clone(),
                disks: disks.clone(),
                created: now,
                duration,
                failure,
                cancelled_at: None,
            },
        );
        self.images.insert(
            image_id.clone(),
            ImageRec {
                id: image_id.clone(),
                account: account.to_string(),
                region: spec.region.clone(),
                name: spec.name.clone(),
                description: spec.description.clone(),
                architecture: spec.architecture.clone(),
                os_type: spec.os_type.clone(),
                platform: spec.platform.clone(),
                boot_mode: spec.boot_mode.clone(),
                license_type: spec.license_type.clone(),
                resource_group_id: spec.resource_group_id.clone(),
                nvme_support: spec.nvme_support.clone(),
                imds_support: spec.imds_support.clone(),
                tags: spec.tags.clone(),
                disks,
                created: now,
                task_id: task_id.clone(),
                copy: None,
                shared_with: Vec::new(),
            },
        );
        if let Some(token) = &spec.client_token {
            self.tokens.insert(
                (account.to_string(), token.clone()),
                TokenRec {
                    fingerprint: spec.fingerprint.clone(),
                    image_id: image_id.clone(),
                    task_id: task_id.clone(),
                },
            );
        }
        Ok(ImportResult {
            image_id,
            task_id,
            replayed: false,
        })
    }
}
