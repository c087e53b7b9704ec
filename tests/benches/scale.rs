//! The operator at scale: the real `ecs-image-operator run` process (built with the bench's
//! profile) against the Kubernetes API double and the time-scaled ECS emulator, for 10, 100, 1,000
//! and 10,000 concurrent imports. Prints figures next to the design's targets (§7); it asserts
//! nothing about time.
//!
//! Run with `cargo bench --bench scale` (10, 100 and 1,000 imports, about 3 minutes on 2 cores);
//! `SCALE_SIZES=10,100,1000,10000 cargo bench --bench scale` adds 10,000 (about 6 more minutes
//! here: the API double, not the operator, sets the pace).
//!
//! On the real kube-apiserver instead of the double: `ECS_IMAGE_OPERATOR_TIER=envtest` with
//! `KUBEBUILDER_ASSETS` (see the README's envtest tier); each size then gets a fresh namespace on
//! the one server, and the operator watches only that namespace.
//!
//! Per size, a fresh double, emulator and operator:
//! - the operator's resident memory once it is ready with no resource (idle), and at the end with
//!   every resource `Available` and cached;
//! - N `ImageImport`s created (8 at a time); the harness records when each create returned, and
//!   watches for `Available` in status;
//! - ECS calls per completed import (every request the emulator counted, dry runs and retries
//!   included, over N);
//! - reads per poll round: every `Describe*` call the emulator counted over the polling rounds the
//!   operator counted (`ecs_image_operator_poll_rounds_total` on its `/metrics`);
//! - resource created → `ImportImage` received by the emulator (matched by `ClientToken`, which
//!   is the resource's UID);
//! - task finished → `Available` seen in status: the task's end in emulated time, converted to
//!   the wall clock through its `ImportImage` call, against the watch event;
//! - the per-resource polling baseline (Terraform's provider: `ImportImage`, a fixed 60 s wait,
//!   then one `DescribeImages` per image every 10 s until `Available`) for the same N and the same
//!   600 s imports, against a fresh emulator whose clock the baseline steps (60 s, then 10 s per
//!   round), so its count does not depend on how fast this machine can send N requests a round.
//!
//! Then the same with copies (`SCALE_COPY_SIZES`, 10 and 100 unless set): each resource imported
//! and copied to two other regions, done when `Ready` with every copy; reads per poll round
//! against Σ over (account, region) of ⌈n/100⌉ (three groups: the source region and the two
//! destinations), and `CopyImage` calls per copy.
//!
//! Last, the emulator's signed requests per second (as `emulator_throughput`, shorter).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    missing_docs
)] // a benchmark reports loudly

#[path = "../emulator_support/mod.rs"]
mod emulator_support;
#[path = "../operator_support/mod.rs"]
mod operator_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecs_image_operator::api::image_import::{ImageImport, Phase};
use ecs_image_operator::ecs::api::{ALL_IMAGE_STATUSES, DescribeImagesRequest};
use ecs_image_operator::emulator::world::ImportTiming;
use ecs_image_operator::emulator::{Emulator, EmulatorConfig};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use operator_support::process::OperatorProcess;
use operator_support::{Rig, minimal, phase};

/// Emulated seconds per real second: the operator polls every real second, which is 15 emulated
/// seconds, its production default.
const TIME_SCALE: f64 = 15.0;
/// Every import takes 10 emulated minutes (40 s of real time at 15×).
const IMPORT_SECONDS: i64 = 600;
/// `--poll-interval-seconds` of the operator.
const POLL_SECONDS: u64 = 1;
/// Creations in flight at once.
const CREATE_PARALLELISM: usize = 8;
/// Operator flags besides endpoints and credentials.
const OPERATOR_FLAGS: &[&str] = &["--poll-interval-seconds", "1", "--rate-limit", "0"];

const MIB: f64 = 1024.0 * 1024.0;

/// The regions each resource of the distribution run copies its image to.
const COPY_REGIONS: &[&str] = &["cn-shanghai", "cn-beijing"];

fn main() {
    ecs_image_operator::ecs::ensure_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// The sizes to run: the comma-separated list in `var`, else `default`.
fn sizes_from(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var).ok().map_or_else(
        || default.to_vec(),
        |s| {
            s.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.trim().parse().unwrap())
                .collect()
        },
    )
}

fn sizes() -> Vec<usize> {
    sizes_from("SCALE_SIZES", &[10, 100, 1_000])
}

fn copy_sizes() -> Vec<usize> {
    sizes_from("SCALE_COPY_SIZES", &[10, 100])
}

/// A resource of size run `n`: the minimal import, with copies to `regions` when any.
fn manifest(name: &str, regions: &[&str]) -> String {
    if regions.is_empty() {
        return minimal(name);
    }
    let regions: String = regions
        .iter()
        .map(|r| format!("\n      - regionId: {r}"))
        .collect();
    format!("{}  distribution:\n    regions:{regions}\n", minimal(name))
}

/// Done for the benchmark: `Available`, and with copies, `Ready` with every copy made.
fn done(object: &ImageImport, regions: &[&str]) -> bool {
    if regions.is_empty() {
        return phase(object) == Some(Phase::Available);
    }
    let all = format!("{0}/{0}", regions.len());
    let status = object.status.as_ref();
    status.and_then(|s| s.copies_ready.as_deref()) == Some(all.as_str())
        && status
            .is_some_and(|s| ecs_image_operator::api::conditions::is_true(&s.conditions, "Ready"))
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(String::new, |kb| format!(", {:.1} GiB RAM", kb / MIB));
    format!("{cores} cores, {model}{memory}, Linux, loopback only")
}

/// Resident memory of a process in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn seconds_between(later: Timestamp, earlier: Timestamp) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

fn emulator_config(time_scale: f64) -> EmulatorConfig {
    EmulatorConfig {
        time_scale,
        timing: ImportTiming {
            base: SignedDuration::from_secs(IMPORT_SECONDS),
            per_gib: SignedDuration::ZERO,
        },
        ..emulator_support::config()
    }
}

/// What one size measured.
struct Figures {
    n: usize,
    wall: Duration,
    create_seconds: f64,
    calls_per_import: f64,
    reads: u64,
    rounds: f64,
    rss_idle: u64,
    rss_loaded: u64,
    create_to_import: Vec<f64>,
    finish_to_available: Vec<f64>,
    baseline_calls_per_import: f64,
    baseline_reads_per_round: f64,
    actions: String,
    /// Destination regions per resource (0: no distribution).
    regions: usize,
    /// `CopyImage` calls ECS accepted.
    copies_made: u64,
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_ready(port: u16) {
    let http = emulator_support::http();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "the operator never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator's own count of polling rounds that asked ECS anything (`/metrics`).
async fn poll_rounds(port: u16) -> f64 {
    let text = emulator_support::http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("ecs_image_operator_poll_rounds_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no poll_rounds_total in\n{text}"))
        .max(1.0)
}

async fn measure(n: usize, regions: &'static [&'static str]) -> Figures {
    let started = Instant::now();
    let rig = Rig::start_with(emulator_config(TIME_SCALE)).await;
    rig.raise_quotas(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let port = free_port().await;
    let probe = format!("127.0.0.1:{port}");
    let mut flags: Vec<&str> = OPERATOR_FLAGS.to_vec();
    flags.extend(["--probe-address", &probe]);
    let namespaces = rig.namespace_flags();
    flags.extend(namespaces.iter().map(String::as_str));
    let mut operator = OperatorProcess::spawn(&kubeconfig, &rig.emulator, &flags);
    wait_ready(port).await;
    // Ready means the controller was started; give it a moment to list and settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss(operator.pid());

    // The harness's own watch: when each resource is first seen Available.
    let available: Arc<Mutex<HashMap<String, Timestamp>>> = Arc::default();
    let watch = {
        let available = Arc::clone(&available);
        let api: Api<ImageImport> = Api::namespaced(rig.client.clone(), &rig.ns);
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(event) = events.try_next().await.unwrap_or(None) {
                let (watcher::Event::Apply(object) | watcher::Event::InitApply(object)) = event
                else {
                    continue;
                };
                if done(&object, regions) {
                    let now = Timestamp::now();
                    available
                        .lock()
                        .unwrap()
                        .entry(object.uid().unwrap())
                        .or_insert(now);
                }
            }
        })
    };

    // N creations, 8 in flight; each records when its create returned.
    let api: Api<ImageImport> = Api::namespaced(rig.client.clone(), &rig.ns);
    let create_started = Instant::now();
    let created: HashMap<String, Timestamp> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let namespace = rig.ns.clone();
            async move {
                let mut object: ImageImport =
                    serde_saphyr::from_str(&manifest(&format!("scale-{i:05}"), regions)).unwrap();
                object.metadata.namespace = Some(namespace);
                let object = api.create(&PostParams::default(), &object).await.unwrap();
                (object.uid().unwrap(), Timestamp::now())
            }
        })
        .buffer_unordered(CREATE_PARALLELISM)
        .collect()
        .await;
    let create_seconds = create_started.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(600 + n as u64 / 5);
    loop {
        let done = available.lock().unwrap().len();
        if done >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {n} Available; ECS: {:?}",
            rig.emulator.stats().actions
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_loaded = rss(operator.pid());
    let stats = rig.emulator.stats();
    let rounds = poll_rounds(port).await;
    let wall = started.elapsed();
    operator.kill();
    watch.abort();
    let available = available.lock().unwrap().clone();

    // The first accepted ImportImage per resource.
    let mut first_import: HashMap<String, (Timestamp, Timestamp, String)> = HashMap::new();
    for call in stats
        .import_calls
        .iter()
        .filter(|c| !c.dry_run && c.task_id.is_some())
    {
        let Some(token) = &call.client_token else {
            continue;
        };
        first_import.entry(token.clone()).or_insert((
            call.received_at,
            call.at,
            call.task_id.clone().unwrap(),
        ));
    }
    let mut create_to_import: Vec<f64> = created
        .iter()
        .filter_map(|(uid, at)| {
            first_import
                .get(uid)
                .map(|(received, _, _)| seconds_between(*received, *at))
        })
        .collect();
    create_to_import.sort_by(f64::total_cmp);

    // Task ends in emulated time, from the admin API.
    let tasks: serde_json::Value = serde_json::from_str(
        &emulator_support::http()
            .get(format!("{}/tasks", rig.emulator.admin_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let finished: HashMap<String, Timestamp> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            let at = t["state"]["at"].as_str()?.parse().ok()?;
            Some((t["task"]["id"].as_str()?.to_string(), at))
        })
        .collect();
    let mut finish_to_available: Vec<f64> = first_import
        .iter()
        .filter_map(|(uid, (received, at, task))| {
            let end = finished.get(task)?;
            // The task started at `at` (emulated), when the call was received (wall clock).
            let real_end = received
                .checked_add(SignedDuration::from_secs_f64(
                    seconds_between(*end, *at) / TIME_SCALE,
                ))
                .ok()?;
            Some(seconds_between(*available.get(uid)?, real_end))
        })
        .collect();
    finish_to_available.sort_by(f64::total_cmp);

    let reads = stats
        .actions
        .iter()
        .filter(|(action, _)| action.starts_with("Describe"))
        .map(|(_, a)| a.calls)
        .sum();
    let calls_per_import = stats.requests as f64 / n as f64;
    let actions = stats
        .actions
        .iter()
        .map(|(action, a)| format!("{action} {}", a.calls))
        .collect::<Vec<_>>()
        .join(", ");
    let copies_made = stats.actions.get("CopyImage").map_or(0, |a| a.ok);
    drop(rig);

    let (baseline_calls, baseline_rounds) = match regions.is_empty() {
        true => baseline(n).await,
        false => (0, 1),
    };
    Figures {
        n,
        wall,
        create_seconds,
        calls_per_import,
        reads,
        rounds,
        rss_idle,
        rss_loaded,
        create_to_import,
        finish_to_available,
        baseline_calls_per_import: baseline_calls as f64 / n as f64,
        baseline_reads_per_round: baseline_calls.saturating_sub(n as u64) as f64
            / baseline_rounds as f64,
        actions,
        regions: regions.len(),
        copies_made,
    }
}

/// Terraform's per-resource poller for N imports against a fresh emulator: `ImportImage` each,
/// 60 s, then `DescribeImages` per image every 10 s until `Available`. Returns (ECS calls, rounds).
async fn baseline(n: usize) -> (u64, u64) {
    // The clock only moves when the baseline steps it.
    let emulator = Emulator::start(emulator_config(1e-9)).await.unwrap();
    operator_support::raise_quotas(&emulator, 1_000_000);
    let client = Arc::new(emulator_support::client_with(&emulator, 4));
    let creds = Arc::new(emulator_support::creds());
    let mut pending: Vec<String> = futures::stream::iter(0..n)
        .map(|i| {
            let (client, creds) = (Arc::clone(&client), Arc::clone(&creds));
            async move {
                let mut request =
                    emulator_support::import(&format!("tf-{i:05}"), "ubuntu-22.04.qcow2");
                request.client_token = Some(format!("tf-{i:05}"));
                client
                    .import_image(&creds, &request)
                    .await
                    .unwrap()
                    .image_id
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    emulator.advance(Duration::from_secs(60));
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        let results: Vec<(String, bool)> = futures::stream::iter(pending)
            .map(|id| {
                let (client, creds) = (Arc::clone(&client), Arc::clone(&creds));
                async move {
                    let request = DescribeImagesRequest {
                        region_id: emulator_support::REGION.into(),
                        image_ids: vec![id.clone()],
                        statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
                        ..Default::default()
                    };
                    let images = client.call(&creds, &request).await.unwrap();
                    let done = images.images.iter().any(|i| i.status == "Available");
                    (id, done)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        pending = results
            .into_iter()
            .filter(|(_, done)| !done)
            .map(|(id, _)| id)
            .collect();
        emulator.advance(Duration::from_secs(10));
    }
    let calls = emulator.stats().requests;
    emulator.shutdown().await;
    (calls, rounds)
}

/// Signed requests per second the emulator serves (32 clients, 3 s), as `emulator_throughput`.
async fn emulator_rate() -> f64 {
    let emulator = Emulator::start(emulator_config(600.0)).await.unwrap();
    let client = Arc::new(emulator_support::client_with(&emulator, 1));
    let creds = Arc::new(emulator_support::creds());
    for i in 0..20 {
        client
            .import_image(
                &creds,
                &emulator_support::import(&format!("rate-{i}"), "ubuntu-22.04.qcow2"),
            )
            .await
            .unwrap();
    }
    let stop = Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (client, creds) = (Arc::clone(&client), Arc::clone(&creds));
            tokio::spawn(async move {
                let mut ok = 0u64;
                let request = DescribeImagesRequest {
                    region_id: emulator_support::REGION.into(),
                    statuses: vec!["Creating".into(), "Available".into()],
                    page_size: Some(10),
                    ..Default::default()
                };
                while Instant::now() < stop {
                    if client.call(&creds, &request).await.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let started = Instant::now();
    let mut served = 0;
    for worker in workers {
        served += worker.await.unwrap();
    }
    let rate = served as f64 / started.elapsed().as_secs_f64();
    emulator.shutdown().await;
    rate
}

fn mark(met: bool) -> &'static str {
    if met { "" } else { " MISS" }
}

async fn run() {
    let sizes = sizes();
    let back_end = match operator_support::Tier::selected() {
        operator_support::Tier::Double => "the Kubernetes API double".to_string(),
        operator_support::Tier::Envtest => format!(
            "kube-apiserver v1.28 (envtest, {})",
            std::env::var("KUBEBUILDER_ASSETS").unwrap_or_default()
        ),
    };
    println!("scale benchmark: the real operator process against {back_end} and the ECS emulator");
    println!("machine: {}", machine());
    println!(
        "emulator: time scale {TIME_SCALE}× (1 real s = {TIME_SCALE} emulated s); every import takes {IMPORT_SECONDS} emulated s ({:.0} real s)",
        IMPORT_SECONDS as f64 / TIME_SCALE
    );
    println!(
        "operator: {} ({} build), flags {} (1 real s = {} emulated s: the default 15 s poll interval); creations {CREATE_PARALLELISM} at a time",
        env!("CARGO_BIN_EXE_ecs-image-operator"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        OPERATOR_FLAGS.join(" "),
        TIME_SCALE * POLL_SECONDS as f64,
    );
    println!("sizes: {sizes:?} (SCALE_SIZES=10,100,1000,10000 chooses)");
    println!();
    let mut all = Vec::new();
    for n in sizes {
        eprintln!("… {n} imports");
        let figures = measure(n, &[]).await;
        eprintln!(
            "  done in {:.0} s (creations took {:.1} s)",
            figures.wall.as_secs_f64(),
            figures.create_seconds
        );
        all.push(figures);
    }

    let mut distributed = Vec::new();
    for n in copy_sizes() {
        eprintln!("… {n} imports, each copied to {COPY_REGIONS:?}");
        let figures = measure(n, COPY_REGIONS).await;
        eprintln!("  done in {:.0} s", figures.wall.as_secs_f64());
        distributed.push(figures);
    }

    println!(
        "| imports | ECS calls per import (≤ 3) | reads per poll round (≤ ⌈N/100⌉) | baseline calls per import | baseline ÷ operator | baseline reads per round | RSS idle (≤ 20 MiB) | RSS with N (≤ 48 MiB) | created → ImportImage p50 / p99 (p99 ≤ 200 ms) | task finished → Available p50 / p99 (≤ 1 poll = 1 s) | creations took |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &all {
        let reads_per_round = f.reads as f64 / f.rounds;
        let bound = f.n.div_ceil(100) as f64;
        let p50 = percentile(&f.create_to_import, 50.0) * 1000.0;
        let p99 = percentile(&f.create_to_import, 99.0) * 1000.0;
        let a50 = percentile(&f.finish_to_available, 50.0);
        let a99 = percentile(&f.finish_to_available, 99.0);
        println!(
            "| {} | {:.2}{} | {:.2}{} | {:.1} | {:.1}× | {:.0} | {:.1} MiB{} | {:.1} MiB{} | {:.0} / {:.0} ms{} | {:.2} / {:.2} s{} | {:.1} s |",
            f.n,
            f.calls_per_import,
            mark(f.calls_per_import <= 3.0),
            reads_per_round,
            mark(reads_per_round <= bound),
            f.baseline_calls_per_import,
            f.baseline_calls_per_import / f.calls_per_import,
            f.baseline_reads_per_round,
            f.rss_idle as f64 / MIB,
            mark(f.rss_idle as f64 <= 20.0 * MIB),
            f.rss_loaded as f64 / MIB,
            mark(f.rss_loaded as f64 <= 48.0 * MIB),
            p50,
            p99,
            mark(p99 <= 200.0),
            a50,
            a99,
            mark(a99 <= POLL_SECONDS as f64),
            f.create_seconds,
        );
    }
    println!();
    for f in &all {
        println!(
            "{} imports: ECS calls {}; {:.0} poll rounds; {:.0} s in all",
            f.n,
            f.actions,
            f.rounds,
            f.wall.as_secs_f64()
        );
    }
    if !distributed.is_empty() {
        println!();
        println!(
            "with copies: each resource imported, then copied to {} ({} regions: one poll group per (account, region) = {} groups)",
            COPY_REGIONS.join(", "),
            COPY_REGIONS.len(),
            COPY_REGIONS.len() + 1
        );
        println!(
            "| imports | copies | reads per poll round (≤ Σ over (account, region) ⌈n/100⌉) | CopyImage per copy (= 1) | ECS calls per resource | RSS with N | poll rounds | in all |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for f in &distributed {
            let reads_per_round = f.reads as f64 / f.rounds;
            let bound = ((f.regions + 1) * f.n.div_ceil(100)) as f64;
            let copies = f.n * f.regions;
            let per_copy = f.copies_made as f64 / copies as f64;
            println!(
                "| {} | {copies} | {reads_per_round:.2} (≤ {bound:.0}){} | {per_copy:.2}{} | {:.2} | {:.1} MiB | {:.0} | {:.0} s |",
                f.n,
                mark(reads_per_round <= bound),
                mark(f.copies_made as usize == copies),
                f.calls_per_import,
                f.rss_loaded as f64 / MIB,
                f.rounds,
                f.wall.as_secs_f64()
            );
        }
        for f in &distributed {
            println!("{} imports with copies: ECS calls {}", f.n, f.actions);
        }
    }
    println!(
        "reads per poll round: every Describe* call the emulator counted (polls, adoption look-ups, reconciles) over the polling rounds the operator counted (ecs_image_operator_poll_rounds_total)"
    );
    println!(
        "baseline (Terraform's provider): ImportImage, 60 s, then DescribeImages per image every 10 s; the same {IMPORT_SECONDS} s imports on a stepped emulator clock; it cannot see Available before 60 s even when ECS is instant"
    );
    let rate = emulator_rate().await;
    println!(
        "emulator: {rate:.0} signed requests/s (32 clients through the project's client, DescribeImages; target ≥ 5,000){}",
        mark(rate >= 5_000.0)
    );
    let sizes: Vec<String> = all.iter().map(|f| f.n.to_string()).collect();
    let copy_sizes: Vec<String> = distributed.iter().map(|f| f.n.to_string()).collect();
    println!(
        "reproduce: SCALE_SIZES={} SCALE_COPY_SIZES={} cargo bench --bench scale",
        sizes.join(","),
        copy_sizes.join(",")
    );
}
