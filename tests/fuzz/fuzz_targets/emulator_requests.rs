//! Any bytes as a request to the emulator: the parser and the verifier never panic and never
//! accept it; the same parameters signed with the client's signer always verify.
//!
//! Input layout: method selector byte, then query, header block and body separated by 0xFF bytes;
//! header lines are `name:value` separated by newlines.
#![no_main]

use ecs_image_operator::ecs::sign;
use ecs_image_operator::emulator::AccessKey;
use ecs_image_operator::emulator::auth::{AuthRequest, Verifier};
use ecs_image_operator::emulator::server::parse_request;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;

const ID: &str = "LTAI5tFuzzKey";
const SECRET: &str = "FuzzSecret";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = [Method::GET, Method::POST, Method::PUT][usize::from(selector % 3)].clone();
    let mut parts = rest.splitn(3, |b| *b == 0xFF);
    let (query, header_block, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut headers = HeaderMap::new();
    for line in header_block.split(|b| *b == b'\n') {
        let mut pair = line.splitn(2, |b| *b == b':');
        if let (Some(name), Some(value)) = (pair.next(), pair.next())
            && let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let now = Timestamp::from_second(1_714_566_896).unwrap_or(Timestamp::UNIX_EPOCH);
    let verifier = Verifier::new([AccessKey::new(ID, SECRET)]);
    let query_text = String::from_utf8_lossy(query);
    let Ok(uri) = format!("/?{query_text}").parse::<Uri>() else {
        return;
    };
    if let Ok((query, params)) = parse_request(&method, &uri, &headers, body) {
        let request = AuthRequest {
            method: method.as_str(),
            query: &query,
            params: &params,
            headers: &headers,
            body,
        };
        assert!(
            verifier.verify(&request, now).is_err(),
            "unsigned input verified"
        );

        // The same parameters, signed as the client signs them, verify once.
        let mut signed = params.clone();
        for name in ["Signature", "SecurityToken"] {
            signed.remove(name);
        }
        signed.set("AccessKeyId", ID);
        signed.set("SignatureMethod", sign::V1_SIGNATURE_METHOD);
        signed.set("SignatureVersion", sign::V1_SIGNATURE_VERSION);
        signed.set("SignatureNonce", "fuzz-nonce");
        signed.set("Timestamp", "2024-05-01T12:34:56Z");
        let string_to_sign = sign::v1_string_to_sign("GET", &signed);
        signed.set("Signature", sign::v1_signature(SECRET, &string_to_sign));
        let Ok(uri) = format!("/?{}", signed.to_form()).parse::<Uri>() else {
            panic!("the client's encoding is not a valid request target");
        };
        let empty = HeaderMap::new();
        let (query, params) = parse_request(&Method::GET, &uri, &empty, &[]).unwrap_or_default();
        let request = AuthRequest {
            method: "GET",
            query: &query,
            params: &params,
            headers: &empty,
            body: &[],
        };
        let fresh = Verifier::new([AccessKey::new(ID, SECRET)]);
        assert!(
            fresh.verify(&request, now).is_ok(),
            "signed request refused"
        );
    }
});
