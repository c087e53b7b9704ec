//! The `ImageImport` custom resource (`ecs.image-import.dev/v1alpha1`).
//!
//! `spec` mirrors the ECS `ImportImage` request in camelCase, so a user who knows the API knows the
//! resource. Everything the schema can check is checked at admission: enums, lengths, patterns,
//! counts, ranges, and CEL rules for what spans fields (arm64 needs UEFI; Windows platforms go with
//! `osType: windows`; tag keys outside the reserved prefix) and for immutability once an import has
//! started. What only ECS can decide comes back as a condition carrying the ECS code.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::distribution::{CopyStatus, Distribution};
use super::source::{DiskSource, UploadStatus};

/// API group of the resource.
pub const GROUP: &str = "ecs.image-import.dev";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";
/// The finalizer that lets the operator cancel or delete in ECS before the resource goes.
pub const FINALIZER: &str = "ecs.image-import.dev/cleanup";
/// The finalizer the operator puts on a credentials Secret while an ImageImport names it, so the
/// Secret outlives every resource that needs it to cancel or delete in ECS — a namespace deletion
/// above all, which would otherwise delete the Secret first and leave the resources stuck.
pub const CREDENTIALS_FINALIZER: &str = "ecs.image-import.dev/credentials-in-use";
/// `metadata.annotations` key that pauses all ECS changes for a resource when `"true"`.
pub const PAUSED_ANNOTATION: &str = "ecs.image-import.dev/paused";
/// `metadata.annotations` key that, when `"true"` on a resource being deleted, lets it go without
/// touching ECS: the image and any running task are left in their account on purpose (the way out
/// when the credentials of that account are gone). A Warning Event records it.
pub const ABANDON_ANNOTATION: &str = "ecs.image-import.dev/abandon";
/// Prefix of the ECS tags the operator writes; users may not use it.
pub const RESERVED_TAG_PREFIX: &str = "ecs-image-operator/";
/// ECS tag holding the resource's `metadata.uid`: how a lost `ImportImage` answer is found again.
pub const UID_TAG: &str = "ecs-image-operator/uid";
/// ECS tag holding the resource's namespace.
pub const NAMESPACE_TAG: &str = "ecs-image-operator/namespace";
/// ECS tag holding the resource's name.
pub const NAME_TAG: &str = "ecs-image-operator/name";
/// User tags allowed: ECS allows 20 per image and the operator writes 3.
pub const MAX_USER_TAGS: usize = 17;

/// The spec fields that shape the image: fixed once ECS has accepted the import.
pub const IMMUTABLE_AFTER_START: &[&str] = &[
    "regionId",
    "architecture",
    "osType",
    "platform",
    "bootMode",
    "licenseType",
    "roleName",
    "resourceGroupId",
    "detectionStrategy",
    "features",
    "diskDeviceMappings",
];

/// The CEL rule that freezes [`IMMUTABLE_AFTER_START`] once `status.importTaskId` is set.
///
/// Optional fields need `has()` on both sides: comparing an absent field is an error in CEL.
pub fn immutable_after_start_rule() -> String {
    let comparisons: Vec<String> = IMMUTABLE_AFTER_START
        .iter()
        .map(|field| {
            format!(
                "(has(self.spec.{field}) == has(oldSelf.spec.{field}) && \
                 (!has(self.spec.{field}) || self.spec.{field} == oldSelf.spec.{field}))"
            )
        })
        .collect();
    format!(
        "!has(oldSelf.status) || !has(oldSelf.status.importTaskId) || ({})",
        comparisons.join(" && ")
    )
}

fn immutable_rule() -> kube::core::Rule {
    kube::core::Rule::new(immutable_after_start_rule())
        .message(
            "the import has started: regionId, architecture, osType, platform, bootMode, licenseType, roleName, \
             resourceGroupId, detectionStrategy, features and diskDeviceMappings (their sources included) can no longer change \
             (imageName, description, tags, deletionPolicy and credentialsSecretRef can); \
             create a new ImageImport for a different image",
        )
        .reason(kube::core::Reason::FieldValueForbidden)
}

/// Imports one disk image (and optional data disks) from OSS into Alibaba Cloud ECS as a custom image.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ecs.image-import.dev",
    version = "v1alpha1",
    kind = "ImageImport",
    plural = "imageimports",
    shortname = "imgimp",
    category = "alibabacloud",
    namespaced,
    doc = "Imports a disk image from OSS into Alibaba Cloud ECS and follows the import to the end.",
    status = "ImageImportStatus",
    derive = "PartialEq",
    validation = immutable_rule(),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"integer","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Image ID","type":"string","jsonPath":".status.imageId"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.regionId"}"#,
    printcolumn = r#"{"name":"Copies","type":"string","jsonPath":".status.copiesReady"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.architecture) || self.architecture != 'arm64' || !has(self.bootMode) || self.bootMode == 'UEFI'"
).message("arm64 images boot with UEFI only: set bootMode to UEFI or leave it out").reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.platform) || self.platform.startsWith('Windows') || self.platform == 'Other Windows' || !has(self.osType) || self.osType == 'linux'"
).message("a Linux platform needs osType linux").reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.platform) || !(self.platform.startsWith('Windows') || self.platform == 'Other Windows') || (has(self.osType) && self.osType == 'windows')"
).message("a Windows platform needs osType windows").reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = super::distribution::not_the_own_region())]
#[x_kube(validation = super::distribution::each_once())]
#[x_kube(validation = super::distribution::key_needs_encryption())]
#[serde(rename_all = "camelCase")]
pub struct ImageImportSpec {
    /// Region of the OSS bucket and of the new image, e.g. `cn-hangzhou`. ECS imports only from a bucket
    /// in the same region.
    #[schemars(
        length(min = 2, max = 64),
        regex(pattern = r"^[a-z]{2,}(-[a-z0-9]+)+$")
    )]
    pub region_id: String,

    /// Name of the image in ECS: 2–128 characters, starting with a letter (or a Chinese character),
    /// then letters, digits, `.`, `:`, `_` or `-`; must not start with `acs:` or `aliyun`. Unique per
    /// region and account. Editable after the import: the operator renames the image in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 128),
        regex(pattern = r"^[A-Za-z\p{Han}][A-Za-z0-9\p{Han}.:_-]*$")
    )]
    #[x_kube(validation = kube::core::Rule::new("!self.startsWith('acs:') && !self.startsWith('aliyun')")
        .message("imageName must not start with acs: or aliyun"))]
    pub image_name: Option<String>,

    /// Description of the image: 2–256 characters, not starting with `http://` or `https://`.
    /// Editable after the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 256))]
    #[x_kube(validation = kube::core::Rule::new("!self.startsWith('http://') && !self.startsWith('https://')")
        .message("description must not start with http:// or https://"))]
    pub description: Option<String>,

    /// System architecture of the image: `x86_64` (ECS's default), `i386` or `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,

    /// Operating system type: `linux` (ECS's default) or `windows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<OsType>,

    /// Distribution of the operating system, e.g. `Ubuntu`, `Rocky Linux`, `Windows Server 2022`;
    /// `Others Linux` is ECS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,

    /// Boot mode: `BIOS` or `UEFI`. arm64 images boot with UEFI only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<BootMode>,

    /// License: `Auto` (ECS's default), `Aliyun` or `BYOL` (bring your own license, Windows Server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_type: Option<LicenseType>,

    /// RAM role ECS assumes to read the bucket; ECS uses `AliyunECSImageImportDefaultRole` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9.-]+$"))]
    pub role_name: Option<String>,

    /// Resource group of the image, e.g. `rg-acfmxazb4ph6aiy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 64), regex(pattern = r"^rg-[A-Za-z0-9]+$"))]
    pub resource_group_id: Option<String>,

    /// `Standard` runs ECS's image check (recommended for arm64 and newer distributions); left out,
    /// no check runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_strategy: Option<DetectionStrategy>,

    /// Image features: NVMe and metadata-service (IMDS) support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<ImageFeatures>,

    /// User tags of the image (at most 17: ECS allows 20 and the operator writes 3). Keys are 1–128
    /// characters and must not start with `ecs-image-operator/`, `acs:` or `aliyun`; values are up to
    /// 128 characters and must not start with `acs:`. Editable after the import.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 17))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('ecs-image-operator/') && !k.startsWith('acs:') && !k.startsWith('aliyun') && !k.contains('http://') && !k.contains('https://'))"
    ).message("tag keys are 1 to 128 characters and must not start with ecs-image-operator/, acs: or aliyun"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, !self[k].startsWith('acs:'))")
        .message("tag values must not start with acs:"))]
    pub tags: BTreeMap<String, TagValue>,

    /// Disks of the image, 1 to 17: the first is the system disk, the rest are data disks.
    #[schemars(length(min = 1, max = 17))]
    pub disk_device_mappings: Vec<DiskDeviceMapping>,

    /// What happens in ECS when this resource is deleted: `Delete` (default) cancels a running
    /// import and deletes the image; `Retain` leaves both in ECS.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// A Secret in this namespace with `accessKeyId`, `accessKeySecret` and optional `securityToken`.
    /// Without it the operator uses its own credentials. Rotating the Secret takes effect without a
    /// restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,

    /// Copies of the image in other regions and accounts it is shared with, made once the image
    /// is available and kept in line with this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// A tag value: up to 128 characters, possibly empty.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(transparent)]
pub struct TagValue(#[schemars(length(max = 128))] pub String);

/// One disk of the image: where its file lies in OSS (or goes, with a `source`) and how big the
/// disk is.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskDeviceMapping {
    /// OSS bucket holding the image file, in the image's region.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
    )]
    pub oss_bucket: String,

    /// Object key of the image file, e.g. `images/ubuntu-22.04.qcow2`.
    #[schemars(length(min = 1, max = 1023), regex(pattern = r"^[^/\\]"))]
    pub oss_object: String,

    /// Format of the file: `RAW`, `VHD`, `QCOW2` or `VMDK`; detected by ECS when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DiskFormat>,

    /// Size of the disk in GiB (1–2048); at least the file's virtual size. Detected by ECS when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2048))]
    pub disk_image_size: Option<u32>,

    /// Device name of the disk. Deprecated by ECS, which advises not to set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^/dev/[a-z0-9]+$"))]
    pub device: Option<String>,

    /// A file the operator uploads to `ossBucket`/`ossObject` first (the bucket must exist):
    /// from an `https` URL, or a local file with `import -f`. Left out, the object must already
    /// be there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DiskSource>,
}

/// Image features.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageFeatures {
    /// Whether the image supports NVMe disks: `supported` or `unsupported` (ECS's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvme_support: Option<NvmeSupport>,
    /// Metadata-service versions the image supports: `v1` (ECS's default) or `v2` (v2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds_support: Option<ImdsSupport>,
}

/// A Secret in the resource's namespace (never another: a resource cannot borrow other tenants'
/// credentials).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// Declares a string enum with its wire spellings, shared by serde, the schema and ECS parameters.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// The value as ECS spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }
    };
}

wire_enum!(
    /// System architecture of the image: `x86_64` (ECS's default), `i386` or `arm64` (boots with UEFI only).
    Architecture {
        /// 32-bit x86.
        I386 => "i386",
        /// 64-bit x86.
        X86_64 => "x86_64",
        /// 64-bit ARM (boots with UEFI).
        Arm64 => "arm64",
    }
);

wire_enum!(
    /// Operating system type: `linux` (ECS's default) or `windows`; it must match the platform.
    OsType {
        /// Linux or another Unix.
        Linux => "linux",
        /// Windows.
        Windows => "windows",
    }
);

wire_enum!(
    /// Distribution of the operating system, as ECS names it; `Others Linux` is ECS's default.
    Platform {
        /// Alibaba Cloud Linux.
        Aliyun => "Aliyun",
        /// Anolis OS.
        Anolis => "Anolis",
        /// CentOS.
        CentOs => "CentOS",
        /// Ubuntu.
        Ubuntu => "Ubuntu",
        /// CoreOS.
        CoreOs => "CoreOS",
        /// SUSE Linux.
        Suse => "SUSE",
        /// Debian.
        Debian => "Debian",
        /// openSUSE.
        OpenSuse => "OpenSUSE",
        /// FreeBSD.
        FreeBsd => "FreeBSD",
        /// Red Hat Enterprise Linux.
        RedHat => "RedHat",
        /// Kylin.
        Kylin => "Kylin",
        /// UOS.
        Uos => "UOS",
        /// Fedora.
        Fedora => "Fedora",
        /// Fedora CoreOS.
        FedoraCoreOs => "Fedora CoreOS",
        /// CentOS Stream.
        CentOsStream => "CentOS Stream",
        /// AlmaLinux.
        AlmaLinux => "AlmaLinux",
        /// Rocky Linux.
        RockyLinux => "Rocky Linux",
        /// Gentoo.
        Gentoo => "Gentoo",
        /// A customized Linux.
        CustomizedLinux => "Customized Linux",
        /// Another Linux (ECS's default).
        OthersLinux => "Others Linux",
        /// Windows Server 2022.
        WindowsServer2022 => "Windows Server 2022",
        /// Windows Server 2019.
        WindowsServer2019 => "Windows Server 2019",
        /// Windows Server 2016.
        WindowsServer2016 => "Windows Server 2016",
        /// Windows Server 2012.
        WindowsServer2012 => "Windows Server 2012",
        /// Windows Server 2008.
        WindowsServer2008 => "Windows Server 2008",
        /// Windows Server 2003.
        WindowsServer2003 => "Windows Server 2003",
        /// Another Windows.
        OtherWindows => "Other Windows",
    }
);

wire_enum!(
    /// Boot mode of the image: `BIOS` or `UEFI`; arm64 images boot with UEFI only.
    BootMode {
        /// Legacy BIOS.
        Bios => "BIOS",
        /// UEFI.
        Uefi => "UEFI",
    }
);

wire_enum!(
    /// License of the image: `Auto` (ECS's default), `Aliyun`, or `BYOL` (bring your own license).
    LicenseType {
        /// ECS picks (default).
        Auto => "Auto",
        /// A license from Alibaba Cloud.
        Aliyun => "Aliyun",
        /// Bring your own license.
        Byol => "BYOL",
    }
);

wire_enum!(
    /// Image check: `Standard` runs ECS's check (recommended for arm64 and newer distributions);
    /// left out, no check runs.
    DetectionStrategy {
        /// ECS's standard image check.
        Standard => "Standard",
    }
);

wire_enum!(
    /// Whether the image supports NVMe disks: `supported` or `unsupported` (ECS's default).
    NvmeSupport {
        /// The image supports NVMe.
        Supported => "supported",
        /// The image does not support NVMe.
        Unsupported => "unsupported",
    }
);

wire_enum!(
    /// Metadata-service versions the image supports: `v1` (v1 and v2, ECS's default) or `v2` (v2 only).
    ImdsSupport {
        /// IMDSv1 and v2.
        V1 => "v1",
        /// IMDSv2 only.
        V2 => "v2",
    }
);

wire_enum!(
    /// Format of the disk image file: `RAW`, `VHD`, `QCOW2` or `VMDK`; ECS detects it when left out.
    DiskFormat {
        /// Raw disk.
        Raw => "RAW",
        /// Microsoft VHD.
        Vhd => "VHD",
        /// QEMU copy-on-write v2.
        Qcow2 => "QCOW2",
        /// VMware VMDK (invitational preview in ECS).
        Vmdk => "VMDK",
    }
);

wire_enum!(
    /// What happens in ECS when the resource is deleted.
    DeletionPolicy {
        /// Cancel a running import and delete the image.
        Delete => "Delete",
        /// Leave the task and the image in ECS.
        Retain => "Retain",
    }
);

// The enum comes from `wire_enum!`, which cannot mark a default variant.
#[allow(clippy::derivable_impls)]
impl Default for DeletionPolicy {
    fn default() -> Self {
        Self::Delete
    }
}

/// What the operator has observed and done.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageImportStatus {
    /// `Uploading` (mappings with a `source`) → `Pending` → `Importing` → `Available`, or
    /// `Failed`; `Deleting` while the finalizer works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// ID of the image in ECS (`m-…`), recorded as soon as ECS answers `ImportImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The Alibaba Cloud account that owns the image (STS `GetCallerIdentity` of the credentials
    /// used), recorded before `ImportImage`. New credentials of this account are used as they
    /// come; credentials of another account stall the resource (`CredentialsAccountChanged`)
    /// instead of importing again or deleting in the wrong account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// ID of the ECS import task (`t-…`), recorded with the image ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_task_id: Option<String>,
    /// Progress in percent, 0–100: of the upload while `Uploading`, then of the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress: Option<u8>,
    /// The uploads of the mappings with a `source`: bytes done and total, percent, throughput,
    /// and each disk's multipart upload (what a restart resumes from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadStatus>,
    /// What is happening, for people, e.g. `importing t-abc: 45%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When ECS accepted the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the import ended (available or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The last error from ECS or the operator, with the ECS request ID to quote to support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// `resourceVersion` of the credentials Secret this status was computed with: a stall caused by
    /// credentials is retried as soon as the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_credentials_version: Option<String>,
    /// How many times the image was imported again because it had disappeared from ECS (deleted
    /// outside the operator); part of the import's `ClientToken`, so each import is a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reimports: Option<u32>,
    /// The copies in other regions (`spec.distribution.regions`), one per region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyStatus>,
    /// Copies done out of copies wanted, e.g. `2/3` (the `Copies` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies_ready: Option<String>,
    /// The accounts the image and every copy are shared with, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    /// `Ready`, `Reconciling` and `Stalled`, following the kstatus convention; reasons follow the
    /// API conventions (an ECS code without its dots, e.g. `InvalidOSSObjectNotFound`), the exact
    /// code starts the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// Where the import stands: `Uploading` (mappings with a `source`) → `Pending` → `Importing` →
/// `Available`, or `Failed`; `Deleting` while the finalizer cancels or deletes in ECS.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// The operator is uploading a mapping's `source` into OSS.
    Uploading,
    /// Accepted by Kubernetes; ECS has not accepted the import yet.
    Pending,
    /// ECS is importing the image.
    Importing,
    /// The image is ready to use.
    Available,
    /// The import failed; `lastError` and the `Stalled` condition say why.
    Failed,
    /// The resource is being deleted; the finalizer is cancelling or deleting in ECS.
    Deleting,
}

impl Phase {
    /// The phase as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "Uploading",
            Self::Pending => "Pending",
            Self::Importing => "Importing",
            Self::Available => "Available",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
        }
    }
}

/// An error as status shows it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// ECS error code (e.g. `QuotaExceed.Image`), or the operator's own code.
    pub code: String,
    /// ECS error message, with what to do where the operator knows.
    pub message: String,
    /// ECS request ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the error happened; errors fixed outside Kubernetes are retried a while after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// How the operator retries this error, decided when it happened and read back after a restart
    /// (never re-derived from the code): `Backoff`, `Slowly` or `OnChange`. A status written by an
    /// older release has none and is retried `Slowly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryRule>,
}

/// How an error is retried.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RetryRule {
    /// Transient (throttling, 5xx, network, an unreadable answer): retried soon, with jittered
    /// exponential backoff.
    Backoff,
    /// Blocked by something fixed outside Kubernetes (quota, RAM role, an OSS object not there
    /// yet): retried every `--external-retry-seconds`.
    Slowly,
    /// The request itself is wrong: retried when the spec or the credentials Secret changes.
    OnChange,
}
