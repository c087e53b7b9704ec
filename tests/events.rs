//! The Event publisher against the Kubernetes API double: one Event per new note, a repeated note
//! counted in the first Event's series, a fresh Event when the first one is gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "emulator_support/mod.rs"]
mod emulator_support;
#[path = "operator_support/mod.rs"]
mod operator_support;

use ecs_image_operator::api::image_import::ImageImport;
use ecs_image_operator::controller::events::{EventPublisher, Note};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_double::{Server, ServerOptions};
use operator_support::{NS, kube_client, minimal};

async fn events(client: &kube::Client) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), NS);
    let mut items = api.list(&ListParams::default()).await.unwrap().items;
    items.sort_by_key(|event| event.event_time.as_ref().map(|t| t.0));
    items
}

#[tokio::test]
async fn repeats_are_counted_in_one_series_and_a_deleted_event_starts_a_new_one() {
    let kube = Server::start(ServerOptions::default()).await.unwrap();
    kube.apply_yaml(&ecs_image_operator::api::crd_yaml().unwrap())
        .unwrap();
    let client = kube_client(&kube).await;
    let imports: Api<ImageImport> = Api::namespaced(client.clone(), NS);
    let object: ImageImport = serde_saphyr::from_str(&minimal("web")).unwrap();
    let object = imports
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let publisher = EventPublisher::new(client.clone(), "ecs-image-operator", Some("pod-1".into()));

    let blocked = Note {
        warning: true,
        reason: "ImageUsingByInstance",
        message: "the image is used by an instance",
    };
    publisher.publish(&object, &blocked).await.unwrap();
    publisher.publish(&object, &blocked).await.unwrap();
    publisher.publish(&object, &blocked).await.unwrap();
    let pending = Note {
        warning: false,
        reason: "Pending",
        message: "about to import",
    };
    publisher.publish(&object, &pending).await.unwrap();

    let found = events(&client).await;
    assert_eq!(found.len(), 2, "{found:?}");
    let warning = &found[0];
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert_eq!(warning.reason.as_deref(), Some("ImageUsingByInstance"));
    assert_eq!(
        warning.note.as_deref(),
        Some("the image is used by an instance")
    );
    assert_eq!(warning.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(
        warning.regarding.as_ref().and_then(|r| r.uid.clone()),
        object.uid()
    );
    assert_eq!(
        warning.reporting_controller.as_deref(),
        Some("ecs-image-operator")
    );
    assert_eq!(warning.reporting_instance.as_deref(), Some("pod-1"));
    assert!(warning.name_any().starts_with("web."));
    let normal = &found[1];
    assert_eq!(
        (normal.type_.as_deref(), normal.reason.as_deref()),
        (Some("Normal"), Some("Pending"))
    );
    assert!(normal.series.is_none());
    // Only Warnings are remembered: Normal Events mark phase changes, which do not repeat.
    assert_eq!(publisher.remembered(), 1);

    // The first Event is gone (a TTL or a person): the next repeat starts a new one.
    let api: Api<Event> = Api::namespaced(client.clone(), NS);
    api.delete(&warning.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    publisher.publish(&object, &blocked).await.unwrap();
    let found = events(&client).await;
    assert_eq!(found.len(), 2, "{found:?}");
    let renewed = found
        .iter()
        .find(|e| e.reason.as_deref() == Some("ImageUsingByInstance"))
        .unwrap();
    assert_ne!(renewed.name_any(), warning.name_any());
    assert!(renewed.series.is_none());
}

#[tokio::test]
async fn a_reason_against_the_api_conventions_is_sent_conforming_and_within_the_limit() {
    let kube = Server::start(ServerOptions::default()).await.unwrap();
    kube.apply_yaml(&ecs_image_operator::api::crd_yaml().unwrap())
        .unwrap();
    let client = kube_client(&kube).await;
    let imports: Api<ImageImport> = Api::namespaced(client.clone(), NS);
    let object: ImageImport = serde_saphyr::from_str(&minimal("codes")).unwrap();
    let object = imports
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let publisher = EventPublisher::new(client.clone(), "ecs-image-operator", None);
    // 127 letters then a colon: cut at 128, the colon would end the reason.
    let long = format!("{}:{}", "A".repeat(127), "B".repeat(200));
    for reason in ["QuotaExceed.Image", long.as_str()] {
        let note = Note {
            warning: false,
            reason,
            message: "QuotaExceed.Image: the quota is used up",
        };
        publisher.publish(&object, &note).await.unwrap();
    }
    let reasons: Vec<String> = events(&client)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["QuotaExceedImage".to_string(), "A".repeat(127)]);
}
