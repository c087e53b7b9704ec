//! What a hostile ECS endpoint costs in memory: peak RSS while 5 concurrent calls of the client
//! get 50 MB answers, against a normal run, in one process.
//!
//! Run with `cargo bench --bench hostile_bodies`. A tiny tokio TCP server on 127.0.0.1 answers
//! every request with a small valid `DescribeRegions` answer (normal), or 50 MB streamed chunked
//! (no `Content-Length`, so only the streaming cap stops the client), or 50 MB announced in
//! `Content-Length` (refused before reading). Peak RSS is `VmHWM` from `/proc/self/status`, read
//! after each phase; it only grows, so the phases run from the cheapest up, and last comes what
//! an unbounded `Response::text()` would have cost (the client before the cap), for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // a benchmark reports loudly

use std::time::{Duration, Instant};

use ecs_image_operator::ecs::api::DescribeRegionsRequest;
use ecs_image_operator::ecs::endpoint::EcsEndpoint;
use ecs_image_operator::ecs::{ClientConfig, CredentialProvider, Credentials, EcsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY_BYTES: usize = 50 * 1000 * 1000;
const CALLS: usize = 5;
const NORMAL: &str = r#"{"RequestId":"R","Regions":{"Region":[{"RegionId":"cn-hangzhou","LocalName":"华东1（杭州）","RegionEndpoint":"ecs.cn-hangzhou.aliyuncs.com","Status":"available"}]}}"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Chunked,
    Announced,
}

async fn serve(mode: Mode) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut request).await;
                let _ = answer(&mut socket, mode).await;
            });
        }
    });
    url
}

async fn answer(socket: &mut tokio::net::TcpStream, mode: Mode) -> std::io::Result<()> {
    match mode {
        Mode::Normal => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                NORMAL.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(NORMAL.as_bytes()).await
        }
        Mode::Announced => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {BODY_BYTES}\r\n\r\n"
            );
            socket.write_all(head.as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < BODY_BYTES {
                let n = chunk.len().min(BODY_BYTES - sent);
                socket.write_all(&chunk[..n]).await?;
                sent += n;
            }
            Ok(())
        }
        Mode::Chunked => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < BODY_BYTES {
                socket
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                socket.write_all(&chunk).await?;
                socket.write_all(b"\r\n").await?;
                sent += chunk.len();
            }
            socket.write_all(b"0\r\n\r\n").await
        }
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn phase(name: &str, mode: Mode) {
    let url = serve(mode).await;
    let client = EcsClient::new(ClientConfig {
        endpoint: EcsEndpoint::override_url(&url).unwrap(),
        max_attempts: 1,
        rate_limit: None,
        request_timeout: Duration::from_secs(60),
        ..ClientConfig::default()
    })
    .unwrap();
    let credentials = std::sync::Arc::new(CredentialProvider::fixed(Credentials::new(
        "LTAI-bench",
        "bench-secret-value",
    )));
    let started = Instant::now();
    let calls = (0..CALLS).map(|_| {
        let client = client.clone();
        let credentials = std::sync::Arc::clone(&credentials);
        tokio::spawn(async move {
            let request = DescribeRegionsRequest {
                region_id: "cn-hangzhou".into(),
                ..Default::default()
            };
            client
                .call(&credentials, &request)
                .await
                .map(|_| "ok".to_string())
                .unwrap_or_else(|error| error.code().to_string())
        })
    });
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    outcomes.dedup();
    eprintln!(
        "{name:<44} outcomes {:<20} {:>6} ms   peak RSS {:>7} KiB",
        outcomes.join(","),
        started.elapsed().as_millis(),
        peak_rss_kib()
    );
}

/// What the client did before the cap: `Response::text()` on the whole answer.
async fn unbounded_phase() {
    let url = serve(Mode::Chunked).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let calls = (0..CALLS).map(|_| {
        let http = http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let body = http.post(&url).send().await.unwrap().text().await.unwrap();
            body.len()
        })
    });
    let mut read = 0;
    for call in calls {
        read += call.await.unwrap();
    }
    eprintln!(
        "{:<44} read {read} bytes      {:>6} ms   peak RSS {:>7} KiB",
        "unbounded text() (the client before the cap)",
        started.elapsed().as_millis(),
        peak_rss_kib()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    ecs_image_operator::ecs::ensure_tls_provider();
    eprintln!(
        "{CALLS} concurrent calls; hostile answers of {BODY_BYTES} bytes; cap {} bytes",
        ecs_image_operator::ecs::client::DEFAULT_MAX_RESPONSE_BYTES
    );
    eprintln!("{:<44} peak RSS {:>7} KiB", "at start", peak_rss_kib());
    phase("normal answers", Mode::Normal).await;
    phase("50 MB announced in Content-Length", Mode::Announced).await;
    phase("50 MB chunked, no Content-Length", Mode::Chunked).await;
    unbounded_phase().await;
}
