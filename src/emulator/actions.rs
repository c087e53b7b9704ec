//! One function per ECS action: parameters in, answer fields or an ECS error out.
//!
//! Syntax checks (required parameters, enums, lengths, ranges) live here, in the order ECS
//! documents them; checks that need state (idempotency, OSS, quotas, names) live in
//! [`super::world`]. HTTP statuses come from the client's own table of codes
//! ([`crate::ecs::error::KNOWN_CODES`]), so client and emulator agree on every status.

use std::borrow::Cow;

use jiff::Timestamp;

use super::render::Node;
use super::world::{
    DEFAULT_IMPORT_ROLE, DiskSpec, ImageRec, ImportCall, ImportSpec, TaskRec, World,
};
use crate::ecs::api::{
    MAX_CLIENT_TOKEN_LEN, MAX_DISK_DEVICE_MAPPINGS, MAX_IDS_PER_CALL, MAX_TAGS, parse_ecs_time,
};
use crate::ecs::endpoint::is_valid_region_id;
use crate::ecs::error::known_code;
use crate::ecs::params::Params;

/// An ECS error answer: code and message; the HTTP status follows from the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsFault {
    /// ECS error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// Codes the emulator answers that the client's table does not list, with their statuses.
const EXTRA_CODES: &[(&str, u16)] = &[
    ("DryRunOperation", 400),
    ("InvalidResourceId.NotFound", 404),
    ("InvalidResourceType.NotFound", 404),
    ("InvalidTagKey.Malformed", 400),
    ("InvalidTagValue.Malformed", 400),
];

impl EcsFault {
    /// An error answer.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status ECS documents for this code (400 for codes nobody documents).
    pub fn http_status(&self) -> u16 {
        status_of(self.code)
    }

    /// `MissingParameter` naming the parameter, in ECS's words.
    pub fn missing(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!(
                "An input parameter \"{name}\" that is mandatory for processing the request is not supplied."
            ),
        )
    }

    /// `InvalidParameter` naming the parameter.
    pub fn invalid(name: &str) -> Self {
        Self::new(
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid."),
        )
    }

    /// An unknown region.
    pub fn invalid_region() -> Self {
        Self::new(
            "InvalidRegionId.NotFound",
            "The specified RegionId does not exist.",
        )
    }

    /// An unknown task.
    pub fn task_not_found() -> Self {
        Self::new(
            "InvalidTaskId.NotFound",
            "The specified \"TaskId\" is not found.",
        )
    }

    /// An unknown image.
    pub fn image_not_found() -> Self {
        Self::new(
            "InvalidImageId.NotFound",
            "The specified ImageId does not exist.",
        )
    }

    /// A dry run that passed every check.
    pub fn dry_run() -> Self {
        Self::new(
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set.",
        )
    }
}

/// The HTTP status of an ECS code: the client's table first, then the emulator's extras.
pub fn status_of(code: &str) -> u16 {
    if let Some(known) = known_code(code) {
        return known.http_status;
    }
    EXTRA_CODES
        .iter()
        .find(|(extra, _)| *extra == code)
        .map_or(400, |(_, status)| *status)
}

/// Every action the emulator serves.
pub const ACTIONS: &[&str] = &[
    "ImportImage",
    "DescribeTasks",
    "DescribeTaskAttribute",
    "CancelTask",
    "DescribeImages",
    "DeleteImage",
    "ModifyImageAttribute",
    "TagResources",
    "UntagResources",
    "DescribeRegions",
    GET_CALLER_IDENTITY,
];

/// STS `GetCallerIdentity` (version 2015-04-01), served beside ECS so one emulator answers the
/// operator's account look-ups.
pub const GET_CALLER_IDENTITY: &str = "GetCallerIdentity";

/// The fields of a successful answer (the server adds `RequestId`).
pub type Fields = Vec<(&'static str, Node)>;

/// Runs one action for an account at emulated time `now`.
pub fn run(
    world: &mut World,
    account: &str,
    action: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    match action {
        "ImportImage" => import_image(world, account, params, now),
        "DescribeTasks" => describe_tasks(world, account, params, now),
        "DescribeTaskAttribute" => describe_task_attribute(world, account, params, now),
        "CancelTask" => cancel_task(world, account, params, now),
        "DescribeImages" => describe_images(world, account, params, now),
        "DeleteImage" => delete_image(world, account, params, now),
        "ModifyImageAttribute" => modify_image_attribute(world, account, params, now),
        "TagResources" => tag_resources(world, account, params),
        "UntagResources" => untag_resources(world, account, params),
        "DescribeRegions" => describe_regions(world, params),
        GET_CALLER_IDENTITY => Ok(caller_identity(account)),
        _ => Err(EcsFault::new(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    }
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, EcsFault> {
    match params.get(name) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(EcsFault::missing(name)),
    }
}

fn optional<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).filter(|value| !value.is_empty())
}

/// `RegionId`, required and known.
fn region<'a>(world: &World, params: &'a Params) -> Result<&'a str, EcsFault> {
    let region = required(params, "RegionId")?;
    if world.region(region).is_none() {
        return Err(EcsFault::invalid_region());
    }
    Ok(region)
}

fn flag(params: &Params, name: &str) -> Result<bool, EcsFault> {
    match params.get(name) {
        None | Some("") => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(EcsFault::invalid(name)),
    }
}

fn page(params: &Params) -> Result<(usize, usize), EcsFault> {
    let number = match optional(params, "PageNumber") {
        None => 1,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| EcsFault::invalid("PageNumber"))?,
    };
    let size = match optional(params, "PageSize") {
        None => 10,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_IDS_PER_CALL).contains(n))
            .ok_or_else(|| EcsFault::invalid("PageSize"))?,
    };
    Ok((number, size))
}

fn ecs_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn comma_list(text: Option<&str>) -> Vec<&str> {
    text.map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// `Name.N` values for N = 1, 2, …, by N (not by the parameter's byte order).
fn numbered<'a>(params: &'a Params, prefix: &str, field: Option<&str>) -> Vec<(usize, &'a str)> {
    let mut found: Vec<(usize, &str)> = params
        .iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
            let index = match field {
                Some(field) => rest.strip_suffix(field)?.strip_suffix('.')?,
                None => rest,
            };
            Some((index.parse::<usize>().ok()?, value))
        })
        .collect();
    found.sort_by_key(|(index, _)| *index);
    found
}

// ---------------------------------------------------------------------------------------------
// Names, descriptions and tags
// ---------------------------------------------------------------------------------------------

fn has_url(text: &str) -> bool {
    text.contains("http://") || text.contains("https://")
}

fn valid_image_name(name: &str) -> bool {
    let count = name.chars().count();
    (2..=128).contains(&count)
        && name.chars().next().is_some_and(char::is_alphabetic)
        && !name.starts_with("acs:")
        && !name.starts_with("aliyun")
        && !has_url(name)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | ':' | '_' | '-'))
}

fn check_name_and_description(params: &Params) -> Result<(), EcsFault> {
    if let Some(name) = params.get("ImageName")
        && !valid_image_name(name)
    {
        return Err(EcsFault::new(
            "InvalidImageName.Malformed",
            "The specified destination Image name is wrongly formed.",
        ));
    }
    if let Some(description) = params.get("Description")
        && (!(2..=256).contains(&description.chars().count())
            || description.starts_with("http://")
            || description.starts_with("https://"))
    {
        return Err(EcsFault::new(
            "InvalidDescription.Malformed",
            "The specified destination image description is wrongly formed.",
        ));
    }
    Ok(())
}

/// `Tag.N.Key` / `Tag.N.Value` (N = 1..20), checked.
fn tags(params: &Params) -> Result<Vec<(String, String)>, EcsFault> {
    let keys = numbered(params, "Tag", Some("Key"));
    let values = numbered(params, "Tag", Some("Value"));
    if keys
        .iter()
        .chain(&values)
        .any(|(n, _)| *n == 0 || *n > MAX_TAGS)
    {
        return Err(EcsFault::new(
            "InvalidTagCount",
            format!("The number of tags exceeds {MAX_TAGS}."),
        ));
    }
    if let Some((n, _)) = values
        .iter()
        .find(|(n, _)| !keys.iter().any(|(k, _)| k == n))
    {
        return Err(EcsFault::new(
            "InvalidTagKey.Malformed",
            format!("Tag.{n}.Value is given without Tag.{n}.Key."),
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(keys.len());
    for (n, key) in keys {
        if key.is_empty()
            || key.chars().count() > 128
            || has_url(key)
            || key.starts_with("acs:")
            || key.starts_with("aliyun")
        {
            return Err(EcsFault::new(
                "InvalidTagKey.Malformed",
                format!("The specified Tag.{n}.Key is wrongly formed."),
            ));
        }
        let value = values
            .iter()
            .find(|(m, _)| *m == n)
            .map_or("", |(_, value)| *value);
        if value.chars().count() > 128 || value.starts_with("acs:") || has_url(value) {
            return Err(EcsFault::new(
                "InvalidTagValue.Malformed",
                format!("The specified Tag.{n}.Value is wrongly formed."),
            ));
        }
        if out
            .iter()
            .any(|(existing, _)| existing.eq_ignore_ascii_case(key))
        {
            return Err(EcsFault::new(
                "TagKey.Duplication",
                "The tag keys must be unique (case-insensitive).",
            ));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// ImportImage
// ---------------------------------------------------------------------------------------------

const ARCHITECTURES: &[&str] = &["i386", "x86_64", "arm64"];
const OS_TYPES: &[&str] = &["linux", "windows"];
const PLATFORMS: &[&str] = &[
    "Aliyun",
    "Anolis",
    "CentOS",
    "Ubuntu",
    "CoreOS",
    "SUSE",
    "Debian",
    "OpenSUSE",
    "FreeBSD",
    "RedHat",
    "Kylin",
    "UOS",
    "Fedora",
    "Fedora CoreOS",
    "CentOS Stream",
    "AlmaLinux",
    "Rocky Linux",
    "Gentoo",
    "Customized Linux",
    "Others Linux",
    "Windows Server 2022",
    "Windows Server 2019",
    "Windows Server 2016",
    "Windows Server 2012",
    "Windows Server 2008",
    "Windows Server 2003",
    "Other Windows",
];
const BOOT_MODES: &[&str] = &["BIOS", "UEFI"];
const LICENSE_TYPES: &[&str] = &["Auto", "Aliyun", "BYOL"];
const FORMATS: &[&str] = &["RAW", "VHD", "QCOW2", "VMDK"];
/// Archives and installers are not disk images; ECS refuses their suffixes outright.
const UNSUPPORTED_SUFFIXES: &[&str] = &[
    ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".iso", ".exe",
];
/// `DiskImageSize` range of the current docs, in GiB.
const DISK_SIZE_RANGE: std::ops::RangeInclusive<u64> = 1..=2048;
/// Windows versions the image check cannot inspect.
const UNCHECKABLE_WINDOWS: &[&str] = &["Windows Server 2003", "Windows Server 2008"];
/// Parameters that do not shape the image: signing, routing and idempotency.
const NOT_FINGERPRINTED: &[&str] = &[
    "AccessKeyId",
    "Action",
    "ClientToken",
    "DryRun",
    "Format",
    "OwnerAccount",
    "OwnerId",
    "ResourceOwnerAccount",
    "ResourceOwnerId",
    "SecurityToken",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureType",
    "SignatureVersion",
    "Timestamp",
    "Version",
];

fn one_of(
    params: &Params,
    name: &str,
    allowed: &[&str],
    default: &str,
    code: &'static str,
    message: &str,
) -> Result<String, EcsFault> {
    match optional(params, name) {
        None => Ok(default.to_string()),
        Some(value) => allowed
            .iter()
            .find(|allowed| allowed.eq_ignore_ascii_case(value))
            .map(|allowed| (*allowed).to_string())
            .ok_or_else(|| EcsFault::new(code, message)),
    }
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn disks(params: &Params) -> Result<Vec<DiskSpec>, EcsFault> {
    let mut indexes: Vec<usize> = params
        .iter()
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix("DiskDeviceMapping.")?;
            rest.split('.').next()?.parse::<usize>().ok()
        })
        .filter(|n| (1..=MAX_DISK_DEVICE_MAPPINGS).contains(n))
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.is_empty() {
        return Err(EcsFault::new(
            "MissingParameter.DiskDeviceMapping",
            "The input parameter \"DiskDeviceMapping\" that is mandatory for processing this \
             request is not supplied.",
        ));
    }
    if indexes[0] != 1 {
        return Err(EcsFault::missing("DiskDeviceMapping.1.OSSBucket"));
    }
    let mut disks = Vec::with_capacity(indexes.len());
    for n in indexes {
        let field = |name: &str| optional(params, &format!("DiskDeviceMapping.{n}.{name}"));
        let bucket = field("OSSBucket")
            .ok_or_else(|| EcsFault::missing(&format!("DiskDeviceMapping.{n}.OSSBucket")))?;
        let object = field("OSSObject")
            .ok_or_else(|| EcsFault::missing(&format!("DiskDeviceMapping.{n}.OSSObject")))?;
        if !valid_bucket(bucket) {
            return Err(EcsFault::new(
                "InvalidOSSBucket.Malformed",
                "The specified OSSBucket is wrongly formed.",
            ));
        }
        if object.len() > 1023 || object.starts_with('/') || object.starts_with('\\') {
            return Err(EcsFault::new(
                "InvalidOSSObject.Malformed",
                "The specified OSSObject is wrongly formed.",
            ));
        }
        let lower = object.to_ascii_lowercase();
        if UNSUPPORTED_SUFFIXES
            .iter()
            .any(|suffix| lower.ends_with(suffix))
        {
            return Err(EcsFault::new(
                "UnsupportedSuffix.OSSObject",
                format!("The suffix of the OSS object {object} is not supported."),
            ));
        }
        let format = match field("Format") {
            None => None,
            Some(format) => Some(
                FORMATS
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(format))
                    .map(|known| (*known).to_string())
                    .ok_or_else(|| {
                        EcsFault::new(
                            "InvalidFormat.Malformed",
                            "The specified Image format is wrongly formed.",
                        )
                    })?,
            ),
        };
        let size_gib = match field("DiskImageSize").or_else(|| field("DiskImSize")) {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .filter(|size| DISK_SIZE_RANGE.contains(size))
                    .ok_or_else(|| {
                        if n == 1 {
                            EcsFault::new(
                                "InvalidImageSize",
                                format!(
                                    "The specified \"DiskDeviceMapping.1.DiskImageSize\" must be \
                                     between {} and {} GiB.",
                                    DISK_SIZE_RANGE.start(),
                                    DISK_SIZE_RANGE.end()
                                ),
                            )
                        } else {
                            EcsFault::new(
                                "InvalidDataDiskSize",
                                format!("The specified \"DiskDeviceMapping.{n}.DiskImageSize\" is out of range."),
                            )
                        }
                    })?,
            ),
        };
        let device = field("Device");
        if let Some(device) = device {
            let ok = ["/dev/xvd", "/dev/vd"].iter().any(|prefix| {
                device.strip_prefix(prefix).is_some_and(|rest| {
                    rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_lowercase())
                })
            });
            if !ok {
                return Err(EcsFault::new(
                    "InvalidParameter.Malformed",
                    format!("The specified DiskDeviceMapping.{n}.Device is wrongly formed."),
                ));
            }
        }
        disks.push(DiskSpec {
            bucket: bucket.to_string(),
            object: object.to_string(),
            format,
            size_gib,
            device: device.map(str::to_string),
        });
    }
    Ok(disks)
}

fn import_spec(world: &World, params: &Params) -> Result<ImportSpec, EcsFault> {
    let region_id = required(params, "RegionId")?;
    if !is_valid_region_id(region_id) {
        return Err(EcsFault::new(
            "RegionId.NotFound",
            "The specified region is not found.",
        ));
    }
    let region = world
        .region(region_id)
        .ok_or_else(EcsFault::invalid_region)?;
    if !region.import_supported {
        return Err(EcsFault::new(
            "InvalidRegion.NotSupport",
            "The specified region does not support image import or export.",
        ));
    }
    let client_token = optional(params, "ClientToken");
    if let Some(token) = client_token
        && (token.len() > MAX_CLIENT_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(EcsFault::new(
            "InvalidClientToken.Malformed",
            "The specified parameter \"ClientToken\" is not valid.",
        ));
    }
    let dry_run = flag(params, "DryRun")?;
    check_name_and_description(params)?;
    let architecture = one_of(
        params,
        "Architecture",
        ARCHITECTURES,
        "x86_64",
        "InvalidArchitecture.Malformed",
        "The specified Architecture is wrongly formed.",
    )?;
    let os_type = one_of(
        params,
        "OSType",
        OS_TYPES,
        "linux",
        "InvalidOSType.Malformed",
        "The specified OSType is wrongly formed.",
    )?;
    let platform = one_of(
        params,
        "Platform",
        PLATFORMS,
        "Others Linux",
        "InvalidPlatform.Malformed",
        "The specified Platform is wrongly formed.",
    )?;
    let arm = architecture == "arm64";
    let boot_mode = one_of(
        params,
        "BootMode",
        BOOT_MODES,
        if arm { "UEFI" } else { "BIOS" },
        "InvalidBootMode.Malformed",
        "The specified BootMode is wrongly formed.",
    )?;
    if arm && boot_mode != "UEFI" {
        return Err(EcsFault::new(
            "InvalidBootMode.NotSupport",
            "Images of the arm64 architecture only support the UEFI boot mode.",
        ));
    }
    if arm && platform.contains("Windows") {
        return Err(EcsFault::new(
            "InvalidArchitecture.PlatformUnsupported",
            "The specified Platform does not support the arm64 architecture.",
        ));
    }
    let license_type = one_of(
        params,
        "LicenseType",
        LICENSE_TYPES,
        "Auto",
        "InvalidLicenseType.NotSupported",
        "The specified LicenseType is not supported.",
    )?;
    if let Some(strategy) = optional(params, "DetectionStrategy") {
        if strategy != "Standard" {
            return Err(EcsFault::new(
                "InvalidParameter.DetectionStrategy",
                "The specified DetectionStrategy is not valid; only Standard is supported.",
            ));
        }
        if UNCHECKABLE_WINDOWS.contains(&platform.as_str()) {
            return Err(EcsFault::new(
                "ImageCheckUnsupported.WindowsImage",
                "Image check is not supported for this Windows version.",
            ));
        }
    }
    let imds_support = one_of(
        params,
        "Features.ImdsSupport",
        &["v1", "v2"],
        "v1",
        "InvalidParameter.FeaturesImdsSupport",
        "The specified Features.ImdsSupport is not valid.",
    )?;
    let nvme_support = one_of(
        params,
        "Features.NvmeSupport",
        &["supported", "unsupported"],
        "unsupported",
        "InvalidParameter",
        "The specified parameter \"Features.NvmeSupport\" is not valid.",
    )?;
    if let Some(arn) = optional(params, "StorageLocationArn") {
        return Err(if arn.starts_with("arn:acs:cloudbox:") {
            EcsFault::new(
                "InvalidOperation.CloudBoxImageImportUnsupported",
                "Importing images from OSS on CloudBox is not supported here.",
            )
        } else {
            EcsFault::new(
                "InvalidStorageLocation.NotFound",
                "The specified StorageLocationArn does not exist.",
            )
        });
    }
    let disks = disks(params)?;
    let tags = tags(params)?;
    let fingerprint: Params = params
        .iter()
        .filter(|(name, _)| !NOT_FINGERPRINTED.contains(name))
        .collect();
    Ok(ImportSpec {
        region: region_id.to_string(),
        name: params.get("ImageName").unwrap_or_default().to_string(),
        description: params.get("Description").unwrap_or_default().to_string(),
        architecture,
        os_type,
        platform,
        boot_mode,
        license_type,
        role_name: optional(params, "RoleName")
            .unwrap_or(DEFAULT_IMPORT_ROLE)
            .to_string(),
        resource_group_id: params
            .get("ResourceGroupId")
            .unwrap_or_default()
            .to_string(),
        nvme_support,
        imds_support,
        tags,
        disks,
        client_token: client_token.map(str::to_string),
        fingerprint: fingerprint.canonicalized_query(),
        dry_run,
    })
}

fn import_image(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let result = import_spec(world, params).and_then(|spec| {
        world
            .import(account, &spec, now)
            .map(|result| (spec.region, result))
    });
    let mut call = ImportCall {
        account: account.to_string(),
        region: params.get("RegionId").unwrap_or_default().to_string(),
        client_token: params.get("ClientToken").map(str::to_string),
        dry_run: params
            .get("DryRun")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        image_id: None,
        task_id: None,
        outcome: String::new(),
        at: now,
        received_at: Timestamp::now(),
    };
    match result {
        Ok((region, result)) => {
            call.image_id = Some(result.image_id.clone());
            call.task_id = Some(result.task_id.clone());
            call.outcome = if result.replayed {
                "replayed"
            } else {
                "created"
            }
            .into();
            world.record_import_call(call);
            Ok(vec![
                ("ImageId", Node::s(result.image_id)),
                ("TaskId", Node::s(result.task_id)),
                ("RegionId", Node::s(region)),
            ])
        }
        Err(fault) => {
            call.outcome = fault.code.to_string();
            world.record_import_call(call);
            Err(fault)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

const TASK_ACTIONS: &[&str] = &[
    "ImportImage",
    "ExportImage",
    "RedeployInstance",
    "ModifyDiskSpec",
    "ArchiveSnapshot",
];
/// The only `TaskStatus` filter values ECS honours; others are ignored.
const TASK_STATUS_FILTERS: &[&str] = &["Finished", "Processing", "Failed"];

fn task_summary(task: &TaskRec, now: Timestamp) -> Node {
    let state = task.state(now);
    Node::Obj(vec![
        ("TaskId", Node::s(&task.id)),
        ("TaskAction", Node::s("ImportImage")),
        ("TaskStatus", Node::s(state.status())),
        (
            "SupportCancel",
            Node::s(if state.is_running() { "true" } else { "false" }),
        ),
        ("CreationTime", Node::s(ecs_time(task.created))),
        (
            "FinishedTime",
            Node::s(state.finished_at().map(ecs_time).unwrap_or_default()),
        ),
        ("ResourceId", Node::s(&task.image_id)),
    ])
}

fn describe_tasks(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?;
    let ids = comma_list(params.get("TaskIds"));
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(EcsFault::invalid("TaskIds"));
    }
    let resource_ids: Vec<&str> = numbered(params, "ResourceIds", None)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    if resource_ids.len() > MAX_IDS_PER_CALL {
        return Err(EcsFault::invalid("ResourceIds"));
    }
    let action = optional(params, "TaskAction");
    if let Some(action) = action
        && !TASK_ACTIONS.contains(&action)
    {
        return Err(EcsFault::invalid("TaskAction"));
    }
    let status =
        optional(params, "TaskStatus").filter(|status| TASK_STATUS_FILTERS.contains(status));
    let (page_number, page_size) = page(params)?;
    let start = time_filter(params, "StartTime")?;
    let end = time_filter(params, "EndTime")?;
    let matched: Vec<&TaskRec> = world
        .tasks_among(account, region, &ids)
        .into_iter()
        .filter(|task| start.is_none_or(|start| task.created >= start))
        .filter(|task| end.is_none_or(|end| task.created <= end))
        .filter(|task| resource_ids.is_empty() || resource_ids.contains(&task.image_id.as_str()))
        .filter(|_| action.is_none_or(|action| action == "ImportImage"))
        .filter(|task| status.is_none_or(|status| task.state(now).status() == status))
        .collect();
    let total = matched.len();
    let tasks = matched
        .into_iter()
        .rev()
        // Saturating: page × size overflows for page numbers near `usize::MAX`, and a
        // page past the end is simply empty.
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|task| task_summary(task, now))
        .collect();
    Ok(vec![
        ("RegionId", Node::s(region)),
        ("TotalCount", Node::i(total)),
        ("PageNumber", Node::i(page_number)),
        ("PageSize", Node::i(page_size)),
        ("TaskSet", Node::Set("Task", tasks)),
    ])
}

/// A creation-time bound, `yyyy-MM-ddTHH:mm[:ss]Z`.
fn time_filter(params: &Params, name: &str) -> Result<Option<Timestamp>, EcsFault> {
    optional(params, name)
        .map(|text| parse_ecs_time(text).ok_or_else(|| EcsFault::invalid(name)))
        .transpose()
}

fn describe_task_attribute(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?;
    let task_id = required(params, "TaskId")?;
    let task = world
        .task(account, region, task_id)
        .ok_or_else(EcsFault::task_not_found)?;
    let state = task.state(now);
    let (operation_status, error_code, error_msg) = match &state {
        super::world::TaskState::Processing { .. } => ("Processing", "", Cow::Borrowed("")),
        super::world::TaskState::Finished { .. } => ("Success", "", Cow::Borrowed("")),
        super::world::TaskState::Failed { code, message, .. } => {
            ("Failed", *code, Cow::Owned(message.clone()))
        }
        super::world::TaskState::Cancelled { .. } => (
            "Failed",
            "TaskCancelled",
            Cow::Borrowed("The task was cancelled."),
        ),
    };
    let operations: Vec<Node> = task
        .disks
        .iter()
        .map(|disk| {
            Node::Obj(vec![
                ("OperationStatus", Node::s(operation_status)),
                ("ErrorCode", Node::s(error_code)),
                ("ErrorMsg", Node::s(error_msg.as_ref())),
                (
                    "RelatedItemSet",
                    Node::Set(
                        "RelatedItem",
                        vec![
                            related("OSSBucket", &disk.bucket),
                            related("OSSObject", &disk.object),
                            related("ImageFormat", &disk.format),
                            related("ImageId", &task.image_id),
                        ],
                    ),
                ),
            ])
        })
        .collect();
    let disks = task.disks.len();
    let (success, failed) = match operation_status {
        "Success" => (disks, 0),
        "Failed" => (0, disks),
        _ => (0, 0),
    };
    Ok(vec![
        ("TaskId", Node::s(&task.id)),
        ("RegionId", Node::s(region)),
        ("TaskAction", Node::s("ImportImage")),
        ("TaskStatus", Node::s(state.status())),
        ("TaskProcess", Node::s(format!("{}%", state.progress()))),
        (
            "SupportCancel",
            Node::s(if state.is_running() { "true" } else { "false" }),
        ),
        ("CreationTime", Node::s(ecs_time(task.created))),
        (
            "FinishedTime",
            Node::s(state.finished_at().map(ecs_time).unwrap_or_default()),
        ),
        ("TotalCount", Node::i(disks)),
        ("SuccessCount", Node::i(success)),
        ("FailedCount", Node::i(failed)),
        (
            "OperationProgressSet",
            Node::Set("OperationProgress", operations),
        ),
    ])
}

fn related(name: &str, value: &str) -> Node {
    Node::Obj(vec![("Name", Node::s(name)), ("Value", Node::s(value))])
}

fn cancel_task(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let task_id = required(params, "TaskId")?;
    world.cancel(account, &region, task_id, now)?;
    Ok(Vec::new())
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

const IMAGE_STATUSES: &[&str] = &[
    "Creating",
    "Waiting",
    "Available",
    "UnAvailable",
    "CreateFailed",
    "Deprecated",
];
const OWNER_ALIASES: &[&str] = &["system", "self", "others", "marketplace"];
const FILTER_KEYS: &[&str] = &["CreationStartTime", "CreationEndTime", "NetworkType"];

fn image_node(world: &World, image: &ImageRec, now: Timestamp) -> Node {
    let (status, progress) = world.image_state(image, now);
    let creating = status == "Creating";
    let remain = world
        .task(&image.account, &image.region, &image.task_id)
        .filter(|_| creating)
        .map_or(0, |task| {
            (task.created + task.duration)
                .duration_since(now)
                .as_secs()
                .max(0)
        });
    let disks = image
        .disks
        .iter()
        .enumerate()
        .map(|(index, disk)| {
            Node::Obj(vec![
                ("Device", Node::s(&disk.device)),
                ("Size", Node::s(disk.size_gib.to_string())),
                ("Format", Node::s(&disk.format)),
                ("Type", Node::s(if index == 0 { "system" } else { "data" })),
                ("SnapshotId", Node::s("")),
                ("ImportOSSBucket", Node::s(&disk.bucket)),
                ("ImportOSSObject", Node::s(&disk.object)),
                ("Progress", Node::s(format!("{progress}%"))),
                ("RemainTime", Node::i(remain)),
            ])
        })
        .collect();
    let tags = image
        .tags
        .iter()
        .map(|(key, value)| Node::Obj(vec![("TagKey", Node::s(key)), ("TagValue", Node::s(value))]))
        .collect();
    Node::Obj(vec![
        ("ImageId", Node::s(&image.id)),
        ("ImageName", Node::s(&image.name)),
        ("Description", Node::s(&image.description)),
        ("Status", Node::s(status)),
        ("Progress", Node::s(format!("{progress}%"))),
        (
            "Size",
            Node::i(image.disks.first().map_or(0, |disk| disk.size_gib)),
        ),
        ("Architecture", Node::s(&image.architecture)),
        ("OSType", Node::s(&image.os_type)),
        ("Platform", Node::s(&image.platform)),
        ("OSName", Node::s(&image.platform)),
        ("OSNameEn", Node::s(&image.platform)),
        ("BootMode", Node::s(&image.boot_mode)),
        ("LicenseType", Node::s(&image.license_type)),
        ("CreationTime", Node::s(ecs_time(image.created))),
        ("ResourceGroupId", Node::s(&image.resource_group_id)),
        ("ImageOwnerAlias", Node::s("self")),
        ("Usage", Node::s("none")),
        ("IsCopied", Node::Bool(false)),
        ("IsPublic", Node::Bool(false)),
        ("IsSelfShared", Node::s("")),
        (
            "Features",
            Node::Obj(vec![
                ("NvmeSupport", Node::s(&image.nvme_support)),
                ("ImdsSupport", Node::s(&image.imds_support)),
            ]),
        ),
        ("Tags", Node::Set("Tag", tags)),
        ("DiskDeviceMappings", Node::Set("DiskDeviceMapping", disks)),
    ])
}

fn describe_images(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?;
    let ids = comma_list(params.get("ImageId"));
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(EcsFault::invalid("ImageId"));
    }
    let statuses = comma_list(optional(params, "Status"));
    let all_statuses = statuses.iter().any(|s| s.eq_ignore_ascii_case("ALL"));
    if all_statuses && statuses.len() > 1 {
        return Err(EcsFault::invalid("Status"));
    }
    if !all_statuses && statuses.iter().any(|s| !IMAGE_STATUSES.contains(s)) {
        return Err(EcsFault::invalid("Status"));
    }
    let statuses = if statuses.is_empty() {
        vec!["Available"]
    } else {
        statuses
    };
    let alias = optional(params, "ImageOwnerAlias");
    if let Some(alias) = alias
        && !OWNER_ALIASES.contains(&alias)
    {
        return Err(EcsFault::new(
            "InvalidImageOwnerAlias.ValueNotSupported",
            "The specified ImageOwnerAlias is not supported.",
        ));
    }
    if let Some(architecture) = optional(params, "Architecture")
        && !ARCHITECTURES.contains(&architecture)
    {
        return Err(EcsFault::new(
            "InvalidArchitecture",
            "The specified Architecture is not valid.",
        ));
    }
    if let Some(os_type) = optional(params, "OSType")
        && !OS_TYPES.contains(&os_type)
    {
        return Err(EcsFault::new(
            "InvalidOSType",
            "The specified OSType is not valid.",
        ));
    }
    if let Some(usage) = optional(params, "Usage")
        && !["instance", "none"].contains(&usage)
    {
        return Err(EcsFault::new(
            "InvalidUsage",
            "The specified Usage is not valid.",
        ));
    }
    if optional(params, "InstanceType").is_some() {
        // The emulator has no instance types, so no image can be checked against one.
        return Err(EcsFault::new(
            "InvalidInstanceType.ValueNotSupported",
            "The specified InstanceType is not supported.",
        ));
    }
    for (n, key) in numbered(params, "Filter", Some("Key")) {
        if !FILTER_KEYS.contains(&key) {
            return Err(EcsFault::new(
                "InvalidFilterKey.NotFound",
                format!("The specified Filter.{n}.Key is not found."),
            ));
        }
    }
    let keys = numbered(params, "Tag", Some("Key"));
    let values = numbered(params, "Tag", Some("Value"));
    if keys.len() > MAX_TAGS
        || keys
            .iter()
            .chain(&values)
            .any(|(n, _)| *n == 0 || *n > MAX_TAGS)
    {
        return Err(EcsFault::new(
            "InvalidTagCount",
            format!("The number of tag filters exceeds {MAX_TAGS}."),
        ));
    }
    if values
        .iter()
        .any(|(n, _)| !keys.iter().any(|(k, _)| k == n))
    {
        return Err(EcsFault::new(
            "InvalidTag.Mismatch",
            "A tag value is given without its key.",
        ));
    }
    let tag_filters: Vec<(&str, Option<&str>)> = keys
        .iter()
        .map(|(n, key)| {
            let value = values.iter().find(|(m, _)| m == n).map(|(_, v)| *v);
            (*key, value)
        })
        .collect();
    let (page_number, page_size) = page(params)?;
    let dry_run = flag(params, "DryRun")?;
    if dry_run {
        return Err(EcsFault::dry_run());
    }
    // Only custom images exist here: asking for system, shared or marketplace images finds none.
    let own_images_visible = alias.is_none_or(|alias| alias == "self");
    let name_filter = optional(params, "ImageName");
    let architecture = optional(params, "Architecture");
    let os_type = optional(params, "OSType");
    let resource_group = optional(params, "ResourceGroupId");
    let matched: Vec<&ImageRec> = world
        .images_among(account, region, &ids)
        .into_iter()
        .filter(|_| own_images_visible)
        .filter(|image| name_filter.is_none_or(|name| image.name.contains(name)))
        .filter(|image| architecture.is_none_or(|a| image.architecture == a))
        .filter(|image| os_type.is_none_or(|o| image.os_type == o))
        .filter(|image| resource_group.is_none_or(|g| image.resource_group_id == g))
        .filter(|image| {
            tag_filters.iter().all(|(key, value)| {
                image
                    .tags
                    .iter()
                    .any(|(k, v)| k == key && value.is_none_or(|value| v == value))
            })
        })
        .filter(|image| all_statuses || statuses.contains(&world.image_state(image, now).0))
        .collect();
    let total = matched.len();
    let images = matched
        .into_iter()
        .rev()
        // Saturating: page × size overflows for page numbers near `usize::MAX`, and a
        // page past the end is simply empty.
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|image| image_node(world, image, now))
        .collect();
    Ok(vec![
        ("RegionId", Node::s(region)),
        ("TotalCount", Node::i(total)),
        ("PageNumber", Node::i(page_number)),
        ("PageSize", Node::i(page_size)),
        ("Images", Node::Set("Image", images)),
    ])
}

fn delete_image(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let image_id = required(params, "ImageId")?;
    flag(params, "Force")?;
    let dry_run = flag(params, "DryRun")?;
    world.delete_image(account, &region, image_id, now, dry_run)?;
    Ok(Vec::new())
}

fn modify_image_attribute(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let image_id = required(params, "ImageId")?;
    check_name_and_description(params)?;
    let image = world
        .image(account, &region, image_id)
        .ok_or_else(EcsFault::image_not_found)?;
    if world.image_state(image, now).0 == "CreateFailed" {
        return Err(EcsFault::new(
            "IncorrectImageStatus",
            "The specified image is not available.",
        ));
    }
    if let Some(name) = params.get("ImageName")
        && world
            .images_of(account, &region)
            .any(|other| other.id != image_id && other.name == name)
    {
        return Err(EcsFault::new(
            "InvalidImageName.Duplicated",
            "The destination image is exist.",
        ));
    }
    if let Some(image) = world.image_mut(account, &region, image_id) {
        if let Some(name) = params.get("ImageName") {
            image.name = name.to_string();
        }
        if let Some(description) = params.get("Description") {
            image.description = description.to_string();
        }
    }
    Ok(Vec::new())
}

fn tagged_images(
    world: &World,
    account: &str,
    region: &str,
    params: &Params,
) -> Result<Vec<String>, EcsFault> {
    let resource_type = required(params, "ResourceType")?;
    if !resource_type.eq_ignore_ascii_case("image") {
        return Err(EcsFault::new(
            "InvalidResourceType.NotFound",
            format!("The resource type {resource_type} is not supported here."),
        ));
    }
    let ids: Vec<String> = numbered(params, "ResourceId", None)
        .into_iter()
        .map(|(_, id)| id.to_string())
        .collect();
    if ids.is_empty() {
        return Err(EcsFault::missing("ResourceId.1"));
    }
    if ids.len() > crate::ecs::api::MAX_TAG_RESOURCES {
        return Err(EcsFault::invalid("ResourceId"));
    }
    if let Some(missing) = ids
        .iter()
        .find(|id| world.image(account, region, id).is_none())
    {
        return Err(EcsFault::new(
            "InvalidResourceId.NotFound",
            format!("The specified resource {missing} is not found."),
        ));
    }
    Ok(ids)
}

fn tag_resources(world: &mut World, account: &str, params: &Params) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let ids = tagged_images(world, account, &region, params)?;
    let tags = tags(params)?;
    if tags.is_empty() {
        return Err(EcsFault::missing("Tag.1.Key"));
    }
    for id in &ids {
        if let Some(image) = world.image(account, &region, id) {
            let mut merged = image.tags.clone();
            for (key, value) in &tags {
                match merged.iter_mut().find(|(k, _)| k == key) {
                    Some(existing) => existing.1 = value.clone(),
                    None => merged.push((key.clone(), value.clone())),
                }
            }
            if merged.len() > MAX_TAGS {
                return Err(EcsFault::new(
                    "InvalidTagCount",
                    format!("A resource can have at most {MAX_TAGS} tags."),
                ));
            }
        }
    }
    for id in &ids {
        if let Some(image) = world.image_mut(account, &region, id) {
            for (key, value) in &tags {
                match image.tags.iter_mut().find(|(k, _)| k == key) {
                    Some(existing) => existing.1 = value.clone(),
                    None => image.tags.push((key.clone(), value.clone())),
                }
            }
        }
    }
    Ok(Vec::new())
}

fn untag_resources(world: &mut World, account: &str, params: &Params) -> Result<Fields, EcsFault> {
    let region = region(world, params)?.to_string();
    let ids = tagged_images(world, account, &region, params)?;
    let all = flag(params, "All")?;
    let keys: Vec<String> = numbered(params, "TagKey", None)
        .into_iter()
        .map(|(_, key)| key.to_string())
        .collect();
    if keys.len() > MAX_TAGS {
        return Err(EcsFault::invalid("TagKey"));
    }
    if keys.is_empty() && !all {
        return Err(EcsFault::missing("TagKey.1"));
    }
    for id in &ids {
        if let Some(image) = world.image_mut(account, &region, id) {
            image.tags.retain(|(key, _)| !all && !keys.contains(key));
        }
    }
    Ok(Vec::new())
}

/// The emulator's account names stand in for Alibaba Cloud's numeric account ids.
fn caller_identity(account: &str) -> Fields {
    vec![
        ("AccountId", Node::s(account)),
        ("UserId", Node::s(format!("{account}-user"))),
        ("Arn", Node::s(format!("acs:ram::{account}:user/emulator"))),
        ("IdentityType", Node::s("RAMUser")),
        ("PrincipalId", Node::s(format!("{account}-user"))),
    ]
}

fn describe_regions(world: &mut World, params: &Params) -> Result<Fields, EcsFault> {
    if let Some(region) = optional(params, "RegionId")
        && world.region(region).is_none()
    {
        return Err(EcsFault::invalid_region());
    }
    let regions = world
        .regions()
        .iter()
        .map(|region| {
            Node::Obj(vec![
                ("RegionId", Node::s(&region.id)),
                ("LocalName", Node::s(&region.local_name)),
                (
                    "RegionEndpoint",
                    Node::s(format!("ecs.{}.aliyuncs.com", region.id)),
                ),
                ("Status", Node::s("available")),
            ])
        })
        .collect();
    Ok(vec![("Regions", Node::Set("Region", regions))])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;
    use crate::emulator::world::{ImportTiming, default_regions};

    #[test]
    fn statuses_come_from_the_clients_table() {
        assert_eq!(status_of("QuotaExceed.Image"), 403);
        assert_eq!(status_of("InvalidImageId.NotFound"), 404);
        assert_eq!(status_of("DryRunOperation"), 400);
        assert_eq!(status_of("Forbbiden"), 400);
    }

    #[test]
    fn numbered_parameters_are_ordered_by_number() {
        let params: Params = [
            ("Tag.10.Key", "j"),
            ("Tag.2.Key", "b"),
            ("Tag.1.Key", "a"),
            ("Tag.1.Value", "x"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            numbered(&params, "Tag", Some("Key")),
            vec![(1, "a"), (2, "b"), (10, "j")]
        );
    }

    #[test]
    fn import_checks_parameters_before_state() {
        let mut world = World::new(default_regions(), ImportTiming::default(), 1);
        let now = Timestamp::UNIX_EPOCH;
        let mut params: Params = [("RegionId", "cn-hangzhou")].into_iter().collect();
        let fault = run(&mut world, "a", "ImportImage", &params, now).unwrap_err();
        assert_eq!(fault.code, "MissingParameter.DiskDeviceMapping");
        assert_eq!(fault.http_status(), 403);
        params.set("DiskDeviceMapping.1.OSSBucket", "bucket");
        let fault = run(&mut world, "a", "ImportImage", &params, now).unwrap_err();
        assert_eq!(fault.code, "MissingParameter");
        assert!(fault.message.contains("DiskDeviceMapping.1.OSSObject"));
        params.set("DiskDeviceMapping.1.OSSObject", "disk.raw");
        params.set("ImageName", "1-starts-with-digit");
        let fault = run(&mut world, "a", "ImportImage", &params, now).unwrap_err();
        assert_eq!(fault.code, "InvalidImageName.Malformed");
        assert_eq!(world.import_calls().len(), 3);
        assert!(world.import_calls().iter().all(|call| call.at == now));
        let wall = Timestamp::now();
        assert!(
            world
                .import_calls()
                .iter()
                .all(|call| call.received_at <= wall && call.received_at > now)
        );
    }
}
