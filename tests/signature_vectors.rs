//! Every golden vector in `tests/fixtures/signature-vectors.json` (made with Alibaba's official SDKs)
//! is reproduced by our signer: canonical string, string-to-sign and signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use ecs_image_operator::ecs::params::Params;
use ecs_image_operator::ecs::sign;
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signature-vectors.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn string_map(value: &Value) -> Params {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn v1_vectors() -> Vec<Value> {
    vectors()
        .into_iter()
        .filter(|v| v["id"].as_str().unwrap().starts_with("v1-"))
        .collect()
}

#[test]
fn the_fixture_holds_all_sixteen_vectors() {
    let all = vectors();
    assert_eq!(all.len(), 16);
    assert_eq!(v1_vectors().len(), 13);
}

#[test]
fn every_v1_vector_is_reproduced() {
    for vector in v1_vectors() {
        let id = vector["id"].as_str().unwrap();
        let params = string_map(&vector["parameters"]);
        let method = vector["http_method"].as_str().unwrap();
        assert_eq!(
            params.canonicalized_query(),
            vector["canonicalized_query_string"].as_str().unwrap(),
            "{id}: canonical query"
        );
        let string_to_sign = sign::v1_string_to_sign(method, &params);
        assert_eq!(
            string_to_sign,
            vector["string_to_sign"].as_str().unwrap(),
            "{id}: string to sign"
        );
        let secret = vector["access_key_secret"].as_str().unwrap();
        let signature = sign::v1_signature(secret, &string_to_sign);
        assert_eq!(
            signature,
            vector["signature"].as_str().unwrap(),
            "{id}: signature"
        );
        assert_eq!(
            ecs_image_operator::ecs::params::percent_encode(&signature),
            vector["signature_url_encoded"].as_str().unwrap(),
            "{id}"
        );
        assert!(
            sign::v1_verify(secret, &string_to_sign, &signature),
            "{id}: verify"
        );
        if let Some(token) = vector["security_token"].as_str() {
            assert_eq!(
                params.get("SecurityToken"),
                Some(token),
                "{id}: STS token is a signed parameter"
            );
        }
    }
}

#[test]
fn every_v1_wire_request_decodes_back_to_the_signed_parameters() {
    for vector in v1_vectors() {
        let id = vector["id"].as_str().unwrap();
        let Some(wire) = vector["wire_request"].as_object() else {
            continue;
        };
        let url = wire["url"].as_str().unwrap();
        let mut params = Params::from_form(url.split_once('?').map_or("", |(_, q)| q)).unwrap();
        if let Some(body) = wire["body"].as_str() {
            params.extend_from_form(body).unwrap();
        }
        let signature = params.remove("Signature").unwrap();
        assert_eq!(signature, vector["signature"].as_str().unwrap(), "{id}");
        assert_eq!(
            params,
            string_map(&vector["parameters"]),
            "{id}: wire parameters"
        );
        let sts = sign::v1_string_to_sign(wire["method"].as_str().unwrap(), &params);
        assert!(
            sign::v1_verify(
                vector["access_key_secret"].as_str().unwrap(),
                &sts,
                &signature
            ),
            "{id}"
        );
    }
}

#[test]
fn a_flipped_byte_breaks_the_v1_signature() {
    let vector = &v1_vectors()[1];
    let mut params = string_map(&vector["parameters"]);
    params.set("ImageName", "golden-ubuntu-2205");
    let sts = sign::v1_string_to_sign("POST", &params);
    assert!(!sign::v1_verify(
        vector["access_key_secret"].as_str().unwrap(),
        &sts,
        vector["signature"].as_str().unwrap()
    ));
}

fn check_v3(
    id: &str,
    query: &Params,
    headers: &Value,
    hashed_payload: &str,
    expected: &Value,
    secret: &str,
) {
    let signed_headers: Vec<(String, String)> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let input = sign::V3Input {
        http_method: "POST",
        query,
        signed_headers: &signed_headers,
        hashed_payload,
    };
    let canonical = sign::v3_canonical_request(&input);
    assert_eq!(
        canonical,
        expected["canonical_request"].as_str().unwrap(),
        "{id}: canonical request"
    );
    let string_to_sign = sign::v3_string_to_sign(&canonical);
    assert_eq!(
        string_to_sign,
        expected["string_to_sign"].as_str().unwrap(),
        "{id}: string to sign"
    );
    let authorization =
        sign::V3Authorization::parse(expected["authorization"].as_str().unwrap()).unwrap();
    assert_eq!(
        sign::v3_signature(secret, &string_to_sign),
        authorization.signature,
        "{id}: signature"
    );
    assert!(sign::v3_verify(
        secret,
        &string_to_sign,
        &authorization.signature
    ));
    let mut names: Vec<String> = signed_headers.iter().map(|(k, _)| k.clone()).collect();
    names.sort();
    assert_eq!(
        authorization.signed_headers, names,
        "{id}: signed header list"
    );
}

#[test]
fn every_v3_vector_is_reproduced_in_both_header_variants() {
    let v3: Vec<Value> = vectors()
        .into_iter()
        .filter(|v| v["id"].as_str().unwrap().starts_with("v3-"))
        .collect();
    assert_eq!(v3.len(), 3);
    for vector in v3 {
        let id = vector["id"].as_str().unwrap();
        let query = string_map(&vector["query_parameters"]);
        let hashed = vector["hashed_payload"].as_str().unwrap();
        let secret = vector["access_key_secret"].as_str().unwrap();
        check_v3(
            id,
            &query,
            &vector["request_headers_signed"],
            hashed,
            &vector,
            secret,
        );
        let minimal = &vector["alternative_minimal_signed_headers"];
        let names = sign::V3Authorization::parse(minimal["authorization"].as_str().unwrap())
            .unwrap()
            .signed_headers;
        let all = vector["request_headers_signed"].as_object().unwrap();
        let subset: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| (n.clone(), all.get(n).cloned().unwrap()))
            .collect();
        check_v3(id, &query, &Value::Object(subset), hashed, minimal, secret);
        assert_eq!(sign::sha256_hex(b""), hashed, "{id}: empty body hash");
    }
}
