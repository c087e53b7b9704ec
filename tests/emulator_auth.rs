//! Authentication: the official SDKs' wire requests from the golden vectors verify (at their own
//! instant) and fail with any byte changed; over HTTP, tampering, replay, skew, unknown keys and
//! bad STS tokens are refused with ECS's codes, and SDK quirks (`+` for space, an empty signed
//! `SignatureType=`, parameters split between query and body, V3) are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ecs_image_operator::ecs::params::Params;
use ecs_image_operator::ecs::sign;
use ecs_image_operator::emulator::AccessKey;
use ecs_image_operator::emulator::auth::{AuthRequest, Verifier};
use emulator_support::*;
use serde_json::Value;

struct Wire {
    id: String,
    method: String,
    url: String,
    body: String,
    headers: Vec<(String, String)>,
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signature-vectors.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn wire(id: &str, value: &Value) -> Wire {
    let headers = value["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = headers;
    if let Some(content_type) = value["content_type"].as_str()
        && !headers.iter().any(|(k, _)| k == "content-type")
    {
        headers.push(("content-type".into(), content_type.into()));
    }
    Wire {
        id: id.to_string(),
        method: value["method"].as_str().unwrap().to_string(),
        url: value["url"].as_str().unwrap().to_string(),
        body: value["body"].as_str().unwrap_or_default().to_string(),
        headers,
    }
}

/// Every wire request the fixture holds: each vector's own, and pop-core's form-body rendering.
fn wire_requests() -> Vec<(Wire, Value)> {
    let mut out = Vec::new();
    for vector in vectors() {
        let id = vector["id"].as_str().unwrap().to_string();
        if !vector["wire_request"].is_null() {
            out.push((wire(&id, &vector["wire_request"]), vector.clone()));
        }
        let pop = &vector["checks"]["pop_core_wire_request"];
        if !pop.is_null() {
            out.push((wire(&format!("{id} (pop-core)"), pop), vector.clone()));
        }
        if let Some(alternative) = vector["alternative_minimal_signed_headers"].as_object() {
            let mut w = wire(
                &format!("{id} (minimal signed headers)"),
                &vector["wire_request"],
            );
            for (name, value) in &mut w.headers {
                if name == "authorization" {
                    *value = alternative["authorization"].as_str().unwrap().to_string();
                }
            }
            out.push((w, vector.clone()));
        }
    }
    out
}

fn verifier_for(vector: &Value) -> Verifier {
    let mut key = AccessKey::new(
        vector["access_key_id"].as_str().unwrap(),
        vector["access_key_secret"].as_str().unwrap(),
    );
    if let Some(token) = vector["security_token"].as_str() {
        key = key.with_security_token(token);
    }
    Verifier::new([key])
}

fn verify(wire: &Wire, vector: &Value) -> Result<(), String> {
    let query_text = wire.url.split_once('?').map_or("", |(_, q)| q);
    let query = Params::from_form(query_text).map_err(|e| e.to_string())?;
    let mut params = query.clone();
    params
        .extend_from_form(&wire.body)
        .map_err(|e| e.to_string())?;
    let mut headers = HeaderMap::new();
    for (name, value) in &wire.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).map_err(|e| e.to_string())?,
        );
    }
    // The clock is injected: each vector is checked at the instant it was signed.
    let now = vector["fixed_timestamp"].as_str().unwrap().parse().unwrap();
    verifier_for(vector)
        .verify(
            &AuthRequest {
                method: &wire.method,
                query: &query,
                params: &params,
                headers: &headers,
                body: wire.body.as_bytes(),
            },
            now,
        )
        .map(|_| ())
        .map_err(|fault| format!("{}: {}", fault.code, fault.message))
}

/// Alphanumeric bytes outside percent-escapes: `%3A` and `%3a` decode alike, so changing an escape's
/// hex digit is not a change of what was signed.
fn signed_positions(text: &str, from: usize) -> Vec<usize> {
    let bytes = text.as_bytes();
    (from..bytes.len())
        .filter(|&i| bytes[i].is_ascii_alphanumeric())
        .filter(|&i| !bytes[i.saturating_sub(2)..i].contains(&b'%'))
        .step_by(5)
        .collect()
}

fn flip(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn every_official_sdk_wire_request_verifies() {
    let all = wire_requests();
    // 15 vectors with wire requests + 12 pop-core renderings + 3 minimal-header V3 variants.
    assert_eq!(
        all.len(),
        30,
        "{:?}",
        all.iter().map(|(w, _)| &w.id).collect::<Vec<_>>()
    );
    for (wire, vector) in &all {
        verify(wire, vector).unwrap_or_else(|why| panic!("{} rejected: {why}", wire.id));
    }
}

#[test]
fn changing_any_signed_byte_of_a_wire_request_is_rejected() {
    for (wire, vector) in wire_requests() {
        let query_start = wire.url.find('?').map_or(wire.url.len(), |i| i + 1);
        for at in signed_positions(&wire.url, query_start) {
            let mut changed = clone(&wire);
            changed.url = flip(&wire.url, at);
            assert!(
                verify(&changed, &vector).is_err(),
                "{}: URL byte {at} changed but accepted",
                wire.id
            );
        }
        for at in signed_positions(&wire.body, 0) {
            let mut changed = clone(&wire);
            changed.body = flip(&wire.body, at);
            assert!(
                verify(&changed, &vector).is_err(),
                "{}: body byte {at} changed but accepted",
                wire.id
            );
        }
        for (index, (name, value)) in wire.headers.iter().enumerate() {
            let signed = wire
                .headers
                .iter()
                .find(|(n, _)| n == "authorization")
                .is_some_and(|(_, auth)| auth.contains(name.as_str()) && name.starts_with("x-acs"));
            if !signed || value.is_empty() {
                continue;
            }
            let mut changed = clone(&wire);
            changed.headers[index].1 = flip(value, value.len() / 2);
            assert!(
                verify(&changed, &vector).is_err(),
                "{}: header {name} changed but accepted",
                wire.id
            );
        }
    }
}

fn clone(wire: &Wire) -> Wire {
    Wire {
        id: wire.id.clone(),
        method: wire.method.clone(),
        url: wire.url.clone(),
        body: wire.body.clone(),
        headers: wire.headers.clone(),
    }
}

#[tokio::test]
async fn a_tampered_request_is_refused_with_the_servers_string_to_sign() {
    let emulator = start().await;
    let mut params = signed("POST", "DescribeRegions", &[("RegionId", REGION)]);
    params.set("RegionId", "cn-shanghai");
    let (status, body) = post_form(&emulator, &params).await;
    assert_eq!(status, 400);
    assert_eq!(code_of(&body), "SignatureDoesNotMatch");
    let expected = sign::v1_string_to_sign("POST", &params);
    let message: Value = serde_json::from_str(&body).unwrap();
    assert!(
        message["Message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("server string to sign is:{expected}")),
        "{body}"
    );
    // Signed for GET but sent as POST: the method is part of what is signed.
    let get_signed = signed("GET", "DescribeRegions", &[("RegionId", REGION)]);
    let (_, body) = post_form(&emulator, &get_signed).await;
    assert_eq!(code_of(&body), "SignatureDoesNotMatch");
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let emulator = start().await;
    let params = signed("POST", "DescribeRegions", &[("RegionId", REGION)]);
    assert_eq!(post_form(&emulator, &params).await.0, 200);
    let (status, body) = post_form(&emulator, &params).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (400, "SignatureNonceUsed")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_clock_more_than_fifteen_minutes_off_is_refused() {
    let emulator = start().await;
    for offset in [-16i64, 16] {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(offset);
        let params = signed_as(
            "POST",
            "DescribeRegions",
            &[("RegionId", REGION)],
            AK_ID,
            AK_SECRET,
            &at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            &nonce(),
        );
        let (status, body) = post_form(&emulator, &params).await;
        assert_eq!(
            (status, code_of(&body).as_str()),
            (400, "InvalidTimeStamp.Expired")
        );
    }
    let within = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(14);
    let params = signed_as(
        "POST",
        "DescribeRegions",
        &[("RegionId", REGION)],
        AK_ID,
        AK_SECRET,
        &within.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        &nonce(),
    );
    assert_eq!(post_form(&emulator, &params).await.0, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unknown_credentials_get_ecs_codes() {
    let emulator = start().await;
    let stamp = now_stamp();
    let unknown = signed_as(
        "POST",
        "DescribeRegions",
        &[],
        "LTAI-nobody",
        "x",
        &stamp,
        &nonce(),
    );
    let (status, body) = post_form(&emulator, &unknown).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (404, "InvalidAccessKeyId.NotFound")
    );

    let mut unsigned = signed("POST", "DescribeRegions", &[]);
    unsigned.remove("Signature");
    let (_, body) = post_form(&emulator, &unsigned).await;
    assert_eq!(code_of(&body), "IncompleteSignature");

    let mut bad_time = signed("POST", "DescribeRegions", &[]);
    bad_time.set("Timestamp", "2024-05-01 12:00:00");
    resign(&mut bad_time, "POST", AK_SECRET);
    let (_, body) = post_form(&emulator, &bad_time).await;
    assert_eq!(code_of(&body), "IllegalTimestamp");

    let mut wrong_secret = signed("POST", "DescribeRegions", &[]);
    resign(&mut wrong_secret, "POST", "not-the-secret");
    let (_, body) = post_form(&emulator, &wrong_secret).await;
    assert_eq!(code_of(&body), "SignatureDoesNotMatch");
    emulator.shutdown().await;
}

#[tokio::test]
async fn security_tokens_are_checked_for_temporary_keys() {
    let emulator = start().await;
    emulator
        .add_key(AccessKey::new("STS.Second", "second-secret").with_security_token("CAISsecond"));
    emulator.add_key(
        AccessKey::new("STS.Expired", "expired-secret")
            .with_security_token("CAISexpired")
            .expiring_at(jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1)),
    );
    let sts = |token: Option<&str>, id: &str, secret: &str| {
        let mut params: Vec<(&str, &str)> = vec![("RegionId", REGION)];
        if let Some(token) = token {
            params.push(("SecurityToken", token));
        }
        signed_as(
            "POST",
            "DescribeRegions",
            &params,
            id,
            secret,
            &now_stamp(),
            &nonce(),
        )
    };
    let cases = [
        (sts(Some(STS_TOKEN), STS_ID, STS_SECRET), ""),
        (sts(None, STS_ID, STS_SECRET), "MissingSecurityToken"),
        (
            sts(Some("CAISnot-a-token"), STS_ID, STS_SECRET),
            "InvalidSecurityToken.Malformed",
        ),
        (
            sts(Some("CAISsecond"), STS_ID, STS_SECRET),
            "InvalidSecurityToken.MismatchWithAccessKey",
        ),
        (
            sts(Some("CAISexpired"), "STS.Expired", "expired-secret"),
            "InvalidSecurityToken.Expired",
        ),
    ];
    for (params, expected) in cases {
        let (status, body) = post_form(&emulator, &params).await;
        if expected.is_empty() {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(code_of(&body), expected, "{body}");
        }
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn sdk_wire_quirks_are_accepted() {
    let emulator = start().await;
    let http = http();
    // Python core SDK: empty SignatureType signed; everything in the query of a POST.
    let params = signed(
        "POST",
        "DescribeImages",
        &[
            ("RegionId", REGION),
            ("SignatureType", ""),
            ("ImageName", "a b"),
        ],
    );
    let response = http
        .post(format!("{}/?{}", emulator.url(), params.to_form()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Tea SDK: spaces sent as `+` but signed as %20.
    let params = signed(
        "GET",
        "DescribeImages",
        &[("RegionId", REGION), ("ImageName", "a b c")],
    );
    let plus = params.to_form().replace("%20", "+");
    let response = http
        .get(format!("{}/?{plus}", emulator.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // Parameters split between the query and a form body are signed as one set.
    let params = signed(
        "POST",
        "DescribeTasks",
        &[("RegionId", REGION), ("PageSize", "5")],
    );
    let (query, body): (Vec<_>, Vec<_>) = params.iter().partition(|(k, _)| k.starts_with('S'));
    let query: Params = query.into_iter().collect();
    let body: Params = body.into_iter().collect();
    let response = http
        .post(format!("{}/?{}", emulator.url(), query.to_form()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    emulator.shutdown().await;
}

fn v3_request(
    emulator: &ecs_image_operator::emulator::EmulatorHandle,
    action: &str,
    query: &Params,
    body: &str,
) -> reqwest::RequestBuilder {
    let host = emulator.addr().to_string();
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-acs-action".into(), action.into()),
        ("x-acs-version".into(), "2014-05-26".into()),
        ("x-acs-date".into(), now_stamp()),
        ("x-acs-signature-nonce".into(), nonce()),
        (
            "x-acs-content-sha256".into(),
            sign::sha256_hex(body.as_bytes()),
        ),
    ];
    if !body.is_empty() {
        headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    let canonical = sign::v3_canonical_request(&sign::V3Input {
        http_method: "POST",
        query,
        signed_headers: &headers,
        hashed_payload: &sign::sha256_hex(body.as_bytes()),
    });
    let signature = sign::v3_signature(AK_SECRET, &sign::v3_string_to_sign(&canonical));
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    let mut request = http()
        .post(format!("{}/?{}", emulator.url(), query.to_form()))
        .header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={AK_ID},SignedHeaders={},Signature={signature}",
                sorted.join(";")
            ),
        )
        .header("accept", "application/json")
        .body(body.to_string());
    for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
        request = request.header(name, value);
    }
    request
}

#[tokio::test]
async fn v3_requests_are_accepted_and_a_changed_body_is_not() {
    let emulator = start().await;
    let query: Params = [("RegionId", REGION), ("PageSize", "10")]
        .into_iter()
        .collect();
    let response = v3_request(&emulator, "DescribeTasks", &query, "")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["TaskSet"]["Task"].is_array());

    // RPC parameters in a form body, covered by the signed hash.
    let empty = Params::new();
    let form = "RegionId=cn-hangzhou&ImageId=m-none";
    let response = v3_request(&emulator, "DescribeImages", &empty, form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tampered = v3_request(&emulator, "DescribeImages", &empty, form)
        .body("RegionId=cn-shanghai&ImageId=m-none")
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 400);
    assert_eq!(
        code_of(&tampered.text().await.unwrap()),
        "SignatureDoesNotMatch"
    );
    emulator.shutdown().await;
}
