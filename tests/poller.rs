//! The batched poller against a scripted ECS: one `DescribeImages` call per 100 imports per account
//! and region, and only resources whose image changed are woken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecs_image_operator::controller::decision::Lookup;
use ecs_image_operator::controller::poller::{Followed, GroupKey, Poller};
use ecs_image_operator::controller::port::EcsPort;
use ecs_image_operator::ecs::api::*;
use ecs_image_operator::ecs::{
    CancelOutcome, CredentialProvider, Credentials, DeleteOutcome, EcsError,
};
use futures::StreamExt;

/// A scripted ECS that knows images and counts the calls it gets.
#[derive(Default)]
struct FakeEcs {
    images: Mutex<BTreeMap<String, (String, String)>>,
    calls: Mutex<Vec<(String, Vec<String>)>>,
    fail_next: Mutex<bool>,
}

impl FakeEcs {
    fn set(&self, id: &str, status: &str, progress: &str) {
        self.images
            .lock()
            .unwrap()
            .insert(id.into(), (status.into(), progress.into()));
    }
    fn calls(&self) -> Vec<(String, Vec<String>)> {
        self.calls.lock().unwrap().clone()
    }
}

fn unexpected<T>() -> Result<T, EcsError> {
    Err(EcsError::InvalidRequest(
        "the poller must not make this call".into(),
    ))
}

impl EcsPort for FakeEcs {
    async fn account_id(&self, _: &CredentialProvider) -> Result<String, EcsError> {
        unexpected()
    }
    async fn copy_image(
        &self,
        _: &CredentialProvider,
        _: &ecs_image_operator::ecs::api::CopyImageRequest,
    ) -> Result<String, EcsError> {
        unexpected()
    }
    async fn cancel_copy(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<ecs_image_operator::ecs::CancelOutcome, EcsError> {
        unexpected()
    }
    async fn share(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
        _: &[String],
        _: &[String],
    ) -> Result<(), EcsError> {
        unexpected()
    }
    async fn shared_with(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<Option<Vec<String>>, EcsError> {
        unexpected()
    }
    async fn import(
        &self,
        _: &CredentialProvider,
        _: &ImportImageRequest,
    ) -> Result<ImportImageResponse, EcsError> {
        unexpected()
    }
    async fn images(
        &self,
        _: &CredentialProvider,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<Image>, EcsError> {
        self.calls
            .lock()
            .unwrap()
            .push((region.to_string(), ids.to_vec()));
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(EcsError::InvalidRequest("scripted failure".into()));
        }
        assert!(ids.len() <= 100, "at most 100 IDs per call");
        let images = self.images.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| {
                images.get(id).map(|(status, progress)| Image {
                    image_id: id.clone(),
                    status: status.clone(),
                    progress: progress.clone(),
                    ..Default::default()
                })
            })
            .collect())
    }
    async fn image_tagged(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<Image>, EcsError> {
        unexpected()
    }
    async fn import_task_of(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<Option<TaskSummary>, EcsError> {
        unexpected()
    }
    async fn task(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<Option<TaskSummary>, EcsError> {
        unexpected()
    }
    async fn task_detail(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<Option<TaskAttribute>, EcsError> {
        unexpected()
    }
    async fn cancel(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<CancelOutcome, EcsError> {
        unexpected()
    }
    async fn delete(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
    ) -> Result<DeleteOutcome, EcsError> {
        unexpected()
    }
    async fn update_attributes(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<(), EcsError> {
        unexpected()
    }
    async fn tag(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
        _: &[Tag],
    ) -> Result<(), EcsError> {
        unexpected()
    }
    async fn untag(
        &self,
        _: &CredentialProvider,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<(), EcsError> {
        unexpected()
    }
}

fn credentials(id: &str) -> Arc<CredentialProvider> {
    Arc::new(CredentialProvider::fixed(Credentials::new(id, "secret")))
}

fn group(region: &str, account: &str) -> GroupKey {
    GroupKey {
        region: region.into(),
        account: account.into(),
    }
}

#[tokio::test]
async fn two_hundred_fifty_imports_cost_three_calls_per_round() {
    let ecs = Arc::new(FakeEcs::default());
    let (wake, mut woken) = futures::channel::mpsc::unbounded::<u32>();
    let poller = Poller::new(Arc::clone(&ecs), wake, Duration::from_secs(3600));
    let creds = credentials("AK1");
    for n in 0..250u32 {
        let id = format!("m-{n:03}");
        ecs.set(&id, "Creating", "10%");
        assert_eq!(
            poller.track(n, group("cn-hangzhou", "AK1"), Arc::clone(&creds), &id),
            None,
            "not polled yet"
        );
    }
    let stats = poller.round().await;
    assert_eq!(stats.calls, 3, "ceil(250 / 100)");
    assert_eq!(stats.woken, 250, "every import was seen for the first time");
    let calls = ecs.calls();
    assert_eq!(calls.iter().map(|(_, ids)| ids.len()).sum::<usize>(), 250);
    let mut first: Vec<u32> = Vec::new();
    for _ in 0..250 {
        first.push(woken.next().await.unwrap());
    }
    first.sort_unstable();
    assert_eq!(first, (0..250).collect::<Vec<_>>());

    // Only the resource whose image moved is woken in the next round.
    ecs.set("m-042", "Creating", "55%");
    let stats = poller.round().await;
    assert_eq!((stats.calls, stats.woken), (3, 1));
    assert_eq!(woken.next().await, Some(42));

    // Progress within the same tenth wakes nobody, yet the next reconcile sees it; the next tenth
    // wakes again.
    ecs.set("m-042", "Creating", "58%");
    assert_eq!(poller.round().await.woken, 0);
    let seen = poller.track(42, group("cn-hangzhou", "AK1"), Arc::clone(&creds), "m-042");
    assert!(
        matches!(&seen, Some(Lookup::Found(view)) if view.progress == Some(58)),
        "{seen:?}"
    );
    ecs.set("m-042", "Creating", "61%");
    assert_eq!(poller.round().await.woken, 1);
    assert_eq!(woken.next().await, Some(42));
    ecs.set("m-042", "Available", "100%");
    assert_eq!(poller.round().await.woken, 1);
    assert_eq!(woken.next().await, Some(42));
    match poller.track(42, group("cn-hangzhou", "AK1"), Arc::clone(&creds), "m-042") {
        Some(Lookup::Found(image)) => {
            assert_eq!(
                (image.status.as_str(), image.progress),
                ("Available", Some(100))
            );
        }
        other => panic!("expected the polled image, got {other:?}"),
    }
}

#[tokio::test]
async fn accounts_and_regions_are_polled_separately_and_untracked_imports_are_not() {
    let ecs = Arc::new(FakeEcs::default());
    let (wake, _woken) = futures::channel::mpsc::unbounded::<u32>();
    let poller = Poller::new(Arc::clone(&ecs), wake, Duration::from_secs(3600));
    poller.track(1, group("cn-hangzhou", "AK1"), credentials("AK1"), "m-1");
    poller.track(2, group("cn-hangzhou", "AK2"), credentials("AK2"), "m-2");
    poller.track(3, group("cn-beijing", "AK1"), credentials("AK1"), "m-3");
    poller.track(4, group("cn-beijing", "AK1"), credentials("AK1"), "m-4");
    assert_eq!(
        poller.round().await.calls,
        3,
        "one call per (region, account)"
    );
    poller.untrack(&3);
    poller.untrack(&4);
    assert_eq!(poller.tracked(), 2);
    let before = ecs.calls().len();
    assert_eq!(poller.round().await.calls, 2);
    assert!(
        ecs.calls()[before..]
            .iter()
            .all(|(region, _)| region == "cn-hangzhou")
    );
}

#[tokio::test]
async fn a_vanished_image_is_reported_missing_and_a_failed_call_keeps_the_last_state() {
    let ecs = Arc::new(FakeEcs::default());
    let (wake, mut woken) = futures::channel::mpsc::unbounded::<u32>();
    let poller = Poller::new(Arc::clone(&ecs), wake, Duration::from_secs(3600));
    let creds = credentials("AK1");
    ecs.set("m-1", "Creating", "20%");
    poller.track(1, group("r", "AK1"), Arc::clone(&creds), "m-1");
    poller.round().await;
    assert_eq!(woken.next().await, Some(1));

    *ecs.fail_next.lock().unwrap() = true;
    let stats = poller.round().await;
    assert_eq!((stats.failed_calls, stats.woken), (1, 0));
    assert!(matches!(
        poller.track(1, group("r", "AK1"), Arc::clone(&creds), "m-1"),
        Some(Lookup::Found(_))
    ));

    ecs.images.lock().unwrap().clear();
    assert_eq!(poller.round().await.woken, 1);
    assert_eq!(
        poller.track(1, group("r", "AK1"), creds, "m-1"),
        Some(Lookup::Missing)
    );
}

#[tokio::test]
async fn a_resource_is_followed_in_every_region_it_has_an_image_in() {
    let ecs = Arc::new(FakeEcs::default());
    let (wake, mut woken) = futures::channel::mpsc::unbounded::<u32>();
    let poller = Poller::new(Arc::clone(&ecs), wake, Duration::from_secs(3600));
    let creds = credentials("AK1");
    let followed = |region: &str, id: &str, settled: bool| Followed {
        group: group(region, "AK1"),
        image_id: id.into(),
        settled,
    };
    for n in 0..3u32 {
        // A source and two copies per resource.
        for id in [
            format!("m-src-{n}"),
            format!("m-sh-{n}"),
            format!("m-bj-{n}"),
        ] {
            ecs.set(&id, "Creating", "10%");
        }
        let images = [
            followed("cn-hangzhou", &format!("m-src-{n}"), false),
            followed("cn-shanghai", &format!("m-sh-{n}"), false),
            followed("cn-beijing", &format!("m-bj-{n}"), false),
        ];
        assert_eq!(poller.follow(n, &creds, &images), [None, None, None]);
    }
    let stats = poller.round().await;
    assert_eq!(
        stats.calls, 3,
        "one call per region for the three resources"
    );
    assert_eq!(
        stats.woken, 9,
        "each image seen for the first time wakes its resource"
    );
    for _ in 0..9 {
        woken.next().await.unwrap();
    }

    // A copy moving wakes its resource, and the next follow returns every image's latest view.
    ecs.set("m-bj-1", "Available", "100%");
    assert_eq!(poller.round().await.woken, 1);
    assert_eq!(woken.next().await, Some(1));
    let images = [
        followed("cn-hangzhou", "m-src-1", true),
        followed("cn-beijing", "m-bj-1", true),
    ];
    let seen = poller.follow(1, &creds, &images);
    assert!(
        matches!(&seen[1], Some(Lookup::Found(view)) if view.status.is_usable()),
        "{seen:?}"
    );

    // Resource 1 now follows no Shanghai copy, and after the first resync its settled images
    // wait for the next.
    poller.round().await;
    let before = ecs.calls().len();
    assert_eq!(poller.round().await.calls, 3);
    let asked: Vec<String> = ecs.calls()[before..]
        .iter()
        .flat_map(|(_, ids)| ids.clone())
        .collect();
    assert!(!asked.contains(&"m-sh-1".to_string()), "{asked:?}");
    assert!(!asked.contains(&"m-bj-1".to_string()), "{asked:?}");
    assert!(asked.contains(&"m-sh-0".to_string()), "{asked:?}");
    poller.untrack(&1);
    assert_eq!(poller.tracked(), 2);
}
