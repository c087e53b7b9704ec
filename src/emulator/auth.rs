//! Request authentication as the ECS gateway does it: signature V1 (HMAC-SHA1 over the decoded,
//! re-canonicalized parameters) and V3 (`ACS3-HMAC-SHA256`), AccessKey lookup, clock skew, nonce
//! replay, and STS security tokens.
//!
//! [`Verifier::verify`] takes the current time as an argument, so the golden vectors (signed in
//! 2024) can be checked at their own instant, and tests can pin the clock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};

use axum::http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::actions::EcsFault;
use crate::ecs::params::Params;
use crate::ecs::sign::{self, V3Authorization, V3Input};

/// The gateway accepts timestamps at most this far from its own clock (api-reference §5.1).
pub const MAX_CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(15 * 60);
/// The account an AccessKey belongs to when none is named.
pub const DEFAULT_ACCOUNT: &str = "default";

/// An AccessKey pair the emulator accepts, with the account it belongs to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    /// AccessKey ID (`LTAI…`, or `STS.…` for temporary keys).
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: String,
    /// For temporary (STS) keys: the token every request must carry.
    #[serde(default)]
    pub security_token: Option<String>,
    /// The account owning images and tasks made with this key.
    #[serde(default = "default_account")]
    pub account: String,
    /// For temporary keys: when the token stops working (`InvalidSecurityToken.Expired`).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

fn default_account() -> String {
    DEFAULT_ACCOUNT.to_string()
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("account", &self.account)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessKey {
    /// A permanent key of the default account.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            access_key_id: id.into(),
            access_key_secret: secret.into(),
            security_token: None,
            account: default_account(),
            expires_at: None,
        }
    }

    /// Makes it a temporary key that needs this token.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }

    /// Puts it in another account.
    pub fn in_account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    /// Lets its token expire at this instant.
    pub fn expiring_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Parses `ID:SECRET[:ACCOUNT]` (`--access-key`).
    pub fn parse_permanent(text: &str) -> Result<Self, String> {
        let mut parts = text.trim().splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(secret), account) if !id.is_empty() && !secret.is_empty() => {
                let key = Self::new(id, secret);
                Ok(match account.filter(|a| !a.is_empty()) {
                    Some(account) => key.in_account(account),
                    None => key,
                })
            }
            _ => Err("expected ID:SECRET or ID:SECRET:ACCOUNT".into()),
        }
    }

    /// Parses `ID:SECRET:TOKEN[:ACCOUNT]` (`--sts-key`); tokens are base64 and never hold a colon.
    pub fn parse_temporary(text: &str) -> Result<Self, String> {
        let mut parts = text.trim().splitn(4, ':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(secret), Some(token), account)
                if !id.is_empty() && !secret.is_empty() && !token.is_empty() =>
            {
                let key = Self::new(id, secret).with_security_token(token);
                Ok(match account.filter(|a| !a.is_empty()) {
                    Some(account) => key.in_account(account),
                    None => key,
                })
            }
            _ => Err("expected ID:SECRET:TOKEN or ID:SECRET:TOKEN:ACCOUNT".into()),
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The AccessKey ID used.
    pub access_key_id: String,
    /// Its account.
    pub account: String,
}

/// The parts of an HTTP request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// Parameters of the query string alone (V3 signs only these).
    pub query: &'a Params,
    /// Query and form body together (V1 signs all of them).
    pub params: &'a Params,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Raw body (V3 signs its hash).
    pub body: &'a [u8],
}

impl AuthRequest<'_> {
    /// Whether this is a V3 request (an `ACS3-HMAC-SHA256` Authorization header).
    pub fn is_v3(&self) -> bool {
        self.headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with(sign::V3_ALGORITHM))
    }
}

/// AccessKeys, nonces and the skew rule.
#[derive(Debug)]
pub struct Verifier {
    keys: RwLock<HashMap<String, Arc<AccessKey>>>,
    nonces: NonceCache,
    max_skew: SignedDuration,
}

impl Verifier {
    /// A verifier accepting these keys.
    pub fn new(keys: impl IntoIterator<Item = AccessKey>) -> Self {
        let verifier = Self {
            keys: RwLock::new(HashMap::new()),
            nonces: NonceCache::new(),
            max_skew: MAX_CLOCK_SKEW,
        };
        for key in keys {
            verifier.add_key(key);
        }
        verifier
    }

    /// Adds or replaces a key.
    pub fn add_key(&self, key: AccessKey) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(key.access_key_id.clone(), Arc::new(key));
        }
    }

    /// The IDs and accounts of every key (never the secrets).
    pub fn key_summaries(&self) -> Vec<(String, String, bool)> {
        self.keys
            .read()
            .map(|keys| {
                let mut list: Vec<_> = keys
                    .values()
                    .map(|key| {
                        (
                            key.access_key_id.clone(),
                            key.account.clone(),
                            key.security_token.is_some(),
                        )
                    })
                    .collect();
                list.sort();
                list
            })
            .unwrap_or_default()
    }

    /// Forgets every nonce seen.
    pub fn clear_nonces(&self) {
        self.nonces.clear();
    }

    /// The key with this ID (the OSS endpoint verifies its own signatures with it).
    pub(crate) fn access_key(&self, id: &str) -> Option<Arc<AccessKey>> {
        self.key(id)
    }

    /// Whether some key carries this security token.
    pub(crate) fn owns_token(&self, token: &str) -> bool {
        self.token_owner(token)
    }

    fn key(&self, id: &str) -> Option<Arc<AccessKey>> {
        self.keys.read().ok()?.get(id).cloned()
    }

    fn token_owner(&self, token: &str) -> bool {
        self.keys.read().is_ok_and(|keys| {
            keys.values()
                .any(|key| key.security_token.as_deref() == Some(token))
        })
    }

    /// Checks a request's signature, key, clock, token and nonce at `now` (wall-clock time).
    pub fn verify(&self, request: &AuthRequest<'_>, now: Timestamp) -> Result<Principal, EcsFault> {
        let checked = if request.is_v3() {
            self.verify_v3(request, now)?
        } else {
            self.verify_v1(request, now)?
        };
        let Checked {
            key,
            token,
            nonce,
            timestamp,
        } = checked;
        if now.duration_since(timestamp).abs() > self.max_skew {
            return Err(EcsFault::new(
                "InvalidTimeStamp.Expired",
                format!(
                    "Specified time stamp or date value is expired. server time is {}.",
                    now.strftime("%Y-%m-%dT%H:%M:%SZ")
                ),
            ));
        }
        self.check_token(&key, token, now)?;
        if !self
            .nonces
            .insert(&key.access_key_id, nonce, now.as_second())
        {
            return Err(EcsFault::new(
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        Ok(Principal {
            access_key_id: key.access_key_id.clone(),
            account: key.account.clone(),
        })
    }

    fn check_token(
        &self,
        key: &AccessKey,
        token: Option<&str>,
        now: Timestamp,
    ) -> Result<(), EcsFault> {
        match (&key.security_token, token) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(EcsFault::new(
                "MissingSecurityToken",
                "SecurityToken is mandatory for this action.",
            )),
            (Some(expected), Some(given)) if expected == given => match key.expires_at {
                Some(at) if at <= now => Err(EcsFault::new(
                    "InvalidSecurityToken.Expired",
                    "Specified SecurityToken is expired.",
                )),
                _ => Ok(()),
            },
            (_, Some(given)) if self.token_owner(given) => Err(EcsFault::new(
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
            )),
            (_, Some(_)) => Err(EcsFault::new(
                "InvalidSecurityToken.Malformed",
                "Specified SecurityToken is malformed.",
            )),
        }
    }

    fn lookup(&self, id: &str) -> Result<Arc<AccessKey>, EcsFault> {
        self.key(id).ok_or_else(|| {
            EcsFault::new(
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            )
        })
    }

    fn verify_v1<'a>(
        &self,
        request: &AuthRequest<'a>,
        _now: Timestamp,
    ) -> Result<Checked<'a>, EcsFault> {
        let params = request.params;
        let incomplete = || {
            EcsFault::new(
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        };
        let signature = params
            .get("Signature")
            .filter(|s| !s.is_empty())
            .ok_or_else(incomplete)?;
        let key_id = params
            .get("AccessKeyId")
            .filter(|s| !s.is_empty())
            .ok_or_else(incomplete)?;
        if params
            .get("SignatureMethod")
            .is_some_and(|method| method != sign::V1_SIGNATURE_METHOD)
            || params
                .get("SignatureVersion")
                .is_some_and(|version| version != sign::V1_SIGNATURE_VERSION)
        {
            return Err(incomplete());
        }
        let nonce = params
            .get("SignatureNonce")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| EcsFault::missing("SignatureNonce"))?;
        let timestamp = parse_timestamp(params.get("Timestamp"), "Timestamp")?;
        let key = self.lookup(key_id)?;
        let string_to_sign = sign::v1_string_to_sign(request.method, params);
        if !sign::v1_verify(&key.access_key_secret, &string_to_sign, signature) {
            return Err(signature_mismatch(&string_to_sign));
        }
        Ok(Checked {
            key,
            token: params.get("SecurityToken"),
            nonce,
            timestamp,
        })
    }

    fn verify_v3<'a>(
        &self,
        request: &AuthRequest<'a>,
        _now: Timestamp,
    ) -> Result<Checked<'a>, EcsFault> {
        let incomplete = |why: &str| {
            EcsFault::new(
                "IncompleteSignature",
                format!("The request signature does not conform to Aliyun standards: {why}."),
            )
        };
        let header = |name: &str| -> Option<&'a str> {
            request
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let authorization = header("authorization")
            .and_then(V3Authorization::parse)
            .ok_or_else(|| incomplete("malformed Authorization header"))?;
        let nonce = header("x-acs-signature-nonce")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| incomplete("no x-acs-signature-nonce"))?;
        let timestamp = parse_timestamp(header("x-acs-date"), "x-acs-date")?;
        let hashed_payload =
            header("x-acs-content-sha256").ok_or_else(|| incomplete("no x-acs-content-sha256"))?;
        // Every x-acs-* header must be signed, as every SDK does: the signature would otherwise
        // not cover the action (a captured DescribeImages could be sent as DeleteImage), the
        // nonce (replayable under a fresh one) or the date (the skew check would be moot).
        if let Some(unsigned) = request
            .headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("x-acs-"))
            .find(|name| {
                !authorization
                    .signed_headers
                    .iter()
                    .any(|signed| signed.eq_ignore_ascii_case(name))
            })
        {
            return Err(incomplete(&format!("header {unsigned} is not signed")));
        }
        let mut signed_headers = Vec::with_capacity(authorization.signed_headers.len());
        for name in &authorization.signed_headers {
            let values: Vec<&str> = request
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            if values.is_empty() {
                return Err(incomplete(&format!("signed header {name} is missing")));
            }
            signed_headers.push((name.clone(), values.join(",")));
        }
        let key = self.lookup(&authorization.access_key_id)?;
        let canonical = sign::v3_canonical_request(&V3Input {
            http_method: request.method,
            query: request.query,
            signed_headers: &signed_headers,
            hashed_payload,
        });
        let string_to_sign = sign::v3_string_to_sign(&canonical);
        if !sign::v3_verify(
            &key.access_key_secret,
            &string_to_sign,
            &authorization.signature,
        ) {
            return Err(signature_mismatch(&string_to_sign));
        }
        // The signature covers the hash header, not the body: a body that does not match its
        // signed hash was changed on the way.
        if !hashed_payload.eq_ignore_ascii_case(&sign::sha256_hex(request.body)) {
            return Err(EcsFault::new(
                "SignatureDoesNotMatch",
                "The request body does not match x-acs-content-sha256.",
            ));
        }
        Ok(Checked {
            key,
            token: header("x-acs-security-token"),
            nonce,
            timestamp,
        })
    }
}

struct Checked<'a> {
    key: Arc<AccessKey>,
    token: Option<&'a str>,
    nonce: &'a str,
    timestamp: Timestamp,
}

fn signature_mismatch(string_to_sign: &str) -> EcsFault {
    EcsFault::new(
        "SignatureDoesNotMatch",
        format!(
            "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
        ),
    )
}

/// `yyyy-MM-ddTHH:mm:ssZ` exactly, as the gateway wants it.
fn parse_timestamp(text: Option<&str>, name: &str) -> Result<Timestamp, EcsFault> {
    let text = text
        .filter(|t| !t.is_empty())
        .ok_or_else(|| EcsFault::missing(name))?;
    let well_formed = text.len() == 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T';
    well_formed
        .then(|| text.parse::<Timestamp>().ok())
        .flatten()
        .ok_or_else(|| {
            EcsFault::new(
                "IllegalTimestamp",
                format!(
                    "The input parameter \"{name}\" that is mandatory for processing this request is not supplied or malformed."
                ),
            )
        })
}

/// Nonces seen recently, per AccessKey.
///
/// Sharded so concurrent requests rarely wait on each other, and expired by generation: each shard
/// keeps the nonces of the current and the previous 30-minute window and drops older ones in one
/// step, so no entry needs its own timer. A nonce is remembered for 30 to 60 minutes, longer than
/// any timestamp the skew check lets through (±15 minutes), so a replay is always caught.
/// Entries are 128-bit keyed hashes of (AccessKey ID, nonce), not strings: 16 bytes each and no
/// allocation per request, with collisions far too unlikely to matter.
#[derive(Debug)]
struct NonceCache {
    shards: Vec<Mutex<NonceShard>>,
    high: RandomState,
    low: RandomState,
}

#[derive(Debug, Default)]
struct NonceShard {
    generation: i64,
    current: HashSet<u128>,
    previous: HashSet<u128>,
}

const NONCE_SHARDS: usize = 32;
const NONCE_GENERATION_SECONDS: i64 = 30 * 60;

impl NonceCache {
    fn new() -> Self {
        Self {
            shards: (0..NONCE_SHARDS)
                .map(|_| Mutex::new(NonceShard::default()))
                .collect(),
            high: RandomState::new(),
            low: RandomState::new(),
        }
    }

    /// Records a nonce; `false` when it was seen already.
    fn insert(&self, key_id: &str, nonce: &str, now_seconds: i64) -> bool {
        let high = self.high.hash_one((key_id, nonce));
        let entry = (u128::from(high) << 64) | u128::from(self.low.hash_one((key_id, nonce)));
        let index = (high as usize) % self.shards.len();
        let Some(shard) = self.shards.get(index) else {
            return false;
        };
        let Ok(mut shard) = shard.lock() else {
            return false;
        };
        let generation = now_seconds.div_euclid(NONCE_GENERATION_SECONDS);
        if generation > shard.generation {
            if generation == shard.generation + 1 {
                shard.previous = std::mem::take(&mut shard.current);
            } else {
                shard.previous.clear();
                shard.current.clear();
            }
            shard.generation = generation;
        }
        if shard.previous.contains(&entry) {
            return false;
        }
        shard.current.insert(entry)
    }

    fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.current.clear();
                shard.previous.clear();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn key_specs_parse_and_debug_hides_secrets() {
        let key = AccessKey::parse_permanent("AK1:s3cr3t:team").unwrap();
        assert_eq!(key.account, "team");
        let sts = AccessKey::parse_temporary("STS.1:sec:CAIS+/==").unwrap();
        assert_eq!(sts.security_token.as_deref(), Some("CAIS+/=="));
        assert_eq!(sts.account, DEFAULT_ACCOUNT);
        let shown = format!("{key:?} {sts:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("CAIS"),
            "{shown}"
        );
        assert!(AccessKey::parse_permanent("only-id").is_err());
    }

    #[test]
    fn nonces_are_remembered_across_one_generation_change_only() {
        let cache = NonceCache::new();
        assert!(cache.insert("AK", "n1", 0));
        assert!(!cache.insert("AK", "n1", 10));
        assert!(cache.insert("AK2", "n1", 10));
        assert!(!cache.insert("AK", "n1", NONCE_GENERATION_SECONDS + 5));
        assert!(cache.insert("AK", "n1", 3 * NONCE_GENERATION_SECONDS));
    }

    #[test]
    fn timestamps_must_have_the_exact_shape() {
        assert!(parse_timestamp(Some("2024-05-01T12:34:56Z"), "Timestamp").is_ok());
        for bad in [
            "2024-05-01T12:34:56.1Z",
            "2024-05-01 12:34:56Z",
            "yesterday",
        ] {
            assert_eq!(
                parse_timestamp(Some(bad), "Timestamp").unwrap_err().code,
                "IllegalTimestamp"
            );
        }
        assert_eq!(
            parse_timestamp(None, "Timestamp").unwrap_err().code,
            "MissingParameter"
        );
    }
}
