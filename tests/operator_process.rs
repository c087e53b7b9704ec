//! The operator as a process: killed with SIGKILL between ECS accepting `ImportImage` (or
//! `CopyImage`) and the status write that records the IDs, then started again (still exactly one
//! image, one copy); killed mid-upload and started again (the upload resumes from what status
//! recorded, with a `Range` read of the source); two replicas
//! with leader election (only the leader calls ECS; the other takes over when it dies); SIGTERM
//! (a clean exit that releases the Lease); `/metrics` and `/readyz`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;
#[allow(unused_imports)]
mod source_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ecs_image_operator::api::ImageImport;
use ecs_image_operator::api::image_import::Phase;
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use kube::ResourceExt;
use kube_double::{FaultAction, FaultRule};
use operator_support::process::OperatorProcess;
use operator_support::*;

/// Starts `ecs-image-operator run` against the double and the emulator.
fn spawn_operator(rig: &Rig, kubeconfig: &Path) -> OperatorProcess {
    spawn_operator_with(rig, kubeconfig, "127.0.0.1:0", &[])
}

/// A free loopback port for a probe address.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Starts `ecs-image-operator run` with a probe address, a 1 s poll and extra flags.
fn spawn_operator_with(
    rig: &Rig,
    kubeconfig: &Path,
    probes: &str,
    extra: &[&str],
) -> OperatorProcess {
    let mut flags = vec!["--probe-address", probes, "--poll-interval-seconds", "1"];
    flags.extend_from_slice(extra);
    OperatorProcess::spawn(kubeconfig, &rig.emulator, &flags)
}

fn real_imports(rig: &Rig) -> usize {
    rig.emulator
        .stats()
        .import_calls
        .iter()
        .filter(|c| !c.dry_run && c.image_id.is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_import_and_status_write_never_makes_a_second_image() {
    let rig = Rig::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let created = rig.create_minimal("crashy").await;
    let uid = created.uid().unwrap();

    // ECS answers ImportImage slowly; once the operator has recorded `Pending` (it always does
    // before importing), status writes of this resource hang: it gets ECS's answer but cannot
    // record the IDs before it is killed.
    rig.slow_imports();
    let mut first = spawn_operator(&rig, &kubeconfig);
    rig.wait_for("crashy", "Pending recorded", |o| {
        phase(o) == Some(Phase::Pending)
    })
    .await;
    let status_path =
        format!("/apis/ecs.image-import.dev/v1alpha1/namespaces/{NS}/imageimports/crashy/status");
    rig.kube
        .faults()
        .add(FaultRule::new(&status_path, FaultAction::Delay { millis: 600_000 }).method("PATCH"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while real_imports(&rig) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ECS never saw the import: {:?}",
            rig.emulator.stats().actions
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let after_kill = rig.imports().get("crashy").await.unwrap();
    assert!(
        after_kill
            .status
            .as_ref()
            .and_then(|s| s.image_id.as_ref())
            .is_none(),
        "the kill came before the IDs were recorded: {:?}",
        after_kill.status
    );
    assert_eq!(rig.images_of(&uid).await.len(), 1);

    // Restarted with a healthy API: it finds the image by its UID tag instead of importing again.
    rig.kube.faults().clear();
    rig.emulator.set_faults(FaultSettings::default());
    let mut second = spawn_operator(&rig, &kubeconfig);
    let available = rig
        .wait_for("crashy", "Available after the restart", |o| {
            phase(o) == Some(Phase::Available)
        })
        .await;
    second.kill();

    let images = rig.images_of(&uid).await;
    assert_eq!(images.len(), 1, "exactly one image: {images:?}");
    assert_eq!(
        available.status.unwrap().image_id.as_deref(),
        Some(images[0].image_id.as_str())
    );
    let stats = rig.emulator.stats();
    let tokens: std::collections::BTreeSet<_> = stats
        .import_calls
        .iter()
        .filter(|c| !c.dry_run)
        .map(|c| c.client_token.clone())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "every attempt carried the same ClientToken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_copy_and_status_write_never_makes_a_second_copy() {
    let rig = Rig::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let yaml = format!(
        "{}  distribution:\n    regions:\n      - regionId: cn-shanghai\n",
        minimal("copied")
    );
    let uid = rig.create(&yaml).await.uid().unwrap();

    // ECS answers CopyImage slowly; once the operator has recorded the copy as Pending (it
    // always does before copying), status writes hang: it gets ECS's answer but cannot record
    // the copy's ID before it is killed.
    rig.emulator.set_faults(FaultSettings {
        actions: [(
            "CopyImage".to_string(),
            FaultSpec {
                latency_ms: 1_500,
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    });
    let mut first = spawn_operator(&rig, &kubeconfig);
    let shanghai = |o: &ImageImport| {
        o.status
            .as_ref()
            .and_then(|s| s.copies.iter().find(|c| c.region_id == "cn-shanghai"))
            .cloned()
    };
    rig.wait_for("copied", "the copy recorded as Pending", |o| {
        shanghai(o).is_some_and(|c| c.phase == Some(Phase::Pending))
    })
    .await;
    let status_path =
        format!("/apis/ecs.image-import.dev/v1alpha1/namespaces/{NS}/imageimports/copied/status");
    rig.kube
        .faults()
        .add(FaultRule::new(&status_path, FaultAction::Delay { millis: 600_000 }).method("PATCH"));
    let copies_made = |rig: &Rig| {
        rig.emulator
            .stats()
            .actions
            .get("CopyImage")
            .map_or(0, |a| a.ok)
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while copies_made(&rig) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ECS never saw the copy: {:?}",
            rig.emulator.stats().actions
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let after_kill = rig.imports().get("copied").await.unwrap();
    assert!(
        shanghai(&after_kill).is_some_and(|c| c.image_id.is_none()),
        "the kill came before the copy's ID was recorded: {:?}",
        after_kill.status
    );
    assert_eq!(rig.images_in("cn-shanghai", &uid).await.len(), 1);

    // Restarted with a healthy API: it finds the copy by its UID tag instead of copying again.
    rig.kube.faults().clear();
    rig.emulator.set_faults(FaultSettings::default());
    let mut second = spawn_operator(&rig, &kubeconfig);
    let ready = rig
        .wait_for("copied", "Ready with its copy after the restart", |o| {
            condition(o, "Ready").is_some_and(|c| c.0)
        })
        .await;
    second.kill();

    let copies = rig.images_in("cn-shanghai", &uid).await;
    assert_eq!(copies.len(), 1, "exactly one copy: {copies:?}");
    assert_eq!(
        shanghai(&ready).and_then(|c| c.image_id).as_deref(),
        Some(copies[0].image_id.as_str())
    );
    assert_eq!(
        copies_made(&rig),
        1,
        "the copy was adopted, not asked for again"
    );
}

/// GET on a probe address: (status, body).
/// Issue 19: SIGKILL in the middle of an upload. The restarted process resumes the multipart
/// upload from the parts status recorded (a `Range` read from that offset), so what is read twice
/// is at most what was in flight or not yet recorded; the digest still matches and one image is
/// made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_upload_resumes_from_the_recorded_parts() {
    const MIB: u64 = 1 << 20;
    let rig = Rig::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let mut header = b"QFI\xfb\0\0\0\x03".to_vec();
    header.resize(24, 0);
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    let body = source_support::SourceBody::new(11, 12 * MIB + 77).with_prefix(&header);
    let source = source_support::SourceServer::new()
        .route(
            "/disk.qcow2",
            source_support::Serve::range(body.clone()).slow(2 * MIB),
        )
        .start()
        .await;
    let yaml = format!(
        "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\nmetadata:\n  name: killed\n\
         spec:\n  regionId: cn-hangzhou\n  diskDeviceMappings:\n    - ossBucket: images-hz\n      \
         ossObject: uploads/killed.qcow2\n      format: QCOW2\n      source:\n        url: {}\n        \
         sha256: \"{}\"\n",
        source.url_of("/disk.qcow2"),
        body.sha256()
    );
    let uid = rig.create(&yaml).await.uid().unwrap();
    let flags = [
        "--probe-address",
        "127.0.0.1:0",
        "--poll-interval-seconds",
        "1",
        "--allow-loopback-sources",
        "--oss-endpoint",
    ];
    let url = rig.emulator.url();
    let args: Vec<&str> = flags
        .iter()
        .copied()
        .chain([
            url.as_str(),
            "--upload-part-size-mib",
            "1",
            "--upload-parts-in-flight",
            "2",
        ])
        .collect();
    let parts_done = |o: &ImageImport| {
        o.status
            .as_ref()
            .and_then(|s| s.upload.as_ref())
            .and_then(|u| u.disks.first())
            .map_or(0, |d| d.parts_done)
    };
    let mut first = OperatorProcess::spawn(&kubeconfig, &rig.emulator, &args);
    rig.wait_for("killed", "four parts recorded", |o| parts_done(o) >= 4)
        .await;
    first.kill();
    let at_kill = rig.imports().get("killed").await.unwrap();
    let recorded = at_kill
        .status
        .as_ref()
        .unwrap()
        .upload
        .as_ref()
        .unwrap()
        .disks[0]
        .bytes_done;
    assert!(recorded < body.size(), "killed before the end: {recorded}");

    let mut second = OperatorProcess::spawn(&kubeconfig, &rig.emulator, &args);
    let done = rig.wait_available("killed").await;
    second.kill();
    let disk = &done.status.as_ref().unwrap().upload.as_ref().unwrap().disks[0];
    assert_eq!(disk.sha256.as_deref(), Some(body.sha256().as_str()));
    let ranges = source.ranges_to("/disk.qcow2");
    assert!(
        ranges.contains(&format!("bytes={recorded}-")),
        "the restarted process read from the recorded offset {recorded}: {ranges:?}"
    );
    let again = source
        .bytes_served_to("/disk.qcow2")
        .saturating_sub(body.size());
    assert!(
        again <= 5 * MIB,
        "read {again} bytes twice (recorded {recorded} at the kill; 2 parts of 1 MiB in flight)"
    );
    assert_eq!(rig.images_of(&uid).await.len(), 1, "one image");
}

async fn get(address: &str, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://{address}{path}")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The sum of a counter family's samples in an OpenMetrics text.
fn total(metrics: &str, family: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(family) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_leader_calls_ecs_and_the_other_takes_over() {
    let rig = Rig::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let election = |identity: &'static str| -> Vec<&'static str> {
        vec![
            "--leader-election",
            "--leader-election-namespace",
            "default",
            "--leader-election-identity",
            identity,
            "--leader-election-lease-seconds",
            "3",
        ]
    };
    let (address_a, address_b) = (free_address(), free_address());
    let mut a = spawn_operator_with(&rig, &kubeconfig, &address_a, &election("replica-a"));
    wait_until("replica a to lead", || async {
        get(&address_a, "/metrics")
            .await
            .is_some_and(|(_, body)| total(&body, "ecs_image_operator_leader") == 1.0)
    })
    .await;
    let mut b = spawn_operator_with(&rig, &kubeconfig, &address_b, &election("replica-b"));
    wait_until("replica b to answer as a ready standby", || async {
        get(&address_b, "/readyz")
            .await
            .is_some_and(|(status, body)| status == 200 && body.contains("standby"))
    })
    .await;

    for i in 0..3 {
        rig.create_minimal(&format!("led-{i}")).await;
    }
    for i in 0..3 {
        rig.wait_available(&format!("led-{i}")).await;
    }
    let (_, metrics_a) = get(&address_a, "/metrics").await.unwrap();
    let (_, metrics_b) = get(&address_b, "/metrics").await.unwrap();
    assert!(
        // An ImportImage each, at least.
        total(&metrics_a, "ecs_image_operator_ecs_calls_total") >= 3.0,
        "{metrics_a}"
    );
    assert_eq!(
        total(&metrics_b, "ecs_image_operator_ecs_calls_total"),
        0.0,
        "{metrics_b}"
    );
    assert_eq!(total(&metrics_b, "ecs_image_operator_leader"), 0.0);
    assert!(total(&metrics_a, "ecs_image_operator_poll_rounds_total") >= 1.0);
    assert_eq!(
        total(&metrics_b, "ecs_image_operator_poll_rounds_total"),
        0.0
    );
    assert!(
        metrics_a.contains("ecs_image_operator_imports{phase=\"Available\"} 3"),
        "{metrics_a}"
    );

    // The leader dies without releasing the Lease: b takes over once it expires.
    a.kill();
    rig.create_minimal("after-failover").await;
    rig.wait_available("after-failover").await;
    let (_, metrics_b) = get(&address_b, "/metrics").await.unwrap();
    assert_eq!(total(&metrics_b, "ecs_image_operator_leader"), 1.0);
    assert!(
        total(&metrics_b, "ecs_image_operator_ecs_calls_total") >= 2.0,
        "{metrics_b}"
    );
    let images = rig
        .images_of(
            &rig.imports()
                .get("after-failover")
                .await
                .unwrap()
                .uid()
                .unwrap(),
        )
        .await;
    assert_eq!(images.len(), 1);
    b.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_operator_cleanly_and_releases_the_lease() {
    let rig = Rig::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let address = free_address();
    let mut operator = spawn_operator_with(
        &rig,
        &kubeconfig,
        &address,
        &["--leader-election", "--leader-election-identity", "only"],
    );
    wait_until("the operator to be ready as leader", || async {
        get(&address, "/readyz")
            .await
            .is_some_and(|(status, body)| status == 200 && body.contains("leader"))
    })
    .await;
    rig.create_minimal("before-term").await;
    rig.wait_available("before-term").await;

    let pid = operator.pid().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = operator.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(rig.client.clone(), "default");
    let lease = leases.get("ecs-image-operator").await.unwrap();
    let holder = lease.spec.and_then(|spec| spec.holder_identity);
    assert!(
        holder.as_deref().is_none_or(str::is_empty),
        "the Lease was released: {holder:?}"
    );
}
