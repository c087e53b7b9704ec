//! Every error code the emulator can produce, each from a request that should produce it, with the
//! HTTP status the client's own table documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::time::Duration;

use ecs_image_operator::ecs::error::known_code;
use ecs_image_operator::emulator::actions::status_of;
use ecs_image_operator::emulator::{AccountPatch, AccountStatus, EmulatorHandle};
use emulator_support::*;
use serde_json::Value;

const SYSTEM_DISK: &[(&str, &str)] = &[
    ("RegionId", REGION),
    ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
    ("DiskDeviceMapping.1.OSSObject", "ubuntu-22.04.qcow2"),
];

/// The system-disk import with some parameters replaced or added (`""` removes one).
fn import_with(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut params: Vec<(&str, &str)> = SYSTEM_DISK.to_vec();
    for (name, value) in changes {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    params
}

async fn call_as(
    emulator: &EmulatorHandle,
    key: (&str, &str),
    action: &str,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let signed = signed_as("POST", action, params, key.0, key.1, &now_stamp(), &nonce());
    let (status, body) = post_form(emulator, &signed).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn call(emulator: &EmulatorHandle, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
    call_as(emulator, (AK_ID, AK_SECRET), action, params).await
}

#[track_caller]
fn assert_code(answer: &(u16, Value), code: &str, context: &str) {
    let (status, body) = answer;
    assert_eq!(body["Code"].as_str(), Some(code), "{context}: {body}");
    assert_eq!(*status, status_of(code), "{context}: status of {code}");
    if let Some(known) = known_code(code) {
        assert_eq!(
            *status, known.http_status,
            "{context}: table status of {code}"
        );
    }
    assert!(body["RequestId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["Message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// An action, its parameters, and the code they must produce.
type Case = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

#[tokio::test]
async fn parameter_errors_of_every_action() {
    let emulator = start().await;
    // Leaked so every case is `'static`; a test process ends soon anyway.
    let hundred_and_one: &'static str = (0..101)
        .map(|i| format!("t-{i},"))
        .collect::<String>()
        .leak();
    let long_token: &'static str = "x".repeat(65).leak();
    let cases: Vec<Case> = vec![
        // ImportImage: syntax and region, in the doc's order.
        (
            "ImportImage",
            import_with(&[("RegionId", "")]),
            "MissingParameter",
        ),
        (
            "ImportImage",
            import_with(&[("RegionId", "Not_A_Region")]),
            "RegionId.NotFound",
        ),
        (
            "ImportImage",
            import_with(&[("RegionId", "xx-nowhere-1")]),
            "InvalidRegionId.NotFound",
        ),
        (
            "ImportImage",
            import_with(&[("RegionId", "me-east-1")]),
            "InvalidRegion.NotSupport",
        ),
        (
            "ImportImage",
            vec![("RegionId", REGION)],
            "MissingParameter.DiskDeviceMapping",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "")]),
            "MissingParameter",
        ),
        (
            "ImportImage",
            import_with(&[("ClientToken", long_token)]),
            "InvalidClientToken.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("ImageName", "1-starts-with-a-digit")]),
            "InvalidImageName.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("ImageName", "aliyun-reserved")]),
            "InvalidImageName.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("Description", "http://example.com")]),
            "InvalidDescription.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("Architecture", "sparc")]),
            "InvalidArchitecture.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("OSType", "beos")]),
            "InvalidOSType.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("Platform", "Plan 9")]),
            "InvalidPlatform.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("BootMode", "CSM")]),
            "InvalidBootMode.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("Architecture", "arm64"), ("BootMode", "BIOS")]),
            "InvalidBootMode.NotSupport",
        ),
        (
            "ImportImage",
            import_with(&[
                ("Architecture", "arm64"),
                ("Platform", "Windows Server 2022"),
            ]),
            "InvalidArchitecture.PlatformUnsupported",
        ),
        (
            "ImportImage",
            import_with(&[("LicenseType", "Free")]),
            "InvalidLicenseType.NotSupported",
        ),
        (
            "ImportImage",
            import_with(&[("DetectionStrategy", "Deep")]),
            "InvalidParameter.DetectionStrategy",
        ),
        (
            "ImportImage",
            import_with(&[
                ("OSType", "windows"),
                ("Platform", "Windows Server 2008"),
                ("DetectionStrategy", "Standard"),
            ]),
            "ImageCheckUnsupported.WindowsImage",
        ),
        (
            "ImportImage",
            import_with(&[("Features.ImdsSupport", "v3")]),
            "InvalidParameter.FeaturesImdsSupport",
        ),
        (
            "ImportImage",
            import_with(&[("StorageLocationArn", "cb-1")]),
            "InvalidStorageLocation.NotFound",
        ),
        (
            "ImportImage",
            import_with(&[(
                "StorageLocationArn",
                "arn:acs:cloudbox:cn-hangzhou:1:cloudbox/cb-1",
            )]),
            "InvalidOperation.CloudBoxImageImportUnsupported",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSBucket", "Bad_Bucket")]),
            "InvalidOSSBucket.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "/absolute.raw")]),
            "InvalidOSSObject.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "disk.zip")]),
            "UnsupportedSuffix.OSSObject",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.Format", "ISO")]),
            "InvalidFormat.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.DiskImageSize", "5000")]),
            "InvalidImageSize",
        ),
        (
            "ImportImage",
            import_with(&[
                ("DiskDeviceMapping.2.OSSBucket", "images-hz"),
                ("DiskDeviceMapping.2.OSSObject", "images/CentOS 7.raw"),
                ("DiskDeviceMapping.2.DiskImageSize", "0"),
            ]),
            "InvalidDataDiskSize",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.Device", "/dev/sda")]),
            "InvalidParameter.Malformed",
        ),
        (
            "ImportImage",
            import_with(&[("Tag.1.Key", "team"), ("Tag.2.Key", "TEAM")]),
            "TagKey.Duplication",
        ),
        (
            "ImportImage",
            import_with(&[("ResourceGroupId", "rg-unknown")]),
            "InvalidResourceGroup.NotFound",
        ),
        // ImportImage: OSS and sizes.
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSBucket", "no-such-bucket")]),
            "InvalidOSSBucket.NotFound",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "missing.raw")]),
            "InvalidOSSObject.NotFound",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "empty.raw")]),
            "InvalidOSSObject.Size",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "cold.raw")]),
            "InvalidOSSObject.NeedRestore",
        ),
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.OSSObject", "secret.raw")]),
            "InvalidOSS.NotAuthorized",
        ),
        (
            "ImportImage",
            import_with(&[
                ("DiskDeviceMapping.1.OSSBucket", "images-vault"),
                ("DiskDeviceMapping.1.OSSObject", "disk.raw"),
            ]),
            "InvalidOSSBucket.EncryptUnsupported",
        ),
        (
            "ImportImage",
            import_with(&[
                ("DiskDeviceMapping.1.OSSBucket", "images-sh"),
                ("DiskDeviceMapping.1.OSSObject", "disk.raw"),
            ]),
            "InvalidOSSBucket.NotMatched",
        ),
        (
            "ImportImage",
            vec![
                ("RegionId", "cn-shanghai"),
                ("DiskDeviceMapping.1.OSSBucket", "images-sh"),
                ("DiskDeviceMapping.1.OSSObject", "disk.raw"),
                ("DiskDeviceMapping.1.Format", "VMDK"),
            ],
            "InvalidImageFormat.RegionNotSupported",
        ),
        // Below the virtual size (20 GiB) of the file.
        (
            "ImportImage",
            import_with(&[("DiskDeviceMapping.1.DiskImageSize", "10")]),
            "InvalidImageSize",
        ),
        (
            "ImportImage",
            import_with(&[("DryRun", "true")]),
            "DryRunOperation",
        ),
        // Gateway.
        (
            "RunInstances",
            vec![("RegionId", REGION)],
            "InvalidAction.NotFound",
        ),
        // Tasks.
        ("DescribeTasks", vec![], "MissingParameter"),
        (
            "DescribeTasks",
            vec![("RegionId", "xx-nowhere-1")],
            "InvalidRegionId.NotFound",
        ),
        (
            "DescribeTasks",
            vec![("RegionId", REGION), ("PageSize", "101")],
            "InvalidParameter",
        ),
        (
            "DescribeTasks",
            vec![("RegionId", REGION), ("TaskIds", hundred_and_one)],
            "InvalidParameter",
        ),
        (
            "DescribeTasks",
            vec![("RegionId", REGION), ("StartTime", "yesterday")],
            "InvalidParameter",
        ),
        (
            "DescribeTaskAttribute",
            vec![("RegionId", REGION)],
            "MissingParameter",
        ),
        (
            "DescribeTaskAttribute",
            vec![("RegionId", REGION), ("TaskId", "t-none")],
            "InvalidTaskId.NotFound",
        ),
        (
            "CancelTask",
            vec![("RegionId", REGION), ("TaskId", "t-none")],
            "InvalidTaskId.NotFound",
        ),
        // Images.
        (
            "DeleteImage",
            vec![("RegionId", REGION), ("ImageId", "m-none")],
            "InvalidImageId.NotFound",
        ),
        (
            "ModifyImageAttribute",
            vec![("RegionId", REGION), ("ImageId", "m-none")],
            "InvalidImageId.NotFound",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("ImageOwnerAlias", "everyone")],
            "InvalidImageOwnerAlias.ValueNotSupported",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("Tag.1.Value", "v")],
            "InvalidTag.Mismatch",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("Tag.21.Key", "k")],
            "InvalidTagCount",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("InstanceType", "ecs.g7.large")],
            "InvalidInstanceType.ValueNotSupported",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("Filter.1.Key", "Colour")],
            "InvalidFilterKey.NotFound",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("Usage", "sometimes")],
            "InvalidUsage",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("OSType", "beos")],
            "InvalidOSType",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("Architecture", "sparc")],
            "InvalidArchitecture",
        ),
        (
            "DescribeImages",
            vec![("RegionId", REGION), ("Status", "ALL,Available")],
            "InvalidParameter",
        ),
        (
            "TagResources",
            vec![
                ("RegionId", REGION),
                ("ResourceType", "instance"),
                ("ResourceId.1", "i-1"),
                ("Tag.1.Key", "k"),
            ],
            "InvalidResourceType.NotFound",
        ),
        (
            "TagResources",
            vec![
                ("RegionId", REGION),
                ("ResourceType", "image"),
                ("ResourceId.1", "m-none"),
                ("Tag.1.Key", "k"),
            ],
            "InvalidResourceId.NotFound",
        ),
        (
            "UntagResources",
            vec![("RegionId", REGION), ("ResourceType", "image")],
            "MissingParameter",
        ),
        (
            "DescribeRegions",
            vec![("RegionId", "xx-nowhere-1")],
            "InvalidRegionId.NotFound",
        ),
    ];
    for (action, params, code) in &cases {
        let answer = call(&emulator, action, params).await;
        assert_code(&answer, code, &format!("{action} {params:?}"));
    }
    // Nothing above created anything.
    assert!(
        emulator
            .stats()
            .import_calls
            .iter()
            .all(|c| c.image_id.is_none())
    );

    // A wrong API version.
    let mut params = signed("POST", "DescribeRegions", &[]);
    params.set("Version", "2016-03-14");
    resign(&mut params, "POST", AK_SECRET);
    let (status, body) = post_form(&emulator, &params).await;
    assert_code(
        &(status, serde_json::from_str(&body).unwrap()),
        "InvalidVersion",
        "Version",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn account_state_errors() {
    let emulator = start().await;
    let other = (OTHER_ID, OTHER_SECRET);
    let statuses = [
        (AccountStatus::ImportForbidden, "Forbbiden"),
        (AccountStatus::NotWhitelisted, "UserNotInTheWhiteList"),
        (AccountStatus::Arrears, "Account.Arrearage"),
        (
            AccountStatus::OssDisabled,
            "InvalidAccountStatus.OSSDisabled",
        ),
    ];
    for (status, code) in statuses {
        emulator.patch_account(
            "other",
            AccountPatch {
                status: Some(status),
                ..Default::default()
            },
        );
        let answer = call_as(&emulator, other, "ImportImage", SYSTEM_DISK).await;
        assert_code(&answer, code, &format!("{status:?}"));
    }
    emulator.patch_account(
        "other",
        AccountPatch {
            status: Some(AccountStatus::Active),
            import_role: Some(false),
            ..Default::default()
        },
    );
    let answer = call_as(&emulator, other, "ImportImage", SYSTEM_DISK).await;
    assert_code(&answer, "NoSetRoletoECSServiceAcount", "no role");
    // A custom role must exist too.
    let custom = import_with(&[("RoleName", "MyImportRole")]);
    let answer = call(&emulator, "ImportImage", &custom).await;
    assert_code(&answer, "NoSetRoletoECSServiceAcount", "custom role");
    emulator.patch_account(
        "other",
        AccountPatch {
            import_role: Some(true),
            image_quota: Some(0),
            ..Default::default()
        },
    );
    let answer = call_as(&emulator, other, "ImportImage", SYSTEM_DISK).await;
    assert_code(&answer, "QuotaExceed.Image", "image quota");
    emulator.patch_account(
        "other",
        AccountPatch {
            image_quota: Some(10),
            snapshot_quota: Some(0),
            ..Default::default()
        },
    );
    let answer = call_as(&emulator, other, "ImportImage", SYSTEM_DISK).await;
    assert_code(&answer, "QuotaExceed.Snapshot", "snapshot quota");
    emulator.shutdown().await;
}

#[tokio::test]
async fn life_cycle_errors() {
    let emulator = start().await;
    let named = import_with(&[("ImageName", "taken")]);
    let (status, created) = call(&emulator, "ImportImage", &named).await;
    assert_eq!(status, 200, "{created}");
    let image_id = created["ImageId"].as_str().unwrap().to_string();
    let task_id = created["TaskId"].as_str().unwrap().to_string();
    assert_code(
        &call(&emulator, "ImportImage", &named).await,
        "InvalidImageName.Duplicated",
        "same name",
    );
    let token = import_with(&[("ImageName", "tokened"), ("ClientToken", "tok-1")]);
    assert_eq!(call(&emulator, "ImportImage", &token).await.0, 200);
    let changed = import_with(&[("ImageName", "tokened-2"), ("ClientToken", "tok-1")]);
    assert_code(
        &call(&emulator, "ImportImage", &changed).await,
        "IdempotentParameterMismatch",
        "token reuse",
    );
    let image = [("RegionId", REGION), ("ImageId", image_id.as_str())];
    assert_code(
        &call(&emulator, "DeleteImage", &image).await,
        "ImageIsImporting",
        "delete while importing",
    );

    emulator.advance(Duration::from_secs(3600));
    let task = [("RegionId", REGION), ("TaskId", task_id.as_str())];
    assert_code(
        &call(&emulator, "CancelTask", &task).await,
        "InvalidTaskId.IncorrectTaskStatus",
        "cancel finished",
    );
    let rename = [
        ("RegionId", REGION),
        ("ImageId", image_id.as_str()),
        ("ImageName", "tokened"),
    ];
    assert_code(
        &call(&emulator, "ModifyImageAttribute", &rename).await,
        "InvalidImageName.Duplicated",
        "rename onto another",
    );

    // A cancelled import leaves a CreateFailed image that cannot be modified.
    let (_, second) = call(
        &emulator,
        "ImportImage",
        &import_with(&[("ImageName", "doomed")]),
    )
    .await;
    let second_task = [
        ("RegionId", REGION),
        ("TaskId", second["TaskId"].as_str().unwrap()),
    ];
    assert_eq!(call(&emulator, "CancelTask", &second_task).await.0, 200);
    let modify = [
        ("RegionId", REGION),
        ("ImageId", second["ImageId"].as_str().unwrap()),
        ("Description", "new description"),
    ];
    assert_code(
        &call(&emulator, "ModifyImageAttribute", &modify).await,
        "IncorrectImageStatus",
        "modify failed image",
    );
    emulator.shutdown().await;
}

/// Failures ECS only finds while importing show in the task, not in the `ImportImage` answer.
#[tokio::test]
async fn import_failures_show_in_the_task() {
    let emulator = start().await;
    emulator.add_object(ecs_image_operator::emulator::OssObject {
        bucket: "images-hz".into(),
        key: "torn.vhd".into(),
        region: REGION.into(),
        size: 1000,
        virtual_size_gib: 1,
        format: "VHD".into(),
        storage_class: "Standard".into(),
        readable: true,
        encrypted: false,
    });
    let wrong_format = import_with(&[
        ("ImageName", "wrong"),
        ("DiskDeviceMapping.1.Format", "RAW"),
    ]);
    let torn = import_with(&[
        ("ImageName", "torn"),
        ("DiskDeviceMapping.1.OSSObject", "torn.vhd"),
    ]);
    let mut expected = vec![
        (
            call(&emulator, "ImportImage", &wrong_format).await.1,
            "InvalidImageFormat.Malformed",
        ),
        (
            call(&emulator, "ImportImage", &torn).await.1,
            "InvalidVHDImage.IncorrectSize",
        ),
    ];
    emulator.set_import_failure_rate(1.0);
    let unlucky = import_with(&[("ImageName", "unlucky")]);
    expected.push((
        call(&emulator, "ImportImage", &unlucky).await.1,
        "ImportImageFailed",
    ));
    emulator.advance(Duration::from_secs(3600));
    for (created, code) in expected {
        let task = [
            ("RegionId", REGION),
            ("TaskId", created["TaskId"].as_str().unwrap()),
        ];
        let (status, attribute) = call(&emulator, "DescribeTaskAttribute", &task).await;
        assert_eq!(status, 200);
        assert_eq!(attribute["TaskStatus"], "Failed", "{attribute}");
        let operation = &attribute["OperationProgressSet"]["OperationProgress"][0];
        assert_eq!(operation["OperationStatus"], "Failed");
        assert_eq!(operation["ErrorCode"], code, "{attribute}");
        assert!(!operation["ErrorMsg"].as_str().unwrap().is_empty());
        let image = [
            ("RegionId", REGION),
            ("ImageId", created["ImageId"].as_str().unwrap()),
            ("Status", "CreateFailed"),
        ];
        let (_, images) = call(&emulator, "DescribeImages", &image).await;
        assert_eq!(images["TotalCount"], 1, "{images}");
    }
    emulator.shutdown().await;
}
