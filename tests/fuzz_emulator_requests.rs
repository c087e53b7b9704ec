//! Property tests ("fuzzing") of what the emulator reads off the network: the request parser, the
//! signature checker (V1 and V3, replay, skew, STS tokens) and the actions behind them.
//!
//! Most properties call the parser and the verifier directly (thousands of cases a second); one
//! drives a running emulator over HTTP with fewer cases. Bounded for CI at 1,024 cases
//! per property (`PROPTEST_CASES` overrides it; the HTTP property runs a quarter).
//! Longer on demand: `PROPTEST_CASES=100000 cargo test --release --test fuzz_emulator_requests`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ecs_image_operator::ecs::api::{ALL_IMAGE_STATUSES, DescribeRegionsRequest};
use ecs_image_operator::ecs::error::ApiError;
use ecs_image_operator::ecs::params::Params;
use ecs_image_operator::ecs::sign;
use ecs_image_operator::emulator::AccessKey;
use ecs_image_operator::emulator::actions::{self, status_of};
use ecs_image_operator::emulator::auth::{AuthRequest, Principal, Verifier};
use ecs_image_operator::emulator::server::parse_request;
use ecs_image_operator::emulator::world::World;
use emulator_support::*;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------------
// The request path, without a socket
// ---------------------------------------------------------------------------------------------

/// The instant every direct property verifies at: whole seconds, so skew limits are exact.
fn now() -> Timestamp {
    Timestamp::from_second(1_714_566_896).unwrap() // 2024-05-01T12:34:56Z
}

fn stamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn verifier() -> Verifier {
    Verifier::new([
        AccessKey::new(AK_ID, AK_SECRET),
        AccessKey::new(OTHER_ID, OTHER_SECRET).in_account("other"),
        AccessKey::new(STS_ID, STS_SECRET).with_security_token(STS_TOKEN),
    ])
}

/// One request as it arrives: method, raw query text, headers, raw body.
#[derive(Debug, Clone)]
struct Wire {
    method: Method,
    query: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }
}

/// What the emulator does with a request before any action: parse it, then check who sent it.
/// `Err` carries the ECS error code (or `BadUri` when hyper would not have accepted the target).
fn verify_wire(verifier: &Verifier, wire: &Wire, at: Timestamp) -> Result<Principal, String> {
    let query = std::str::from_utf8(&wire.query).map_err(|_| "BadUri".to_string())?;
    let uri: Uri = format!("/?{query}")
        .parse()
        .map_err(|_| "BadUri".to_string())?;
    let headers = wire.header_map();
    let (query, params) =
        parse_request(&wire.method, &uri, &headers, &wire.body).map_err(|f| f.code.to_string())?;
    verifier
        .verify(
            &AuthRequest {
                method: wire.method.as_str(),
                query: &query,
                params: &params,
                headers: &headers,
                body: &wire.body,
            },
            at,
        )
        .map_err(|fault| fault.code.to_string())
}

/// The key a generated request is signed with.
#[derive(Debug, Clone, Copy)]
enum Signer {
    Permanent,
    OtherAccount,
    Temporary,
}

impl Signer {
    fn id(self) -> &'static str {
        match self {
            Self::Permanent => AK_ID,
            Self::OtherAccount => OTHER_ID,
            Self::Temporary => STS_ID,
        }
    }

    fn secret(self) -> &'static str {
        match self {
            Self::Permanent => AK_SECRET,
            Self::OtherAccount => OTHER_SECRET,
            Self::Temporary => STS_SECRET,
        }
    }

    fn token(self) -> Option<&'static str> {
        matches!(self, Self::Temporary).then_some(STS_TOKEN)
    }

    fn account(self) -> &'static str {
        match self {
            Self::OtherAccount => "other",
            _ => "default",
        }
    }
}

fn signer() -> impl Strategy<Value = Signer> {
    prop_oneof![
        Just(Signer::Permanent),
        Just(Signer::OtherAccount),
        Just(Signer::Temporary)
    ]
}

/// A V1 request as the client builds it: the common parameters, signed with `sign.rs`.
fn v1_params(
    method: &str,
    extra: &BTreeMap<String, String>,
    who: Signer,
    nonce: &str,
    at: Timestamp,
) -> Params {
    let pairs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut params = signed_as(
        method,
        "DescribeRegions",
        &pairs,
        who.id(),
        who.secret(),
        &stamp(at),
        nonce,
    );
    if let Some(token) = who.token() {
        params.set("SecurityToken", token);
        resign(&mut params, method, who.secret());
    }
    params
}

/// Puts signed parameters on the wire, each in the query or (for POST) the form body.
fn v1_wire(method: &Method, params: &Params, in_body: &[bool]) -> Wire {
    let (mut query, mut body) = (Params::new(), Params::new());
    for (index, (name, value)) in params.iter().enumerate() {
        let to_body =
            *method == Method::POST && in_body.get(index % in_body.len().max(1)) == Some(&true);
        if to_body {
            body.set(name, value)
        } else {
            query.set(name, value)
        }
    }
    let mut headers = vec![(
        "host".to_string(),
        "ecs.cn-hangzhou.aliyuncs.com".to_string(),
    )];
    if !body.is_empty() {
        headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    Wire {
        method: method.clone(),
        query: query.to_form().into_bytes(),
        headers,
        body: body.to_form().into_bytes(),
    }
}

/// A V3 request signed with `sign.rs`; `unsigned` names headers left out of `SignedHeaders`.
#[derive(Debug, Clone)]
struct V3 {
    query: Params,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    unsigned: Vec<String>,
    key_id: String,
    secret: String,
}

impl V3 {
    fn wire(&self) -> Wire {
        let hashed = sign::sha256_hex(&self.body);
        let mut headers = self.headers.clone();
        if !headers.iter().any(|(n, _)| n == "x-acs-content-sha256") {
            headers.push(("x-acs-content-sha256".into(), hashed.clone()));
        }
        let signed: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| !self.unsigned.contains(name))
            .cloned()
            .collect();
        let hashed_payload = headers
            .iter()
            .find(|(n, _)| n == "x-acs-content-sha256")
            .map(|(_, v)| v.clone())
            .unwrap();
        let canonical = sign::v3_canonical_request(&sign::V3Input {
            http_method: "POST",
            query: &self.query,
            signed_headers: &signed,
            hashed_payload: &hashed_payload,
        });
        let signature = sign::v3_signature(&self.secret, &sign::v3_string_to_sign(&canonical));
        let mut names: Vec<&str> = signed.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        headers.push((
            "authorization".into(),
            format!(
                "{} Credential={},SignedHeaders={},Signature={signature}",
                sign::V3_ALGORITHM,
                self.key_id,
                names.join(";")
            ),
        ));
        Wire {
            method: Method::POST,
            query: self.query.to_form().into_bytes(),
            headers,
            body: self.body.clone(),
        }
    }
}

fn v3_request(
    query: Params,
    body: Vec<u8>,
    extra_headers: Vec<(String, String)>,
    who: Signer,
    nonce: &str,
    at: Timestamp,
) -> V3 {
    let mut headers = vec![
        (
            "host".to_string(),
            "ecs.cn-hangzhou.aliyuncs.com".to_string(),
        ),
        ("x-acs-action".into(), "DescribeRegions".into()),
        ("x-acs-version".into(), "2014-05-26".into()),
        ("x-acs-date".into(), stamp(at)),
        ("x-acs-signature-nonce".into(), nonce.to_string()),
    ];
    if let Some(token) = who.token() {
        headers.push(("x-acs-security-token".into(), token.into()));
    }
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/octet-stream".into()));
    }
    for (name, value) in extra_headers {
        if !headers.iter().any(|(n, _)| *n == name) {
            headers.push((name, value));
        }
    }
    V3 {
        query,
        body,
        headers,
        unsigned: Vec::new(),
        key_id: who.id().into(),
        secret: who.secret().into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Parameter names and values: ASCII, reserved characters, unicode, empty.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,16}",
        2 => "[&=+%;/?#\\[\\] a-zA-Z0-9.]{0,12}",
        1 => any::<String>(),
        1 => "[テスト😀é\\x00\\x7f]{0,6}",
    ]
}

fn nonce() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| format!("{n:032x}"))
}

/// Names the signer sets itself; generated parameters leave them alone.
const COMMON: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "SecurityToken",
    "Signature",
];

fn extra_params() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..8).prop_map(|mut map| {
        map.retain(|name, _| !COMMON.contains(&name.as_str()));
        map
    })
}

/// Header values hyper passes on unchanged: visible ASCII, inner spaces, no edge whitespace.
fn header_value() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,20}[!-~])?"
}

fn extra_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof!["x-acs-[a-z]{1,8}", "x-[a-z]{1,8}", "[a-z]{1,10}"],
            header_value(),
        ),
        0..4,
    )
    .prop_map(|headers| {
        headers
            .into_iter()
            .filter(|(name, _)| name != "authorization" && name != "content-type" && name != "host")
            .collect()
    })
}

/// Replaces the character at `position` (modulo the length) by `replacement`; `None` when that
/// would not change the text.
fn change_char(text: &str, position: usize, replacement: char) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Some(replacement.to_string());
    }
    let index = position % chars.len();
    if chars[index] == replacement {
        return None;
    }
    let mut out = chars;
    out[index] = replacement;
    Some(out.into_iter().collect())
}

fn replacement_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::char::range('!', '~'),
        1 => Just(' '),
        1 => any::<char>(),
    ]
}

/// The codes an unauthenticated request may be refused with.
const AUTH_CODES: &[&str] = &[
    "BadUri",
    "InvalidParameter",
    "IncompleteSignature",
    "MissingParameter",
    "IllegalTimestamp",
    "InvalidAccessKeyId.NotFound",
    "SignatureDoesNotMatch",
    "InvalidTimeStamp.Expired",
    "MissingSecurityToken",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.Malformed",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "SignatureNonceUsed",
];

/// Headers a forger might send: V3 Authorization pieces, x-acs-* headers, garbage.
fn garbage_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let authorization = prop::collection::vec(
        prop_oneof![
            Just(format!("{} ", sign::V3_ALGORITHM)),
            Just(format!("Credential={AK_ID}")),
            Just("SignedHeaders=host;x-acs-date".to_string()),
            Just("SignedHeaders=;".to_string()),
            Just("SignedHeaders=Host;HOST;x-acs-date;x-acs-date".to_string()),
            Just("Signature=".to_string()),
            "Signature=[0-9a-fA-F]{0,66}",
            Just(",".to_string()),
            Just("=".to_string()),
            "[ -~]{0,8}",
        ],
        0..8,
    )
    .prop_map(|pieces| pieces.concat());
    prop::collection::vec(
        prop_oneof![
            authorization.prop_map(|value| ("authorization".to_string(), value)),
            (
                prop::sample::select(
                    &[
                        "x-acs-date",
                        "x-acs-signature-nonce",
                        "x-acs-content-sha256",
                        "x-acs-security-token",
                        "x-acs-action",
                        "host",
                        "content-type",
                    ][..]
                ),
                prop_oneof![
                    header_value(),
                    Just("2024-05-01T12:34:56Z".to_string()),
                    Just(sign::sha256_hex(b"")),
                    Just("application/x-www-form-urlencoded".to_string()),
                ],
            )
                .prop_map(|(name, value)| (name.to_string(), value)),
        ],
        0..8,
    )
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        3 => Just(Method::POST),
        3 => Just(Method::GET),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
    ]
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// 1,024 cases per property unless `PROPTEST_CASES` says otherwise (proptest reads it, and its
/// other variables, itself); no regression files written into the source tree: a failure prints
/// its minimal input instead.
fn config_for_ci() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            1024
        },
        failure_persistence: None,
        ..defaults
    }
}

proptest! {
    #![proptest_config(config_for_ci())]

    /// Arbitrary query bytes, bodies and headers never panic the parser or the verifier, and are
    /// never accepted: they are refused with one of the authentication codes.
    #[test]
    fn arbitrary_requests_are_refused_cleanly(
        method in method(),
        query in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            text().prop_map(String::into_bytes),
            "([A-Za-z%+=&.0-9]{0,12}&){0,6}".prop_map(String::into_bytes),
        ],
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            text().prop_map(String::into_bytes),
        ],
        headers in garbage_headers(),
        params in extra_params(),
    ) {
        let mut query = query;
        if !params.is_empty() {
            let form: Params = params.into_iter().collect();
            query.extend_from_slice(b"&");
            query.extend_from_slice(form.to_form().as_bytes());
        }
        let wire = Wire { method, query, headers, body };
        match verify_wire(&verifier(), &wire, now()) {
            Ok(principal) => prop_assert!(false, "forged request accepted as {principal:?}: {wire:?}"),
            Err(code) => prop_assert!(AUTH_CODES.contains(&code.as_str()), "unexpected code {code}"),
        }
    }

    /// A request the client signs verifies, whatever its parameters, key, method, and however the
    /// parameters are split between query and form body.
    #[test]
    fn correctly_signed_v1_requests_verify(
        extra in extra_params(),
        who in signer(),
        post in any::<bool>(),
        in_body in prop::collection::vec(any::<bool>(), 1..8),
        nonce in nonce(),
    ) {
        let method = if post { Method::POST } else { Method::GET };
        let params = v1_params(method.as_str(), &extra, who, &nonce, now());
        let wire = v1_wire(&method, &params, &in_body);
        let principal = verify_wire(&verifier(), &wire, now());
        prop_assert_eq!(
            principal.map(|p| (p.access_key_id, p.account)),
            Ok((who.id().to_string(), who.account().to_string()))
        );
    }

    /// Changing one character of any parameter's name or value (the signature, the key ID and the
    /// nonce included) after signing makes verification fail.
    #[test]
    fn v1_verification_fails_when_any_parameter_changes(
        extra in extra_params(),
        who in signer(),
        nonce in nonce(),
        which in any::<prop::sample::Index>(),
        change_name in any::<bool>(),
        position in any::<usize>(),
        replacement in replacement_char(),
    ) {
        let params = v1_params("POST", &extra, who, &nonce, now());
        let pairs: Vec<(String, String)> =
            params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let target = which.index(pairs.len());
        let (name, value) = &pairs[target];
        let mut tampered = params.clone();
        if change_name {
            let Some(changed) = change_char(name, position, replacement) else { return Ok(()) };
            tampered.remove(name);
            tampered.set(changed, value.clone());
        } else {
            let Some(changed) = change_char(value, position, replacement) else { return Ok(()) };
            tampered.set(name.clone(), changed);
        }
        prop_assume!(tampered != params);
        let wire = v1_wire(&Method::POST, &tampered, &[true, false]);
        let outcome = verify_wire(&verifier(), &wire, now());
        prop_assert!(outcome.is_err(), "changed {:?} still verifies", pairs[target]);
    }

    /// Changing one byte of the raw query or body after signing: the request verifies exactly when
    /// the parameters it decodes to are still the signed ones (only the case of a hex digit in an
    /// escape may change).
    #[test]
    fn v1_wire_byte_changes_verify_only_when_the_meaning_is_unchanged(
        extra in extra_params(),
        nonce in nonce(),
        in_body in prop::collection::vec(any::<bool>(), 1..8),
        in_query in any::<bool>(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let params = v1_params("POST", &extra, Signer::Permanent, &nonce, now());
        let mut wire = v1_wire(&Method::POST, &params, &in_body);
        let part = if (in_query && !wire.query.is_empty()) || wire.body.is_empty() {
            &mut wire.query
        } else {
            &mut wire.body
        };
        let index = position.index(part.len());
        part[index] ^= flip;
        let decoded = (|| {
            let query = Params::from_form(std::str::from_utf8(&wire.query).ok()?).ok()?;
            let body = Params::from_form(std::str::from_utf8(&wire.body).ok()?).ok()?;
            let mut all = query;
            for (name, value) in body.iter() { all.set(name, value); }
            Some(all)
        })();
        let outcome = verify_wire(&verifier(), &wire, now());
        let same = decoded.as_ref() == Some(&params);
        prop_assert_eq!(outcome.is_ok(), same, "outcome {:?} for {:?}", outcome, wire);
    }

    /// A nonce is accepted once per key: the same request again, or another one re-signed with the
    /// same nonce, is refused as a replay; the same nonce under another key is fine.
    #[test]
    fn replayed_nonces_are_refused(
        extra in extra_params(),
        nonce in nonce(),
        later in 0i64..900,
    ) {
        let verifier = verifier();
        let first = v1_wire(&Method::POST, &v1_params("POST", &extra, Signer::Permanent, &nonce, now()), &[true]);
        prop_assert!(verify_wire(&verifier, &first, now()).is_ok());
        prop_assert_eq!(verify_wire(&verifier, &first, now()), Err("SignatureNonceUsed".to_string()));
        let at = now() + SignedDuration::from_secs(later);
        let resigned = v1_wire(&Method::GET, &v1_params("GET", &extra, Signer::Permanent, &nonce, at), &[false]);
        prop_assert_eq!(verify_wire(&verifier, &resigned, at), Err("SignatureNonceUsed".to_string()));
        let other = v1_wire(&Method::POST, &v1_params("POST", &extra, Signer::OtherAccount, &nonce, now()), &[true]);
        prop_assert!(verify_wire(&verifier, &other, now()).is_ok());
    }

    /// A timestamp up to 15 minutes off either way is accepted; anything further is refused.
    #[test]
    fn timestamps_outside_the_skew_window_are_refused(
        offset in prop_oneof![-1200i64..1200, -3 * 86_400i64..3 * 86_400],
        nonce in nonce(),
        v3 in any::<bool>(),
    ) {
        let signed_at = now() + SignedDuration::from_secs(offset);
        let wire = if v3 {
            v3_request(Params::new(), Vec::new(), Vec::new(), Signer::Permanent, &nonce, signed_at).wire()
        } else {
            v1_wire(&Method::POST, &v1_params("POST", &BTreeMap::new(), Signer::Permanent, &nonce, signed_at), &[true])
        };
        let outcome = verify_wire(&verifier(), &wire, now());
        if offset.abs() <= 900 {
            prop_assert!(outcome.is_ok(), "{offset}s refused: {outcome:?}");
        } else {
            prop_assert_eq!(outcome.map(|_| ()), Err("InvalidTimeStamp.Expired".to_string()));
        }
    }

    /// STS keys need their own token; a missing or different one is refused.
    #[test]
    fn temporary_keys_need_their_own_token(
        token in prop_oneof![Just(None), text().prop_map(Some), Just(Some(STS_TOKEN.to_string()))],
        nonce in nonce(),
    ) {
        let mut params = v1_params("POST", &BTreeMap::new(), Signer::Temporary, &nonce, now());
        params.remove("SecurityToken");
        if let Some(token) = &token {
            params.set("SecurityToken", token.clone());
        }
        resign(&mut params, "POST", STS_SECRET);
        let outcome = verify_wire(&verifier(), &v1_wire(&Method::POST, &params, &[true]), now());
        prop_assert_eq!(outcome.is_ok(), token.as_deref() == Some(STS_TOKEN), "{:?}", outcome);
    }

    /// A V3 request signed with `sign.rs` verifies, whatever its query, body, key and extra headers.
    #[test]
    fn correctly_signed_v3_requests_verify(
        query in extra_params(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        headers in extra_headers(),
        who in signer(),
        nonce in nonce(),
    ) {
        let request = v3_request(query.into_iter().collect(), body, headers, who, &nonce, now());
        let principal = verify_wire(&verifier(), &request.wire(), now());
        prop_assert_eq!(
            principal.map(|p| (p.access_key_id, p.account)),
            Ok((who.id().to_string(), who.account().to_string()))
        );
    }

    /// Changing a V3 request after signing (one character of the signature, the key ID, a signed
    /// header, a query parameter, or one byte of the body) makes verification fail.
    #[test]
    fn v3_verification_fails_when_anything_signed_changes(
        query in extra_params(),
        body in prop::collection::vec(any::<u8>(), 0..32),
        headers in extra_headers(),
        nonce in nonce(),
        target in 0u8..5,
        which in any::<prop::sample::Index>(),
        position in any::<usize>(),
        replacement in prop::char::range('!', '~'),
        flip in 1u8..=255,
    ) {
        let query: Params = query.into_iter().collect();
        let request = v3_request(query.clone(), body, headers, Signer::Permanent, &nonce, now());
        let mut wire = request.wire();
        match target {
            0 | 1 => {
                let (_, authorization) = wire.headers.iter_mut().find(|(n, _)| n == "authorization").unwrap();
                let marker = if target == 0 { "Signature=" } else { "Credential=" };
                let start = authorization.find(marker).unwrap() + marker.len();
                let end = authorization[start..].find(',').map_or(authorization.len(), |e| start + e);
                let Some(changed) = change_char(&authorization[start..end], position, replacement) else { return Ok(()) };
                authorization.replace_range(start..end, &changed);
            }
            2 => {
                let signed: Vec<usize> = (0..wire.headers.len()).filter(|i| wire.headers[*i].0 != "authorization").collect();
                let (_, value) = &mut wire.headers[signed[which.index(signed.len())]];
                let Some(changed) = change_char(value, position, replacement) else { return Ok(()) };
                *value = changed;
            }
            3 => {
                prop_assume!(!query.is_empty());
                let pairs: Vec<(&str, &str)> = query.iter().collect();
                let (name, value) = pairs[which.index(pairs.len())];
                let mut changed = query.clone();
                let Some(value) = change_char(value, position, replacement) else { return Ok(()) };
                changed.set(name, value);
                wire.query = changed.to_form().into_bytes();
            }
            _ => {
                if wire.body.is_empty() {
                    wire.body.push(flip);
                } else {
                    let index = which.index(wire.body.len());
                    wire.body[index] ^= flip;
                }
            }
        }
        let outcome = verify_wire(&verifier(), &wire, now());
        prop_assert!(outcome.is_err(), "tampered request verifies: {wire:?}");
    }

    /// Signatures are compared exactly: changing one character of a V1 (Base64) or V3 (lowercase
    /// hex) signature to another character of its own alphabet, case included, fails.
    #[test]
    fn signatures_are_compared_exactly(
        nonce in nonce(),
        v3 in any::<bool>(),
        position in any::<usize>(),
        swap_case in any::<bool>(),
        replacement in prop_oneof![
            prop::char::range('a', 'f'),
            prop::char::range('A', 'F'),
            prop::char::range('0', '9'),
            prop::sample::select(&['g', 'G', 'z', 'Z', '+', '/', '='][..]),
        ],
    ) {
        // Half the cases swap the case of the character instead: hex is case-insensitive to
        // decode, so this is the change most likely to slip through.
        let change = |text: &str| {
            if !swap_case {
                return change_char(text, position, replacement);
            }
            let chars: Vec<char> = text.chars().collect();
            let current = chars[position % chars.len()];
            let swapped = if current.is_ascii_lowercase() {
                current.to_ascii_uppercase()
            } else {
                current.to_ascii_lowercase()
            };
            change_char(text, position, swapped)
        };
        let mut wire = if v3 {
            v3_request(Params::new(), Vec::new(), Vec::new(), Signer::Permanent, &nonce, now()).wire()
        } else {
            v1_wire(&Method::GET, &v1_params("GET", &BTreeMap::new(), Signer::Permanent, &nonce, now()), &[false])
        };
        if v3 {
            let (_, authorization) = wire.headers.iter_mut().find(|(n, _)| n == "authorization").unwrap();
            let start = authorization.find("Signature=").unwrap() + "Signature=".len();
            let Some(changed) = change(&authorization[start..]) else { return Ok(()) };
            authorization.replace_range(start.., &changed);
        } else {
            let mut params = Params::from_form(std::str::from_utf8(&wire.query).unwrap()).unwrap();
            let Some(changed) = change(params.get("Signature").unwrap()) else { return Ok(()) };
            params.set("Signature", changed);
            wire.query = params.to_form().into_bytes();
        }
        let outcome = verify_wire(&verifier(), &wire, now());
        prop_assert!(outcome.is_err(), "changed signature verifies: {wire:?}");
    }

    /// A V3 request verifies only if its signature covers every `x-acs-*` header it carries:
    /// otherwise the action, nonce or date could be changed (turning a captured `DescribeImages`
    /// into a `DeleteImage`, or replaying it under a fresh nonce) without breaking the signature.
    #[test]
    fn v3_requests_must_sign_every_acs_header(
        headers in extra_headers(),
        nonce in nonce(),
        unsigned in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let mut request = v3_request(Params::new(), Vec::new(), headers, Signer::Permanent, &nonce, now());
        let names: Vec<String> = request.headers.iter().map(|(n, _)| n.clone()).chain(["x-acs-content-sha256".to_string()]).collect();
        request.unsigned = unsigned.iter().map(|i| names[i.index(names.len())].clone()).filter(|n| n != "host").collect();
        let outcome = verify_wire(&verifier(), &request.wire(), now());
        let covered = request.unsigned.iter().all(|name| !name.starts_with("x-acs-"));
        prop_assert_eq!(outcome.is_ok(), covered, "{:?} with unsigned {:?}", outcome, request.unsigned);
    }

    /// Signed requests with arbitrary action parameters never panic an action, and every refusal
    /// carries a code with an HTTP status (numbers are chosen to overflow naive arithmetic).
    #[test]
    fn actions_never_panic_on_any_parameters(
        action in prop::sample::select(actions::ACTIONS),
        params in action_params(),
        region in any::<bool>(),
    ) {
        let mut world = world_with_an_image();
        let mut params = params;
        if region {
            params.set("RegionId", REGION);
        }
        let at = world_now();
        for account in ["default", "other"] {
            if let Err(fault) = actions::run(&mut world, account, action, &params, at) {
                prop_assert!((400..600).contains(&status_of(fault.code)), "{}", fault.code);
            }
        }
    }

    /// Paging takes any page number and size: a page far past the end is empty or refused, never a
    /// crash (the offset is page number × size, which overflows for large numbers).
    #[test]
    fn paging_with_any_numbers_answers_cleanly(
        action in prop::sample::select(&["DescribeTasks", "DescribeImages"][..]),
        page_number in prop::option::of(prop_oneof![any::<u64>(), 0u64..4, Just(u64::MAX)].prop_map(|n| n.to_string())),
        page_size in prop::option::of(prop_oneof![0u64..=101, any::<u64>()].prop_map(|n| n.to_string())),
    ) {
        let mut world = world_with_an_image();
        let mut params: Params = [("RegionId", REGION)].into_iter().collect();
        params.set_opt("PageNumber", page_number.as_ref());
        params.set_opt("PageSize", page_size.as_ref());
        match actions::run(&mut world, "default", action, &params, world_now()) {
            Ok(fields) => {
                let total = fields.iter().find(|(name, _)| *name == "TotalCount");
                prop_assert!(total.is_some());
            }
            Err(fault) => prop_assert_eq!(fault.code, "InvalidParameter"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

fn world_now() -> Timestamp {
    now()
}

/// The test world with one imported image and its task.
fn world_with_an_image() -> World {
    let config = config();
    let mut world = World::new(config.regions.clone(), config.timing, 7);
    for object in &config.objects {
        world.add_object(object.clone());
    }
    for group in &config.resource_groups {
        world.add_resource_group(group.clone());
    }
    let params: Params = [
        ("RegionId", REGION),
        ("ImageName", "fuzz-base"),
        ("DiskDeviceMapping.1.OSSBucket", "images-hz"),
        ("DiskDeviceMapping.1.OSSObject", "ubuntu-22.04.qcow2"),
        ("Tag.1.Key", "owner"),
        ("Tag.1.Value", "fuzz"),
    ]
    .into_iter()
    .collect();
    actions::run(&mut world, "default", "ImportImage", &params, world_now()).unwrap();
    world
}

/// Parameter maps built from the names the actions read, with values meant to break them.
fn action_params() -> impl Strategy<Value = Params> {
    let name = prop_oneof![
        4 => prop::sample::select(&[
            "All", "Architecture", "ClientToken", "Description", "DetectionStrategy", "DryRun",
            "EndTime", "Force", "ImageId", "ImageName", "ImageOwnerAlias", "InstanceType",
            "OSType", "PageNumber", "PageSize", "Platform", "BootMode", "LicenseType",
            "ResourceGroupId", "ResourceType", "RoleName", "StartTime", "Status",
            "StorageLocationArn", "TaskAction", "TaskId", "TaskIds", "TaskStatus", "Usage",
            "Features.NvmeSupport", "Features.ImdsSupport",
        ][..]).prop_map(str::to_string),
        3 => (
            prop::sample::select(&["Tag", "ResourceId", "ResourceIds", "TagKey", "Filter", "DiskDeviceMapping"][..]),
            index(),
            prop::sample::select(&["", ".Key", ".Value", ".OSSBucket", ".OSSObject", ".Format", ".DiskImageSize", ".DiskImSize"][..]),
        ).prop_map(|(prefix, n, field)| format!("{prefix}.{n}{field}")),
        1 => text(),
    ];
    prop::collection::vec((name, action_value()), 0..10)
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn index() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..=21).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => Just("-1".to_string()),
        1 => Just("01".to_string()),
    ]
}

fn action_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just(usize::MAX.to_string()),
        1 => Just((usize::MAX / 2 + 1).to_string()),
        2 => (0u64..=120).prop_map(|n| n.to_string()),
        1 => prop::sample::select(&[
            "true", "false", "TRUE", "", "self", "system", "x86_64", "arm64", "linux", "windows",
            "RAW", "qcow2", "VHD", "UEFI", "BIOS", "Standard", "Others Linux", "image",
            "ImportImage", "Processing", "Finished", ALL_IMAGE_STATUSES, "images-hz",
            "ubuntu-22.04.qcow2", "cn-hangzhou", "cn-shanghai", "rg-team", "m-none", "t-none",
            "a,b,,c", "2024-05-01T12:00:00Z", "2024-05-01T12:00Z", "9999-12-31T23:59:59Z",
            "-009999-01-01T00:00:00Z", "0000-01-01T00:00Z",
        ][..]).prop_map(str::to_string),
        2 => text(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------------

/// Raw requests, garbage and signed, against a running emulator: every answer is a well-formed ECS
/// body (an error the client can read, or a success), the connection is never dropped, and the
/// emulator still serves the project's client afterwards (no action poisoned its state).
#[test]
fn the_running_emulator_answers_everything_and_stays_usable() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emulator = runtime.block_on(start());
    let client = client(&emulator);
    let credentials = creds();
    let base = emulator.url();
    let config = ProptestConfig {
        cases: (config_for_ci().cases / 4).max(1),
        ..config_for_ci()
    };
    let strategy = (
        method(),
        "([A-Za-z0-9%+=&.~_-]{0,12}&){0,4}",
        prop::collection::vec(any::<u8>(), 0..48),
        garbage_headers(),
        prop::option::of((
            prop::sample::select(actions::ACTIONS),
            action_params(),
            any::<bool>(),
        )),
    );
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&strategy, |(method, query, body, headers, signed)| {
        runtime.block_on(async {
            let mut url = format!("{base}/?{query}");
            let mut body = body;
            let mut headers = headers;
            let signed_request = signed.is_some();
            if let Some((action, params, json)) = signed {
                let mut params = params;
                params.set("RegionId", REGION);
                if json {
                    params.set("Format", "JSON");
                }
                let pairs: Vec<(&str, &str)> = params.iter().collect();
                let signed = emulator_support::signed("POST", action, &pairs);
                url = format!("{base}/");
                body = signed.to_form().into_bytes();
                headers = vec![(
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                )];
            }
            let method = if signed_request { Method::POST } else { method };
            let mut request = http().request(method, &url).body(body);
            for (name, value) in &headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let response = request
                .send()
                .await
                .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
            let status = response.status().as_u16();
            let text = response
                .text()
                .await
                .map_err(|e| TestCaseError::fail(format!("cut answer: {e}")))?;
            if status != 200 {
                let error = ApiError::parse("Any", status, &text);
                let error = error.ok_or_else(|| {
                    TestCaseError::fail(format!("unreadable error {status}: {text}"))
                })?;
                prop_assert!(error.code != "InternalError", "{text}");
            }
            let regions = client
                .call(&credentials, &DescribeRegionsRequest::default())
                .await;
            prop_assert!(
                regions.is_ok(),
                "emulator unusable after that request: {regions:?}"
            );
            Ok(())
        })
    });
    runtime.block_on(emulator.shutdown());
    if let Err(error) = result {
        panic!("{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// What the properties found, as fixed examples
// ---------------------------------------------------------------------------------------------

/// `PageNumber` × `PageSize` overflowed (a panic in debug builds, inside the world lock, which
/// left every later request answered `InternalError`); now a page past the end is empty.
#[tokio::test]
async fn a_huge_page_number_answers_an_empty_page_and_the_emulator_stays_usable() {
    let emulator = start().await;
    for action in ["DescribeTasks", "DescribeImages"] {
        let params = emulator_support::signed(
            "POST",
            action,
            &[("RegionId", REGION), ("PageNumber", "1844674407370955163")],
        );
        let (status, body) = post_form(&emulator, &params).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    let regions = client(&emulator)
        .call(&creds(), &DescribeRegionsRequest::default())
        .await;
    assert!(regions.is_ok(), "{regions:?}");
    emulator.shutdown().await;
}

/// V3 signatures were accepted in uppercase hex, and without covering the `x-acs-*` headers: a
/// `DescribeImages` signed without `x-acs-action` verified as a `DeleteImage` too.
#[test]
fn v3_signatures_must_be_lowercase_and_cover_the_action() {
    let request = v3_request(
        [("RegionId", REGION), ("ImageId", "m-1")]
            .into_iter()
            .collect(),
        Vec::new(),
        Vec::new(),
        Signer::Permanent,
        "0123456789abcdef0123456789abcdef",
        now(),
    );
    let mut wire = request.wire();
    assert!(verify_wire(&verifier(), &wire, now()).is_ok());
    let (_, authorization) = wire
        .headers
        .iter_mut()
        .find(|(n, _)| n == "authorization")
        .unwrap();
    let start = authorization.find("Signature=").unwrap() + "Signature=".len();
    let upper = authorization[start..].to_ascii_uppercase();
    authorization.replace_range(start.., &upper);
    assert_eq!(
        verify_wire(&verifier(), &wire, now()).map(|_| ()),
        Err("SignatureDoesNotMatch".to_string())
    );

    let mut unsigned_action = request.clone();
    unsigned_action.unsigned = vec!["x-acs-action".into()];
    let mut wire = unsigned_action.wire();
    for (name, value) in &mut wire.headers {
        if name == "x-acs-action" {
            *value = "DeleteImage".into();
        }
    }
    assert_eq!(
        verify_wire(&verifier(), &wire, now()).map(|_| ()),
        Err("IncompleteSignature".to_string())
    );
}
