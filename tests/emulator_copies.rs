//! Distribution through the project's own client against the emulator: copies into other regions
//! (progress, then `Available`, found by tag in their region, exactly once per `ClientToken`,
//! refused per region for quota or an unknown or closed region, cancelled while running), and
//! shares with other accounts (batched, read by page, unknown accounts refused, a shared image kept
//! from deletion until unshared).
//!
//! The emulated clock runs at real speed and is stepped by the tests, so progress is exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::time::Duration;

use ecs_image_operator::ecs::api::{
    CopyImageRequest, DescribeImageSharePermissionRequest, DescribeImagesRequest, Image, Tag,
};
use ecs_image_operator::ecs::{CancelOutcome, DeleteOutcome, EcsClient, EcsError, ErrorClass};
use ecs_image_operator::emulator::world::{AccountPatch, AccountSettings};
use ecs_image_operator::emulator::{EmulatorConfig, EmulatorHandle};
use emulator_support::*;

const UID_TAG: &str = "ecs-image-operator/uid";
const UID: &str = "6c9f0c4e-uid";
/// The account of `creds()`.
const OWNER: &str = "default";

/// Real-speed time: nothing moves unless a test advances the clock.
async fn start_still() -> EmulatorHandle {
    start_with(EmulatorConfig {
        time_scale: 1.0,
        ..config()
    })
    .await
}

/// An `Available` image in [`REGION`]: the 2 GiB file imports in 60 s + 2 × 30 s.
async fn available_image(emulator: &EmulatorHandle, client: &EcsClient, name: &str) -> String {
    let created = client
        .import_image(&creds(), &import(name, "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    emulator.advance(Duration::from_secs(120));
    let image = one_image(client, REGION, &created.image_id).await.unwrap();
    assert_eq!(image.status, "Available");
    created.image_id
}

fn copy_to(source: &str, region: &str) -> CopyImageRequest {
    CopyImageRequest {
        region_id: REGION.into(),
        image_id: source.into(),
        destination_region_id: region.into(),
        destination_image_name: Some(format!("ubuntu-{region}")),
        tags: vec![Tag::new(UID_TAG, UID)],
        client_token: Some(format!("{UID}-{region}")),
        ..Default::default()
    }
}

async fn one_image(client: &EcsClient, region: &str, id: &str) -> Option<Image> {
    let mut images = client
        .images(&creds(), region, &[id.to_string()])
        .await
        .unwrap();
    assert!(images.len() <= 1);
    images.pop()
}

fn api_error(error: EcsError) -> (String, u16, ErrorClass) {
    match error {
        EcsError::Api(error) => {
            let class = error.class();
            (error.code, error.http_status, class)
        }
        other => panic!("not an ECS answer: {other}"),
    }
}

#[tokio::test]
async fn copies_to_two_regions_rise_to_available_and_are_found_by_tag_there() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let source = available_image(&emulator, &client, "ubuntu").await;

    let mut copies = Vec::new();
    for region in ["cn-shanghai", "cn-beijing"] {
        let id = client
            .copy_image(&creds(), &copy_to(&source, region))
            .await
            .unwrap();
        let found = client
            .image_tagged(&creds(), region, UID_TAG, UID)
            .await
            .unwrap()
            .expect("the copy carries the tag in its region");
        assert_eq!(found.image_id, id);
        assert_eq!(found.status, "Creating");
        assert_eq!(found.progress_percent(), Some(0));
        assert_eq!(found.image_name, format!("ubuntu-{region}"));
        copies.push((region, id));
    }
    // The source region holds the source only.
    assert!(one_image(&client, REGION, &copies[0].1).await.is_none());

    // 60 s + 20 GiB × 10 s = 260 s per copy.
    emulator.advance(Duration::from_secs(130));
    for (region, id) in &copies {
        let image = one_image(&client, region, id).await.unwrap();
        assert_eq!(image.status, "Creating", "{region}");
        let progress = image.progress_percent().unwrap();
        assert!((50..100).contains(&progress), "{region}: {progress}%");
        assert_eq!(image.disk_device_mappings.len(), 1);
    }
    emulator.advance(Duration::from_secs(130));
    for (region, id) in &copies {
        let image = one_image(&client, region, id).await.unwrap();
        assert_eq!(image.status, "Available", "{region}");
        assert_eq!(image.progress_percent(), Some(100));
        // Shown by DescribeImages' default Status=Available now.
        let default_view = client
            .call(
                &creds(),
                &DescribeImagesRequest {
                    region_id: (*region).into(),
                    image_ids: vec![id.clone()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(default_view.total_count, 1);
    }
    assert_eq!(emulator.stats().calls("CopyImage"), 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_same_client_token_returns_the_same_copy_and_makes_no_second_image() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let source = available_image(&emulator, &client, "ubuntu").await;
    let request = copy_to(&source, "cn-shanghai");
    let first = client.copy_image(&creds(), &request).await.unwrap();
    let again = client.copy_image(&creds(), &request).await.unwrap();
    assert_eq!(first, again);
    let in_destination = client
        .call(
            &creds(),
            &DescribeImagesRequest {
                region_id: "cn-shanghai".into(),
                statuses: vec!["ALL".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(in_destination.total_count, 1);

    let mut changed = request.clone();
    changed.destination_description = Some("another request".into());
    let (code, status, _) = api_error(client.copy_image(&creds(), &changed).await.unwrap_err());
    assert_eq!(
        (code.as_str(), status),
        ("IdempotentParameterMismatch", 400)
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_full_destination_refuses_the_copy_while_other_regions_take_theirs() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let source = available_image(&emulator, &client, "ubuntu").await;
    emulator
        .patch_account(
            OWNER,
            AccountPatch {
                region_image_quotas: Some([("cn-shanghai".to_string(), 0)].into()),
                ..Default::default()
            },
        )
        .unwrap();
    let refused = client
        .copy_image(&creds(), &copy_to(&source, "cn-shanghai"))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(refused),
        ("QuotaExceed.Image".into(), 403, ErrorClass::External)
    );
    let taken = client
        .copy_image(&creds(), &copy_to(&source, "cn-beijing"))
        .await
        .unwrap();
    assert!(one_image(&client, "cn-beijing", &taken).await.is_some());
    emulator.shutdown().await;
}

#[tokio::test]
async fn unknown_closed_and_own_regions_and_unready_sources_are_refused() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let importing = client
        .import_image(&creds(), &import("busy", "ubuntu-22.04.qcow2"))
        .await
        .unwrap()
        .image_id;
    let refusal = |request: CopyImageRequest| {
        let client = client.clone();
        async move { api_error(client.copy_image(&creds(), &request).await.unwrap_err()) }
    };
    assert_eq!(
        refusal(copy_to(&importing, "cn-shanghai")).await,
        ("IncorrectImageStatus".into(), 400, ErrorClass::External)
    );
    emulator.advance(Duration::from_secs(120));
    assert_eq!(
        refusal(copy_to(&importing, "xx-nowhere-1")).await,
        (
            "DestinationRegion.NotFound".into(),
            400,
            ErrorClass::InvalidRequest
        )
    );
    assert_eq!(
        refusal(copy_to(&importing, "me-east-1")).await.0,
        "RegionNotSupportCopy"
    );
    emulator
        .patch_account(
            OWNER,
            AccountPatch {
                closed_regions: Some(vec!["cn-qingdao".into()]),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        refusal(copy_to(&importing, "cn-qingdao")).await,
        ("RegionNotSupportCopy".into(), 403, ErrorClass::External)
    );
    assert_eq!(
        refusal(copy_to("m-unknown", "cn-shanghai")).await.0,
        "InvalidImageId.NotFound"
    );
    // The client does not send a copy into its own region at all.
    let own = client
        .copy_image(&creds(), &copy_to(&importing, REGION))
        .await
        .unwrap_err();
    assert!(matches!(own, EcsError::InvalidRequest(_)), "{own}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_running_copy_deletes_it_and_a_finished_copy_stays() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let source = available_image(&emulator, &client, "ubuntu").await;
    let running = client
        .copy_image(&creds(), &copy_to(&source, "cn-shanghai"))
        .await
        .unwrap();
    // A copy in progress cannot be deleted, nor its source.
    let (code, status, _) = api_error(
        client
            .delete(&creds(), "cn-shanghai", &running)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code.as_str(), status),
        ("OperationDenied.ImageCopying", 403)
    );
    assert!(client.delete(&creds(), REGION, &source).await.is_err());

    let outcome = client
        .cancel_copy(&creds(), "cn-shanghai", &running)
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::Cancelled);
    assert!(one_image(&client, "cn-shanghai", &running).await.is_none());
    assert_eq!(
        one_image(&client, REGION, &source).await.unwrap().status,
        "Available"
    );

    let finished = client
        .copy_image(&creds(), &copy_to(&source, "cn-beijing"))
        .await
        .unwrap();
    emulator.advance(Duration::from_secs(260));
    let outcome = client
        .cancel_copy(&creds(), "cn-beijing", &finished)
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::AlreadyStopped);
    assert!(one_image(&client, "cn-beijing", &finished).await.is_some());
    let outcome = client
        .cancel_copy(&creds(), "cn-beijing", "m-unknown")
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::NotFound);
    emulator.shutdown().await;
}

/// 120 accounts that exist, and an owner that may share one image with 150.
fn config_with_friends() -> (EmulatorConfig, Vec<String>) {
    let mut config = EmulatorConfig {
        time_scale: 1.0,
        ..config()
    };
    let friends: Vec<String> = (0..120).map(|n| format!("1{n:015}")).collect();
    for friend in &friends {
        config
            .accounts
            .insert(friend.clone(), AccountSettings::default());
    }
    config.accounts.insert(
        OWNER.into(),
        AccountSettings {
            share_quota: 150,
            ..AccountSettings::default()
        },
    );
    (config, friends)
}

#[tokio::test]
async fn shares_go_ten_accounts_a_call_and_are_read_back_page_by_page() {
    let (config, friends) = config_with_friends();
    let emulator = start_with(config).await;
    let client = client(&emulator);
    let image = available_image(&emulator, &client, "ubuntu").await;

    client
        .share(&creds(), REGION, &image, &friends, &[])
        .await
        .unwrap();
    assert_eq!(emulator.stats().calls("ModifyImageSharePermission"), 12);
    let shared = client
        .shared_with(&creds(), REGION, &image)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shared, friends);
    // Two pages of 100.
    assert_eq!(emulator.stats().calls("DescribeImageSharePermission"), 2);

    let third = client
        .call(
            &creds(),
            &DescribeImageSharePermissionRequest {
                region_id: REGION.into(),
                image_id: image.clone(),
                page_number: Some(3),
                page_size: Some(10),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (third.total_count, third.page_number, third.page_size),
        (120, 3, 10)
    );
    let ids: Vec<&str> = third
        .accounts
        .iter()
        .map(|a| a.aliyun_id.as_str())
        .collect();
    assert_eq!(
        ids,
        friends[20..30]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(third.accounts.iter().all(|a| !a.shared_time.is_empty()));

    client
        .share(&creds(), REGION, &image, &[], &friends[5..])
        .await
        .unwrap();
    assert_eq!(emulator.stats().calls("ModifyImageSharePermission"), 24);
    let left = client
        .shared_with(&creds(), REGION, &image)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, friends[..5]);
    // Nothing to change makes no call.
    client
        .share(&creds(), REGION, &image, &[], &[])
        .await
        .unwrap();
    assert_eq!(emulator.stats().calls("ModifyImageSharePermission"), 24);
    emulator.shutdown().await;
}

#[tokio::test]
async fn sharing_with_an_unknown_account_or_the_owner_is_refused() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let image = available_image(&emulator, &client, "ubuntu").await;
    let unknown = client
        .share(&creds(), REGION, &image, &["1999999999999999".into()], &[])
        .await
        .unwrap_err();
    assert_eq!(
        api_error(unknown),
        (
            "InvalidAccount.NotFound".into(),
            404,
            ErrorClass::InvalidRequest
        )
    );
    let own = client
        .share(&creds(), REGION, &image, &[OWNER.into()], &[])
        .await
        .unwrap_err();
    assert_eq!(api_error(own).0, "InvalidAccount.Forbbiden");
    let shared = client.shared_with(&creds(), REGION, &image).await.unwrap();
    assert_eq!(shared, Some(Vec::new()));
    let missing = client
        .shared_with(&creds(), REGION, "m-unknown")
        .await
        .unwrap();
    assert_eq!(missing, None);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_shared_image_is_deleted_only_after_its_accounts_are_removed() {
    let emulator = start_still().await;
    let client = client(&emulator);
    let image = available_image(&emulator, &client, "ubuntu").await;
    // The account of the second test key.
    let other = vec!["other".to_string()];
    client
        .share(&creds(), REGION, &image, &other, &[])
        .await
        .unwrap();
    let refused = client.delete(&creds(), REGION, &image).await.unwrap_err();
    assert_eq!(
        api_error(refused),
        ("ImageUseShared".into(), 403, ErrorClass::External)
    );
    client
        .share(&creds(), REGION, &image, &[], &other)
        .await
        .unwrap();
    let deleted = client.delete(&creds(), REGION, &image).await.unwrap();
    assert_eq!(deleted, DeleteOutcome::Deleted);
    emulator.shutdown().await;
}
