//! Drift is noticed and repaired within one resync (`--resync-seconds`; 5 s in these tests): an
//! image deleted outside the operator is imported again under a new ClientToken, with a Warning
//! Event; a name changed outside is set back. (Also on the real API server:
//! `ECS_IMAGE_OPERATOR_TIER=envtest`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;
mod operator_support;

use ecs_image_operator::controller::decision::IMAGE_MISSING;
use ecs_image_operator::ecs::api::{DeleteImageRequest, ModifyImageAttributeRequest};
use kube::ResourceExt;
use operator_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_deleted_outside_is_imported_again_and_a_renamed_one_is_set_back() {
    let mut rig = Rig::start(600.0).await;
    rig.start_controller().await;
    let created = rig.create_minimal("drifting").await;
    let uid = created.uid().unwrap();
    let first = rig.wait_available("drifting").await;
    let first_image = first.status.unwrap().image_id.unwrap();

    // Renamed by hand: set back at the next resync.
    rig.ecs
        .call(
            &emulator_support::creds(),
            &ModifyImageAttributeRequest {
                region_id: emulator_support::REGION.into(),
                image_id: first_image.clone(),
                image_name: Some("renamed-by-hand".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let images = rig.images_of(&uid).await;
        if images.iter().all(|i| i.image_name == "drifting") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the name was not set back: {images:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Settled again, with nothing left to do but the resync (5 s here).
    rig.wait_available("drifting").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    // Deleted by hand: imported again, as a new import.
    rig.ecs
        .delete_image(
            &emulator_support::creds(),
            &DeleteImageRequest {
                region_id: emulator_support::REGION.into(),
                image_id: first_image.clone(),
                force: false,
            },
        )
        .await
        .unwrap();
    let again = rig
        .wait_for("drifting", "a new image, Available", |o| {
            let status = o.status.as_ref();
            status
                .and_then(|s| s.image_id.as_deref())
                .is_some_and(|id| id != first_image)
                && phase(o) == Some(ecs_image_operator::api::image_import::Phase::Available)
        })
        .await;
    assert_eq!(again.status.as_ref().unwrap().reimports, Some(1));
    let images = rig.images_of(&uid).await;
    assert_eq!(images.len(), 1, "one image again: {images:?}");
    let tokens: Vec<Option<String>> = rig
        .emulator
        .stats()
        .import_calls
        .iter()
        .map(|c| c.client_token.clone())
        .collect();
    assert_eq!(
        tokens,
        vec![Some(uid.clone()), Some(format!("{uid}-r1"))],
        "the second import has a token of its own"
    );
    rig.wait_for_events("an ImageMissing warning", |event| {
        event.reason.as_deref() == Some(IMAGE_MISSING)
            && event.type_.as_deref() == Some("Warning")
            && event
                .note
                .as_deref()
                .is_some_and(|n| n.contains(&first_image))
    })
    .await;
    rig.kill_controller().await;
}
