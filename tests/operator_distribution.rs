//! Distribution on the real controller, between the Kubernetes API (the double, or kube-apiserver
//! with `ECS_IMAGE_OPERATOR_TIER=envtest`) and the ECS emulator: copies in other regions and
//! share permissions, declared in `spec.distribution` — the happy path, one region failing on
//! quota while the others finish, a region removed, sharing changed in place, deletion while a
//! copy runs, running copies followed by the batched poller, and drift of copies (deleted or
//! renamed outside the operator).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::api::ImageImport;
use ecs_image_operator::api::image_import::Phase;
use ecs_image_operator::controller::decision::COPY_MISSING;
use ecs_image_operator::ecs::api::{DeleteImageRequest, ModifyImageAttributeRequest};
use ecs_image_operator::emulator::EmulatorConfig;
use ecs_image_operator::emulator::world::{AccountPatch, ImportTiming};
use kube::ResourceExt;
use operator_support::*;
use serde_json::json;

const ALICE: &str = "1234567890123456";
const BOB: &str = "6543210987654321";
const CAROL: &str = "1111222233334444";

/// A rig whose emulator knows the accounts images are shared with.
async fn rig() -> Rig {
    rig_at(600.0).await
}

/// As [`rig`], at another time scale.
async fn rig_at(time_scale: f64) -> Rig {
    let rig = Rig::start(time_scale).await;
    for account in [ALICE, BOB, CAROL] {
        rig.emulator.patch_account(account, AccountPatch::default());
    }
    rig
}

fn distributed(name: &str, regions: &[&str], accounts: &[&str]) -> String {
    let regions: String = regions
        .iter()
        .map(|r| format!("\n      - regionId: {r}"))
        .collect();
    let accounts: String = accounts
        .iter()
        .map(|a| format!("\n      - \"{a}\""))
        .collect();
    format!(
        "{}  distribution:\n    regions:{regions}\n    shareWith:{accounts}\n",
        minimal(name)
    )
}

async fn shared(rig: &Rig, region: &str, image: &str) -> Vec<String> {
    let mut accounts = rig
        .ecs
        .shared_with(&emulator_support::creds(), region, image)
        .await
        .unwrap()
        .unwrap();
    accounts.sort();
    accounts
}

fn copy_of<'a>(
    object: &'a ImageImport,
    region: &str,
) -> Option<&'a ecs_image_operator::api::distribution::CopyStatus> {
    object
        .status
        .as_ref()?
        .copies
        .iter()
        .find(|c| c.region_id == region)
}

fn ready(object: &ImageImport) -> bool {
    condition(object, "Ready").is_some_and(|c| c.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_copied_to_every_region_and_shared_with_every_account() {
    let mut rig = rig().await;
    rig.start_controller().await;
    let yaml = distributed("everywhere", &["cn-shanghai", "cn-beijing"], &[ALICE, BOB]);
    let uid = rig.create(&yaml).await.uid().unwrap();
    let mut copying_seen = false;
    let done = rig
        .wait_for("everywhere", "Ready with both copies", |o| {
            copying_seen |= condition(o, "Reconciling")
                .is_some_and(|c| c.0 && c.1 == "Distributing" && c.2.contains("copying to"));
            ready(o)
        })
        .await;
    assert!(copying_seen, "Reconciling never said that copies run");
    let status = done.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Available));
    assert_eq!(status.copies_ready.as_deref(), Some("2/2"));
    assert_eq!(status.shared_with, [ALICE, BOB]);
    let source = status.image_id.clone().unwrap();
    assert_eq!(shared(&rig, "cn-hangzhou", &source).await, [ALICE, BOB]);
    for region in ["cn-shanghai", "cn-beijing"] {
        let copy = copy_of(&done, region).unwrap();
        assert_eq!(
            (copy.phase, copy.progress),
            (Some(Phase::Available), Some(100))
        );
        let images = rig.images_in(region, &uid).await;
        assert_eq!(images.len(), 1, "one copy in {region}: {images:?}");
        assert_eq!(copy.image_id.as_deref(), Some(images[0].image_id.as_str()));
        assert_eq!(images[0].status, "Available");
        assert_eq!(images[0].image_name, "everywhere");
        assert_eq!(
            shared(&rig, region, &images[0].image_id).await,
            [ALICE, BOB]
        );
    }
    let copies = rig.emulator.stats().actions["CopyImage"].ok;
    assert_eq!(copies, 2, "one CopyImage per region");
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_out_of_quota_fails_alone_while_the_others_finish() {
    let mut rig = rig().await;
    rig.emulator.patch_account(
        "default",
        AccountPatch {
            region_image_quotas: Some([("cn-beijing".to_string(), 0)].into()),
            ..Default::default()
        },
    );
    rig.start_controller().await;
    let yaml = distributed("partly", &["cn-shanghai", "cn-beijing"], &[ALICE]);
    let uid = rig.create(&yaml).await.uid().unwrap();
    let stalled = rig
        .wait_for("partly", "the Beijing copy stalled, Shanghai done", |o| {
            condition(o, "Stalled").is_some_and(|c| c.0)
                && copy_of(o, "cn-shanghai").is_some_and(|c| c.phase == Some(Phase::Available))
        })
        .await;
    let (_, reason, message) = condition(&stalled, "Stalled").unwrap();
    assert_eq!(reason, "CopyFailed");
    assert!(
        message.contains("cn-beijing") && message.contains("QuotaExceed.Image"),
        "the condition names the region and the ECS code: {message}"
    );
    assert!(!ready(&stalled));
    let beijing = copy_of(&stalled, "cn-beijing").unwrap();
    assert_eq!(beijing.phase, Some(Phase::Failed));
    assert_eq!(
        beijing.last_error.as_ref().unwrap().code,
        "QuotaExceed.Image"
    );
    assert_eq!(
        stalled.status.as_ref().unwrap().copies_ready.as_deref(),
        Some("1/2")
    );
    assert_eq!(rig.images_in("cn-shanghai", &uid).await.len(), 1);
    assert!(rig.images_in("cn-beijing", &uid).await.is_empty());
    rig.wait_for_events("a CopyFailed warning", |e| {
        e.reason.as_deref() == Some("CopyFailed")
            && e.type_.as_deref() == Some("Warning")
            && e.note.as_deref().is_some_and(|n| n.contains("cn-beijing"))
    })
    .await;

    // With quota again, the failed region is copied on the slow retry.
    rig.emulator.patch_account(
        "default",
        AccountPatch {
            region_image_quotas: Some([("cn-beijing".to_string(), 100)].into()),
            ..Default::default()
        },
    );
    rig.wait_for("partly", "Ready once the quota is there", ready)
        .await;
    assert_eq!(rig.images_in("cn-beijing", &uid).await.len(), 1);
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_removed_loses_its_copy_and_sharing_changes_in_place() {
    let mut rig = rig().await;
    rig.start_controller().await;
    let yaml = distributed("changing", &["cn-shanghai", "cn-beijing"], &[ALICE, BOB]);
    let uid = rig.create(&yaml).await.uid().unwrap();
    let before = rig.wait_for("changing", "Ready", ready).await;
    let shanghai = copy_of(&before, "cn-shanghai")
        .unwrap()
        .image_id
        .clone()
        .unwrap();

    rig.patch(
        "changing",
        json!({"spec": {"distribution": {
            "regions": [{"regionId": "cn-shanghai"}],
            "shareWith": [BOB, CAROL],
        }}}),
    )
    .await;
    let after = rig
        .wait_for("changing", "the new distribution applied", |o| {
            ready(o)
                && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
        })
        .await;
    let status = after.status.clone().unwrap();
    assert_eq!(status.copies.len(), 1, "{:?}", status.copies);
    assert_eq!(status.copies_ready.as_deref(), Some("1/1"));
    assert!(
        rig.images_in("cn-beijing", &uid).await.is_empty(),
        "the Beijing copy is deleted"
    );
    assert_eq!(
        copy_of(&after, "cn-shanghai").unwrap().image_id.as_deref(),
        Some(shanghai.as_str())
    );
    assert_eq!(status.shared_with, [CAROL, BOB]);
    let source = status.image_id.unwrap();
    let mut wanted = vec![BOB.to_string(), CAROL.to_string()];
    wanted.sort();
    assert_eq!(shared(&rig, "cn-hangzhou", &source).await, wanted);
    assert_eq!(shared(&rig, "cn-shanghai", &shanghai).await, wanted);
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_during_a_copy_cancels_it_unshares_and_deletes_everything() {
    // At 60×, the copy of the 20 GiB source takes (60 + 10 × 20) / 60 ≈ 4 s.
    let mut rig = rig_at(60.0).await;
    rig.start_controller().await;
    let yaml = distributed("short-lived", &["cn-shanghai"], &[ALICE]);
    let uid = rig.create(&yaml).await.uid().unwrap();
    rig.wait_for("short-lived", "copying", |o| {
        copy_of(o, "cn-shanghai")
            .is_some_and(|c| c.image_id.is_some() && c.phase == Some(Phase::Importing))
    })
    .await;
    rig.delete("short-lived").await;
    rig.wait_gone("short-lived").await;
    assert!(
        rig.images_in("cn-shanghai", &uid).await.is_empty(),
        "the copy is gone"
    );
    assert!(rig.images_of(&uid).await.is_empty(), "the source is gone");
    let actions = rig.emulator.stats().actions;
    assert_eq!(actions["CancelCopyImage"].ok, 1, "{actions:?}");
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_copies_are_followed_by_the_poller_in_batches_per_region() {
    // Copies take 10 s at 600×: long enough to count the reads while they all run.
    let mut rig = Rig::start_with(EmulatorConfig {
        time_scale: 600.0,
        copy_timing: ImportTiming {
            base: jiff::SignedDuration::from_secs(6_000),
            per_gib: jiff::SignedDuration::ZERO,
        },
        ..emulator_support::config()
    })
    .await;
    rig.raise_quotas(100);
    for account in [ALICE, BOB] {
        rig.emulator.patch_account(account, AccountPatch::default());
    }
    // Nothing but the poller's wake-ups can move a resource on: no watchdog, no resync.
    rig.timing.watchdog = std::time::Duration::from_secs(3_600);
    rig.timing.resync_interval = std::time::Duration::from_secs(3_600);
    rig.start_controller().await;
    let names: Vec<String> = (0..6).map(|n| format!("batched-{n}")).collect();
    for name in &names {
        rig.create(&distributed(
            name,
            &["cn-shanghai", "cn-beijing"],
            &[ALICE, BOB],
        ))
        .await;
    }
    for name in &names {
        rig.wait_for(name, "both copies running", |o| {
            ["cn-shanghai", "cn-beijing"].iter().all(|region| {
                copy_of(o, region)
                    .is_some_and(|c| c.image_id.is_some() && c.phase == Some(Phase::Importing))
            })
        })
        .await;
    }
    let reads = |rig: &Rig| {
        let actions = rig.emulator.stats().actions;
        let count = |action: &str| actions.get(action).map_or(0, |a| a.calls);
        count("DescribeImages") + count("DescribeImageSharePermission")
    };
    let before = reads(&rig);
    let window = std::time::Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let during = reads(&rig) - before;
    // The poller asks each destination region once a round for all six copies (and the source
    // region on its resync); per resource it would be 6 × 2 copies (+ the sources, + their
    // permissions) a round.
    let rounds = (window.as_millis() / rig.timing.poll_interval.as_millis()) as u64 + 2;
    let bound = 3 * rounds;
    assert!(
        during <= bound,
        "{during} reads in {window:?} while 12 copies ran; at most {bound} \
         (3 regions × {rounds} rounds)"
    );
    for name in &names {
        let done = rig
            .wait_for(name, "Ready, woken by the poller", ready)
            .await;
        assert_eq!(done.status.unwrap().copies_ready.as_deref(), Some("2/2"));
    }
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_deleted_outside_is_made_again_and_a_renamed_one_is_set_back() {
    let mut rig = rig().await;
    rig.start_controller().await;
    let yaml = format!(
        "{}  distribution:\n    regions:\n      - regionId: cn-shanghai\n      - regionId: cn-beijing\n",
        minimal("drifting-copies")
    );
    let uid = rig.create(&yaml).await.uid().unwrap();
    let first = rig.wait_for("drifting-copies", "Ready", ready).await;
    let id_in = |o: &ImageImport, region: &str| copy_of(o, region).unwrap().image_id.clone();
    let shanghai = id_in(&first, "cn-shanghai").unwrap();
    let beijing = id_in(&first, "cn-beijing").unwrap();
    let creds = emulator_support::creds();
    rig.ecs
        .delete_image(
            &creds,
            &DeleteImageRequest {
                region_id: "cn-shanghai".into(),
                image_id: shanghai.clone(),
                force: false,
            },
        )
        .await
        .unwrap();
    rig.ecs
        .call(
            &creds,
            &ModifyImageAttributeRequest {
                region_id: "cn-beijing".into(),
                image_id: beijing.clone(),
                image_name: Some("renamed-by-hand".into()),
                description: None,
            },
        )
        .await
        .unwrap();

    // Within one resync (5 s here): a new Shanghai copy, the Beijing name set back.
    let again = rig
        .wait_for("drifting-copies", "a new Shanghai copy, Ready", |o| {
            ready(o)
                && id_in(o, "cn-shanghai").is_some_and(|id| id != shanghai)
                && copy_of(o, "cn-shanghai").unwrap().phase == Some(Phase::Available)
        })
        .await;
    assert_eq!(
        id_in(&again, "cn-beijing").as_deref(),
        Some(beijing.as_str())
    );
    let copies = rig.images_in("cn-shanghai", &uid).await;
    assert_eq!(copies.len(), 1, "one Shanghai copy again: {copies:?}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let images = rig.images_in("cn-beijing", &uid).await;
        if images.len() == 1 && images[0].image_name == "drifting-copies" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Beijing copy's name was not set back: {images:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    rig.wait_for_events("a CopyMissing warning", |event| {
        event.reason.as_deref() == Some(COPY_MISSING)
            && event.type_.as_deref() == Some("Warning")
            && event.note.as_deref().is_some_and(|n| n.contains(&shanghai))
    })
    .await;
    rig.kill_controller().await;
}
