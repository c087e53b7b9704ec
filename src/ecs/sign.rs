//! Request signatures: RPC V1 (HMAC-SHA1), which the client sends, and V3 (ACS3-HMAC-SHA256), which
//! the emulator must also accept because Alibaba's current SDKs send it.
//!
//! Both are reproduced exactly from the golden vectors in `tests/fixtures/signature-vectors.json`.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::params::{Params, percent_encode};

/// `SignatureMethod` of V1.
pub const V1_SIGNATURE_METHOD: &str = "HMAC-SHA1";
/// `SignatureVersion` of V1.
pub const V1_SIGNATURE_VERSION: &str = "1.0";
/// The algorithm name that starts a V3 `Authorization` header and string-to-sign.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// The V1 string-to-sign: `METHOD&%2F&` + the canonicalized query, percent-encoded a second time.
pub fn v1_string_to_sign(http_method: &str, params: &Params) -> String {
    format!(
        "{}&{}&{}",
        http_method.to_ascii_uppercase(),
        percent_encode("/"),
        percent_encode(&params.canonicalized_query())
    )
}

/// The V1 `Signature`: Base64 of HMAC-SHA1 keyed with `AccessKeySecret + "&"`.
pub fn v1_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    let mac = v1_mac(access_key_secret, string_to_sign);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a V1 `Signature` in constant time.
pub fn v1_verify(access_key_secret: &str, string_to_sign: &str, signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    v1_mac(access_key_secret, string_to_sign)
        .verify_slice(&given)
        .is_ok()
}

fn v1_mac(access_key_secret: &str, string_to_sign: &str) -> Hmac<Sha1> {
    let mut mac = hmac_sha1(format!("{access_key_secret}&").as_bytes());
    mac.update(string_to_sign.as_bytes());
    mac
}

/// What a V3 signature covers besides the method.
#[derive(Debug, Clone, Copy)]
pub struct V3Input<'a> {
    /// `GET` or `POST`.
    pub http_method: &'a str,
    /// The RPC parameters sent in the query string (already decoded).
    pub query: &'a Params,
    /// The signed headers, lowercase names, in any order; values as sent.
    pub signed_headers: &'a [(String, String)],
    /// Lowercase hex SHA-256 of the body (`x-acs-content-sha256`).
    pub hashed_payload: &'a str,
}

/// The V3 canonical request.
pub fn v3_canonical_request(input: &V3Input<'_>) -> String {
    let mut headers: Vec<(String, &str)> = input
        .signed_headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed_names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        input.http_method.to_ascii_uppercase(),
        input.query.to_form(),
        canonical_headers,
        signed_names.join(";"),
        input.hashed_payload
    )
}

/// The V3 string-to-sign: the algorithm name and the hex SHA-256 of the canonical request.
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The V3 signature: lowercase hex HMAC-SHA256 keyed with the plain secret (no `&`).
pub fn v3_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    hex::encode(
        v3_mac(access_key_secret, string_to_sign)
            .finalize()
            .into_bytes(),
    )
}

/// Checks a V3 signature (lowercase hex, as computed) in constant time.
///
/// Uppercase digits are refused: `hex::decode` would take them, so one signature would have many
/// spellings that all verify.
pub fn v3_verify(access_key_secret: &str, string_to_sign: &str, signature_hex: &str) -> bool {
    if signature_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    v3_mac(access_key_secret, string_to_sign)
        .verify_slice(&given)
        .is_ok()
}

fn v3_mac(access_key_secret: &str, string_to_sign: &str) -> Hmac<Sha256> {
    let mut mac = hmac_sha256(access_key_secret.as_bytes());
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Lowercase hex SHA-256, as `x-acs-content-sha256` wants it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The parts of a V3 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Authorization {
    /// `Credential=`: the AccessKey ID.
    pub access_key_id: String,
    /// `SignedHeaders=`: lowercase names in signing order.
    pub signed_headers: Vec<String>,
    /// `Signature=`: lowercase hex.
    pub signature: String,
}

impl V3Authorization {
    /// Parses `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`; `None` when malformed.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.strip_prefix(V3_ALGORITHM)?.trim_start();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, value) = part.trim().split_once('=')?;
            match key {
                "Credential" => credential = Some(value.to_string()),
                "SignedHeaders" => signed = Some(value.split(';').map(str::to_string).collect()),
                "Signature" => signature = Some(value.to_string()),
                _ => {}
            }
        }
        Some(Self {
            access_key_id: credential?,
            signed_headers: signed?,
            signature: signature?,
        })
    }
}

// HMAC accepts keys of any length (longer ones are hashed), so key set-up cannot fail for any input.
#[allow(clippy::expect_used)]
fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

#[allow(clippy::expect_used)]
fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_verification_accepts_the_right_signature_only() {
        let sts = "GET&%2F&Action%3DDescribeRegions";
        let signature = v1_signature("secret", sts);
        assert!(v1_verify("secret", sts, &signature));
        assert!(!v1_verify("other", sts, &signature));
        assert!(!v1_verify("secret", sts, "not base64!"));
    }

    #[test]
    fn v3_authorization_header_parses_and_rejects_garbage() {
        let parsed = V3Authorization::parse(
            "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=ab12",
        );
        assert_eq!(
            parsed,
            Some(V3Authorization {
                access_key_id: "AK".into(),
                signed_headers: vec!["host".into(), "x-acs-date".into()],
                signature: "ab12".into()
            })
        );
        assert_eq!(V3Authorization::parse("HMAC Credential=AK"), None);
        assert_eq!(
            V3Authorization::parse("ACS3-HMAC-SHA256 Credential=AK,Signature=x"),
            None
        );
    }
}
