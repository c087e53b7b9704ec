//! Fault soak: the controller (in process, with its own ECS client and a rate budget of
//! [`RATE`] requests per second) against an emulator that throttles 30% of requests, answers 5%
//! with 5xx, delays some by 1 s and drops some connections. Every import reaches `Available` and
//! every deletion finishes (no resource, no image left), and the emulator, counting requests by
//! the second they arrive in, never sees more than the budget allows.
//!
//! The budget, exactly: the client's limiter (`src/ecs/ratelimit.rs`) is governor's GCRA with
//! `Quota::per_second(R)`: a burst of R and one more request every 1/R s, every attempt (retries
//! included) taking a token. A full bucket at the start of a window of k whole seconds lets
//! through at most R + (kR − 1) requests: the burst, then one per 1/R s strictly inside the
//! window. Between taking the token and arriving at the emulator a request can be held up (the
//! machine is shared); allowing up to [`HOLD_UP`] of that, a token taken in the
//! HOLD_UP before a window may arrive inside it: R · HOLD_UP more. So the check is, for every
//! run of k consecutive seconds, `count ≤ R(k + 1) − 1 + R · HOLD_UP`. Without the limiter the
//! first second alone would carry every resource's dry run and import (2 × imports ≥ 40).
//!
//! The hostile soak: an ECS that answers HTML 502 pages, invalid JSON, answers missing their
//! fields, truncated and 50 MB bodies, and hangs, at random, for a while, then heals. Every import
//! still finishes with exactly one image, every deletion finishes, and the process's peak RSS is
//! printed beside a run of the same size without hostile answers.
//!
//! The CI versions run 20 imports; `SOAK_LONG=1` runs 100.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ecs_image_operator::api::image_import::{ImageImport, Phase};
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::retry::Backoff;
use ecs_image_operator::ecs::{ClientConfig, EcsClient};
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use kube::ResourceExt;
use kube::api::ListParams;
use operator_support::process::admin_images;
use operator_support::*;

/// The operator's rate budget, requests per second.
const RATE: u32 = 10;
/// The longest a request may take from its token to its arrival, in seconds (see the module doc).
const HOLD_UP: f64 = 0.5;

/// The first window of consecutive seconds whose count breaks the budget, as (first second,
/// seconds, count, allowed).
fn over_budget(per_second: &[u64], rate: u32) -> Option<(usize, usize, u64, u64)> {
    let rate = u64::from(rate);
    // Rounded down: a fraction of a request cannot arrive.
    let hold_up = (rate as f64 * HOLD_UP) as u64;
    for start in 0..per_second.len() {
        let mut count = 0;
        for (k, n) in per_second[start..].iter().enumerate() {
            count += n;
            let seconds = k as u64 + 1;
            let allowed = rate * (seconds + 1) - 1 + hold_up;
            if count > allowed {
                return Some((start, k + 1, count, allowed));
            }
        }
    }
    None
}

#[test]
fn the_budget_check_catches_a_burst_and_passes_a_steady_rate() {
    // A full bucket then the steady rate: 2R − 1 in the first second, R after.
    let steady = [19, 10, 10, 10, 10];
    assert_eq!(over_budget(&steady, 10), None);
    // 2R + hold-up in one second is one too many.
    assert_eq!(over_budget(&[25], 10), Some((0, 1, 25, 24)));
    // A second full burst after only a short pause is caught over the longer window.
    assert_eq!(
        over_budget(&[19, 10, 19], 10),
        Some((0, 3, 48, 44)),
        "over three seconds at most 4R − 1 + hold-up"
    );
}

/// The operator's client in a soak: retries as in production but faster, a rate budget of `rate`
/// per second, and `timeout` per attempt.
fn soak_client(rig: &Rig, rate: u32, timeout: Duration) -> EcsClient {
    EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&rig.emulator.url()).unwrap(),
        backoff: Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(1_000),
        },
        max_attempts: 4,
        rate_limit: NonZeroU32::new(rate),
        request_timeout: timeout,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn settings() -> FaultSettings {
    FaultSettings {
        default: FaultSpec {
            throttle_rate: 0.30,
            // High enough that the short run (about 100 requests) meets every kind.
            error_rate: 0.12,
            drop_rate: 0.06,
            latency_ms: 1_000,
            latency_rate: Some(0.05),
            ..Default::default()
        },
        seed: Some(11),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_throttling_5xx_latency_and_drops_everything_finishes_within_the_rate_budget() {
    let long = std::env::var("SOAK_LONG").is_ok_and(|v| v == "1");
    let imports = if long { 100 } else { 20 };
    let patience = Duration::from_secs(if long { 900 } else { 120 });
    // 2 emulated minutes per import take 1 s at 120×.
    let mut rig = Rig::start(120.0).await;
    rig.raise_quotas(10_000);
    rig.emulator.set_faults(settings());
    // The operator's client: a budget of RATE per second, retries as in production but faster.
    rig.ecs = Arc::new(soak_client(&rig, RATE, Duration::from_secs(5)));
    rig.start_controller().await;

    let names: Vec<String> = (0..imports).map(|i| format!("faulty-{i:03}")).collect();
    import_and_delete(&rig, &names, patience, None).await;
    rig.kill_controller().await;

    let stats = rig.emulator.stats();
    let peak = stats.per_second.iter().max().copied().unwrap_or_default();
    println!(
        "fault soak: {imports} imports, {} ECS requests over {} s (peak {peak}/s, budget {RATE}/s); \
         faults: {:?}",
        stats.requests,
        stats.per_second.len(),
        stats.faults
    );
    // The faults really happened.
    assert!(stats.faults.throttled > 0, "{:?}", stats.faults);
    assert!(stats.faults.server_errors > 0, "{:?}", stats.faults);
    assert!(stats.faults.delayed > 0, "{:?}", stats.faults);
    assert!(stats.faults.dropped > 0, "{:?}", stats.faults);
    assert_eq!(
        over_budget(&stats.per_second, RATE),
        None,
        "per second: {:?}",
        stats.per_second
    );
}

/// The process's peak resident memory so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn hostile_settings() -> FaultSettings {
    let mut settings = hostile_everywhere();
    // For actions whose whole answer is a RequestId (DeleteImage, CancelTask, tagging), "a 200
    // missing its fields" is a valid success that the emulator then does not carry out: a lie no
    // client can tell from the truth. Those actions get every other hostile answer.
    let acknowledged = FaultSpec {
        missing_fields_rate: 0.0,
        ..settings.default.clone()
    };
    for action in [
        "DeleteImage",
        "CancelTask",
        "ModifyImageAttribute",
        "TagResources",
        "UntagResources",
    ] {
        settings
            .actions
            .insert(action.to_string(), acknowledged.clone());
    }
    settings
}

fn hostile_everywhere() -> FaultSettings {
    FaultSettings {
        default: FaultSpec {
            html_502_rate: 0.08,
            invalid_json_rate: 0.08,
            missing_fields_rate: 0.08,
            truncated_rate: 0.06,
            oversized_rate: 0.08,
            hang_rate: 0.03,
            // Held open past the client's 2 s attempt timeout.
            hang_ms: Some(4_000),
            ..Default::default()
        },
        seed: Some(23),
        ..Default::default()
    }
}

/// Polls the ImageImports until `done` holds; with `hostile`, the emulator answers with those
/// faults from the start and heals after the given time. Fails after `patience`, showing what is
/// left.
async fn wait_for_all(
    rig: &Rig,
    wanted: usize,
    patience: Duration,
    hostile: Option<(&FaultSettings, Duration)>,
    done: impl Fn(&[ImageImport]) -> bool,
) {
    if let Some((faults, _)) = hostile {
        rig.emulator.set_faults(faults.clone());
    }
    let started = tokio::time::Instant::now();
    let mut healed = hostile.is_none();
    loop {
        if !healed && hostile.is_some_and(|(_, after)| started.elapsed() >= after) {
            rig.emulator.set_faults(FaultSettings::default());
            healed = true;
        }
        let items = rig
            .imports()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        if done(&items) {
            break;
        }
        assert!(
            started.elapsed() < patience,
            "waited {patience:?} for {wanted} resources to be done: {:?}",
            items
                .iter()
                .map(|o| (
                    o.name_any(),
                    o.status.as_ref().and_then(|s| s.message.clone())
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Healed in any case: what follows runs against a healthy ECS unless it sets faults again.
    rig.emulator.set_faults(FaultSettings::default());
}

/// Imports and deletes `names` through whatever the emulator answers; returns once all are gone,
/// after checking one Available image per resource in between.
async fn import_and_delete(
    rig: &Rig,
    names: &[String],
    patience: Duration,
    hostile: Option<(&FaultSettings, Duration)>,
) {
    for name in names {
        rig.create_minimal(name).await;
    }
    wait_for_all(rig, names.len(), patience, hostile, |items| {
        items
            .iter()
            .filter(|o| phase(o) == Some(Phase::Available))
            .count()
            == names.len()
    })
    .await;
    let images = admin_images(&rig.emulator).await;
    assert_eq!(
        images.len(),
        names.len(),
        "one image per resource: {images:?}"
    );
    assert!(images.iter().all(|i| i.status == "Available"));
    for name in names {
        rig.delete(name).await;
    }
    wait_for_all(rig, 0, patience, hostile, <[ImageImport]>::is_empty).await;
    assert!(admin_images(&rig.emulator).await.is_empty(), "images left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_hostile_ecs_that_heals_every_import_finishes_once_with_one_image() {
    let long = std::env::var("SOAK_LONG").is_ok_and(|v| v == "1");
    let imports = if long { 100 } else { 20 };
    let patience = Duration::from_secs(if long { 900 } else { 180 });
    let mut rig = Rig::start(120.0).await;
    rig.raise_quotas(10_000);
    rig.ecs = Arc::new(soak_client(&rig, 50, Duration::from_secs(2)));
    rig.start_controller().await;

    // The same number of imports against a healthy ECS first: the memory baseline.
    let calm: Vec<String> = (0..imports).map(|i| format!("calm-{i:03}")).collect();
    import_and_delete(&rig, &calm, patience, None).await;
    let baseline = peak_rss_kib();

    let names: Vec<String> = (0..imports).map(|i| format!("hostile-{i:03}")).collect();
    // The imports, then the deletions, each against a hostile ECS that heals after a while.
    let heal_after = Duration::from_secs(if long { 30 } else { 8 });
    let hostile = hostile_settings();
    import_and_delete(&rig, &names, patience, Some((&hostile, heal_after))).await;
    let peak = peak_rss_kib();
    rig.kill_controller().await;

    let stats = rig.emulator.stats();
    println!(
        "hostile soak: {imports} imports, {} ECS requests; hostile answers: html_502 {}, invalid_json {}, \
         missing_fields {}, truncated {}, oversized {}, hung {}; peak RSS {} KiB after the calm run, \
         {} KiB after the hostile one (test process: operator, emulator and API double together)",
        stats.requests,
        stats.faults.html_bad_gateway,
        stats.faults.invalid_json,
        stats.faults.missing_fields,
        stats.faults.truncated,
        stats.faults.oversized,
        stats.faults.hung,
        baseline,
        peak
    );
    let served = [
        stats.faults.html_bad_gateway,
        stats.faults.invalid_json,
        stats.faults.missing_fields,
        stats.faults.truncated,
        stats.faults.oversized,
        stats.faults.hung,
    ];
    // The draws are seeded but the order of requests is not, so a short run may miss a rare kind:
    // it must see most of them; the long run every one.
    let kinds = served.iter().filter(|n| **n > 0).count();
    let wanted = if long { served.len() } else { served.len() - 1 };
    assert!(
        kinds >= wanted && served.iter().sum::<u64>() >= 10,
        "hostile answers served by kind: {:?}",
        stats.faults
    );
}
