//! Crash soak: the real operator process is killed with SIGKILL at random moments while imports
//! and deletions run, and restarted each time; some kills land deliberately between ECS accepting
//! `ImportImage` and the status write that records its IDs.
//!
//! Afterwards: exactly one image per resource (by its UID tag) in the emulator, every resource
//! `Available` with that image; after deleting them all, no resource left (every finalizer
//! released) and no image left (deletion policy `Delete`).
//!
//! The CI version: 30 imports, 6 kills (one deliberately between `ImportImage` and the status
//! write). `SOAK_LONG=1` runs the long one: 200 imports, 27 kills (three deliberate). `SOAK_SEED`
//! picks the random moments (printed, so a failure can be replayed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ecs_image_operator::api::image_import::{ImageImport, Phase};
use ecs_image_operator::emulator::faults::FaultSettings;
use kube::ResourceExt;
use kube::api::ListParams;
use kube_double::{FaultAction, FaultRule};
use operator_support::process::{OperatorProcess, admin_images};
use operator_support::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How much of everything a run does.
struct Plan {
    imports: usize,
    /// Kills at random moments while resources are being created and imported.
    random_kills: usize,
    /// Kills between ECS accepting `ImportImage` and the status write.
    between_kills: usize,
    /// Kills at random moments while resources are being deleted.
    deletion_kills: usize,
    /// How long to wait for everything to settle.
    patience: Duration,
}

fn plan() -> Plan {
    if std::env::var("SOAK_LONG").is_ok_and(|v| v == "1") {
        Plan {
            imports: 200,
            random_kills: 20,
            between_kills: 3,
            deletion_kills: 4,
            patience: Duration::from_secs(600),
        }
    } else {
        Plan {
            imports: 30,
            random_kills: 4,
            between_kills: 1,
            deletion_kills: 1,
            patience: Duration::from_secs(120),
        }
    }
}

struct Soak {
    rig: Rig,
    kubeconfig: std::path::PathBuf,
    operator: OperatorProcess,
    kills: usize,
    rng: StdRng,
}

impl Soak {
    fn spawn(rig: &Rig, kubeconfig: &Path) -> OperatorProcess {
        let namespaces = rig.namespace_flags();
        let mut flags = vec!["--poll-interval-seconds", "1", "--rate-limit", "0"];
        flags.extend(namespaces.iter().map(String::as_str));
        OperatorProcess::spawn(kubeconfig, &rig.emulator, &flags)
    }

    /// SIGKILL, then a fresh process.
    fn kill_and_restart(&mut self) {
        self.operator.kill();
        self.kills += 1;
        self.operator = Self::spawn(&self.rig, &self.kubeconfig);
    }

    async fn sleep_random(&mut self, range_ms: std::ops::Range<u64>) {
        let millis = self.rng.random_range(range_ms);
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    async fn list(&self) -> Vec<ImageImport> {
        self.rig
            .imports()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// A resource whose import ECS accepts while its status write hangs; the operator is killed
    /// right then, and restarted with a healthy API.
    async fn kill_between_import_and_status_write(&mut self, name: &str) {
        self.rig.slow_imports();
        let uid = self.rig.create_minimal(name).await.uid().unwrap();
        self.rig
            .wait_for(name, "Pending recorded", |o| {
                phase(o) == Some(Phase::Pending)
            })
            .await;
        let status_path = format!(
            "/apis/ecs.image-import.dev/v1alpha1/namespaces/{}/imageimports/{name}/status",
            self.rig.ns
        );
        self.rig.kube.faults().add(
            FaultRule::new(&status_path, FaultAction::Delay { millis: 600_000 }).method("PATCH"),
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let accepted = self.rig.emulator.stats().import_calls.iter().any(|c| {
                !c.dry_run && c.image_id.is_some() && c.client_token.as_deref() == Some(&uid)
            });
            if accepted {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: ECS never saw its import"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.operator.kill();
        self.kills += 1;
        let after_kill = self.rig.imports().get(name).await.unwrap();
        assert!(
            after_kill
                .status
                .as_ref()
                .and_then(|s| s.image_id.as_ref())
                .is_none(),
            "{name}: the kill came after the IDs were recorded: {:?}",
            after_kill.status
        );
        self.rig.kube.faults().clear();
        self.rig.emulator.set_faults(FaultSettings::default());
        self.operator = Self::spawn(&self.rig, &self.kubeconfig);
    }

    /// Waits until `done` holds for the listed resources, killing nobody.
    async fn wait_until(
        &self,
        patience: Duration,
        what: &str,
        mut done: impl FnMut(&[ImageImport]) -> bool,
    ) -> Vec<ImageImport> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let items = self.list().await;
            if done(&items) {
                return items;
            }
            if tokio::time::Instant::now() >= deadline {
                let phases: BTreeMap<String, Option<Phase>> = items
                    .iter()
                    .map(|o| (o.name_any(), phase(o)))
                    .filter(|(_, p)| *p != Some(Phase::Available))
                    .collect();
                panic!(
                    "waited {patience:?} for {what}; {} resources left, not Available: {phases:?}",
                    items.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_the_operator_makes_one_image_per_resource_and_cleans_up() {
    let mut plan = plan();
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!(
        "crash soak: {} imports, {} kills, seed {seed}",
        plan.imports,
        plan.random_kills + plan.between_kills + plan.deletion_kills
    );
    // 2 emulated minutes per import (a 2 GiB object) take 2 s at 60×: kills land mid-import.
    let rig = Rig::start(60.0).await;
    if !rig.kube.is_double() {
        // A hanging status write needs the double's fault injection: on the real server every
        // kill lands at a random moment.
        plan.random_kills += plan.between_kills;
        plan.between_kills = 0;
    }
    rig.raise_quotas(10_000);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    rig.kube.write_kubeconfig(&kubeconfig).unwrap();
    let operator = Soak::spawn(&rig, &kubeconfig);
    let mut soak = Soak {
        rig,
        kubeconfig,
        operator,
        kills: 0,
        rng: StdRng::seed_from_u64(seed),
    };

    // Creations in batches, a kill at a random moment after each; the deliberate kills are spread
    // among them.
    let random_imports = plan.imports - plan.between_kills;
    let mut created = 0;
    for round in 0..plan.random_kills {
        let until = random_imports * (round + 1) / plan.random_kills;
        while created < until {
            soak.rig.create_minimal(&format!("soak-{created:03}")).await;
            created += 1;
            if soak.rng.random_bool(0.1) {
                soak.sleep_random(0..300).await;
            }
        }
        soak.sleep_random(100..2_000).await;
        soak.kill_and_restart();
        if round * plan.between_kills / plan.random_kills
            != (round + 1) * plan.between_kills / plan.random_kills
        {
            let name = format!("soak-between-{round:02}");
            soak.kill_between_import_and_status_write(&name).await;
        }
    }

    let items = soak
        .wait_until(plan.patience, "every resource Available", |items| {
            items.len() == plan.imports
                && items.iter().all(|o| {
                    phase(o) == Some(Phase::Available)
                        && o.status.as_ref().is_some_and(|s| s.image_id.is_some())
                })
        })
        .await;

    // Exactly one image per resource, the one its status names, and no other image.
    let images = admin_images(&soak.rig.emulator).await;
    for object in &items {
        let uid = object.uid().unwrap();
        let mine: Vec<_> = images
            .iter()
            .filter(|i| i.uid.as_deref() == Some(&uid))
            .collect();
        assert_eq!(mine.len(), 1, "{}: images {mine:?}", object.name_any());
        assert_eq!(mine[0].status, "Available");
        assert_eq!(
            object.status.as_ref().unwrap().image_id.as_deref(),
            Some(mine[0].id.as_str()),
            "{}",
            object.name_any()
        );
    }
    assert_eq!(images.len(), plan.imports, "stray images: {images:?}");

    // Deletion, with kills at random moments.
    let names: Vec<String> = items.iter().map(ResourceExt::name_any).collect();
    let mut deleted = 0;
    for round in 0..plan.deletion_kills {
        let until = names.len() * (round + 1) / plan.deletion_kills;
        for name in &names[deleted..until] {
            soak.rig.delete(name).await;
        }
        deleted = until;
        soak.sleep_random(100..1_500).await;
        soak.kill_and_restart();
    }
    soak.wait_until(plan.patience, "every resource gone", <[_]>::is_empty)
        .await;
    let images = admin_images(&soak.rig.emulator).await;
    assert!(images.is_empty(), "images left after deletion: {images:?}");

    let expected_kills = plan.random_kills + plan.between_kills + plan.deletion_kills;
    assert_eq!(soak.kills, expected_kills);
    let stats = soak.rig.emulator.stats();
    println!(
        "crash soak done: {} kills, {} imports, {} ECS requests, {} ImportImage calls (dry runs included)",
        soak.kills,
        plan.imports,
        stats.requests,
        stats.calls("ImportImage")
    );
    soak.operator.kill();
}
