//! The operator process killed with SIGKILL between ECS accepting `ImportImage` and the status
//! write that records the IDs, then started again: still exactly one image for the resource, and
//! the resource reaches `Available`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ecs_image_operator::api::image_import::Phase;
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use kube::ResourceExt;
use kube_double::{FaultAction, FaultRule};
use operator_support::*;

/// The operator process; killed when dropped, so a failing test leaves no process behind.
struct Operator(Child);

impl Operator {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `ecs-image-operator run` against the double and the emulator.
fn spawn_operator(rig: &Rig, kubeconfig: &Path) -> Operator {
    let child = Command::new(env!("CARGO_BIN_EXE_ecs-image-operator"))
        .args(["run", "--kubeconfig"])
        .arg(kubeconfig)
        .args([
            "--ecs-endpoint",
            &rig.emulator.url(),
            "--probe-address",
            "127.0.0.1:0",
            "--poll-interval-seconds",
            "1",
        ])
        .env_remove("KUBECONFIG")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator_support::AK_ID)
        .env(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            emulator_support::AK_SECRET,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Operator(child)
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
    rig.emulator.set_faults(FaultSettings {
        actions: [(
            "ImportImage".to_string(),
            FaultSpec {
                latency_ms: 1_500,
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    });
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
