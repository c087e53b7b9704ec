//! The emulated world: regions, OSS objects, accounts, images and import tasks.
//!
//! Pure logic without HTTP or clocks of its own: every method that depends on time takes `now`
//! (emulated time), and task and image states are computed from timestamps when asked, so nothing
//! ticks in the background and the answer for a given instant is exact.

use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::actions::EcsFault;

/// One GiB, the unit of disk sizes.
pub const GIB: u64 = 1 << 30;
/// The RAM role ECS assumes to read OSS when `RoleName` is not given.
pub const DEFAULT_IMPORT_ROLE: &str = "AliyunECSImageImportDefaultRole";
/// An injected import failure strikes at this share of the import's duration, so a poller sees
/// progress first and then the failure, as with a real corrupt file.
const FAILURE_AT_FRACTION: f64 = 0.4;

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
    /// Whether VMDK (an invitational preview) may be imported here
    /// (`InvalidImageFormat.RegionNotSupported` otherwise).
    #[serde(default)]
    pub vmdk_supported: bool,
}

fn yes() -> bool {
    true
}

/// The default regions: the public list of api-reference §6. Two of them are marked as not
/// supporting import (`me-east-1`, `ap-south-1`), a fiction that lets tests reach
/// `InvalidRegion.NotSupport`; a `regions:` list in the objects file replaces the whole table.
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
            vmdk_supported: *id == "cn-hangzhou",
        })
        .collect()
}

/// An object in OSS that an import can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssObject {
    /// Bucket name.
    pub bucket: String,
    /// Object key, e.g. `images/ubuntu.qcow2`.
    pub key: String,
    /// Region of the bucket.
    pub region: String,
    /// Size of the file in bytes (0 makes `InvalidOSSObject.Size`).
    #[serde(default)]
    pub size: u64,
    /// Virtual disk size in GiB (what the guest sees); 0 means the file size rounded up.
    #[serde(default)]
    pub virtual_size_gib: u64,
    /// Real format of the file: `RAW`, `VHD`, `QCOW2` or `VMDK`. An import that declares another
    /// format fails with `InvalidImageFormat.Malformed`.
    #[serde(default = "default_format")]
    pub format: String,
    /// `Standard` (default), `IA`, or `Archive` (needs a restore: `InvalidOSSObject.NeedRestore`).
    #[serde(default = "default_storage_class")]
    pub storage_class: String,
    /// Whether the import role may read it (`InvalidOSS.NotAuthorized` otherwise).
    #[serde(default = "yes")]
    pub readable: bool,
    /// Whether the bucket is KMS-encrypted (`InvalidOSSBucket.EncryptUnsupported`).
    #[serde(default)]
    pub encrypted: bool,
}

fn default_format() -> String {
    "RAW".into()
}

fn default_storage_class() -> String {
    "Standard".into()
}

impl OssObject {
    /// The virtual size in GiB, at least 1.
    pub fn virtual_gib(&self) -> u64 {
        if self.virtual_size_gib > 0 {
            self.virtual_size_gib
        } else {
            self.size.div_ceil(GIB).max(1)
        }
    }
}

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

/// One disk of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskRec {
    /// Source bucket.
    pub bucket: String,
    /// Source object.
    pub object: String,
    /// Format (as detected or declared).
    pub format: String,
    /// Disk size in GiB.
    pub size_gib: u64,
    /// Device name, e.g. `/dev/xvda`.
    pub device: String,
}

/// A custom image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRec {
    /// `m-…`.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Name (may be empty).
    pub name: String,
    /// Description.
    pub description: String,
    /// `x86_64`, `i386`, `arm64`.
    pub architecture: String,
    /// `linux` or `windows`.
    pub os_type: String,
    /// Platform.
    pub platform: String,
    /// `BIOS` or `UEFI`.
    pub boot_mode: String,
    /// License type.
    pub license_type: String,
    /// Resource group.
    pub resource_group_id: String,
    /// `Features.NvmeSupport`.
    pub nvme_support: String,
    /// `Features.ImdsSupport`.
    pub imds_support: String,
    /// Tags in insertion order; keys are unique.
    pub tags: Vec<(String, String)>,
    /// Disks; the first is the system disk.
    pub disks: Vec<DiskRec>,
    /// Creation time (emulated).
    pub created: Timestamp,
    /// The import task filling it.
    pub task_id: String,
}

/// Why a task will fail, decided when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFailure {
    /// ECS error code shown in the task's `OperationProgressSet`.
    pub code: &'static str,
    /// Its message.
    pub message: String,
}

/// An import task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRec {
    /// `t-…`.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// The image it fills.
    pub image_id: String,
    /// Disks being imported (copied from the image, which may be deleted before the task ends).
    pub disks: Vec<DiskRec>,
    /// Start (emulated time).
    pub created: Timestamp,
    /// How long the import takes (emulated time).
    pub duration: SignedDuration,
    /// Set when the import is doomed.
    pub failure: Option<PlannedFailure>,
    /// When `CancelTask` stopped it.
    pub cancelled_at: Option<Timestamp>,
}

/// A task's state at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status")]
pub enum TaskState {
    /// Running, with progress 0–99.
    Processing {
        /// Percent done.
        progress: u8,
    },
    /// Done; the image is `Available`.
    Finished {
        /// When it finished.
        at: Timestamp,
    },
    /// Failed; the image is `CreateFailed`.
    Failed {
        /// When it failed.
        at: Timestamp,
        /// Progress reached.
        progress: u8,
        /// Error code.
        code: &'static str,
        /// Error message.
        message: String,
    },
    /// Stopped by `CancelTask`; the image is `CreateFailed`.
    Cancelled {
        /// When it was cancelled.
        at: Timestamp,
        /// Progress reached.
        progress: u8,
    },
}

/// ECS's spelling of a cancelled task. Unconfirmed (api-reference §11.1); `Cancelled` is the
/// spelling the project's client parses, and it is terminal.
pub const TASK_STATUS_CANCELLED: &str = "Cancelled";

impl TaskState {
    /// `TaskStatus` as ECS shows it.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Processing { .. } => "Processing",
            Self::Finished { .. } => "Finished",
            Self::Failed { .. } => "Failed",
            Self::Cancelled { .. } => TASK_STATUS_CANCELLED,
        }
    }

    /// Percent done.
    pub fn progress(&self) -> u8 {
        match self {
            Self::Processing { progress }
            | Self::Failed { progress, .. }
            | Self::Cancelled { progress, .. } => *progress,
            Self::Finished { .. } => 100,
        }
    }

    /// When the task stopped, if it has.
    pub fn finished_at(&self) -> Option<Timestamp> {
        match self {
            Self::Processing { .. } => None,
            Self::Finished { at } | Self::Failed { at, .. } | Self::Cancelled { at, .. } => {
                Some(*at)
            }
        }
    }

    /// Whether `CancelTask` applies.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Processing { .. })
    }

    /// The image status this task state implies.
    pub fn image_status(&self) -> &'static str {
        match self {
            Self::Processing { .. } => "Creating",
            Self::Finished { .. } => "Available",
            Self::Failed { .. } | Self::Cancelled { .. } => "CreateFailed",
        }
    }
}

impl TaskRec {
    /// The state at `now`, from the timestamps alone.
    pub fn state(&self, now: Timestamp) -> TaskState {
        let progress_at = |at: Timestamp| -> u8 {
            let total = self.duration.as_secs_f64();
            if total <= 0.0 {
                return 100;
            }
            let done = at.duration_since(self.created).as_secs_f64() / total;
            // Truncation is intended: progress shows whole percents and reaches 100 only when done.
            (done * 100.0).clamp(0.0, 99.0) as u8
        };
        let failure_at = self
            .failure
            .as_ref()
            .map(|_| self.created + self.duration.mul_f64(FAILURE_AT_FRACTION));
        let finish_at = self.created + self.duration;
        let stop = [self.cancelled_at, failure_at, Some(finish_at)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(finish_at);
        if now < stop {
            return TaskState::Processing {
                progress: progress_at(now),
            };
        }
        match (&self.failure, self.cancelled_at) {
            (_, Some(at)) if at == stop => TaskState::Cancelled {
                at,
                progress: progress_at(at),
            },
            (Some(failure), _) if Some(stop) == failure_at => TaskState::Failed {
                at: stop,
                progress: progress_at(stop),
                code: failure.code,
                message: failure.message.clone(),
            },
            _ => TaskState::Finished { at: finish_at },
        }
    }
}

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

#[derive(Debug, Clone)]
struct TokenRec {
    fingerprint: String,
    image_id: String,
    task_id: String,
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

/// The whole emulated state.
#[derive(Debug)]
pub struct World {
    regions: Vec<RegionDef>,
    objects: BTreeMap<(String, String), OssObject>,
    resource_groups: Vec<String>,
    accounts: HashMap<String, AccountSettings>,
    default_account: AccountSettings,
    images: BTreeMap<String, ImageRec>,
    tasks: BTreeMap<String, TaskRec>,
    tokens: HashMap<(String, String), TokenRec>,
    import_calls: VecDeque<ImportCall>,
    next_id: u64,
    timing: ImportTiming,
    import_failure_rate: f64,
    rng: StdRng,
}

/// Resource groups every account has.
pub const DEFAULT_RESOURCE_GROUP: &str = "rg-default";
/// The import log keeps this many calls, so a long benchmark cannot grow it without bound.
const MAX_IMPORT_CALLS: usize = 100_000;

impl World {
    /// An empty world with these regions.
    pub fn new(regions: Vec<RegionDef>, timing: ImportTiming, seed: u64) -> Self {
        Self {
            regions,
            objects: BTreeMap::new(),
            resource_groups: vec![DEFAULT_RESOURCE_GROUP.to_string()],
            accounts: HashMap::new(),
            default_account: AccountSettings::default(),
            images: BTreeMap::new(),
            tasks: BTreeMap::new(),
            tokens: HashMap::new(),
            import_calls: VecDeque::new(),
            next_id: 1,
            timing,
            import_failure_rate: 0.0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Forgets images, tasks, tokens and the import log; keeps objects, regions and accounts.
    pub fn reset(&mut self) {
        self.images.clear();
        self.tasks.clear();
        self.tokens.clear();
        self.import_calls.clear();
    }

    /// All regions.
    pub fn regions(&self) -> &[RegionDef] {
        &self.regions
    }

    /// One region.
    pub fn region(&self, id: &str) -> Option<&RegionDef> {
        self.regions.iter().find(|region| region.id == id)
    }

    /// Adds or replaces an object.
    pub fn add_object(&mut self, object: OssObject) {
        self.objects
            .insert((object.bucket.clone(), object.key.clone()), object);
    }

    /// All objects.
    pub fn objects(&self) -> impl Iterator<Item = &OssObject> {
        self.objects.values()
    }

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

    /// One image, if the account owns it in that region.
    pub fn image(&self, account: &str, region: &str, id: &str) -> Option<&ImageRec> {
        self.images
            .get(id)
            .filter(|image| image.account == account && image.region == region)
    }

    /// One image for changing.
    pub fn image_mut(&mut self, account: &str, region: &str, id: &str) -> Option<&mut ImageRec> {
        self.images
            .get_mut(id)
            .filter(|image| image.account == account && image.region == region)
    }

    /// Images of an account in a region, oldest first.
    pub fn images_of<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
    ) -> impl Iterator<Item = &'a ImageRec> + 'a {
        self.images
            .values()
            .filter(move |image| image.account == account && image.region == region)
    }

    /// Images of an account in a region, oldest first: those named in `ids` (each looked up, so a
    /// batched poll of 100 ids costs 100 look-ups however many images exist), or all of them when
    /// `ids` is empty.
    pub fn images_among<'a>(
        &'a self,
        account: &str,
        region: &str,
        ids: &[&str],
    ) -> Vec<&'a ImageRec> {
        among(&self.images, ids, |image| {
            image.account == account && image.region == region
        })
    }

    /// Every image of every account (admin view).
    pub fn all_images(&self) -> impl Iterator<Item = &ImageRec> {
        self.images.values()
    }

    /// One task, if the account owns it in that region.
    pub fn task(&self, account: &str, region: &str, id: &str) -> Option<&TaskRec> {
        self.tasks
            .get(id)
            .filter(|task| task.account == account && task.region == region)
    }

    /// Tasks of an account in a region, oldest first: those named in `ids` (looked up), or all of
    /// them when `ids` is empty.
    pub fn tasks_among<'a>(
        &'a self,
        account: &str,
        region: &str,
        ids: &[&str],
    ) -> Vec<&'a TaskRec> {
        among(&self.tasks, ids, |task| {
            task.account == account && task.region == region
        })
    }

    /// Every task of every account (admin view).
    pub fn all_tasks(&self) -> impl Iterator<Item = &TaskRec> {
        self.tasks.values()
    }

    /// The status and progress of an image at `now`.
    pub fn image_state(&self, image: &ImageRec, now: Timestamp) -> (&'static str, u8) {
        match self.tasks.get(&image.task_id) {
            Some(task) => {
                let state = task.state(now);
                (state.image_status(), state.progress())
            }
            None => ("Available", 100),
        }
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
        let owned = self
            .images
            .values()
            .filter(|image| image.account == account);
        let (image_count, snapshot_count) = owned.fold((0u64, 0u64), |(images, snapshots), i| {
            (images + 1, snapshots + i.disks.len() as u64)
        });
        if image_count >= u64::from(settings.image_quota) {
            return Err(EcsFault::new(
                "QuotaExceed.Image",
                "The Image Quota exceeds.",
            ));
        }
        if snapshot_count + disks.len() as u64 > u64::from(settings.snapshot_quota) {
            return Err(EcsFault::new(
                "QuotaExceed.Snapshot",
                "The maximum number of snapshots is exceeded.",
            ));
        }
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
        let serial = self.next_id;
        self.next_id += 1;
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

    fn check_object(&self, region: &RegionDef, disk: &DiskSpec) -> Result<OssObject, EcsFault> {
        if disk.format.as_deref() == Some("VMDK") && !region.vmdk_supported {
            return Err(EcsFault::new(
                "InvalidImageFormat.RegionNotSupported",
                format!(
                    "The image format VMDK is not supported in region {}.",
                    region.id
                ),
            ));
        }
        let bucket_region = self
            .objects
            .values()
            .find(|object| object.bucket == disk.bucket)
            .map(|object| object.region.clone());
        match bucket_region {
            None => {
                return Err(EcsFault::new(
                    "InvalidOSSBucket.NotFound",
                    format!("The specified OSS bucket {} does not exist.", disk.bucket),
                ));
            }
            Some(bucket_region) if bucket_region != region.id => {
                return Err(EcsFault::new(
                    "InvalidOSSBucket.NotMatched",
                    format!(
                        "The OSS bucket {} is in {bucket_region}, not in the image's region {}.",
                        disk.bucket, region.id
                    ),
                ));
            }
            Some(_) => {}
        }
        let object = self
            .objects
            .get(&(disk.bucket.clone(), disk.object.clone()))
            .ok_or_else(|| {
                EcsFault::new(
                    "InvalidOSSObject.NotFound",
                    format!(
                        "The specified OSS object {}/{} does not exist.",
                        disk.bucket, disk.object
                    ),
                )
            })?;
        if object.encrypted {
            return Err(EcsFault::new(
                "InvalidOSSBucket.EncryptUnsupported",
                "Importing from an encrypted OSS bucket is not supported.",
            ));
        }
        if !object.readable {
            return Err(EcsFault::new(
                "InvalidOSS.NotAuthorized",
                "The import role is not authorized to read the OSS object.",
            ));
        }
        if object.storage_class.eq_ignore_ascii_case("Archive") {
            return Err(EcsFault::new(
                "InvalidOSSObject.NeedRestore",
                "The Archive object must be restored before it can be imported.",
            ));
        }
        if object.size == 0 {
            return Err(EcsFault::new(
                "InvalidOSSObject.Size",
                "The size of the specified OSS object is 0.",
            ));
        }
        Ok(object.clone())
    }

    /// `CancelTask`: stops a running import; its image becomes `CreateFailed`.
    pub fn cancel(
        &mut self,
        account: &str,
        region: &str,
        task_id: &str,
        now: Timestamp,
    ) -> Result<(), EcsFault> {
        let task = self
            .tasks
            .get_mut(task_id)
            .filter(|task| task.account == account && task.region == region)
            .ok_or_else(EcsFault::task_not_found)?;
        if !task.state(now).is_running() {
            return Err(EcsFault::new(
                "InvalidTaskId.IncorrectTaskStatus",
                "The specified task status is not invalid.",
            ));
        }
        task.cancelled_at = Some(now);
        Ok(())
    }

    /// `DeleteImage`: refused while the import runs.
    pub fn delete_image(
        &mut self,
        account: &str,
        region: &str,
        image_id: &str,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<(), EcsFault> {
        let image = self
            .image(account, region, image_id)
            .ok_or_else(EcsFault::image_not_found)?;
        let (status, _) = self.image_state(image, now);
        if status == "Creating" {
            return Err(EcsFault::new(
                "ImageIsImporting",
                "The specified Image is importing.",
            ));
        }
        if dry_run {
            return Err(EcsFault::dry_run());
        }
        self.images.remove(image_id);
        Ok(())
    }

    /// A random number from the world's seeded generator (for IDs that must differ per run).
    pub fn random_u64(&mut self) -> u64 {
        self.rng.random()
    }
}

/// The records named in `ids` that `owned` accepts, in key order (ids sort like creation order:
/// a prefix and a zero-padded serial), or every accepted record when `ids` is empty.
fn among<'a, T>(
    records: &'a BTreeMap<String, T>,
    ids: &[&str],
    owned: impl Fn(&T) -> bool,
) -> Vec<&'a T> {
    if ids.is_empty() {
        return records.values().filter(|record| owned(record)).collect();
    }
    let mut wanted = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
        .into_iter()
        .filter_map(|id| records.get(id))
        .filter(|record| owned(record))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design
mod tests {
    use super::*;

    fn world() -> World {
        let mut world = World::new(default_regions(), ImportTiming::default(), 7);
        world.add_object(OssObject {
            bucket: "b".into(),
            key: "disk.raw".into(),
            region: "cn-hangzhou".into(),
            size: 2 * GIB,
            virtual_size_gib: 20,
            format: "RAW".into(),
            storage_class: "Standard".into(),
            readable: true,
            encrypted: false,
        });
        world
    }

    fn spec() -> ImportSpec {
        ImportSpec {
            region: "cn-hangzhou".into(),
            name: "img".into(),
            role_name: DEFAULT_IMPORT_ROLE.into(),
            disks: vec![DiskSpec {
                bucket: "b".into(),
                object: "disk.raw".into(),
                ..Default::default()
            }],
            fingerprint: "f".into(),
            ..Default::default()
        }
    }

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_import_progresses_and_finishes_after_its_duration() {
        let mut world = world();
        let result = world.import("acct", &spec(), t0()).unwrap();
        let task = world.task("acct", "cn-hangzhou", &result.task_id).unwrap();
        // 60 s + 2 GiB × 30 s.
        assert_eq!(task.duration, SignedDuration::from_secs(120));
        assert_eq!(task.state(t0()), TaskState::Processing { progress: 0 });
        let half = t0() + SignedDuration::from_secs(60);
        assert_eq!(task.state(half), TaskState::Processing { progress: 50 });
        let end = t0() + SignedDuration::from_secs(120);
        assert_eq!(task.state(end), TaskState::Finished { at: end });
        let image = world
            .image("acct", "cn-hangzhou", &result.image_id)
            .unwrap();
        assert_eq!(world.image_state(image, half), ("Creating", 50));
        assert_eq!(world.image_state(image, end), ("Available", 100));
    }

    #[test]
    fn images_and_tasks_among_ids_are_looked_up_in_creation_order_within_the_account() {
        let mut world = world();
        let mut made = Vec::new();
        for n in 0..3 {
            let mut spec = spec();
            spec.name = format!("img-{n}");
            spec.fingerprint = format!("f-{n}");
            made.push(world.import("acct", &spec, t0()).unwrap());
        }
        let mut other = spec();
        other.name = "other".into();
        other.fingerprint = "f-other".into();
        let foreign = world.import("other-acct", &other, t0()).unwrap();
        let ids = |images: Vec<&ImageRec>| images.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        // Asked out of order, twice, with an unknown id and another account's image.
        let asked = [
            made[2].image_id.as_str(),
            "m-unknown",
            made[0].image_id.as_str(),
            foreign.image_id.as_str(),
            made[2].image_id.as_str(),
        ];
        assert_eq!(
            ids(world.images_among("acct", "cn-hangzhou", &asked)),
            vec![made[0].image_id.clone(), made[2].image_id.clone()]
        );
        assert_eq!(ids(world.images_among("acct", "cn-hangzhou", &[])).len(), 3);
        assert!(world.images_among("acct", "cn-beijing", &asked).is_empty());
        let tasks = [made[1].task_id.as_str(), foreign.task_id.as_str()];
        let found: Vec<String> = world
            .tasks_among("acct", "cn-hangzhou", &tasks)
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(found, vec![made[1].task_id.clone()]);
        assert_eq!(world.tasks_among("acct", "cn-hangzhou", &[]).len(), 3);
    }

    #[test]
    fn a_wrong_format_fails_the_task_part_way() {
        let mut world = world();
        let mut spec = spec();
        spec.disks[0].format = Some("QCOW2".into());
        let result = world.import("acct", &spec, t0()).unwrap();
        let task = world.task("acct", "cn-hangzhou", &result.task_id).unwrap();
        let later = t0() + SignedDuration::from_secs(100);
        match task.state(later) {
            TaskState::Failed { code, progress, .. } => {
                assert_eq!(code, "InvalidImageFormat.Malformed");
                assert_eq!(progress, 40);
            }
            other => unreachable!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cancelling_stops_the_task_and_fails_the_image() {
        let mut world = world();
        let result = world.import("acct", &spec(), t0()).unwrap();
        let at = t0() + SignedDuration::from_secs(30);
        world
            .cancel("acct", "cn-hangzhou", &result.task_id, at)
            .unwrap();
        let task = world.task("acct", "cn-hangzhou", &result.task_id).unwrap();
        let later = t0() + SignedDuration::from_secs(500);
        assert_eq!(task.state(later).status(), TASK_STATUS_CANCELLED);
        assert_eq!(task.state(later).progress(), 25);
        let again = world.cancel("acct", "cn-hangzhou", &result.task_id, later);
        assert_eq!(again.unwrap_err().code, "InvalidTaskId.IncorrectTaskStatus");
        world
            .delete_image("acct", "cn-hangzhou", &result.image_id, later, false)
            .unwrap();
    }

    #[test]
    fn the_same_token_returns_the_same_image_and_a_changed_request_is_refused() {
        let mut world = world();
        let mut spec = spec();
        spec.client_token = Some("tok".into());
        let first = world.import("acct", &spec, t0()).unwrap();
        let second = world.import("acct", &spec, t0()).unwrap();
        assert_eq!(first.image_id, second.image_id);
        assert!(second.replayed);
        assert_eq!(world.all_images().count(), 1);
        spec.fingerprint = "other".into();
        let third = world.import("acct", &spec, t0());
        assert_eq!(third.unwrap_err().code, "IdempotentParameterMismatch");
    }

    #[test]
    fn deleting_an_importing_image_is_refused() {
        let mut world = world();
        let result = world.import("acct", &spec(), t0()).unwrap();
        let refused = world.delete_image("acct", "cn-hangzhou", &result.image_id, t0(), false);
        assert_eq!(refused.unwrap_err().code, "ImageIsImporting");
        let missing = world.delete_image("acct", "cn-hangzhou", "m-nope", t0(), false);
        assert_eq!(missing.unwrap_err().code, "InvalidImageId.NotFound");
    }

    #[test]
    fn quotas_names_and_objects_are_checked() {
        let mut world = world();
        world.import("acct", &spec(), t0()).unwrap();
        let duplicate = world.import("acct", &spec(), t0());
        assert_eq!(duplicate.unwrap_err().code, "InvalidImageName.Duplicated");
        world.patch_account(
            "acct",
            AccountPatch {
                image_quota: Some(1),
                ..Default::default()
            },
        );
        let mut other = spec();
        other.name = "other".into();
        assert_eq!(
            world.import("acct", &other, t0()).unwrap_err().code,
            "QuotaExceed.Image"
        );
        other.disks[0].object = "missing.raw".into();
        assert_eq!(
            world.import("b-acct", &other, t0()).unwrap_err().code,
            "InvalidOSSObject.NotFound"
        );
    }
}
