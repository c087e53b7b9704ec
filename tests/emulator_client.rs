//! The project's own client completes every action against the emulator, and an import runs its
//! whole life cycle under a sped-up clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod emulator_support;

use std::time::Duration;

use ecs_image_operator::ecs::api::{
    ALL_IMAGE_STATUSES, Action, CancelTaskRequest, DeleteImageRequest, DescribeImagesRequest,
    DescribeRegionsRequest, DescribeTaskAttributeRequest, DescribeTasksRequest, ImportImageRequest,
    ModifyImageAttributeRequest, RESOURCE_TYPE_IMAGE, Tag, TagFilter, TagResourcesRequest,
    TaskStatus, UntagResourcesRequest,
};
use ecs_image_operator::ecs::{CancelOutcome, DeleteOutcome, EcsError};
use ecs_image_operator::emulator::EmulatorConfig;
use emulator_support::*;

fn all_statuses() -> Vec<String> {
    ALL_IMAGE_STATUSES.split(',').map(String::from).collect()
}

#[tokio::test]
async fn an_import_runs_to_available_with_progress_seen_on_the_way() {
    // 20 GiB virtual, 2 GiB file: 60 s + 2 × 30 s = 2 emulated minutes = 1 s at 120×, long enough
    // for polls every 10 ms to see progress in between even on a loaded machine.
    let emulator = start_with(EmulatorConfig {
        time_scale: 120.0,
        ..config()
    })
    .await;
    let client = client(&emulator);
    let creds = creds();
    let created = client
        .import_image(&creds, &import("ubuntu", "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    assert!(created.image_id.starts_with("m-") && created.task_id.starts_with("t-"));
    assert_eq!(created.region_id, REGION);

    // Hidden by DescribeImages' default Status=Available while importing.
    let default_view = client
        .call(
            &creds,
            &DescribeImagesRequest {
                region_id: REGION.into(),
                image_ids: vec![created.image_id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(default_view.total_count, 0);

    let mut progress_seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let attribute = loop {
        let attribute = client
            .call(
                &creds,
                &DescribeTaskAttributeRequest {
                    region_id: REGION.into(),
                    task_id: created.task_id.clone(),
                },
            )
            .await
            .unwrap();
        progress_seen.push(attribute.progress_percent().unwrap());
        if attribute.status() == TaskStatus::Finished {
            break attribute;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "import never finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(attribute.task_process, "100%");
    assert!(!attribute.support_cancel);
    assert_eq!(attribute.success_count, 1);
    assert!(
        progress_seen.iter().any(|p| (1..100).contains(p)),
        "no progress between 0 and 100 observed: {progress_seen:?}"
    );
    assert!(progress_seen.windows(2).all(|w| w[0] <= w[1]));

    let images = client
        .call(
            &creds,
            &DescribeImagesRequest {
                region_id: REGION.into(),
                image_ids: vec![created.image_id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let image = &images.images[0];
    assert_eq!(image.status, "Available");
    assert_eq!(image.progress_percent(), Some(100));
    assert_eq!(image.size, 20);
    assert_eq!(image.tag("ecs-image-operator/uid"), Some("ubuntu"));
    assert_eq!(image.disk_device_mappings[0].import_oss_bucket, "images-hz");
    emulator.shutdown().await;
}

#[tokio::test]
async fn emulated_time_can_be_stepped_exactly() {
    let emulator = start_with(EmulatorConfig {
        // Real time barely moves emulated time; the test steps it.
        time_scale: 0.001,
        ..config()
    })
    .await;
    let client = client(&emulator);
    let created = client
        .import_image(&creds(), &import("stepped", "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    let attribute = || DescribeTaskAttributeRequest {
        region_id: REGION.into(),
        task_id: created.task_id.clone(),
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        let task = client.call(&creds(), &attribute()).await.unwrap();
        seen.push((task.task_status.clone(), task.task_process.clone()));
        // A quarter of the two-minute import.
        emulator.advance(Duration::from_secs(30));
    }
    let done = client.call(&creds(), &attribute()).await.unwrap();
    seen.push((done.task_status.clone(), done.task_process.clone()));
    let expected: Vec<(String, String)> = [
        ("Processing", "0%"),
        ("Processing", "25%"),
        ("Processing", "50%"),
        ("Processing", "75%"),
        ("Finished", "100%"),
    ]
    .iter()
    .map(|(s, p)| (s.to_string(), p.to_string()))
    .collect();
    assert_eq!(seen, expected);
    assert!(!done.finished_time.is_empty());
    emulator.shutdown().await;
}

#[tokio::test]
async fn every_other_action_completes_through_the_client() {
    let emulator = start().await;
    let client = client(&emulator);
    let creds = creds();

    let regions = client
        .call(
            &creds,
            &DescribeRegionsRequest {
                region_id: REGION.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(regions.regions.iter().any(
        |r| r.region_id == "cn-shanghai" && r.region_endpoint == "ecs.cn-shanghai.aliyuncs.com"
    ));

    let first = client
        .import_image(&creds, &import("first", "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    let second = client
        .import_image(&creds, &import("second", "images/CentOS 7.raw"))
        .await
        .unwrap();

    let tasks = client
        .call(
            &creds,
            &DescribeTasksRequest {
                region_id: REGION.into(),
                task_ids: vec![first.task_id.clone(), second.task_id.clone()],
                task_action: Some("ImportImage".into()),
                page_size: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.total_count, 2);
    assert!(
        tasks
            .tasks
            .iter()
            .all(|t| t.status() == TaskStatus::Processing)
    );
    let mut later = DescribeTasksRequest {
        region_id: REGION.into(),
        ..Default::default()
    }
    .params()
    .unwrap();
    later.set("StartTime", "2099-01-01T00:00Z");
    let pairs: Vec<(&str, &str)> = later.iter().collect();
    let (_, body) = post_form(&emulator, &signed("POST", "DescribeTasks", &pairs)).await;
    let later: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(later["TotalCount"], 0, "{body}");
    assert!(tasks.tasks.iter().all(|t| t.support_cancel));

    // Cancel the second; cancelling again reports "already stopped".
    let cancel = CancelTaskRequest {
        region_id: REGION.into(),
        task_id: second.task_id.clone(),
    };
    assert_eq!(
        client.cancel_task(&creds, &cancel).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        client.cancel_task(&creds, &cancel).await.unwrap(),
        CancelOutcome::AlreadyStopped
    );
    let cancelled = client
        .call(
            &creds,
            &DescribeTaskAttributeRequest {
                region_id: REGION.into(),
                task_id: second.task_id.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(cancelled.status(), TaskStatus::Cancelled);

    // The first is still importing: it cannot be deleted yet.
    let refused = client
        .delete_image(
            &creds,
            &DeleteImageRequest {
                region_id: REGION.into(),
                image_id: first.image_id.clone(),
                force: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "ImageIsImporting");

    emulator.advance(Duration::from_secs(3600));
    client
        .call(
            &creds,
            &ModifyImageAttributeRequest {
                region_id: REGION.into(),
                image_id: first.image_id.clone(),
                image_name: Some("first-renamed".into()),
                description: Some("renamed in place".into()),
            },
        )
        .await
        .unwrap();
    client
        .call(
            &creds,
            &TagResourcesRequest {
                region_id: REGION.into(),
                resource_type: RESOURCE_TYPE_IMAGE.into(),
                resource_ids: vec![first.image_id.clone()],
                tags: vec![Tag::new("team", "a"), Tag::new("env", "ci")],
            },
        )
        .await
        .unwrap();
    client
        .call(
            &creds,
            &UntagResourcesRequest {
                region_id: REGION.into(),
                resource_type: RESOURCE_TYPE_IMAGE.into(),
                resource_ids: vec![first.image_id.clone()],
                tag_keys: vec!["env".into()],
                all: false,
            },
        )
        .await
        .unwrap();

    let by_tag = |key: &str, value: Option<&str>| DescribeImagesRequest {
        region_id: REGION.into(),
        statuses: all_statuses(),
        tags: vec![TagFilter {
            key: key.into(),
            value: value.map(String::from),
        }],
        image_owner_alias: Some("self".into()),
        ..Default::default()
    };
    let team = client.call(&creds, &by_tag("team", None)).await.unwrap();
    assert_eq!(team.total_count, 1);
    assert_eq!(team.images[0].image_name, "first-renamed");
    assert_eq!(team.images[0].description, "renamed in place");
    assert_eq!(
        client
            .call(&creds, &by_tag("team", Some("b")))
            .await
            .unwrap()
            .total_count,
        0
    );
    assert_eq!(
        client
            .call(&creds, &by_tag("env", None))
            .await
            .unwrap()
            .total_count,
        0
    );
    let operator = client
        .call(&creds, &by_tag("ecs-image-operator/uid", None))
        .await
        .unwrap();
    assert_eq!(operator.total_count, 2);
    let failed = operator
        .images
        .iter()
        .find(|i| i.image_id == second.image_id)
        .unwrap();
    assert_eq!(failed.status, "CreateFailed");

    for image_id in [&first.image_id, &second.image_id] {
        let request = DeleteImageRequest {
            region_id: REGION.into(),
            image_id: image_id.clone(),
            force: true,
        };
        assert_eq!(
            client.delete_image(&creds, &request).await.unwrap(),
            DeleteOutcome::Deleted
        );
        assert_eq!(
            client.delete_image(&creds, &request).await.unwrap(),
            DeleteOutcome::NotFound
        );
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_same_client_token_returns_the_same_image_and_creates_nothing_new() {
    let emulator = start().await;
    let client = client(&emulator);
    let creds = creds();
    let mut request = import("idempotent", "ubuntu-22.04.qcow2");
    request.client_token = Some("uid-1234-gen-1".into());
    let first = client.import_image(&creds, &request).await.unwrap();
    let again = client.import_image(&creds, &request).await.unwrap();
    assert_eq!(first.image_id, again.image_id);
    assert_eq!(first.task_id, again.task_id);

    request.description = Some("a different request".into());
    let mismatch = client.import_image(&creds, &request).await.unwrap_err();
    assert_eq!(mismatch.code(), "IdempotentParameterMismatch");

    let stats = emulator.stats();
    let outcomes: Vec<&str> = stats
        .import_calls
        .iter()
        .map(|c| c.outcome.as_str())
        .collect();
    assert_eq!(
        outcomes,
        ["created", "replayed", "IdempotentParameterMismatch"]
    );
    assert!(
        stats
            .import_calls
            .iter()
            .all(|c| c.client_token.as_deref() == Some("uid-1234-gen-1"))
    );
    let images = client
        .call(
            &creds,
            &DescribeImagesRequest {
                region_id: REGION.into(),
                statuses: vec!["ALL".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(images.total_count, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_dry_run_checks_everything_and_creates_nothing() {
    let emulator = start().await;
    let client = client(&emulator);
    let creds = creds();
    // ECS answers a passed dry run with the error `DryRunOperation`.
    let dry = |object: &str| ImportImageRequest {
        dry_run: true,
        ..import("dry", object)
    };
    let passed = client
        .call(&creds, &dry("ubuntu-22.04.qcow2"))
        .await
        .unwrap_err();
    assert_eq!(passed.code(), "DryRunOperation");
    assert_eq!(emulator.stats().code("DryRunOperation"), 1);
    let missing = client
        .call(&creds, &dry("missing.qcow2"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "InvalidOSSObject.NotFound");
    let tasks = client
        .call(
            &creds,
            &DescribeTasksRequest {
                region_id: REGION.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.total_count, 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn temporary_credentials_see_the_same_account() {
    let emulator = start().await;
    let client = client(&emulator);
    let created = client
        .import_image(&creds(), &import("by-ak", "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    let seen = client
        .call(
            &sts_creds(),
            &DescribeTasksRequest {
                region_id: REGION.into(),
                task_ids: vec![created.task_id.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(seen.total_count, 1);
    // Another account sees nothing of it.
    let other = ecs_image_operator::ecs::CredentialProvider::fixed(
        ecs_image_operator::ecs::Credentials::new(OTHER_ID, OTHER_SECRET),
    );
    let error = client
        .call(
            &other,
            &DescribeTaskAttributeRequest {
                region_id: REGION.into(),
                task_id: created.task_id,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&error, EcsError::Api(api) if api.code == "InvalidTaskId.NotFound"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_operators_verbs_ask_and_change_what_they_say() {
    use ecs_image_operator::ecs::api::TaskStatus;
    let emulator = start().await;
    let client = client(&emulator);
    let creds = creds();
    let created = client
        .import_image(&creds, &import("verbs", "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    let id = created.image_id.clone();

    // An image being imported is found by id and by tag: every status is asked for.
    let images = client
        .images(&creds, REGION, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_ne!(images[0].status, "Available");
    let tagged = client
        .image_tagged(&creds, REGION, "ecs-image-operator/uid", "verbs")
        .await
        .unwrap();
    assert_eq!(tagged.map(|i| i.image_id), Some(id.clone()));
    assert!(
        client
            .image_tagged(&creds, REGION, "ecs-image-operator/uid", "nobody")
            .await
            .unwrap()
            .is_none()
    );
    let task = client
        .import_task_of(&creds, REGION, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.task_id, created.task_id);
    let listed = client.task(&creds, REGION, &task.task_id).await.unwrap();
    assert_eq!(listed.map(|t| t.task_id), Some(created.task_id.clone()));
    // Unknown ids are `None`, not errors.
    assert!(
        client
            .task(&creds, REGION, "t-unknown")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        client
            .task_detail(&creds, REGION, "t-unknown")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        client
            .images(&creds, REGION, &["m-unknown".to_string()])
            .await
            .unwrap()
            .is_empty()
    );

    // Cancel, then delete; doing either again is an outcome.
    assert_eq!(
        client.cancel(&creds, REGION, &task.task_id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let detail = client
        .task_detail(&creds, REGION, &task.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.status(), TaskStatus::Cancelled);
    assert_ne!(
        client.cancel(&creds, REGION, &task.task_id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        client.delete(&creds, REGION, &id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        client.delete(&creds, REGION, &id).await.unwrap(),
        DeleteOutcome::NotFound
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn updates_through_the_verbs_show_in_the_image() {
    let emulator = start_with(EmulatorConfig {
        time_scale: 100_000.0,
        ..config()
    })
    .await;
    let client = client(&emulator);
    let creds = creds();
    let created = client
        .import_image(&creds, &import("upd", "ubuntu-22.04.qcow2"))
        .await
        .unwrap();
    let id = created.image_id.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client
        .images(&creds, REGION, std::slice::from_ref(&id))
        .await
        .unwrap()
        .first()
        .is_none_or(|i| i.status != "Available")
    {
        assert!(tokio::time::Instant::now() < deadline, "never Available");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
        .update_attributes(&creds, REGION, &id, Some("renamed"), Some("new text"))
        .await
        .unwrap();
    client
        .tag(&creds, REGION, &id, &[Tag::new("team", "a")])
        .await
        .unwrap();
    client
        .untag(&creds, REGION, &id, &["ecs-image-operator/uid".to_string()])
        .await
        .unwrap();
    let image = client
        .images(&creds, REGION, std::slice::from_ref(&id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(image.image_name, "renamed");
    assert_eq!(image.description, "new text");
    assert_eq!(image.tag("team"), Some("a"));
    assert_eq!(image.tag("ecs-image-operator/uid"), None);
    emulator.shutdown().await;
}
