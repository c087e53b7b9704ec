//! Watches: resumption, 410 Gone, bookmarks, selectors, and kube-runtime's watcher and Controller.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{Controller, controller::Action, watcher};
use kube_double::ServerOptions;
use serde_json::json;

use crate::support::*;

type Events = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<WatchEvent<DynamicObject>, kube::Error>> + Send>,
>;

async fn next_any(events: &mut Events) -> WatchEvent<DynamicObject> {
    tokio::time::timeout(PROMPTLY, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("a decodable event")
}

/// The next event that is not a bookmark.
async fn next(events: &mut Events) -> WatchEvent<DynamicObject> {
    loop {
        match next_any(events).await {
            WatchEvent::Bookmark(_) => continue,
            other => return other,
        }
    }
}

fn summary(event: &WatchEvent<DynamicObject>) -> (String, String) {
    match event {
        WatchEvent::Added(o) => ("ADDED".into(), o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => (
            "MODIFIED".into(),
            o.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Deleted(o) => (
            "DELETED".into(),
            o.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Bookmark(b) => ("BOOKMARK".into(), b.metadata.resource_version.clone()),
        WatchEvent::Error(e) => ("ERROR".into(), e.code.to_string()),
    }
}

fn pair(kind: &str, name: &str) -> (String, String) {
    (kind.to_owned(), name.to_owned())
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let a = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let from = a.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &dynamic(image_import("b")))
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"spec": {"diskSizeGiB": 3}}));
    api.patch("a", &PatchParams::default(), &patch)
        .await
        .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();

    let mut events: Events = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    assert_eq!(summary(&next(&mut events).await), pair("ADDED", "b"));
    assert_eq!(summary(&next(&mut events).await), pair("MODIFIED", "a"));
    assert_eq!(summary(&next(&mut events).await), pair("DELETED", "b"));
    api.create(&PostParams::default(), &dynamic(image_import("c")))
        .await
        .unwrap();
    assert_eq!(summary(&next(&mut events).await), pair("ADDED", "c"));

    // Without a version (or with "0") the watch starts with the current objects.
    let mut fresh: Events = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(summary(&next(&mut fresh).await), pair("ADDED", "a"));
    assert_eq!(summary(&next(&mut fresh).await), pair("ADDED", "c"));
}

#[tokio::test]
async fn compacted_versions_are_gone() {
    let server = start_with(ServerOptions {
        history_limit: 3,
        ..ServerOptions::default()
    })
    .await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let first = api
        .create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    for n in 1..=5 {
        let patch = Patch::Merge(json!({"spec": {"diskSizeGiB": n}}));
        api.patch("a", &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
    let old = first.metadata.resource_version.unwrap();
    let mut events: Events = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match next(&mut events).await {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // A recent version still resumes.
    let recent = server.resource_version().to_string();
    let mut events: Events = api
        .watch(&WatchParams::default(), &recent)
        .await
        .unwrap()
        .boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"diskSizeGiB": 9}})),
    )
    .await
    .unwrap();
    assert_eq!(summary(&next(&mut events).await), pair("MODIFIED", "a"));

    // A continue token from before the compaction is 410 too.
    for name in ["b", "c"] {
        api.create(&PostParams::default(), &dynamic(image_import(name)))
            .await
            .unwrap();
    }
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    for n in 10..15 {
        let patch = Patch::Merge(json!({"spec": {"diskSizeGiB": n}}));
        api.patch("b", &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
    let status = api_error(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    );
    assert_eq!(status.code, 410);
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let options = ServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    };
    let server = start_with(options).await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let now = server.resource_version().to_string();
    let params = WatchParams {
        bookmarks: true,
        ..WatchParams::default()
    };
    let mut events: Events = api.watch(&params, &now).await.unwrap().boxed();
    assert_eq!(
        summary(&next_any(&mut events).await),
        pair("BOOKMARK", &now)
    );
    // timeoutSeconds ends the stream.
    let params = WatchParams::default().timeout(1);
    let mut events: Events = api.watch(&params, &now).await.unwrap().boxed();
    let ended = tokio::time::timeout(PROMPTLY, async {
        while let Some(event) = events.next().await {
            assert!(matches!(event, Ok(WatchEvent::Bookmark(_))), "{event:?}");
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch outlived its timeoutSeconds");
}

#[tokio::test]
async fn label_selector_watch_sees_objects_enter_and_leave() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let now = server.resource_version().to_string();
    let params = WatchParams::default().labels("team=a");
    let mut events: Events = api.watch(&params, &now).await.unwrap().boxed();
    api.create(&PostParams::default(), &dynamic(image_import("x")))
        .await
        .unwrap();
    let label = |team: &str| Patch::Merge(json!({"metadata": {"labels": {"team": team}}}));
    api.patch("x", &PatchParams::default(), &label("a"))
        .await
        .unwrap();
    api.patch("x", &PatchParams::default(), &label("b"))
        .await
        .unwrap();
    assert_eq!(summary(&next(&mut events).await), pair("ADDED", "x"));
    assert_eq!(summary(&next(&mut events).await), pair("DELETED", "x"));
}

/// Collects watcher events (apply/delete of named objects) until `done` says so.
async fn watcher_sees(
    stream: &mut (
             impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Unpin
         ),
    seen: &mut Vec<(String, String, Option<i64>)>,
    want: usize,
) {
    while seen.len() < want {
        let event = tokio::time::timeout(PROMPTLY, stream.try_next())
            .await
            .expect("a watcher event in time")
            .expect("no watcher error")
            .expect("the stream goes on");
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => seen.push((
                "apply".into(),
                o.metadata.name.clone().unwrap_or_default(),
                o.metadata.generation,
            )),
            watcher::Event::Delete(o) => {
                seen.push((
                    "delete".into(),
                    o.metadata.name.clone().unwrap_or_default(),
                    None,
                ));
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
}

#[tokio::test]
async fn kube_runtime_watcher_sees_create_update_delete() {
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let server = start().await;
        let client = client(&server).await;
        let api = imageimports(&client, "default");
        api.create(&PostParams::default(), &dynamic(image_import("before")))
            .await
            .unwrap();
        let mut stream = watcher(api.clone(), config).boxed();
        let mut seen = Vec::new();
        watcher_sees(&mut stream, &mut seen, 1).await;
        api.create(&PostParams::default(), &dynamic(image_import("a")))
            .await
            .unwrap();
        let patch = Patch::Merge(json!({"spec": {"diskSizeGiB": 7}}));
        api.patch("a", &PatchParams::default(), &patch)
            .await
            .unwrap();
        api.delete("a", &DeleteParams::default()).await.unwrap();
        watcher_sees(&mut stream, &mut seen, 4).await;
        assert_eq!(
            seen,
            [
                ("apply".to_owned(), "before".to_owned(), Some(1)),
                ("apply".to_owned(), "a".to_owned(), Some(1)),
                ("apply".to_owned(), "a".to_owned(), Some(2)),
                ("delete".to_owned(), "a".to_owned(), None),
            ]
        );
        // Closing every watch: the watcher reconnects and keeps going.
        server.faults().close_watches();
        api.create(&PostParams::default(), &dynamic(image_import("after")))
            .await
            .unwrap();
        let mut more = Vec::new();
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        while !more
            .iter()
            .any(|(_, n, _): &(String, String, Option<i64>)| n == "after")
        {
            assert!(tokio::time::Instant::now() < deadline);
            let want = more.len() + 1;
            watcher_sees(&mut stream, &mut more, want).await;
        }
    }
}

#[tokio::test]
async fn a_controller_reconciles_through_the_double() {
    struct Ctx {
        api: kube::Api<DynamicObject>,
    }
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    let ctx = Arc::new(Ctx { api: api.clone() });
    let controller = Controller::new_with(api.clone(), watcher::Config::default(), resource())
        .run(
            |obj: Arc<DynamicObject>, ctx: Arc<Ctx>| async move {
                let name = obj.metadata.name.clone().unwrap_or_default();
                let status = json!({
                    "apiVersion": format!("{GROUP}/v1"), "kind": "ImageImport",
                    "metadata": {"name": name},
                    "status": {"phase": "Seen", "observedGeneration": obj.metadata.generation},
                });
                ctx.api
                    .patch_status(
                        &name,
                        &PatchParams::apply("test-controller").force(),
                        &Patch::Apply(&status),
                    )
                    .await?;
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_, _: &kube::Error, _| Action::requeue(Duration::from_millis(100)),
            ctx,
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    eventually(PROMPTLY, || async {
        let obj = api.get("a").await.ok()?;
        (obj.data["status"]["phase"] == "Seen" && obj.data["status"]["observedGeneration"] == 1)
            .then_some(())
    })
    .await;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"diskSizeGiB": 4}})),
    )
    .await
    .unwrap();
    eventually(PROMPTLY, || async {
        let obj = api.get("a").await.ok()?;
        (obj.data["status"]["observedGeneration"] == 2).then_some(())
    })
    .await;
    handle.abort();
}

#[tokio::test]
async fn metadata_watcher_and_metadata_reads() {
    let server = start().await;
    let client = client(&server).await;
    let api = imageimports(&client, "default");
    api.create(&PostParams::default(), &dynamic(image_import("a")))
        .await
        .unwrap();
    let meta = api.get_metadata("a").await.unwrap();
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(meta.metadata.generation, Some(1));
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);

    let metadata_api: kube::Api<kube::core::PartialObjectMeta<DynamicObject>> =
        kube::Api::namespaced_with(client.clone(), "default", &resource());
    let mut stream = watcher(metadata_api, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    while !names.contains(&"b".to_owned()) {
        let event = tokio::time::timeout(PROMPTLY, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::InitDone => {
                api.create(&PostParams::default(), &dynamic(image_import("b")))
                    .await
                    .unwrap();
            }
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                names.push(o.metadata.name.unwrap());
            }
            _ => {}
        }
    }
    assert_eq!(names, ["a", "b"]);
}
