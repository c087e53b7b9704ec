//! The tables of error codes the operator knows — ECS's, with the status ECS documents and a class,
//! and the operator's own — with the hints for the user and the lookups that classify a code.

use super::ErrorClass;
use crate::ecs::redact::WRONG_SECRET_HINT;

/// One error code the operator knows, with the HTTP status ECS documents for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCode {
    /// The ECS code, spelled as ECS spells it (`Forbbiden`, `NoSetRoletoECSServiceAcount`).
    pub code: &'static str,
    /// The documented HTTP status.
    pub http_status: u16,
    /// How to react.
    pub class: ErrorClass,
    /// What the user can do, when ECS's message does not say.
    pub hint: Option<&'static str>,
}

const fn known(code: &'static str, http_status: u16, class: ErrorClass) -> KnownCode {
    KnownCode {
        code,
        http_status,
        class,
        hint: None,
    }
}

const fn hinted(
    code: &'static str,
    http_status: u16,
    class: ErrorClass,
    hint: &'static str,
) -> KnownCode {
    KnownCode {
        code,
        http_status,
        class,
        hint: Some(hint),
    }
}

/// What to do about a missing image-import role, as the original `ImportImage` page explains it.
pub const IMPORT_ROLE_HINT: &str = "ECS may not read your OSS yet: create the RAM role \
    AliyunECSImageImportDefaultRole with the trust policy {\"Statement\":[{\"Action\":\"sts:AssumeRole\",\
    \"Effect\":\"Allow\",\"Principal\":{\"Service\":[\"ecs.aliyuncs.com\"]}}],\"Version\":\"1\"} and attach \
    the system policy AliyunECSImageImportRolePolicy (or a custom policy allowing oss:GetObject, \
    oss:GetBucketLocation and oss:GetBucketInfo)";

use ErrorClass::{External, InvalidRequest, RefreshCredentials, Retryable};

/// Every error code this operator knows, with its documented status and class.
///
/// Codes not listed fall back to [`classify`]'s rules (`Throttling*` and 5xx retry, the rest is
/// treated as an invalid request).
pub const KNOWN_CODES: &[KnownCode] = &[
    // Gateway and common errors (api-reference §7.2).
    known("Throttling", 400, Retryable),
    known("Throttling.User", 400, Retryable),
    known("Throttling.Api", 400, Retryable),
    known("Rejected.Throttling", 400, Retryable),
    known("ServiceUnavailable", 503, Retryable),
    known("ServiceUnavailable.RegionMaintaining", 503, Retryable),
    known("InternalError", 500, Retryable),
    known("UnknownError", 400, Retryable),
    known("LastTokenProcessing", 403, Retryable),
    known("OperationConflict", 409, Retryable),
    // A reused nonce is fixed by re-signing, which every attempt does.
    known("SignatureNonceUsed", 400, Retryable),
    // The wrong-secret codes (redact::WRONG_SECRET_CODES): the shown message carries the hint.
    hinted(
        "SignatureDoesNotMatch",
        400,
        InvalidRequest,
        WRONG_SECRET_HINT,
    ),
    hinted(
        "IncompleteSignature",
        400,
        InvalidRequest,
        WRONG_SECRET_HINT,
    ),
    hinted(
        "InvalidAccessKeySecret",
        400,
        InvalidRequest,
        WRONG_SECRET_HINT,
    ),
    hinted(
        "InvalidAccessKeyId.NotFound",
        404,
        InvalidRequest,
        "check accessKeyId in the credentials Secret",
    ),
    hinted(
        "InvalidAccessKeyId.Inactive",
        400,
        InvalidRequest,
        "the AccessKey is disabled: enable it or use another",
    ),
    known("InvalidSecurityToken.Expired", 400, RefreshCredentials),
    known("InvalidSecurityToken.Malformed", 400, RefreshCredentials),
    known(
        "InvalidSecurityToken.MismatchWithAccessKey",
        400,
        RefreshCredentials,
    ),
    known("MissingSecurityToken", 400, RefreshCredentials),
    hinted(
        "InvalidTimeStamp.Expired",
        400,
        External,
        "the operator's clock is more than 15 minutes off",
    ),
    known("IllegalTimestamp", 400, InvalidRequest),
    known("InvalidAction.NotFound", 404, InvalidRequest),
    known("InvalidAction", 403, InvalidRequest),
    known("InvalidVersion", 400, InvalidRequest),
    hinted(
        "Forbidden.RAM",
        403,
        External,
        "grant the RAM user or role the ECS actions the operator calls",
    ),
    known("Forbidden.AccessKeyDisabled", 403, External),
    known("Forbidden.Unauthorized", 403, External),
    known("Forbidden.SubUser", 403, External),
    known("Forbidden.RiskControl", 403, External),
    known("IdempotentParameterMismatch", 400, InvalidRequest),
    known("MissingParameter", 400, InvalidRequest),
    known("InvalidParameter", 400, InvalidRequest),
    known("InvalidRegionId.NotFound", 400, InvalidRequest),
    // ImportImage (api-reference §1.3).
    known("UnsupportedSuffix.OSSObject", 400, InvalidRequest),
    known("InvalidImageName.Malformed", 400, InvalidRequest),
    known("InvalidDescription.Malformed", 400, InvalidRequest),
    known("InvalidArchitecture.Malformed", 400, InvalidRequest),
    known("InvalidPlatform.Malformed", 400, InvalidRequest),
    known("InvalidOSType.Malformed", 400, InvalidRequest),
    known("InvalidImageFormat.Malformed", 400, InvalidRequest),
    known("InvalidBootMode.Malformed", 400, InvalidRequest),
    known("InvalidOSSObject.Malformed", 400, InvalidRequest),
    known("InvalidOSSBucket.Malformed", 400, InvalidRequest),
    hinted(
        "InvalidImageName.Duplicated",
        400,
        External,
        "an image with this name exists: rename one of them",
    ),
    known("InvalidImageSize", 400, InvalidRequest),
    known("InvalidDataDiskSize", 400, InvalidRequest),
    hinted(
        "InvalidOSSObject.Size",
        400,
        External,
        "the OSS object is empty: upload the image file again",
    ),
    hinted(
        "InvalidOSSBucket.NotFound",
        400,
        External,
        "create the bucket in the image's region",
    ),
    hinted(
        "InvalidOSSObject.NotFound",
        400,
        External,
        "upload the image file to the bucket",
    ),
    hinted(
        "InvalidOSSObject.NeedRestore",
        400,
        External,
        "restore the Archive-class object first",
    ),
    known("InvalidOSSBucket.NotMatched", 400, InvalidRequest),
    known("InvalidOSSBucket.FlowLimit", 400, Retryable),
    hinted(
        "InvalidRegion.NotSupport",
        403,
        InvalidRequest,
        "this region does not support image import",
    ),
    known("InvalidImageFormat.RegionNotSupported", 400, InvalidRequest),
    known("InvalidLicenseType.NotSupported", 400, InvalidRequest),
    known("InvalidLicenseType.BYOLOnly", 400, InvalidRequest),
    known("InvalidParameter.DetectionStrategy", 400, InvalidRequest),
    known("InvalidBootMode.NotSupport", 400, InvalidRequest),
    known("InvalidParameter.FeaturesImdsSupport", 400, InvalidRequest),
    known("InvalidClientToken.Malformed", 400, InvalidRequest),
    hinted(
        "Account.Arrearage",
        400,
        External,
        "the account has an overdue payment",
    ),
    known("ImageIsImporting", 403, Retryable),
    hinted(
        "QuotaExceed.Image",
        403,
        External,
        "the custom image quota is used up: delete images or raise the quota",
    ),
    hinted(
        "QuotaExceed.Snapshot",
        403,
        External,
        "the snapshot quota is used up: delete snapshots or raise the quota",
    ),
    hinted(
        "ImportImageFailed",
        403,
        External,
        "ECS could not import the image: contact Alibaba Cloud support",
    ),
    hinted(
        "UserNotInTheWhiteList",
        403,
        External,
        "the account may not import images: open a ticket to enable it",
    ),
    hinted(
        "NoSetRoletoECSServiceAcount",
        403,
        External,
        IMPORT_ROLE_HINT,
    ),
    hinted(
        "NoSetRoletoECSServiceAccount",
        403,
        External,
        IMPORT_ROLE_HINT,
    ),
    known("InvalidParameter.Malformed", 403, InvalidRequest),
    known("MissingParameter.DiskDeviceMapping", 403, InvalidRequest),
    hinted(
        "InvalidOSS.NotAuthorized",
        403,
        External,
        "let the import role read the bucket and object",
    ),
    known("InvalidBlockSize.NotSupport", 403, External),
    known("InvalidVHDImage.IncorrectSize", 403, External),
    known("ImageCheckUnsupported.WindowsImage", 403, InvalidRequest),
    known("InvalidOSSBucket.EncryptUnsupported", 403, External),
    known(
        "InvalidArchitecture.PlatformUnsupported",
        403,
        InvalidRequest,
    ),
    hinted(
        "InvalidAccountStatus.OSSDisabled",
        403,
        External,
        "activate OSS for the account",
    ),
    known("InvalidStorageLocation.NotFound", 403, InvalidRequest),
    known(
        "InvalidOperation.CloudBoxImageImportRoleRequired",
        403,
        External,
    ),
    known(
        "InvalidOperation.CloudBoxImageImportUnsupported",
        403,
        InvalidRequest,
    ),
    known("TagKey.Duplication", 403, InvalidRequest),
    known("InvalidResourceGroup.NotFound", 404, InvalidRequest),
    // Only on the original (Japanese) ImportImage page.
    hinted(
        "Forbbiden",
        400,
        External,
        "the account cannot import images now: open a ticket to enable image import",
    ),
    known("IncorrectImageStatus", 400, External),
    known("InvalidFormat.Malformed", 400, InvalidRequest),
    known("RegionId.NotFound", 400, InvalidRequest),
    // Tasks (api-reference §2).
    known("InvalidTaskId.NotFound", 400, InvalidRequest),
    known("InvalidTaskId.TaskActionNotSupport", 403, InvalidRequest),
    known("InvalidTaskId.IncorrectTaskStatus", 403, InvalidRequest),
    known("CancelTaskFailed", 403, Retryable),
    // Images (api-reference §3).
    known(
        "InvalidImageOwnerAlias.ValueNotSupported",
        400,
        InvalidRequest,
    ),
    known("InvalidTag.Mismatch", 400, InvalidRequest),
    known("InvalidTagCount", 400, InvalidRequest),
    known("InvalidInstanceType.ValueNotSupported", 400, InvalidRequest),
    known("InvalidFilterKey.NotFound", 404, InvalidRequest),
    known("InvalidUsage", 404, InvalidRequest),
    known("InvalidOSType", 404, InvalidRequest),
    known("InvalidArchitecture", 404, InvalidRequest),
    hinted(
        "ImageUsingByInstance",
        403,
        External,
        "instances still use the image: release them or delete with force",
    ),
    hinted(
        "ImageUseShared",
        403,
        External,
        "the image is shared with other accounts: unshare it first",
    ),
    known("OperationDenied.ImageCopying", 403, Retryable),
    known("ImageIsExporting", 403, Retryable),
    known("ImageIsCreating", 403, Retryable),
    hinted(
        "ImageIsPublic",
        403,
        External,
        "the image is published as a community image: unpublish it first",
    ),
    known("InvalidImageId.NotFound", 404, InvalidRequest),
    // CopyImage (AlibabaCloudDocs/ecs "API Reference/Images/CopyImage.md"); QuotaExceed.Image,
    // QuotaExceed.Snapshot, IncorrectImageStatus, InvalidImageName.* and
    // OperationDenied.ImageCopying are listed above with the same status.
    known("SourceRegion.NotFound", 400, InvalidRequest),
    hinted(
        "DestinationRegion.NotFound",
        400,
        InvalidRequest,
        "the destination region does not exist: check the region ID",
    ),
    known("IncorrectDestinationRegion", 403, InvalidRequest),
    hinted(
        "RegionNotSupportCopy",
        403,
        External,
        "the source or destination region does not take image copies for this account",
    ),
    known("OperationDenied.SameRegionOnly", 403, InvalidRequest),
    hinted(
        "SizeExceed.Image",
        403,
        External,
        "the image is too large to copy: open a ticket to raise the limit",
    ),
    known("OperationDeined.EncryptedSnapshot", 403, External),
    known("InvalidParameter.EncryptedIllegal", 400, InvalidRequest),
    hinted(
        "InvalidParameter.KMSKeyId.NotFound",
        404,
        InvalidRequest,
        "the KMS key does not exist in the destination region",
    ),
    hinted(
        "InvalidParameter.KMSKeyId.KMSUnauthorized",
        403,
        External,
        "authorize ECS to use your KMS keys",
    ),
    known("InvalidParameter.KMSKeyId.CMKNotEnabled", 403, External),
    // CancelCopyImage (".../Images/CancelCopyImage.md"; that page gives InvalidRegionId.NotFound
    // as 404, the ImportImage table as 400, which this table keeps).
    known("ImageCreatedNotFromCopy", 400, InvalidRequest),
    known("CancelNotSupported", 400, External),
    // ModifyImageSharePermission (".../Images/ModifyImageSharePermission.md").
    hinted(
        "InvalidAccount.NotFound",
        404,
        InvalidRequest,
        "an account to share with does not exist: check the account ID",
    ),
    hinted(
        "InvalidAccount.Forbbiden",
        404,
        InvalidRequest,
        "an image cannot be shared with the account that owns it",
    ),
    known("QuotaExceed.ShareImage", 403, External),
    hinted(
        "QuotaExceed.ShareImageUser",
        403,
        External,
        "an image is shared with at most 50 accounts: open a ticket to raise the quota",
    ),
    known("InvalidGroup.Malformed", 400, InvalidRequest),
    known("InvalidImageId.BidMismatch", 403, External),
];

/// Every code the operator mints itself (for errors that never got an ECS code), with its class.
///
/// The class is decided here once, when the error happens, and stored with it in status
/// (`lastError.retry`): a stall read back after a restart is retried by the same rule.
pub const OPERATOR_CODES: &[KnownCode] = &[
    // The ECS layer (`EcsError`).
    known("NetworkError", 0, Retryable),
    known("Timeout", 0, Retryable),
    // An answer that cannot be read (invalid JSON, missing fields, an HTML page from a gateway) is
    // most likely a proxy or gateway hiccup, whatever its status: retry it with backoff.
    known("UnreadableResponse", 0, Retryable),
    known("ResponseTooLarge", 0, Retryable),
    known("InvalidEndpoint", 0, InvalidRequest),
    known("InvalidRequest", 0, InvalidRequest),
    // Credentials (`CredentialsError`).
    hinted(
        "InvalidCredentialsSecret",
        0,
        InvalidRequest,
        "the credentials Secret needs accessKeyId and accessKeySecret (and securityToken for STS keys) as UTF-8 text",
    ),
    known("CredentialsNotConfigured", 0, External),
    known("OIDCTokenFileUnreadable", 0, External),
    known("MetadataCredentialsUnavailable", 0, External),
    known("CredentialsServiceUnreachable", 0, Retryable),
    known("CredentialsServiceUnreadable", 0, Retryable),
    known("InvalidCredentialsEndpoint", 0, InvalidRequest),
    // The controller's own (the credentials Secret named by a resource).
    known("CredentialsSecretNotFound", 0, InvalidRequest),
    known("CredentialsSecretUnreadable", 0, Retryable),
    known("CredentialsSecretNotHeld", 0, Retryable),
    known("CredentialsSecretForbidden", 0, External),
    known("CredentialsAccountChanged", 0, InvalidRequest),
    // The headers Secret of a source (`source.headersSecretRef`), read like a credentials Secret.
    known("SourceHeadersSecretNotFound", 0, InvalidRequest),
    known("SourceHeadersSecretForbidden", 0, External),
    known("SourceHeadersSecretUnreadable", 0, Retryable),
    known("InvalidSourceHeadersSecret", 0, InvalidRequest),
    // The upload of a mapping's source into OSS (`controller::decision::upload`): what the
    // file or the URL is does not change by trying again, so each stalls until the spec changes.
    hinted(
        "SourceChecksumMismatch",
        0,
        InvalidRequest,
        "the file's SHA-256 is not source.sha256: fix the digest or the URL",
    ),
    hinted(
        "SourceSizeMismatch",
        0,
        InvalidRequest,
        "the file's size is not source.size: fix the size or the URL",
    ),
    hinted(
        "SourceFormatMismatch",
        0,
        InvalidRequest,
        "the file's bytes show another format than the mapping's format: fix format or the URL",
    ),
    hinted(
        "SourceRefused",
        0,
        InvalidRequest,
        "the operator does not download from this URL (a private, link-local or loopback address, \
         too many redirects, or a file over the size cap)",
    ),
    hinted(
        "SourceFileUnsupported",
        0,
        InvalidRequest,
        "source.file is read only by the one-shot `import -f`: in the cluster, use source.url",
    ),
];

/// The class of an operator-minted code; an unlisted one is retried with backoff, so a code
/// forgotten in [`OPERATOR_CODES`] can never wedge a resource.
pub fn operator_code_class(code: &str) -> ErrorClass {
    OPERATOR_CODES
        .iter()
        .find(|known| known.code == code)
        .map_or(ErrorClass::Retryable, |known| known.class)
}

/// Looks a code up in [`KNOWN_CODES`].
pub fn known_code(code: &str) -> Option<&'static KnownCode> {
    KNOWN_CODES.iter().find(|known| known.code == code)
}

/// The class of an error code: the table first, then `Throttling*` and 5xx retry, else invalid.
pub fn classify(code: &str, http_status: u16) -> ErrorClass {
    if let Some(known) = known_code(code) {
        return known.class;
    }
    if code.starts_with("Throttling")
        || code.ends_with(".Throttling")
        || http_status >= 500
        || http_status == 429
    {
        ErrorClass::Retryable
    } else if code.starts_with("InvalidSecurityToken") {
        ErrorClass::RefreshCredentials
    } else {
        ErrorClass::InvalidRequest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_fall_back_to_status_and_prefix_rules() {
        assert_eq!(
            classify("Throttling.Something.New", 400),
            ErrorClass::Retryable
        );
        assert_eq!(classify("Whatever", 503), ErrorClass::Retryable);
        assert_eq!(
            classify("InvalidSecurityToken.New", 400),
            ErrorClass::RefreshCredentials
        );
        assert_eq!(
            classify("InvalidSomething.Malformed", 400),
            ErrorClass::InvalidRequest
        );
    }

    #[test]
    fn the_table_has_no_duplicate_codes() {
        for (i, a) in KNOWN_CODES.iter().enumerate() {
            assert!(
                KNOWN_CODES[i + 1..].iter().all(|b| b.code != a.code),
                "duplicate {}",
                a.code
            );
        }
    }
}
