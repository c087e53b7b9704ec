//! The real controller between the Kubernetes API double and the ECS emulator: an import from
//! creation to `Available`, in-place updates, and deletion with either policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use std::collections::BTreeSet;

use ecs_image_operator::api::image_import::{FINALIZER, Phase};
use ecs_image_operator::ecs::api::{ALL_IMAGE_STATUSES, DescribeImagesRequest};
use kube::ResourceExt;
use operator_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_reaches_available_showing_progress_on_the_way() {
    // 20 GiB virtual, 2 GiB file: 2 emulated minutes = 2 s at 60×; polls every 200 ms.
    let mut rig = Rig::start(60.0).await;
    rig.start_controller().await;
    let created = rig.create_minimal("ubuntu").await;
    let uid = created.uid().unwrap();

    let mut progress_seen = BTreeSet::new();
    let available = rig
        .wait_for("ubuntu", "Available", |o| {
            if phase(o) == Some(Phase::Importing)
                && let Some(p) = o.status.as_ref().and_then(|s| s.progress)
            {
                progress_seen.insert(p);
            }
            phase(o) == Some(Phase::Available)
        })
        .await;
    let in_between: Vec<_> = progress_seen
        .iter()
        .filter(|p| (1..100).contains(*p))
        .collect();
    assert!(
        !in_between.is_empty(),
        "no progress between 0 and 100 was shown: {progress_seen:?}"
    );

    let status = available.status.clone().unwrap();
    let images = rig.images_of(&uid).await;
    assert_eq!(images.len(), 1, "one image for the resource: {images:?}");
    assert_eq!(
        status.image_id.as_deref(),
        Some(images[0].image_id.as_str())
    );
    assert!(
        status
            .import_task_id
            .as_deref()
            .is_some_and(|t| t.starts_with("t-"))
    );
    assert_eq!(status.progress, Some(100));
    assert_eq!(status.observed_generation, available.metadata.generation);
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert_eq!(
        condition(&available, "Ready"),
        Some((
            true,
            "Available".into(),
            format!("image {} is available", images[0].image_id)
        ))
    );
    assert_eq!(
        condition(&available, "Reconciling").map(|c| c.0),
        Some(false)
    );
    assert_eq!(condition(&available, "Stalled").map(|c| c.0), Some(false));
    assert!(available.finalizers().iter().any(|f| f == FINALIZER));
    // The image carries the operator's three tags and the requested name.
    assert_eq!(images[0].image_name, "ubuntu");
    assert_eq!(images[0].tag("ecs-image-operator/name"), Some("ubuntu"));
    assert_eq!(
        images[0].tag("ecs-image-operator/namespace"),
        Some(rig.ns.as_str())
    );

    let stats = rig.emulator.stats();
    let imports = stats.import_calls.iter().filter(|c| !c.dry_run).count();
    assert_eq!(imports, 1, "one real ImportImage: {:?}", stats.import_calls);

    // An Event for each phase change, on the resource.
    for reason in ["Pending", "Importing", "Available"] {
        rig.wait_for_events(&format!("a {reason} event"), |e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("ubuntu")
                && e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Normal")
        })
        .await;
    }
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_description_and_tags_of_an_available_image_change_in_place() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let created = rig.create_minimal("editable").await;
    let uid = created.uid().unwrap();
    let before = rig.wait_available("editable").await;
    let image_id = before.status.unwrap().image_id.unwrap();

    rig.patch(
        "editable",
        json!({"spec": {"imageName": "renamed", "description": "now described", "tags": {"team": "infra"}}}),
    )
    .await;
    rig.wait_for("editable", "the new generation applied", |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
            && condition(o, "Ready").is_some_and(|c| c.0)
    })
    .await;
    let images = rig.images_of(&uid).await;
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].image_id, image_id,
        "the same image, changed in place"
    );
    assert_eq!(images[0].image_name, "renamed");
    assert_eq!(images[0].description, "now described");
    assert_eq!(images[0].tag("team"), Some("infra"));

    rig.patch("editable", json!({"spec": {"tags": null}})).await;
    rig.wait_for("editable", "the tag removal applied", |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
            && condition(o, "Ready").is_some_and(|c| c.0)
    })
    .await;
    let images = rig.images_of(&uid).await;
    assert_eq!(images[0].tag("team"), None, "{:?}", images[0].tags);
    assert_eq!(images[0].tag("ecs-image-operator/uid"), Some(uid.as_str()));
    let stats = rig.emulator.stats();
    assert_eq!(stats.calls("ModifyImageAttribute"), 1);
    assert!(stats.calls("TagResources") >= 1 && stats.calls("UntagResources") >= 1);
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_while_importing_cancels_the_task_and_releases_the_resource() {
    // A slow import: 2 emulated minutes take 20 s.
    let mut rig = Rig::start(6.0).await;
    let settings = rig.settings();
    let metrics = settings.metrics.clone();
    rig.start_controller_with(settings).await;
    let created = rig.create_minimal("doomed").await;
    let uid = created.uid().unwrap();
    let importing = rig
        .wait_for("doomed", "Importing", |o| {
            phase(o) == Some(Phase::Importing)
        })
        .await;
    let task_id = importing.status.unwrap().import_task_id.unwrap();

    rig.delete("doomed").await;
    rig.wait_gone("doomed").await;
    let stats = rig.emulator.stats();
    assert!(stats.calls("CancelTask") >= 1, "{:?}", stats.actions);
    assert!(stats.actions["CancelTask"].ok >= 1, "{:?}", stats.actions);
    let task = rig
        .ecs
        .call(
            &emulator_support::creds(),
            &ecs_image_operator::ecs::api::DescribeTaskAttributeRequest {
                region_id: emulator_support::REGION.into(),
                task_id,
            },
        )
        .await
        .unwrap();
    assert_eq!(task.task_status, "Cancelled");
    // deletionPolicy Delete: the cancelled image went too.
    assert!(rig.images_of(&uid).await.is_empty());
    // A deletion waiting for its cancellation is a requeue, not a failed reconcile.
    let text = metrics.encode().unwrap();
    let failed: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("ecs_image_operator_reconciles_total{result=\"error\""))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        text.contains("ecs_image_operator_reconciles_total{result=\"ok\""),
        "{text}"
    );
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_available_image_follows_the_deletion_policy() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let deleted = rig.create_minimal("deleted").await;
    let retained = rig
        .create(
            &minimal("retained").replace("  regionId:", "  deletionPolicy: Retain\n  regionId:"),
        )
        .await;
    rig.wait_available("deleted").await;
    rig.wait_available("retained").await;

    rig.delete("deleted").await;
    rig.delete("retained").await;
    rig.wait_gone("deleted").await;
    rig.wait_gone("retained").await;

    assert!(rig.images_of(&deleted.uid().unwrap()).await.is_empty());
    let kept = rig.images_of(&retained.uid().unwrap()).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].status, "Available");
    let stats = rig.emulator.stats();
    assert_eq!(stats.actions["DeleteImage"].ok, 1, "{:?}", stats.actions);
    assert_eq!(stats.calls("CancelTask"), 0);
    // Nothing else is left behind in ECS.
    let all = rig
        .ecs
        .call(
            &emulator_support::creds(),
            &DescribeImagesRequest {
                region_id: emulator_support::REGION.into(),
                image_owner_alias: Some("self".into()),
                statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.images.len(), 1, "{:?}", all.images);
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_says_when_its_watch_has_listed_everything() {
    let mut rig = Rig::start(600.0).await;
    let settings = rig.settings();
    let watching = std::sync::Arc::clone(&settings.watching);
    assert!(!watching.load(std::sync::atomic::Ordering::SeqCst));
    rig.start_controller_with(settings).await;
    rig.wait_for_flag(&watching, "the first list").await;
    rig.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_deletion_is_a_condition_and_a_warning_event_then_finishes() {
    use ecs_image_operator::emulator::faults::{FaultSettings, FaultSpec};
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let created = rig.create_minimal("in-use").await;
    rig.wait_available("in-use").await;
    rig.emulator.set_faults(FaultSettings {
        actions: [(
            "DeleteImage".to_string(),
            FaultSpec {
                answer_code: Some("ImageUsingByInstance".into()),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    });
    rig.delete("in-use").await;
    let blocked = rig
        .wait_for("in-use", "a Stalled deletion naming the code", |o| {
            phase(o) == Some(Phase::Deleting)
                && condition(o, "Stalled").is_some_and(|c| c.0 && c.1 == "ImageUsingByInstance")
        })
        .await;
    assert!(blocked.finalizers().iter().any(|f| f == FINALIZER));
    let warnings = rig
        .wait_for_events("a Warning event for the blocked deletion", |e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("ImageUsingByInstance")
        })
        .await;
    assert!(warnings[0].note.as_deref().is_some_and(|n| !n.is_empty()));

    // The instance is released: the slow retry (2 s here) finishes the deletion.
    rig.emulator.set_faults(FaultSettings::default());
    rig.wait_gone("in-use").await;
    assert!(rig.images_of(&created.uid().unwrap()).await.is_empty());
    rig.kill_controller().await;
}
