//! Property tests ("fuzzing") of what the ECS client reads off the network: every typed response
//! body, the error body (JSON and XML), the `x-acs-retry-after` header, the lenient field readers,
//! and the parameter codec both sides share.
//!
//! Bounded for CI at 1,024 cases per property (the `PROPTEST_CASES` variable overrides it).
//! Longer on demand: `PROPTEST_CASES=100000 cargo test --release --test fuzz_ecs_responses`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use std::collections::BTreeMap;

use ecs_image_operator::ecs::api::{
    self, Acknowledged, Action, CancelTaskRequest, DeleteImageRequest, DescribeImagesRequest,
    DescribeRegionsRequest, DescribeTaskAttributeRequest, DescribeTasksRequest, ImportImageRequest,
    ModifyImageAttributeRequest, TagResourcesRequest, TaskAttribute, TaskStatus,
    UntagResourcesRequest,
};
use ecs_image_operator::ecs::error::{ApiError, parse_retry_after};
use ecs_image_operator::ecs::params::{DecodeError, Params, form_decode, percent_encode};
use ecs_image_operator::emulator::render::{self, Format, Node};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Parses `body` as the answer of action `A`, the way `EcsClient::call` does.
fn parse_as<A: Action>(body: &str) -> bool {
    serde_json::from_str::<A::Response>(body).is_ok()
}

/// Every reader of a network body; none may panic, whatever the body. Returns how many accepted it.
fn parse_everything(body: &str) -> usize {
    let accepted = [
        parse_as::<ImportImageRequest>(body),
        parse_as::<DescribeTasksRequest>(body),
        parse_as::<DescribeTaskAttributeRequest>(body),
        parse_as::<CancelTaskRequest>(body),
        parse_as::<DescribeImagesRequest>(body),
        parse_as::<DeleteImageRequest>(body),
        parse_as::<ModifyImageAttributeRequest>(body),
        parse_as::<TagResourcesRequest>(body),
        parse_as::<UntagResourcesRequest>(body),
        parse_as::<DescribeRegionsRequest>(body),
    ];
    for status in [200, 400, 403, 404, 500, 503] {
        if let Some(error) = ApiError::parse("DescribeTasks", status, body) {
            // A parsed error always has a code, and classifying and showing it never panics.
            assert!(!error.code.is_empty(), "empty code accepted from {body:?}");
            let _ = (error.class(), error.hint(), error.to_string());
        }
    }
    let _ = parse_retry_after(body);
    let _ = api::parse_percent(body);
    let _ = api::parse_ecs_time(body);
    let _ = TaskStatus::parse(body).is_terminal();
    accepted.into_iter().filter(|ok| *ok).count()
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Strings that stress a text codec: ASCII, markup and escape characters, controls, non-BMP.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,24}",
        2 => "[<>&\"'%+=;#\\\\/ a-zA-Z0-9]{0,16}",
        2 => any::<String>(),
        1 => "[\\x00-\\x1f\\u{7f}\\u{85}\\u{2028}\\u{fffe}\\u{10ffff}a]{0,8}",
        1 => "[テスト😀éß\u{301}]{0,8}",
    ]
}

/// Any JSON value, a few levels deep, with the numbers parsers trip on.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
        Just(json!("18446744073709551616")),
        Just(json!("-1")),
        Just(json!("45%")),
        Just(json!("true")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Field names of the ECS answers (so generated objects reach the typed readers), and others.
fn field_name() -> impl Strategy<Value = String> {
    const NAMES: &[&str] = &[
        "RequestId",
        "RegionId",
        "ImageId",
        "TaskId",
        "ImportTaskId",
        "TotalCount",
        "PageNumber",
        "PageSize",
        "TaskSet",
        "Task",
        "TaskStatus",
        "TaskProcess",
        "SupportCancel",
        "OperationProgressSet",
        "OperationProgress",
        "ErrorCode",
        "ErrorMsg",
        "RelatedItemSet",
        "RelatedItem",
        "Images",
        "Image",
        "Size",
        "Progress",
        "Tags",
        "Tag",
        "TagKey",
        "TagValue",
        "DiskDeviceMappings",
        "DiskDeviceMapping",
        "RemainTime",
        "Regions",
        "Region",
        "Code",
        "code",
        "Message",
        "HostId",
        "Recommend",
    ];
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => text(),
    ]
}

/// Markup-shaped text: tags, entities, CDATA, declarations and text, in any order.
fn xmlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "<?xml version='1.0' encoding='UTF-8'?>",
                "<Error>",
                "</Error>",
                "<Code>",
                "</Code>",
                "<Message>",
                "</Message>",
                "<RequestId>",
                "</RequestId>",
                "<HostId/>",
                "<Code a=\"1\" b='x'>",
                "<![CDATA[",
                "]]>",
                "<!--",
                "-->",
                "<!DOCTYPE Error [<!ENTITY e \"x\">]>",
                "&amp;",
                "&lt;",
                "&e;",
                "&#0;",
                "&#x110000;",
                "&#xD800;",
                "&",
                "<",
                ">",
                "</",
                "/>",
                "<ns:Code xmlns:ns=\"u\">",
                "\u{feff}",
            ][..]
        )
        .prop_map(str::to_string),
        text(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// A task as a model, rendered the way ECS (or the emulator) would.
#[derive(Debug, Clone)]
struct TaskModel {
    id: String,
    status: String,
    support_cancel: bool,
    cancel_as_text: bool,
    creation_time: String,
}

fn task_model() -> impl Strategy<Value = TaskModel> {
    (
        text(),
        prop_oneof![
            prop::sample::select(&["Waiting", "Processing", "Finished", "Failed", "Cancelled"][..])
                .prop_map(str::to_string),
            text()
        ],
        any::<bool>(),
        any::<bool>(),
        text(),
    )
        .prop_map(
            |(id, status, support_cancel, cancel_as_text, creation_time)| TaskModel {
                id,
                status,
                support_cancel,
                cancel_as_text,
                creation_time,
            },
        )
}

fn task_node(task: &TaskModel) -> Node {
    let cancel = if task.cancel_as_text {
        Node::s(if task.support_cancel { "true" } else { "false" })
    } else {
        Node::Bool(task.support_cancel)
    };
    Node::Obj(vec![
        ("TaskId", Node::s(&task.id)),
        ("TaskAction", Node::s("ImportImage")),
        ("TaskStatus", Node::s(&task.status)),
        ("SupportCancel", cancel),
        ("CreationTime", Node::s(&task.creation_time)),
    ])
}

/// One way to break a field of a valid answer.
fn breakage() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None), // the field is removed
        Just(Some(Value::Null)),
        Just(Some(json!(1e300))),
        Just(Some(json!(-1))),
        Just(Some(json!(u64::MAX))),
        Just(Some(json!("18446744073709551616"))),
        Just(Some(json!([]))),
        Just(Some(json!({}))),
        Just(Some(json!([[{"Task": 1}]]))),
        json_value().prop_map(Some),
    ]
}

/// A valid `DescribeTasks` answer as JSON, every field present.
fn valid_describe_tasks(tasks: &[TaskModel], total: u64) -> Value {
    let body = render::render(
        Format::Json,
        "DescribeTasksResponse",
        &[
            ("RequestId", Node::s("R-1")),
            ("RegionId", Node::s("cn-hangzhou")),
            ("TotalCount", Node::i(total)),
            ("PageNumber", Node::i(1)),
            ("PageSize", Node::i(100)),
            (
                "TaskSet",
                Node::Set("Task", tasks.iter().map(task_node).collect()),
            ),
        ],
    );
    serde_json::from_str(&body).unwrap()
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

    /// Whatever bytes arrive, every reader returns a value or an error; none panics.
    #[test]
    fn arbitrary_bytes_never_panic_a_reader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_everything(&String::from_utf8_lossy(&bytes));
    }

    /// Arbitrary JSON documents (ECS field names, wrong types, huge numbers, deep nesting).
    #[test]
    fn arbitrary_json_never_panics_a_reader(value in json_value()) {
        parse_everything(&value.to_string());
    }

    /// Markup soup: unbalanced tags, bad entities, CDATA, DOCTYPE, BOM.
    #[test]
    fn arbitrary_xml_never_panics_a_reader(body in xmlish()) {
        parse_everything(&body);
    }

    /// A valid answer with one field removed or replaced by anything still parses or fails cleanly;
    /// when it parses, every field left alone reads back unchanged.
    #[test]
    fn a_valid_answer_with_one_field_broken_parses_or_fails_cleanly(
        tasks in prop::collection::vec(task_model(), 0..4),
        total in 0..=i64::MAX as u64,
        field in prop::sample::select(&[
            "RequestId", "RegionId", "TotalCount", "PageNumber", "PageSize", "TaskSet",
        ][..]),
        broken in breakage(),
    ) {
        let mut value = valid_describe_tasks(&tasks, total);
        let object = value.as_object_mut().unwrap();
        match broken {
            None => { object.remove(field); }
            Some(replacement) => { object.insert(field.to_string(), replacement); }
        }
        let body = value.to_string();
        parse_everything(&body);
        if let Ok(parsed) = serde_json::from_str::<api::DescribeTasksResponse>(&body) {
            if field != "RequestId" { prop_assert_eq!(&parsed.request_id, "R-1"); }
            if field != "TotalCount" { prop_assert_eq!(parsed.total_count, total); }
            if field != "TaskSet" {
                prop_assert_eq!(parsed.tasks.len(), tasks.len());
            }
        }
    }

    /// What the emulator renders, the client reads back exactly: unicode, escapes and controls in
    /// every string, `SupportCancel` as boolean or text, counts up to `u64::MAX`.
    #[test]
    fn rendered_task_lists_read_back_exactly(
        tasks in prop::collection::vec(task_model(), 0..6),
        total in 0..=i64::MAX as u64,
    ) {
        let body = valid_describe_tasks(&tasks, total).to_string();
        let parsed: api::DescribeTasksResponse = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(parsed.total_count, total);
        prop_assert_eq!(parsed.tasks.len(), tasks.len());
        for (got, want) in parsed.tasks.iter().zip(&tasks) {
            prop_assert_eq!(&got.task_id, &want.id);
            prop_assert_eq!(&got.task_status, &want.status);
            prop_assert_eq!(got.support_cancel, want.support_cancel);
            prop_assert_eq!(&got.creation_time, &want.creation_time);
        }
    }

    /// Sizes and counts arrive as numbers or as strings; both read as the same number.
    #[test]
    fn numbers_read_the_same_as_numbers_and_as_strings(n in any::<u64>(), as_text in any::<bool>()) {
        let count = if as_text { json!(n.to_string()) } else { json!(n) };
        let body = json!({"TaskId": "t-1", "TotalCount": count, "TaskProcess": "45%"}).to_string();
        let parsed: TaskAttribute = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(parsed.total_count, n);
        prop_assert_eq!(parsed.progress_percent(), Some(45));
    }

    /// An error the emulator renders, in either format, reads back with the same code, message,
    /// request ID and host, whatever characters the message holds (it may echo user input).
    #[test]
    fn rendered_error_bodies_read_back_exactly(
        code in "[A-Za-z][A-Za-z0-9.]{0,40}",
        message in text(),
        request_id in text(),
        host in "[a-z0-9.:-]{1,30}",
        xml in any::<bool>(),
    ) {
        let format = if xml { Format::Xml } else { Format::Json };
        let body = render::render(format, "Error", &[
            ("RequestId", Node::s(&request_id)),
            ("HostId", Node::s(&host)),
            ("Code", Node::s(&code)),
            ("Message", Node::s(&message)),
        ]);
        let parsed = ApiError::parse("ImportImage", 400, &body);
        prop_assert!(parsed.is_some(), "unreadable error body {:?}", body);
        let parsed = parsed.unwrap();
        prop_assert_eq!(&parsed.code, &code);
        prop_assert_eq!(&parsed.message, &message, "body {:?}", body);
        prop_assert_eq!(parsed.request_id.as_deref().unwrap_or_default(), request_id.as_str());
        prop_assert_eq!(parsed.host_id.as_deref(), Some(host.as_str()));
    }

    /// `x-acs-retry-after` of any text never panics, and a wait is only read from a finite,
    /// non-negative number.
    #[test]
    fn retry_after_never_panics(
        value in prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            any::<u64>().prop_map(|n| n.to_string()),
            text(),
        ],
    ) {
        if let Some(wait) = parse_retry_after(&value) {
            let seconds: f64 = value.trim().parse().unwrap();
            prop_assert!(seconds.is_finite() && seconds >= 0.0, "{value:?} gave {wait:?}");
        }
    }

    /// Progress reads as a whole percent within 0–100, never outside, from any text.
    #[test]
    fn percentages_stay_within_bounds(n in 0u8..=100, fraction in 0u8..=9, text in text()) {
        prop_assert_eq!(api::parse_percent(&format!("{n}%")), Some(n));
        prop_assert_eq!(api::parse_percent(&format!(" {n}.{fraction} % ")), Some(n).filter(|n| *n < 100 || fraction == 0));
        if let Some(p) = api::parse_percent(&text) {
            prop_assert!(p <= 100);
        }
    }

    /// ECS times read back with and without seconds.
    #[test]
    fn ecs_times_read_in_both_shapes(seconds in 0i64..250_000_000_000) {
        let at = jiff::Timestamp::from_second(seconds).unwrap();
        let full = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        prop_assert_eq!(api::parse_ecs_time(&full), Some(at));
        let minute = jiff::Timestamp::from_second(seconds - seconds.rem_euclid(60)).unwrap();
        let short = at.strftime("%Y-%m-%dT%H:%MZ").to_string();
        prop_assert_eq!(api::parse_ecs_time(&short), Some(minute));
    }

    /// Percent-encoding then form-decoding gives back any string, and the encoding uses only the
    /// unreserved characters and uppercase escapes.
    #[test]
    fn percent_encoding_round_trips(input in text()) {
        let encoded = percent_encode(&input);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        let mut rest = encoded.as_str();
        while let Some(at) = rest.find('%') {
            let hex = &rest[at + 1..at + 3];
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "{}", encoded);
            rest = &rest[at + 3..];
        }
        prop_assert_eq!(form_decode(&encoded), Ok(input));
    }

    /// Form decoding agrees with a straightforward model: `+` is a space, `%` takes exactly two
    /// hex digits, and the result must be UTF-8; anything else is refused.
    #[test]
    fn form_decoding_matches_the_model(
        input in prop::collection::vec(
            prop_oneof![
                prop::sample::select(&["%", "+", "-", "2", "a", "F", "g", "%2B", "%E3", "%83", "%86", "%FF", "%+A", "%-1", "% 1", "テ"][..])
                    .prop_map(str::to_string),
                "[ -~]{0,3}",
            ],
            0..12,
        ).prop_map(|pieces| pieces.concat()),
    ) {
        prop_assert_eq!(form_decode(&input), model_form_decode(&input), "input {:?}", input);
    }

    /// A parameter map survives the wire: to a form and back, whatever its names and values.
    #[test]
    fn parameter_maps_round_trip_through_the_form_encoding(
        map in prop::collection::btree_map(text(), text(), 0..8),
    ) {
        let params: Params = map.clone().into_iter().collect();
        let decoded = Params::from_form(&params.to_form()).unwrap();
        prop_assert_eq!(&decoded, &params);
        let back: BTreeMap<String, String> = decoded.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        prop_assert_eq!(back, map);
    }

    /// A flattened list reads back item by item, in order, with absent fields left out.
    #[test]
    fn flattened_lists_decode_to_their_items(
        items in prop::collection::vec((text(), prop::option::of(text())), 0..12),
    ) {
        let mut params = Params::new();
        params.set_struct_list(
            "DiskDeviceMapping",
            items.iter().map(|(bucket, format)| vec![("OSSBucket", Some(bucket.clone())), ("Format", format.clone())]),
        );
        let decoded = Params::from_form(&params.to_form()).unwrap();
        let formats = items.iter().filter(|(_, format)| format.is_some()).count();
        prop_assert_eq!(decoded.len(), items.len() + formats);
        for (index, (bucket, format)) in items.iter().enumerate() {
            let n = index + 1;
            prop_assert_eq!(decoded.get(&format!("DiskDeviceMapping.{n}.OSSBucket")), Some(bucket.as_str()));
            prop_assert_eq!(decoded.get(&format!("DiskDeviceMapping.{n}.Format")), format.as_deref());
        }
    }
}

/// The reference decoder the property compares against, written from the definition.
fn model_form_decode(input: &str) -> Result<String, DecodeError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = bytes.get(i + 1).filter(|b| b.is_ascii_hexdigit());
            let low = bytes.get(i + 2).filter(|b| b.is_ascii_hexdigit());
            let (Some(high), Some(low)) = (high, low) else {
                return Err(DecodeError::BadEscape);
            };
            let hex = [*high, *low];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

/// The acknowledgement every mutating action answers with reads its request ID and ignores the
/// rest; a hand-picked check that the generic readers are wired to the real types.
#[test]
fn acknowledgements_read_their_request_id() {
    let parsed: Acknowledged = serde_json::from_str(r#"{"RequestId":"R-9","Extra":[1]}"#).unwrap();
    assert_eq!(parsed.request_id, "R-9");
    // DescribeRegions and the five acknowledgements; ImportImage and DescribeTaskAttribute need
    // their IDs, DescribeTasks and DescribeImages their lists (an answer without the list must not
    // read as "nothing there").
    assert_eq!(parse_everything(r#"{"RequestId":"R-9"}"#), 6);
}

/// The inputs the properties above found, kept as plain examples so they are checked on every run
/// whatever cases proptest happens to draw.
#[test]
fn inputs_found_by_fuzzing_stay_fixed() {
    // `u8::from_str_radix` takes a sign, so `%+A` used to decode to a newline.
    assert_eq!(form_decode("%+A"), Err(DecodeError::BadEscape));
    assert_eq!(form_decode("%-0"), Err(DecodeError::BadEscape));
    // `Duration::from_secs_f64` panics on a finite wait longer than `Duration::MAX`.
    assert_eq!(parse_retry_after("1e300"), Some(std::time::Duration::MAX));
    assert_eq!(
        parse_retry_after("2115715389185013700000000000000000000000"),
        Some(std::time::Duration::MAX)
    );
    assert_eq!(
        parse_retry_after("1.5"),
        Some(std::time::Duration::from_millis(1500))
    );
    // quick-xml's deserializer panicked (`unreachable!`) on a DTD between two runs of text.
    let body = "<𑠀''<Error><Code>A<!DOCTYPE Error [<!ENTITY e \"x\">]>A";
    assert_eq!(ApiError::parse("ImportImage", 400, body), None);
    assert_eq!(
        ApiError::parse(
            "ImportImage",
            400,
            "<Error><Code>a<!doctype x>b</Code></Error>"
        ),
        None
    );
    // Line ends in an XML error message used to come back as `\n`.
    for message in ["\u{85}", "a\r\nb", "\u{2028}"] {
        let body = render::render(
            Format::Xml,
            "Error",
            &[("Code", Node::s("C")), ("Message", Node::s(message))],
        );
        let parsed = ApiError::parse("ImportImage", 400, &body).unwrap();
        assert_eq!(parsed.message, message, "{body}");
    }
}
