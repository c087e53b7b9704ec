//! The transfer's cost, against the emulator's OSS endpoint and the local HTTP source server, all
//! in this process over loopback.
//!
//! Run with `cargo bench --bench upload`. Prints, one run each:
//! (a) upload throughput against reading the same source with no upload, as a ratio;
//! (b) peak RSS added by a transfer for a few part size × parts in flight settings, against their
//!     product: each setting runs in a child process of this benchmark (so memory an earlier run
//!     left with the allocator does not hide it), which reports `VmHWM` from `/proc/self/status`
//!     before and after its transfer; a first child reads the source with no upload, for the
//!     constant the servers and clients add;
//! (c) bytes re-sent after a stop mid-way and a resume, against parts in flight × part size.
//! Sizes: `UPLOAD_BENCH_MIB` (source size, default 64) and `UPLOAD_BENCH_SETTINGS` (default
//! `1x2,4x4,8x8`: part MiB × parts in flight). Client, emulator and source share the machine's
//! cores, so the figures are lower bounds; no figure is asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // a benchmark reports loudly

#[allow(unused_imports)]
#[path = "../source_support/mod.rs"]
mod source_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecs_image_operator::ecs::{CredentialProvider, Credentials};
use ecs_image_operator::emulator::{
    AccessKey, BucketDef, Emulator, EmulatorConfig, EmulatorHandle,
};
use ecs_image_operator::upload::{Job, Settings, Source, Transfers, View};
use source_support::{Serve, SourceBody, SourceServer};

const KEY_ID: &str = "LTAI5tBenchmarkKey0001";
const KEY_SECRET: &str = "BenchmarkSecret0123456789abcdef";
const REGION: &str = "cn-hangzhou";
const BUCKET: &str = "bench";
const MIB: u64 = 1 << 20;

fn main() {
    ecs_image_operator::ecs::ensure_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var("UPLOAD_BENCH_CHILD") {
        Ok(setting) => runtime.block_on(child(&setting)),
        Err(_) => runtime.block_on(run()),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings_list() -> Vec<(u64, usize)> {
    let raw = std::env::var("UPLOAD_BENCH_SETTINGS").unwrap_or_else(|_| "1x2,4x4,8x8".into());
    raw.split(',')
        .filter_map(|pair| {
            let (part, flight) = pair.trim().split_once('x')?;
            Some((part.parse().ok()?, flight.parse().ok()?))
        })
        .collect()
}

fn settings(emulator: &EmulatorHandle, part_mib: u64, in_flight: usize) -> Settings {
    Settings {
        part_size: part_mib * MIB,
        parts_in_flight: in_flight,
        max_uploads: 4,
        bytes_per_second: None,
        max_size: 1 << 40,
        allow_private_sources: false,
        allow_loopback_sources: true,
        max_redirects: 3,
        oss_endpoint: Some(emulator.url()),
    }
}

fn job(key: &str, url: &str) -> Job {
    Job {
        key: key.into(),
        source: Source::Url(url.into()),
        headers: Vec::new(),
        expected_sha256: None,
        expected_size: None,
        declared_format: None,
        region: REGION.into(),
        bucket: BUCKET.into(),
        object: format!("{key}.raw"),
        credentials: Arc::new(CredentialProvider::fixed(Credentials::new(
            KEY_ID, KEY_SECRET,
        ))),
        resume: None,
    }
}

async fn until(transfers: &Transfers, key: &str, done: impl Fn(&View) -> bool) -> View {
    let mut wakes = transfers.wakes();
    loop {
        if let Some(view) = transfers.view(key).filter(|v| done(v)) {
            return view;
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), wakes.recv()).await;
    }
}

fn ended(view: &View) -> bool {
    matches!(view, View::Finished(_) | View::Failed { .. })
}

fn hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The servers, started in this process.
async fn servers(size: u64) -> (EmulatorHandle, source_support::SourceHandle) {
    let emulator = Emulator::start(EmulatorConfig {
        keys: vec![AccessKey::new(KEY_ID, KEY_SECRET)],
        buckets: vec![BucketDef {
            name: BUCKET.into(),
            region: REGION.into(),
            account: None,
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let source = SourceServer::new()
        .route("/disk.raw", Serve::range(SourceBody::new(1, size)))
        .start()
        .await;
    (emulator, source)
}

/// One setting of (b): `PARTxFLIGHT`; prints `peak-before peak-after` in KiB.
async fn child(setting: &str) {
    let size = env_u64("UPLOAD_BENCH_MIB", 64) * MIB;
    let (part_mib, in_flight) = setting
        .split_once('x')
        .map(|(p, f)| (p.parse().unwrap(), f.parse().unwrap()))
        .unwrap();
    let (emulator, source) = servers(size).await;
    let before = hwm_kib();
    if part_mib == 0 {
        // The constant: the same servers, the source read with no upload.
        let url = source.url_of("/disk.raw");
        let mut response = reqwest::Client::new().get(&url).send().await.unwrap();
        while response.chunk().await.unwrap().is_some() {}
        eprintln!("{before} {}", hwm_kib());
        return;
    }
    let transfers = Transfers::new(settings(&emulator, part_mib, in_flight));
    transfers.start(job("b", &source.url_of("/disk.raw")));
    let view = until(&transfers, "b", ended).await;
    assert!(matches!(view, View::Finished(_)), "{view:?}");
    eprintln!("{before} {}", hwm_kib());
}

async fn run() {
    let size = env_u64("UPLOAD_BENCH_MIB", 64) * MIB;
    let (emulator, source) = servers(size).await;
    let url = source.url_of("/disk.raw");
    eprintln!("source: {} MiB over loopback", size / MIB);

    // (a) Reading alone, then uploading.
    let started = Instant::now();
    let mut response = reqwest::Client::new().get(&url).send().await.unwrap();
    let mut read = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        read += chunk.len() as u64;
    }
    let read_seconds = started.elapsed().as_secs_f64();
    assert_eq!(read, size);
    let transfers = Transfers::new(settings(&emulator, 8, 4));
    let started = Instant::now();
    transfers.start(job("a", &url));
    let view = until(&transfers, "a", ended).await;
    let upload_seconds = started.elapsed().as_secs_f64();
    assert!(matches!(view, View::Finished(_)), "{view:?}");
    let mib = size as f64 / MIB as f64;
    eprintln!(
        "(a) read only: {:.0} MiB/s; upload (8 MiB parts × 4): {:.0} MiB/s; ratio {:.2}",
        mib / read_seconds,
        mib / upload_seconds,
        read_seconds / upload_seconds
    );

    // (b) Peak RSS added, per setting, each in a child process.
    let me = std::env::current_exe().unwrap();
    for (part_mib, in_flight) in std::iter::once((0, 0)).chain(settings_list()) {
        let out = std::process::Command::new(&me)
            .env("UPLOAD_BENCH_CHILD", format!("{part_mib}x{in_flight}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let figures: Vec<u64> = text
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [before, after] = figures[..] else {
            panic!("the child for {part_mib}x{in_flight} said: {text}")
        };
        let added = after.saturating_sub(before) as f64 / 1024.0;
        if part_mib == 0 {
            eprintln!("(b) no upload (servers, the source read): peak RSS +{added:.1} MiB");
            continue;
        }
        let product = (part_mib * in_flight as u64) as f64;
        eprintln!(
            "(b) {part_mib} MiB × {in_flight}: peak RSS +{added:.1} MiB over {:.1} MiB, product {product:.0} MiB, ratio {:.2}",
            before as f64 / 1024.0,
            added / product
        );
    }

    // (c) Stop half-way, resume: what was sent twice.
    let (part_mib, in_flight) = (4u64, 4usize);
    let transfers = Transfers::new(settings(&emulator, part_mib, in_flight));
    let parts = size.div_ceil(part_mib * MIB);
    let served_before = source.bytes_served_to("/disk.raw");
    let calls_before = emulator
        .stats()
        .actions
        .get("UploadPart")
        .map_or(0, |a| a.ok);
    transfers.start(job("c", &url));
    let view = until(&transfers, "c", |v| {
        matches!(v, View::Running(p) if u64::from(p.parts_done) * 2 >= parts) || ended(v)
    })
    .await;
    let last = transfers.stop("c").await;
    let Some(View::Running(progress)) = last else {
        panic!("the transfer ended before the stop: {view:?}")
    };
    // The view as of the stop is what status records; the resume starts from its prefix.
    let mut resumed = job("c", &url);
    resumed.resume = Some(progress.resume_point());
    transfers.start(resumed);
    let view = until(&transfers, "c", ended).await;
    assert!(matches!(view, View::Finished(_)), "{view:?}");
    let served = source.bytes_served_to("/disk.raw") - served_before;
    let uploaded = emulator.stats().actions["UploadPart"].ok - calls_before;
    let head = ecs_image_operator::upload::format::HEAD as u64;
    eprintln!(
        "(c) {part_mib} MiB × {in_flight}, stopped at {} of {parts} parts: source bytes re-read {:.1} MiB (plus {head} B for the format check), parts uploaded twice {} ({:.0} MiB); bound: parts in flight × part size = {} MiB",
        progress.parts_done,
        served.saturating_sub(size + head) as f64 / MIB as f64,
        uploaded.saturating_sub(parts),
        (uploaded.saturating_sub(parts) * part_mib) as f64,
        part_mib * in_flight as u64
    );
}
