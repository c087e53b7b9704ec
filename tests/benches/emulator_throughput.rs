//! How many signed ECS requests per second the emulator serves over loopback.
//!
//! Run with `cargo bench --bench emulator_throughput`. Concurrent clients send V1-signed
//! `DescribeTasks` and `DescribeImages` calls (fresh nonce and timestamp each, so every request
//! goes through signature checking, the nonce cache, the world and rendering) for a few seconds;
//! the figure printed is successful answers per second. Client and server share this machine's
//! cores, so it is a lower bound of what the emulator alone could serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // a benchmark reports loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ecs_image_operator::ecs::params::Params;
use ecs_image_operator::ecs::sign;
use ecs_image_operator::emulator::{AccessKey, Emulator, EmulatorConfig, OssObject};

const KEY_ID: &str = "LTAI5tBenchmarkKey0001";
const KEY_SECRET: &str = "BenchmarkSecret0123456789abcdef";
const CLIENTS: usize = 32;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(4);

fn signed(action: &str, params: &[(&str, &str)], counter: u64) -> String {
    let mut all: Params = params.iter().copied().collect();
    all.set("Action", action);
    all.set("Version", "2014-05-26");
    all.set("Format", "JSON");
    all.set("AccessKeyId", KEY_ID);
    all.set("SignatureMethod", "HMAC-SHA1");
    all.set("SignatureVersion", "1.0");
    all.set(
        "SignatureNonce",
        format!("{counter:016x}{:016x}", rand::random::<u64>()),
    );
    all.set(
        "Timestamp",
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    );
    let string_to_sign = sign::v1_string_to_sign("POST", &all);
    all.set("Signature", sign::v1_signature(KEY_SECRET, &string_to_sign));
    all.to_form()
}

fn main() {
    ecs_image_operator::ecs::ensure_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let emulator = Emulator::start(EmulatorConfig {
        keys: vec![AccessKey::new(KEY_ID, KEY_SECRET)],
        objects: vec![OssObject {
            bucket: "bench".into(),
            key: "disk.raw".into(),
            region: "cn-hangzhou".into(),
            size: 1 << 30,
            virtual_size_gib: 20,
            format: "RAW".into(),
            storage_class: "Standard".into(),
            readable: true,
            encrypted: false,
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/", emulator.url());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    // A few imports in flight, so the reads have something to describe.
    for n in 0..20 {
        let name = format!("bench-{n}");
        let body = signed(
            "ImportImage",
            &[
                ("RegionId", "cn-hangzhou"),
                ("ImageName", &name),
                ("DiskDeviceMapping.1.OSSBucket", "bench"),
                ("DiskDeviceMapping.1.OSSObject", "disk.raw"),
            ],
            n,
        );
        let response = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..CLIENTS {
        let (http, url) = (http.clone(), url.clone());
        let (ok, failed, counting, stop) =
            (ok.clone(), failed.clone(), counting.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut n = (worker as u64) << 40;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = if n.is_multiple_of(2) {
                    signed(
                        "DescribeTasks",
                        &[("RegionId", "cn-hangzhou"), ("PageSize", "10")],
                        n,
                    )
                } else {
                    signed(
                        "DescribeImages",
                        &[
                            ("RegionId", "cn-hangzhou"),
                            ("Status", "Creating,Available"),
                            ("PageSize", "10"),
                        ],
                        n,
                    )
                };
                let result = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await;
                let success = match result {
                    Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if counting.load(Ordering::Relaxed) {
                    if success { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(WARM_UP).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(MEASURE).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let served = ok.load(Ordering::Relaxed);
    let rate = served as f64 / elapsed;
    let stats = emulator.stats();
    emulator.shutdown().await;

    println!("emulator throughput: {rate:.0} signed requests/s served");
    println!(
        "  ({served} successful answers in {elapsed:.2} s, {} failed, {CLIENTS} concurrent clients, \
         {} cores, {} requests counted by the emulator)",
        failed.load(Ordering::Relaxed),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        stats.requests
    );
    println!("  reproduce: cargo bench --bench emulator_throughput");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "some requests failed");
}
