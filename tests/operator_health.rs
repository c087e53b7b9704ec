//! The operator process in trouble: started before its CRD exists (one clear log line, `/readyz`
//! failing, reconciling within seconds of the CRD appearing) and wedged (`/healthz` turns 503 once
//! the ImageImport watch makes no progress for `--liveness-stall-seconds`; a healthy one stays 200).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design
#![allow(clippy::print_stderr)] // the measured delays are printed for the report

mod emulator_support;
mod operator_support;

use std::time::Duration;

use ecs_image_operator::emulator::EmulatorConfig;
use kube_double::{FaultAction, FaultRule, Server, ServerOptions};
use operator_support::process::OperatorProcess;
use operator_support::*;

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Starts the operator (`spawn` with a probe address) on a free address. Between choosing the
/// address and the operator's bind, another test's socket may take it (the operator then exits at
/// once): then it is started again on another address.
async fn spawn_on_free_address(
    spawn: impl Fn(&str) -> OperatorProcess,
) -> (OperatorProcess, String) {
    for _ in 0..5 {
        let address = free_address();
        let mut operator = spawn(&address);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&address).await.is_err()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Someone answers; the operator's bind happens before it serves, so a lost race shows
        // as an exit by now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if operator.try_wait().ok().flatten().is_none() {
            return (operator, address);
        }
    }
    panic!("the operator exited at start five times (probe address taken?)");
}

async fn get(address: &str, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://{address}{path}")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The `ready` gauge in a scrape.
fn ready_gauge(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with("ecs_image_operator_ready "))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const INSTALL: &str = "ecs-image-operator crd | kubectl apply --server-side -f -";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_crd_the_operator_says_so_once_stays_unready_and_starts_when_it_appears() {
    ecs_image_operator::ecs::ensure_tls_provider();
    let kube = Server::start(ServerOptions::default()).await.unwrap();
    let emulator = emulator_support::start_with(EmulatorConfig {
        time_scale: 600.0,
        ..emulator_support::config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let log = dir.path().join("operator.log");
    let (_operator, address) = spawn_on_free_address(|address| {
        OperatorProcess::spawn_logging_to(
            &kubeconfig,
            &emulator,
            &["--probe-address", address, "--poll-interval-seconds", "1"],
            &log,
        )
    })
    .await;
    wait_until("/readyz to answer 503 naming the CRD", PATIENCE, || async {
        get(&address, "/readyz")
            .await
            .is_some_and(|(status, body)| {
                status == 503 && body.contains("imageimports.ecs.image-import.dev")
            })
    })
    .await;
    let (_, metrics) = get(&address, "/metrics").await.unwrap();
    assert_eq!(ready_gauge(&metrics), Some(0.0), "{metrics}");
    // Several retries later (0.5 s, 1 s, 2 s…), the line is still there once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(INSTALL)).collect();
    assert_eq!(
        lines.len(),
        1,
        "one line naming the install command: {text}"
    );
    assert!(
        lines[0].contains("imageimports.ecs.image-import.dev"),
        "{}",
        lines[0]
    );
    assert_eq!(get(&address, "/readyz").await.unwrap().0, 503);
    assert_eq!(
        get(&address, "/healthz").await.unwrap().0,
        200,
        "waiting is live"
    );

    // The CRD appears: an ImageImport is Available soon after (not after a one-minute wait).
    kube.apply_yaml(&ecs_image_operator::api::crd_yaml().unwrap())
        .unwrap();
    let installed = tokio::time::Instant::now();
    let client = kube_client(&kube).await;
    let imports: kube::Api<ecs_image_operator::api::image_import::ImageImport> =
        kube::Api::namespaced(client, NS);
    let object: ecs_image_operator::api::image_import::ImageImport =
        serde_saphyr::from_str(&minimal("after-crd")).unwrap();
    imports
        .create(&kube::api::PostParams::default(), &object)
        .await
        .unwrap();
    wait_until("/readyz to answer 200", Duration::from_secs(15), || async {
        get(&address, "/readyz")
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    wait_until("Available", Duration::from_secs(20), || async {
        imports.get("after-crd").await.ok().is_some_and(|o| {
            phase(&o) == Some(ecs_image_operator::api::image_import::Phase::Available)
        })
    })
    .await;
    let took = installed.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
    let (_, metrics) = get(&address, "/metrics").await.unwrap();
    assert_eq!(ready_gauge(&metrics), Some(1.0), "{metrics}");
    eprintln!("CRD installed → Available in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_stays_ok_while_healthy_and_fails_once_the_watch_hangs() {
    let rig = Rig::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let (_operator, address) = spawn_on_free_address(|address| {
        OperatorProcess::spawn(
            &kubeconfig,
            &rig.emulator,
            &[
                "--probe-address",
                address,
                "--poll-interval-seconds",
                "1",
                "--liveness-stall-seconds",
                "2",
            ],
        )
    })
    .await;
    wait_until("/readyz to answer 200", PATIENCE, || async {
        get(&address, "/readyz")
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    // Idle and healthy for three stall times: live throughout.
    for _ in 0..12 {
        let (status, body) = get(&address, "/healthz").await.unwrap();
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rig.create_minimal("live").await;
    rig.wait_available("live").await;
    assert_eq!(get(&address, "/healthz").await.unwrap().0, 200);

    // Every watch of ImageImports now hangs before answering, and the open ones end.
    rig.kube.faults().add(
        FaultRule::new(
            "/apis/ecs.image-import.dev/",
            FaultAction::Delay { millis: 600_000 },
        )
        .watch(true),
    );
    rig.kube.faults().close_watches();
    let hung = tokio::time::Instant::now();
    wait_until(
        "/healthz to answer 503",
        Duration::from_secs(15),
        || async {
            get(&address, "/healthz")
                .await
                .is_some_and(|(status, body)| status == 503 && body.contains("watch"))
        },
    )
    .await;
    let took = hung.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    eprintln!("watch hung → /healthz 503 after {took:?}");
}
