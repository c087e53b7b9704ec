//! `ImportImage`: every parameter check ECS documents, in its order, into an [`ImportSpec`] that
//! the world imports; each call is recorded for the stats.

use jiff::Timestamp;

use super::tags::{check_name_and_description, tags};
use super::{EcsFault, Fields, flag, optional, required};
use crate::ecs::api::{MAX_CLIENT_TOKEN_LEN, MAX_DISK_DEVICE_MAPPINGS};
use crate::ecs::endpoint::is_valid_region_id;
use crate::ecs::params::Params;
use crate::emulator::render::Node;
use crate::emulator::world::{DEFAULT_IMPORT_ROLE, DiskSpec, ImportCall, ImportSpec, World};

pub(super) const ARCHITECTURES: &[&str] = &["i386", "x86_64", "arm64"];
pub(super) const OS_TYPES: &[&str] = &["linux", "windows"];
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

/// `ClientToken`, if given: ASCII without spaces, at most 64 characters.
pub(super) fn client_token(params: &Params) -> Result<Option<&str>, EcsFault> {
    let token = optional(params, "ClientToken");
    if let Some(token) = token
        && (token.len() > MAX_CLIENT_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(EcsFault::new(
            "InvalidClientToken.Malformed",
            "The specified parameter \"ClientToken\" is not valid.",
        ));
    }
    Ok(token)
}

/// The business parameters of a request in canonical form: a retry with the same `ClientToken`
/// must carry the same fingerprint.
pub(super) fn fingerprint(params: &Params) -> String {
    let business: Params = params
        .iter()
        .filter(|(name, _)| !NOT_FINGERPRINTED.contains(name))
        .collect();
    business.canonicalized_query()
}

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
    let client_token = client_token(params)?;
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
        fingerprint: fingerprint(params),
        dry_run,
    })
}

pub(super) fn import_image(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;
    use crate::emulator::actions::run;
    use crate::emulator::world::{ImportTiming, default_regions};

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
