//! The controller under the user's and the world's control: the pause annotation, a rotated
//! credentials Secret, a throttling storm, and many imports polled in batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::time::{Duration, Instant};

use ecs_image_operator::api::image_import::{PAUSED_ANNOTATION, Phase};
use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
use kube::ResourceExt;
use operator_support::*;
use serde_json::json;

/// ECS calls that change something.
const WRITES: &[&str] = &[
    "ImportImage",
    "CancelTask",
    "DeleteImage",
    "ModifyImageAttribute",
    "TagResources",
    "UntagResources",
];

fn writes(rig: &Rig) -> u64 {
    let stats = rig.emulator.stats();
    WRITES.iter().map(|action| stats.calls(action)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_resource_is_observed_but_never_changed_in_ecs() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    rig.create(&minimal("held").replace(
        "  namespace: default",
        &format!("  namespace: default\n  annotations:\n    {PAUSED_ANNOTATION}: \"true\""),
    ))
    .await;
    let paused = rig
        .wait_for("held", "Pending and paused", |o| {
            phase(o) == Some(Phase::Pending)
                && condition(o, "Reconciling").is_some_and(|c| c.1 == "Paused")
        })
        .await;
    assert!(paused.status.unwrap().message.unwrap().contains("paused"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(writes(&rig), 0, "{:?}", rig.emulator.stats().actions);

    // Unpaused: the import runs.
    rig.patch(
        "held",
        json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null}}}),
    )
    .await;
    let available = rig.wait_available("held").await;
    let image_id = available.status.unwrap().image_id.unwrap();

    // Paused again: a rename waits, and so does a deletion.
    let before = writes(&rig);
    rig.patch(
        "held",
        json!({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}, "spec": {"imageName": "renamed"}}),
    )
    .await;
    rig.wait_for("held", "the paused rename acknowledged", |o| {
        condition(o, "Reconciling").is_some_and(|c| c.1 == "Paused")
            && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
    })
    .await;
    rig.delete("held").await;
    let waiting = rig
        .wait_for("held", "a paused deletion that says so", |o| {
            o.metadata.deletion_timestamp.is_some()
                && o.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .is_some_and(|m| m.contains("paused"))
        })
        .await;
    assert!(!waiting.finalizers().is_empty());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(writes(&rig), before, "{:?}", rig.emulator.stats().actions);
    let images = rig.images_of(&waiting.uid().unwrap()).await;
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].image_id, image_id);
    assert_eq!(images[0].image_name, "held", "not renamed while paused");

    // Unpaused: the deletion completes.
    rig.patch(
        "held",
        json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null}}}),
    )
    .await;
    rig.wait_gone("held").await;
    assert!(rig.images_of(&waiting.uid().unwrap()).await.is_empty());
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_credentials_secret_is_used_without_a_restart() {
    let mut rig = Rig::start(600.0).await;
    let mut settings = rig.settings();
    settings.default_credentials = None;
    rig.start_controller_with(settings).await;
    rig.put_secret("ecs-key", "LTAI5tRevokedKey0000001", "whatever-secret")
        .await;
    rig.create(&minimal("rotated").replace(
        "  regionId:",
        "  credentialsSecretRef:\n    name: ecs-key\n  regionId:",
    ))
    .await;
    let stalled = rig
        .wait_for("rotated", "Stalled on the unknown key", |o| {
            condition(o, "Stalled").is_some_and(|c| c.0 && c.1 == "InvalidAccessKeyIdNotFound")
        })
        .await;
    let (_, _, message) = condition(&stalled, "Stalled").unwrap();
    assert!(!message.contains("whatever-secret"), "{message}");

    // The Secret is rotated to the emulator's key: picked up without touching the resource.
    rig.put_secret(
        "ecs-key",
        emulator_support::AK_ID,
        emulator_support::AK_SECRET,
    )
    .await;
    let available = rig.wait_available("rotated").await;
    assert_eq!(available.metadata.generation, Some(1));
    assert!(
        available
            .status
            .unwrap()
            .observed_credentials_version
            .is_some()
    );
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_and_deletions_finish_through_a_throttling_storm() {
    let mut rig = Rig::start(600.0).await;
    rig.emulator.set_faults(FaultSettings {
        default: FaultSpec {
            throttle_rate: 0.5,
            error_rate: 0.05,
            drop_rate: 0.02,
            ..Default::default()
        },
        seed: Some(7),
        ..Default::default()
    });
    rig.start_controller().await;
    let names: Vec<String> = (0..12).map(|i| format!("storm-{i}")).collect();
    for name in &names {
        rig.create_minimal(name).await;
    }
    for name in &names {
        rig.wait_available(name).await;
    }
    let stats = rig.emulator.stats();
    assert!(stats.faults.throttled > 10, "{:?}", stats.faults);
    let created: Vec<_> = stats
        .import_calls
        .iter()
        .filter(|c| !c.dry_run && c.image_id.is_some())
        .filter_map(|c| c.image_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(created.len(), names.len(), "one image per resource");
    for name in &names {
        rig.delete(name).await;
    }
    for name in &names {
        rig.wait_gone(name).await;
    }
    assert!(rig.emulator.stats().actions["DeleteImage"].ok >= names.len() as u64);
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_imports_are_polled_in_batches() {
    // 2 emulated minutes per import take 4 s at 30×: about 20 poll rounds of 200 ms.
    let mut rig = Rig::start(30.0).await;
    rig.raise_quotas(10_000);
    rig.start_controller().await;
    const N: usize = 120;
    let names: Vec<String> = (0..N).map(|i| format!("batch-{i:03}")).collect();
    let started = Instant::now();
    for name in &names {
        rig.create_minimal(name).await;
    }
    for name in &names {
        rig.wait_available(name).await;
    }
    let elapsed = started.elapsed();
    let stats = rig.emulator.stats();
    let rounds = elapsed.as_millis() / rig.timing.poll_interval.as_millis() + 1;
    let reads = stats.calls("DescribeImages") + stats.calls("DescribeTasks");
    // ceil(120 / 100) = 2 reads per round at most, plus a little for the first round of late
    // arrivals; a poller per resource would need N per round.
    let bound = rounds * 2 + 10;
    assert!(
        u128::from(reads) <= bound,
        "{reads} reads in {rounds} rounds ({elapsed:?}) for {N} imports: not batched"
    );
    let calls_per_import = stats.requests as f64 / N as f64;
    println!(
        "{N} imports in {elapsed:?}: {reads} reads over {rounds} rounds, {calls_per_import:.2} ECS calls per import"
    );
    assert_eq!(stats.import_calls.iter().filter(|c| !c.dry_run).count(), N);
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_watched_namespaces_are_reconciled_and_each_is_woken_by_the_poller() {
    use ecs_image_operator::api::image_import::ImageImport;
    use kube::api::{Api, PostParams};

    let mut rig = Rig::start(600.0).await;
    // team-a and team-b (prefixed with the rig's namespace on the shared real server).
    let team_a = rig.sibling_namespace("team-a").await;
    let team_b = rig.sibling_namespace("team-b").await;
    let mut settings = rig.settings();
    settings.namespaces = vec![team_a.clone(), team_b.clone()];
    // Only the poller's wake-ups, routed to each namespace's controller, can finish the imports.
    settings.timing.watchdog = Duration::from_secs(3600);
    let watching = std::sync::Arc::clone(&settings.watching);
    rig.start_controller_with(settings).await;
    let api =
        |namespace: &str| -> Api<ImageImport> { Api::namespaced(rig.client.clone(), namespace) };
    let ignored_ns = rig.ns.clone();
    for namespace in [team_a.as_str(), team_b.as_str(), &ignored_ns] {
        let object: ImageImport = serde_saphyr::from_str(
            // Image names are unique per region and account, so each resource names its own.
            &minimal(&format!("web-{namespace}"))
                .replace("  namespace: default", &format!("  namespace: {namespace}")),
        )
        .unwrap();
        api(namespace)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for namespace in [&team_a, &team_b] {
        loop {
            let object = api(namespace)
                .get(&format!("web-{namespace}"))
                .await
                .unwrap();
            if phase(&object) == Some(Phase::Available) {
                assert_eq!(rig.images_of(&object.uid().unwrap()).await.len(), 1);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "web-{namespace} never became Available: {:?}",
                object.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(watching.load(std::sync::atomic::Ordering::SeqCst));
    let ignored = api(&ignored_ns)
        .get(&format!("web-{ignored_ns}"))
        .await
        .unwrap();
    assert!(ignored.status.is_none(), "{:?}", ignored.status);
    assert!(ignored.finalizers().is_empty());
    assert!(rig.images_of(&ignored.uid().unwrap()).await.is_empty());
    assert_eq!(
        rig.emulator.stats().calls("ImportImage"),
        2,
        "one ImportImage each, no dry run"
    );
}
