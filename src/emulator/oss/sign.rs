//! OSS signature V4 (`OSS4-HMAC-SHA256` in the `Authorization` header), verified as Alibaba's
//! documentation describes it ("Include a V4 signature in the header"): the canonical request
//! (method, URI-encoded `/bucket/key`, sorted encoded query, the `x-oss-*`, `content-type` and
//! `content-md5` headers plus the `AdditionalHeaders`, the additional header names, the
//! `x-oss-content-sha256` value), the string to sign (algorithm, `x-oss-date`, scope, the
//! canonical request's SHA-256), and the key derived from `aliyun_v4` + secret, date, region,
//! `oss`, `aliyun_v4_request`. Only header signatures: presigned URLs are not emulated.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::OssFault;
use crate::emulator::auth::{MAX_CLOCK_SKEW, Principal, Verifier};

/// The only algorithm OSS V4 has.
pub const ALGORITHM: &str = "OSS4-HMAC-SHA256";
const TERMINATOR: &str = "aliyun_v4_request";

/// The parts of a request a V4 signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Bucket, decoded.
    pub bucket: &'a str,
    /// Object key, decoded (empty for bucket requests).
    pub key: &'a str,
    /// Query parameters, decoded, in the order sent.
    pub query: &'a [(String, String)],
    /// Headers.
    pub headers: &'a HeaderMap,
}

/// A verified request: who sent it, the region it was signed for, and what it says the body
/// hashes to (`UNSIGNED-PAYLOAD` or a hex SHA-256 to check once the body is read).
#[derive(Debug, Clone)]
pub struct Verified {
    /// The key's owner.
    pub principal: Principal,
    /// The region of the signature's scope.
    pub region: String,
    /// `x-oss-content-sha256`.
    pub content_sha256: String,
}

struct Authorization {
    access_key_id: String,
    date: String,
    region: String,
    additional: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut additional, mut signature) = (None, Vec::new(), None);
    for field in rest.split(',') {
        let (name, value) = field.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "AdditionalHeaders" => {
                additional = value
                    .split(';')
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
            "Signature" => signature = Some(value.to_string()),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let (id, date, region, product, terminator) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    if scope.next().is_some() || product != "oss" || terminator != TERMINATOR || id.is_empty() {
        return None;
    }
    Some(Authorization {
        access_key_id: id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        additional,
        signature: signature?,
    })
}

/// RFC 3986 encoding, unreserved characters kept, and `/` too when `keep_slash`.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The canonical request of the documentation.
pub fn canonical_request(
    request: &SignedRequest<'_>,
    additional: &[String],
    content_sha256: &str,
) -> String {
    let uri = if request.bucket.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/{}", request.bucket, request.key)
    };
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name.starts_with("x-oss-")
                || name == "content-type"
                || name == "content-md5"
                || additional.iter().any(|a| a == name)
        })
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().trim().to_string(),
            )
        })
        .collect();
    headers.sort();
    let mut canonical_headers = String::new();
    for (name, value) in &headers {
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let mut additional = additional.to_vec();
    additional.sort();
    format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{}\n{content_sha256}",
        request.method,
        uri_encode(&uri, true),
        additional.join(";")
    )
}

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signature of a string to sign with a secret, for a date (`yyyyMMdd`) and region.
pub fn signature(secret: &str, date: &str, region: &str, string_to_sign: &str) -> String {
    let key = hmac(format!("aliyun_v4{secret}").as_bytes(), date);
    let key = hmac(&key, region);
    let key = hmac(&key, "oss");
    let key = hmac(&key, TERMINATOR);
    hex::encode(hmac(&key, string_to_sign))
}

/// Checks the signature, the key, the clock and the security token.
pub fn verify(
    verifier: &Verifier,
    request: &SignedRequest<'_>,
    now: Timestamp,
) -> Result<Verified, OssFault> {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(value) = header("authorization") else {
        return Err(OssFault::new(
            403,
            "AccessDenied",
            "You have no right to access this object because of bucket acl.",
        ));
    };
    let malformed = || {
        OssFault::new(
            400,
            "InvalidArgument",
            "Authorization header is invalid: expected OSS4-HMAC-SHA256 Credential=…/DATE/REGION/oss/aliyun_v4_request[,AdditionalHeaders=…],Signature=….",
        )
    };
    let auth = parse_authorization(value).ok_or_else(malformed)?;
    let date = header("x-oss-date")
        .ok_or_else(|| OssFault::new(400, "InvalidArgument", "x-oss-date header is required."))?;
    let content_sha256 = header("x-oss-content-sha256").ok_or_else(|| {
        OssFault::new(
            400,
            "InvalidArgument",
            "x-oss-content-sha256 header is required.",
        )
    })?;
    let signed_at = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", date)
        .and_then(|tm| tm.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|zoned| zoned.timestamp())
        .map_err(|_| {
            OssFault::new(
                400,
                "InvalidArgument",
                "x-oss-date is not yyyyMMddTHHmmssZ.",
            )
        })?;
    if !date.starts_with(&auth.date) {
        return Err(OssFault::new(
            400,
            "InvalidArgument",
            "The date of the Credential scope is not the date of x-oss-date.",
        ));
    }
    if now.duration_since(signed_at).abs() > MAX_CLOCK_SKEW {
        return Err(OssFault::new(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ));
    }
    let key = verifier.access_key(&auth.access_key_id).ok_or_else(|| {
        OssFault::new(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        )
    })?;
    let canonical = canonical_request(request, &auth.additional, content_sha256);
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{}/{}/oss/{TERMINATOR}\n{}",
        auth.date,
        auth.region,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let expected = signature(
        &key.access_key_secret,
        &auth.date,
        &auth.region,
        &string_to_sign,
    );
    if !expected.eq_ignore_ascii_case(&auth.signature) {
        return Err(OssFault::new(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
        .with("StringToSign", string_to_sign));
    }
    let token = header("x-oss-security-token");
    match (&key.security_token, token) {
        (None, None) => {}
        (Some(_), None) => {
            return Err(OssFault::new(
                403,
                "InvalidAccessKeyId",
                "The temporary AccessKey needs its security token (x-oss-security-token).",
            ));
        }
        (Some(expected), Some(given)) if expected == given => {
            if key.expires_at.is_some_and(|at| at <= now) {
                return Err(OssFault::new(
                    403,
                    "SecurityTokenExpired",
                    "The security token you provided has expired.",
                ));
            }
        }
        (_, Some(given)) if verifier.owns_token(given) => {
            return Err(OssFault::new(
                403,
                "AccessKeyIdAndSecurityTokenNotMatch",
                "The OSS access key id and security token you provided does not match.",
            ));
        }
        (_, Some(_)) => {
            return Err(OssFault::new(
                403,
                "InvalidSecurityToken",
                "The security token you provided is invalid.",
            ));
        }
    }
    Ok(Verified {
        principal: Principal {
            access_key_id: key.access_key_id.clone(),
            account: key.account.clone(),
        },
        region: auth.region,
        content_sha256: content_sha256.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn the_canonical_request_has_the_documented_shape() {
        let mut headers = HeaderMap::new();
        headers.insert("x-oss-date", "20240101T000000Z".parse().unwrap());
        headers.insert("x-oss-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        headers.insert("content-type", "application/xml".parse().unwrap());
        headers.insert("host", "127.0.0.1".parse().unwrap());
        headers.insert("user-agent", "x".parse().unwrap());
        let query = vec![
            ("uploadId".to_string(), "0A1B".to_string()),
            ("partNumber".to_string(), "2".to_string()),
            ("uploads".to_string(), String::new()),
        ];
        let request = SignedRequest {
            method: "PUT",
            bucket: "images",
            key: "a b/c+d.qcow2",
            query: &query,
            headers: &headers,
        };
        assert_eq!(
            canonical_request(&request, &["host".to_string()], "UNSIGNED-PAYLOAD"),
            "PUT\n/images/a%20b/c%2Bd.qcow2\npartNumber=2&uploadId=0A1B&uploads\n\
             content-type:application/xml\nhost:127.0.0.1\nx-oss-content-sha256:UNSIGNED-PAYLOAD\n\
             x-oss-date:20240101T000000Z\n\nhost\nUNSIGNED-PAYLOAD"
        );
    }
}
