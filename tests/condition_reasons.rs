//! Condition and Event reasons follow the Kubernetes API conventions whatever the ECS code:
//! `reason_of` maps any text (dotted codes, hyphens, digits first, unicode, empty, huge) to a reason
//! that matches the pattern `metav1.Condition` declares, checked here with a regular expression
//! rather than with the operator's own check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use ecs_image_operator::api::conditions::{
    MAX_REASON_LEN, REASON_PATTERN, conform, is_valid_reason, reason_of, reasons,
};
use ecs_image_operator::ecs::error::{KNOWN_CODES, OPERATOR_CODES};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use proptest::prelude::*;
use regex::Regex;
use std::sync::LazyLock;

static PATTERN: LazyLock<Regex> = LazyLock::new(|| Regex::new(REASON_PATTERN).unwrap());

fn valid(reason: &str) -> bool {
    PATTERN.is_match(reason) && reason.chars().count() <= MAX_REASON_LEN
}

#[test]
fn ecs_codes_lose_their_dots_and_keep_their_camel_case() {
    for (code, reason) in [
        ("InvalidOSSObject.NotFound", "InvalidOSSObjectNotFound"),
        ("QuotaExceed.Image", "QuotaExceedImage"),
        ("Throttling.User", "ThrottlingUser"),
        ("InvalidParameter.foo", "InvalidParameterFoo"),
        ("Invalid-Param.x_y", "InvalidParamX_y"),
        ("NoSetRoletoECSServiceAcount", "NoSetRoletoECSServiceAcount"),
        ("404.NotFound", "Code404NotFound"),
        ("_Hidden", "Code_Hidden"),
        (".Leading.Dot.", "LeadingDot"),
        ("Trailing:", "Trailing"),
        ("Ünïcode.Fehler", "nCodeFehler"),
        ("", reasons::UNKNOWN),
        ("...", reasons::UNKNOWN),
        ("テスト", reasons::UNKNOWN),
    ] {
        assert_eq!(reason_of(code), reason, "from {code:?}");
        assert!(valid(&reason_of(code)), "{code:?}");
    }
}

#[test]
fn a_valid_reason_is_kept_as_it_is() {
    for reason in ["Available", "WaitingForECS", "a", "With,Comma:Colon_"] {
        assert_eq!(reason_of(reason), reason);
    }
}

#[test]
fn every_known_ecs_code_gives_a_valid_reason_of_its_own() {
    let mut seen = std::collections::BTreeMap::new();
    for known in KNOWN_CODES.iter().chain(OPERATOR_CODES) {
        let reason = reason_of(known.code);
        assert!(valid(&reason), "{} gives {reason:?}", known.code);
        if let Some(other) = seen.insert(reason.clone(), known.code) {
            assert_eq!(other, known.code, "two codes give the reason {reason}");
        }
    }
}

#[test]
fn a_huge_code_is_cut_to_the_limit() {
    let reason = reason_of(&"Quota.Exceed".repeat(1000));
    assert_eq!(reason.len(), MAX_REASON_LEN);
    assert!(valid(&reason));
    let reason = reason_of(&"A".repeat(MAX_REASON_LEN + 1));
    assert_eq!(reason.len(), MAX_REASON_LEN, "valid but too long");
}

#[test]
fn conform_rewrites_only_the_reasons_that_break_the_rules() {
    let condition = |reason: &str| Condition {
        type_: "Stalled".into(),
        status: "True".into(),
        reason: reason.into(),
        message: "QuotaExceed.Image: the quota is used up".into(),
        observed_generation: Some(3),
        last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
    };
    let mut conditions = vec![condition("QuotaExceed.Image"), condition("Available")];
    conform(&mut conditions);
    assert_eq!(
        conditions,
        vec![condition("QuotaExceedImage"), condition("Available")]
    );
}

/// Text of the characters ECS codes are made of, and of the ones they should not be.
fn code_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::char::range('A', 'Z'),
            6 => prop::char::range('a', 'z'),
            2 => prop::char::range('0', '9'),
            2 => Just('.'),
            1 => Just('-'),
            1 => Just('_'),
            1 => Just(':'),
            1 => Just(','),
            1 => Just(' '),
            1 => Just('é'),
            1 => Just('テ'),
        ],
        0..80,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_gives_a_valid_reason(text in any::<String>()) {
        let reason = reason_of(&text);
        prop_assert!(valid(&reason), "{text:?} gives {reason:?}");
        prop_assert_eq!(is_valid_reason(&text), valid(&text), "the check agrees with the pattern");
    }

    #[test]
    fn code_like_text_gives_a_valid_reason_that_keeps_every_letter_and_digit(text in code_like()) {
        let reason = reason_of(&text);
        prop_assert!(valid(&reason), "{text:?} gives {reason:?}");
        prop_assert_eq!(reason_of(&reason), reason.clone(), "a second pass changes nothing");
        prop_assert_eq!(is_valid_reason(&text), valid(&text), "the check agrees with the pattern");
        let kept = |s: &str| -> String {
            s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
        };
        if reason != reasons::UNKNOWN {
            prop_assert!(
                kept(&reason).ends_with(&kept(&text)),
                "{text:?} gives {reason:?}: letters or digits lost"
            );
        }
    }
}
