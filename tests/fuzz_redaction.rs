//! Properties of what may be shown of ECS's answers: random secrets and tokens embedded in random
//! error bodies (raw, percent-encoded once or twice, form-encoded) never survive in any of those
//! forms; huge bodies and messages come out bounded, on character boundaries, without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use ecs_image_operator::ecs::error::ApiError;
use ecs_image_operator::ecs::params::percent_encode;
use ecs_image_operator::ecs::redact::{
    self, CUT_MARKER, MAX_CODE_LEN, MAX_FIELD_CHARS, MAX_MESSAGE_CHARS, Secrets, UNUSABLE_CODE,
};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            512
        },
        failure_persistence: None,
        ..defaults
    }
}

/// A secret or token: base64-ish with the characters that encoding changes, 8 to 40 long.
fn secret() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::char::range('a', 'z'),
            4 => prop::char::range('A', 'Z'),
            2 => prop::char::range('0', '9'),
            1 => Just('+'), 1 => Just('/'), 1 => Just('='), 1 => Just(' '), 1 => Just('%'),
            1 => Just('*'), 1 => Just('~'), 1 => Just('é'),
        ],
        8..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Text around the secrets: words, punctuation, multi-byte characters.
fn filler() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("Specified signature "),
            Just("&"),
            Just("%3D"),
            Just("%26"),
            Just(" "),
            Just("テ"),
            Just("SecurityToken="),
            Just("\""),
            Just("<"),
            Just("\\"),
        ],
        0..12,
    )
    .prop_map(|pieces| pieces.concat())
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Raw,
    Once,
    Twice,
    PlusForSpace,
    LowerOnce,
}

fn encode(value: &str, form: Form) -> String {
    match form {
        Form::Raw => value.to_string(),
        Form::Once => percent_encode(value),
        Form::Twice => percent_encode(&percent_encode(value)),
        Form::PlusForSpace => percent_encode(value).replace("%20", "+"),
        Form::LowerOnce => percent_encode(value).to_lowercase(),
    }
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::Raw),
        Just(Form::Once),
        Just(Form::Twice),
        Just(Form::PlusForSpace),
        Just(Form::LowerOnce)
    ]
}

/// Every form a secret must not be seen in (matched without regard to case).
fn must_not_contain(text: &str, value: &str) -> Result<(), TestCaseError> {
    let lowered = text.to_lowercase();
    for form in [Form::Raw, Form::Once, Form::Twice, Form::PlusForSpace] {
        let encoded = encode(value, form).to_lowercase();
        prop_assert!(
            !lowered.contains(&encoded),
            "{:?} form {:?} survives in {:?}",
            form,
            encoded,
            text
        );
    }
    Ok(())
}

fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

fn xml_text(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

proptest! {
    #![proptest_config(config())]

    /// Secrets and tokens embedded anywhere in an error body never come back out.
    #[test]
    fn embedded_secrets_never_survive(
        secret in secret(),
        token in secret(),
        pieces in prop::collection::vec((filler(), form(), any::<bool>()), 1..6),
        tail in filler(),
        code in prop_oneof![Just("SignatureDoesNotMatch".to_string()), Just("InvalidParameter".to_string())],
        in_request_id in any::<bool>(),
        xml in any::<bool>(),
    ) {
        let mut message = String::new();
        for (text, form, which) in &pieces {
            message.push_str(text);
            message.push_str(&encode(if *which { &secret } else { &token }, *form));
        }
        message.push_str(&tail);
        let request_id = if in_request_id { format!("R-{}", encode(&token, Form::Once)) } else { "R-1".into() };
        let body = if xml {
            format!("<Error><RequestId>{}</RequestId><Code>{code}</Code><Message>{}</Message></Error>",
                xml_text(&request_id), xml_text(&message))
        } else {
            format!(r#"{{"RequestId":{},"Code":"{code}","Message":{}}}"#, json_string(&request_id), json_string(&message))
        };
        let secrets = Secrets::none().with(&secret).with(&token);
        let error = ApiError::parse_redacted("ImportImage", 400, &body, &secrets).unwrap();
        for shown in [error.to_string(), format!("{error:?}")] {
            must_not_contain(&shown, &secret)?;
            must_not_contain(&shown, &token)?;
        }
        // The same holds for any text, not only messages.
        let text = redact::shown_text(&body, &secrets, usize::MAX);
        must_not_contain(&text, &secret)?;
        must_not_contain(&text, &token)?;
    }

    /// Huge messages, request IDs and codes come out bounded; nothing panics.
    #[test]
    fn huge_error_bodies_come_out_bounded(
        unit in prop_oneof![Just("a"), Just("é"), Just("テ"), Just("😀"), Just("\n")],
        repeat in 0usize..40_000,
        code_repeat in 1usize..200,
        xml in any::<bool>(),
    ) {
        let message = unit.repeat(repeat);
        let code = "Code.".repeat(code_repeat);
        let body = if xml {
            format!("<Error><RequestId>{message}</RequestId><Code>{code}</Code><Message>{message}</Message></Error>")
        } else {
            format!(r#"{{"RequestId":{m},"Code":"{code}","Message":{m}}}"#, m = json_string(&message))
        };
        let error = ApiError::parse("ImportImage", 400, &body).unwrap();
        prop_assert!(error.message.chars().count() <= MAX_MESSAGE_CHARS);
        prop_assert!(error.request_id.as_deref().unwrap_or("").chars().count() <= MAX_FIELD_CHARS);
        prop_assert!(error.code.len() <= MAX_CODE_LEN);
        prop_assert!(redact::is_usable_code(&error.code));
        if code.len() > MAX_CODE_LEN {
            prop_assert_eq!(error.code.as_str(), UNUSABLE_CODE);
        }
        if repeat > MAX_MESSAGE_CHARS {
            prop_assert!(error.message.ends_with(CUT_MARKER));
        }
    }

    /// `bound` keeps a prefix on a character boundary and never exceeds its limit.
    #[test]
    fn bound_keeps_a_prefix_within_the_limit(text in any::<String>(), max in 8usize..64) {
        let cut = redact::bound(&text, max);
        prop_assert!(cut.chars().count() <= max);
        if text.chars().count() <= max {
            prop_assert_eq!(&cut, &text);
        } else {
            let head = cut.strip_suffix(CUT_MARKER).unwrap();
            prop_assert!(text.starts_with(head));
        }
    }
}
