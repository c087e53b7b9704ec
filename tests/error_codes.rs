//! Every error code on the original `ImportImage` page and in the API reference is known to the
//! client, with the documented HTTP status and a class that decides retry versus stall.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use ecs_image_operator::ecs::error::{ApiError, ErrorClass, KNOWN_CODES, classify, known_code};

/// (code, HTTP status) rows of the error table of the original page (`tests/fixtures/ImportImage.ja.txt`).
fn original_page_codes() -> Vec<(String, u16)> {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ImportImage.ja.txt"
    ))
    .unwrap();
    page.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let status = cells.get(2)?.parse::<u16>().ok()?;
            let code = cells.first()?;
            code.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.')
                .then(|| (code.to_string(), status))
        })
        .collect()
}

#[test]
fn every_code_on_the_original_page_is_known_with_its_status() {
    let codes = original_page_codes();
    assert!(codes.len() >= 17, "the table was read: {codes:?}");
    assert!(
        codes.iter().any(|(code, _)| code == "Forbbiden"),
        "ECS's own spelling is on the page"
    );
    for (code, status) in codes {
        let known = known_code(&code).unwrap_or_else(|| panic!("{code} is not in KNOWN_CODES"));
        assert_eq!(known.http_status, status, "{code}");
    }
}

/// The ImportImage table of the API reference (§1.3) and the common gateway codes (§7.2).
const REFERENCE_CODES: &[&str] = &[
    "MissingParameter",
    "UnsupportedSuffix.OSSObject",
    "InvalidImageName.Malformed",
    "InvalidDescription.Malformed",
    "InvalidArchitecture.Malformed",
    "InvalidPlatform.Malformed",
    "InvalidOSType.Malformed",
    "InvalidImageFormat.Malformed",
    "InvalidBootMode.Malformed",
    "InvalidOSSObject.Malformed",
    "InvalidOSSBucket.Malformed",
    "InvalidImageName.Duplicated",
    "InvalidImageSize",
    "InvalidDataDiskSize",
    "InvalidOSSObject.Size",
    "InvalidOSSBucket.NotFound",
    "InvalidOSSObject.NotFound",
    "InvalidOSSObject.NeedRestore",
    "InvalidOSSBucket.NotMatched",
    "InvalidOSSBucket.FlowLimit",
    "InvalidRegionId.NotFound",
    "InvalidRegion.NotSupport",
    "InvalidImageFormat.RegionNotSupported",
    "InvalidLicenseType.NotSupported",
    "InvalidLicenseType.BYOLOnly",
    "InvalidParameter.DetectionStrategy",
    "InvalidBootMode.NotSupport",
    "InvalidParameter.FeaturesImdsSupport",
    "InvalidClientToken.Malformed",
    "Account.Arrearage",
    "ImageIsImporting",
    "QuotaExceed.Image",
    "ImportImageFailed",
    "UserNotInTheWhiteList",
    "NoSetRoletoECSServiceAcount",
    "NoSetRoletoECSServiceAccount",
    "InvalidParameter.Malformed",
    "MissingParameter.DiskDeviceMapping",
    "InvalidOSS.NotAuthorized",
    "InvalidBlockSize.NotSupport",
    "InvalidVHDImage.IncorrectSize",
    "ImageCheckUnsupported.WindowsImage",
    "InvalidOSSBucket.EncryptUnsupported",
    "InvalidArchitecture.PlatformUnsupported",
    "InvalidAccountStatus.OSSDisabled",
    "InvalidStorageLocation.NotFound",
    "InvalidOperation.CloudBoxImageImportRoleRequired",
    "InvalidOperation.CloudBoxImageImportUnsupported",
    "TagKey.Duplication",
    "InvalidResourceGroup.NotFound",
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "Rejected.Throttling",
    "ServiceUnavailable",
    "InternalError",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId.NotFound",
    "InvalidSecurityToken.Expired",
    "SignatureNonceUsed",
    "InvalidTimeStamp.Expired",
    "Forbidden.RAM",
    "IdempotentParameterMismatch",
    "LastTokenProcessing",
    "OperationConflict",
    "InvalidTaskId.NotFound",
    "InvalidTaskId.IncorrectTaskStatus",
    "CancelTaskFailed",
    "InvalidImageId.NotFound",
    "ImageUsingByInstance",
];

#[test]
fn every_reference_code_is_known() {
    for code in REFERENCE_CODES {
        assert!(known_code(code).is_some(), "{code} is not in KNOWN_CODES");
    }
}

#[test]
fn classes_follow_the_reference() {
    use ErrorClass::*;
    let expectations = [
        ("Throttling.User", Retryable),
        ("ServiceUnavailable", Retryable),
        ("InternalError", Retryable),
        ("ImageIsImporting", Retryable),
        ("SignatureNonceUsed", Retryable),
        ("InvalidSecurityToken.Expired", RefreshCredentials),
        ("InvalidImageName.Malformed", InvalidRequest),
        ("MissingParameter", InvalidRequest),
        ("SignatureDoesNotMatch", InvalidRequest),
        ("QuotaExceed.Image", External),
        ("NoSetRoletoECSServiceAcount", External),
        ("InvalidOSSObject.NotFound", External),
        ("Forbbiden", External),
        ("Forbidden.RAM", External),
    ];
    for (code, class) in expectations {
        assert_eq!(classify(code, 400), class, "{code}");
    }
}

#[test]
fn every_known_code_is_classified_as_its_table_row_says_and_survives_a_round_trip() {
    for known in KNOWN_CODES {
        let body = format!(
            r#"{{"RequestId":"R","Code":"{}","Message":"m"}}"#,
            known.code
        );
        let error = ApiError::parse("ImportImage", known.http_status, &body).unwrap();
        assert_eq!(error.code, known.code);
        assert_eq!(error.class(), known.class, "{}", known.code);
    }
}

#[test]
fn every_code_the_operator_mints_is_in_the_one_table_with_its_class() {
    use ecs_image_operator::ecs::CredentialsError;
    use ecs_image_operator::ecs::error::{EcsError, OPERATOR_CODES, operator_code_class};
    use std::time::Duration;
    let minted = [
        EcsError::Timeout {
            action: "DescribeTasks",
            timeout: Duration::from_secs(1),
        },
        // A 2xx answer that cannot be read is a hiccup to retry, never a stall.
        EcsError::Decode {
            action: "ImportImage",
            status: 200,
            detail: "missing field ImageId".into(),
        },
        EcsError::Decode {
            action: "ImportImage",
            status: 404,
            detail: "<html>".into(),
        },
        EcsError::Endpoint("http://example.invalid".into()),
        EcsError::InvalidRequest("too long".into()),
        EcsError::Credentials(CredentialsError::NotConfigured),
        EcsError::Credentials(CredentialsError::SecretKeyMissing("accessKeyId")),
        EcsError::Credentials(CredentialsError::Metadata("no role".into())),
        EcsError::Credentials(CredentialsError::Endpoint("bad".into())),
        EcsError::Credentials(CredentialsError::Decode {
            service: "STS",
            status: 200,
            detail: "x".into(),
        }),
    ];
    for error in &minted {
        let code = error.code();
        assert!(
            OPERATOR_CODES.iter().any(|known| known.code == code),
            "{code} is minted but not in OPERATOR_CODES"
        );
        assert_eq!(error.class(), operator_code_class(code), "{code}");
    }
    assert_eq!(minted[1].class(), ErrorClass::Retryable);
    for known in OPERATOR_CODES {
        assert!(
            known_code(known.code).is_none(),
            "{} is both an ECS code and one of ours",
            known.code
        );
    }
    // A code left out of the table by mistake is retried, never treated as "wait for a change".
    assert_eq!(operator_code_class("SomethingNew"), ErrorClass::Retryable);
}
