//! The reconcile decision table, branch by branch, without a network. Fixtures are YAML manifests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use std::collections::BTreeMap;
use std::time::Duration;

use ecs_image_operator::api::conditions::{self, types};
use ecs_image_operator::api::distribution::{Distribution, RegionCopy};
use ecs_image_operator::api::{ImageImport, ImageImportStatus, Phase};
use ecs_image_operator::controller::decision::{
    self, COPY_MISSING, CopyObserved, EcsAction, Failure, Finalize, ImageView, Lookup, Observed,
    Outcome, Plan, Resource, SourceObserved, TaskView, Timing,
};
use ecs_image_operator::ecs::ErrorClass;
use ecs_image_operator::ecs::api::{ImageStatus, TaskStatus};
use jiff::{SignedDuration, Timestamp};

const MANIFEST: &str = r#"
apiVersion: ecs.image-import.dev/v1alpha1
kind: ImageImport
metadata:
  name: ubuntu
  namespace: images
  uid: 6f1c2a4e-9b7d-4c1e-8f2a-0123456789ab
  generation: 1
spec:
  regionId: cn-hangzhou
  imageName: ubuntu-2204
  description: Ubuntu 22.04 golden image
  platform: Ubuntu
  tags:
    team: platform
  diskDeviceMappings:
    - ossBucket: golden-images
      ossObject: ubuntu/22.04.qcow2
      format: QCOW2
"#;

fn object() -> ImageImport {
    serde_saphyr::from_str(MANIFEST).unwrap()
}

fn now() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

fn later(seconds: i64) -> Timestamp {
    now()
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap()
}

struct Fixture {
    object: ImageImport,
    status: ImageImportStatus,
    paused: bool,
    credentials_version: Option<String>,
    credentials_account: Option<String>,
    abandon: bool,
    deleting: bool,
}

impl Fixture {
    fn new() -> Self {
        Self {
            object: object(),
            status: ImageImportStatus::default(),
            paused: false,
            credentials_version: None,
            credentials_account: None,
            abandon: false,
            deleting: false,
        }
    }

    fn with_status(mut self, status: ImageImportStatus) -> Self {
        self.status = status;
        self
    }

    fn resource(&self) -> Resource<'_> {
        Resource {
            uid: self.object.metadata.uid.as_deref().unwrap(),
            namespace: "images",
            name: "ubuntu",
            generation: self.object.metadata.generation.unwrap(),
            spec: &self.object.spec,
            status: &self.status,
            paused: self.paused,
            credentials_version: self.credentials_version.as_deref(),
            credentials_account: self.credentials_account.as_deref(),
            abandon: self.abandon,
            deleting: self.deleting,
        }
    }

    fn decide(&self, observed: &Observed, at: Timestamp) -> Plan {
        decision::decide(&self.resource(), observed, &Timing::default(), at)
    }

    fn apply(&self, observed: &SourceObserved, at: Timestamp) -> Plan {
        decision::apply(&self.resource(), observed, &Timing::default(), at)
    }

    fn cleanup(&self, observed: &SourceObserved) -> Plan {
        decision::cleanup(&self.resource(), observed, &Timing::default(), now())
    }
}

/// The one ECS step of a plan, if any (the source's decisions plan at most one).
trait OneStep {
    fn action(&self) -> Option<EcsAction>;
}

impl OneStep for Plan {
    fn action(&self) -> Option<EcsAction> {
        assert!(
            self.steps.len() <= 1,
            "more than one step: {:?}",
            self.steps
        );
        self.steps.first().cloned()
    }
}

fn condition(status: &ImageImportStatus, type_: &str) -> (String, String) {
    let c = conditions::find(&status.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone())
}

fn message(status: &ImageImportStatus, type_: &str) -> String {
    conditions::find(&status.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
        .message
        .clone()
}

fn image(id: &str, status: &str, progress: Option<u8>) -> ImageView {
    let fixture = Fixture::new();
    ImageView {
        id: id.into(),
        status: ImageStatus::parse(status),
        progress,
        name: "ubuntu-2204".into(),
        description: "Ubuntu 22.04 golden image".into(),
        tags: decision::desired_tags(&fixture.resource()),
    }
}

fn task(id: &str, status: TaskStatus, progress: Option<u8>) -> TaskView {
    TaskView {
        id: id.into(),
        status,
        progress,
        error: None,
    }
}

/// The status right after ECS accepted the import.
fn importing_status() -> ImageImportStatus {
    let fixture = Fixture::new();
    decision::after_import(
        &fixture.resource(),
        &ImageImportStatus::default(),
        "m-1",
        "t-1",
        &Timing::default(),
        now(),
    )
    .status
}

#[test]
fn a_new_resource_with_nothing_in_ecs_is_imported() {
    let fixture = Fixture::new();
    let decision = fixture.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        now(),
    );
    assert_eq!(decision.action(), Some(EcsAction::Import));
    assert_eq!(decision.status.phase, Some(Phase::Pending));
    assert_eq!(decision.status.observed_generation, Some(1));
    assert_eq!(condition(&decision.status, types::RECONCILING).0, "True");
    assert_eq!(condition(&decision.status, types::READY).0, "False");
    assert_eq!(condition(&decision.status, types::STALLED).0, "False");
    assert_eq!(
        decision
            .events
            .iter()
            .map(|e| (e.warning, e.reason.as_str()))
            .collect::<Vec<_>>(),
        [(false, "Pending")]
    );
    assert_eq!(decision.finalize, Finalize::No);
}

#[test]
fn a_paused_new_resource_is_not_imported() {
    let mut fixture = Fixture::new();
    fixture.paused = true;
    let decision = fixture.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        now(),
    );
    assert_eq!(decision.steps, []);
    assert_eq!(
        condition(&decision.status, types::RECONCILING),
        ("False".into(), "Paused".into())
    );
    assert_eq!(decision.requeue, None);
}

#[test]
fn an_image_carrying_our_uid_tag_is_adopted_instead_of_imported_again() {
    let fixture = Fixture::new();
    let observed = SourceObserved {
        image: Lookup::Found(image("m-lost", "Creating", Some(30))),
        task: Lookup::Found(task("t-lost", TaskStatus::Processing, Some(30))),
    };
    let decision = fixture.apply(&observed, now());
    assert_eq!(decision.action(), None, "never a second ImportImage");
    assert_eq!(decision.status.image_id.as_deref(), Some("m-lost"));
    assert_eq!(decision.status.import_task_id.as_deref(), Some("t-lost"));
    assert_eq!(decision.status.phase, Some(Phase::Importing));
    assert_eq!(decision.status.progress, Some(30));
}

#[test]
fn ids_are_recorded_as_soon_as_ecs_accepts_the_import() {
    let status = importing_status();
    assert_eq!(status.image_id.as_deref(), Some("m-1"));
    assert_eq!(status.import_task_id.as_deref(), Some("t-1"));
    assert_eq!(status.phase, Some(Phase::Importing));
    assert_eq!(status.start_time.as_ref().map(|t| t.0), Some(now()));
    assert_eq!(status.message.as_deref(), Some("importing t-1: 0%"));
}

#[test]
fn a_running_import_reports_progress_and_polls() {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Creating", Some(45))),
        task: Lookup::Found(task("t-1", TaskStatus::Processing, Some(40))),
    };
    let decision = fixture.apply(&observed, later(60));
    assert_eq!(decision.steps, []);
    assert_eq!(
        decision.status.progress,
        Some(45),
        "the image's progress wins over the task's"
    );
    assert_eq!(
        decision.status.message.as_deref(),
        Some("importing t-1: 45%")
    );
    // The poller wakes it on change; the requeue is only the watchdog.
    assert_eq!(decision.requeue, Some(Timing::default().watchdog));
    assert!(decision.events.is_empty(), "no phase change, no event");
}

#[test]
fn a_finished_import_is_available_and_ready() {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Available", Some(100))),
        task: Lookup::Found(task("t-1", TaskStatus::Finished, Some(100))),
    };
    let decision = fixture.apply(&observed, later(600));
    assert_eq!(decision.steps, []);
    assert_eq!(decision.status.phase, Some(Phase::Available));
    assert_eq!(decision.status.progress, Some(100));
    assert_eq!(
        decision.status.completion_time.as_ref().map(|t| t.0),
        Some(later(600))
    );
    assert_eq!(
        condition(&decision.status, types::READY),
        ("True".into(), "Available".into())
    );
    assert_eq!(condition(&decision.status, types::RECONCILING).0, "False");
    assert_eq!(decision.requeue, Some(Timing::default().resync_interval));
    assert_eq!(
        decision
            .events
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        ["Available"]
    );
}

#[test]
fn a_finished_task_with_an_image_still_creating_keeps_importing() {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Creating", Some(99))),
        task: Lookup::Found(task("t-1", TaskStatus::Finished, Some(100))),
    };
    assert_eq!(
        fixture.apply(&observed, later(600)).status.phase,
        Some(Phase::Importing)
    );
}

#[test]
fn a_failed_task_stalls_with_its_ecs_code() {
    let fixture = Fixture::new().with_status(importing_status());
    let mut failed = task("t-1", TaskStatus::Failed, Some(12));
    failed.error = Some((
        "InvalidImageFormat.Malformed".into(),
        "The image format is wrong.".into(),
    ));
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "CreateFailed", None)),
        task: Lookup::Found(failed),
    };
    let decision = fixture.apply(&observed, later(60));
    assert_eq!(decision.status.phase, Some(Phase::Failed));
    assert_eq!(
        condition(&decision.status, types::STALLED),
        ("True".into(), "InvalidImageFormatMalformed".into()),
        "the reason is the code without its dot"
    );
    assert_eq!(
        message(&decision.status, types::STALLED),
        "InvalidImageFormat.Malformed: The image format is wrong.",
        "the exact code starts the message"
    );
    assert_eq!(
        decision.status.last_error.as_ref().map(|e| e.code.as_str()),
        Some("InvalidImageFormat.Malformed")
    );
    assert_eq!(decision.requeue, None);
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.warning && e.reason == "Failed"),
        "{:?}",
        decision.events
    );
}

#[test]
fn a_task_cancelled_outside_the_operator_fails_the_import() {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Missing,
        task: Lookup::Found(task("t-1", TaskStatus::Cancelled, None)),
    };
    let decision = fixture.apply(&observed, later(60));
    assert_eq!(decision.status.phase, Some(Phase::Failed));
    assert_eq!(
        condition(&decision.status, types::STALLED).1,
        "TaskCancelled"
    );
}

#[test]
fn a_failed_image_without_task_detail_still_fails() {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "UnAvailable", None)),
        task: Lookup::Missing,
    };
    let decision = fixture.apply(&observed, later(60));
    assert_eq!(decision.status.phase, Some(Phase::Failed));
    assert_eq!(
        condition(&decision.status, types::STALLED).1,
        "ImportFailed"
    );
}

#[test]
fn not_found_right_after_the_import_is_waited_out_but_not_forever() {
    let fixture = Fixture::new().with_status(importing_status());
    let nothing = SourceObserved {
        image: Lookup::Missing,
        task: Lookup::Missing,
    };
    assert_eq!(
        fixture.apply(&nothing, later(10)).status.phase,
        Some(Phase::Importing),
        "eventual consistency"
    );
    let decision = fixture.apply(&nothing, later(3600));
    assert_eq!(decision.status.phase, Some(Phase::Failed));
    assert_eq!(
        condition(&decision.status, types::STALLED).1,
        "ImageNotFound"
    );
}

fn available_status() -> ImageImportStatus {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Available", Some(100))),
        task: Lookup::Missing,
    };
    fixture.apply(&observed, later(600)).status
}

#[test]
fn name_description_and_tag_changes_are_applied_in_place() {
    let mut fixture = Fixture::new().with_status(available_status());
    fixture.object.spec.image_name = Some("ubuntu-2204-v2".into());
    fixture.object.spec.tags.insert(
        "cost-center".into(),
        ecs_image_operator::api::image_import::TagValue("42".into()),
    );
    fixture.object.spec.tags.remove("team");
    fixture.object.metadata.generation = Some(2);
    let mut current = image("m-1", "Available", Some(100));
    current.tags.insert("acs:system".into(), "kept".into());
    let decision = fixture.apply(
        &SourceObserved {
            image: Lookup::Found(current),
            task: Lookup::Missing,
        },
        later(700),
    );
    let Some(EcsAction::UpdateImage(update)) = decision.action() else {
        panic!("expected an update, got {:?}", decision.action())
    };
    assert_eq!(update.image_id, "m-1");
    assert_eq!(update.name.as_deref(), Some("ubuntu-2204-v2"));
    assert_eq!(
        update.description, None,
        "unchanged description is not sent"
    );
    assert_eq!(
        update.set_tags,
        BTreeMap::from([("cost-center".to_string(), "42".to_string())])
    );
    assert_eq!(
        update.remove_tags,
        ["team"],
        "ECS's acs: tags are never removed"
    );
    assert_eq!(
        condition(&decision.status, types::READY).0,
        "False",
        "not ready until the update is applied"
    );
    assert_eq!(decision.status.observed_generation, Some(2));
}

#[test]
fn a_paused_available_resource_is_not_updated() {
    let mut fixture = Fixture::new().with_status(available_status());
    fixture.paused = true;
    fixture.object.spec.description = Some("changed".into());
    let decision = fixture.apply(
        &SourceObserved {
            image: Lookup::Found(image("m-1", "Available", None)),
            task: Lookup::Missing,
        },
        later(700),
    );
    assert_eq!(decision.steps, []);
    assert_eq!(condition(&decision.status, types::RECONCILING).1, "Paused");
}

#[test]
fn an_available_image_in_line_with_the_spec_needs_nothing() {
    let fixture = Fixture::new().with_status(available_status());
    let decision = fixture.apply(
        &SourceObserved {
            image: Lookup::Found(image("m-1", "Available", None)),
            task: Lookup::Missing,
        },
        later(700),
    );
    assert_eq!(decision.steps, []);
    assert_eq!(
        decision.status, fixture.status,
        "an unchanged status is not rewritten"
    );
}

#[test]
fn an_available_image_deleted_outside_the_operator_is_imported_again_under_a_new_token() {
    let fixture = Fixture::new().with_status(available_status());
    let gone = SourceObserved {
        image: Lookup::Missing,
        task: Lookup::NotAsked,
    };
    let decision = fixture.apply(&gone, later(7200));
    assert_eq!(decision.action(), Some(EcsAction::Import));
    assert_eq!(decision.status.phase, Some(Phase::Pending));
    assert_eq!(decision.status.image_id, None);
    assert_eq!(decision.status.import_task_id, None);
    assert_eq!(decision.status.reimports, Some(1));
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.warning && e.reason == decision::IMAGE_MISSING && e.message.contains("m-1")),
        "{:?}",
        decision.events
    );
    // The import is a new one: its ClientToken is not the first import's.
    let again = Fixture::new().with_status(decision.status.clone());
    let request = ecs_image_operator::controller::engine::import_request(&again.resource());
    let uid = again.object.metadata.uid.clone().unwrap();
    assert_eq!(request.client_token, Some(format!("{uid}-r1")));
    // Imported twice: the count goes on.
    let twice = Fixture::new().with_status(ImageImportStatus {
        reimports: Some(1),
        ..available_status()
    });
    assert_eq!(twice.apply(&gone, later(7200)).status.reimports, Some(2));
    // Paused: nothing is imported, and the pause says so.
    let mut paused = Fixture::new().with_status(available_status());
    paused.paused = true;
    assert_eq!(paused.apply(&gone, later(7200)).steps, []);
}

#[test]
fn the_import_token_stays_within_ecs_limit() {
    assert_eq!(decision::import_token("u-1", 0), "u-1");
    assert_eq!(decision::import_token("u-1", 3), "u-1-r3");
    let long = "x".repeat(80);
    let token = decision::import_token(&long, 12);
    assert_eq!(token.len(), 64);
    assert!(token.ends_with("-r12"), "{token}");
}

#[test]
fn a_settled_resource_needs_no_ecs_call_until_the_resync_sees_drift() {
    let fixture = Fixture::new().with_status(available_status());
    let resource = fixture.resource();
    let same = Lookup::Found(image("m-1", "Available", None));
    assert!(
        decision::settled(&resource, &Lookup::NotAsked),
        "not looked at yet"
    );
    assert!(decision::settled(&resource, &same));
    assert!(!decision::settled(&resource, &Lookup::Missing));
    let renamed = Lookup::Found(ImageView {
        name: "renamed-by-hand".into(),
        ..image("m-1", "Available", None)
    });
    assert!(!decision::settled(&resource, &renamed));
    let broken = Lookup::Found(image("m-1", "UnAvailable", None));
    assert!(!decision::settled(&resource, &broken));
    // A spec change is never settled; nor is an import still running.
    let mut changed = Fixture::new().with_status(available_status());
    changed.object.metadata.generation = Some(2);
    assert!(!decision::settled(&changed.resource(), &same));
    let running = Fixture::new().with_status(importing_status());
    assert!(!decision::settled(&running.resource(), &Lookup::NotAsked));
}

fn failure(code: &str, class: ErrorClass) -> Failure {
    Failure {
        code: code.into(),
        message: format!("{code} happened"),
        request_id: Some("R-9".into()),
        class,
    }
}

#[test]
fn a_transient_failure_retries_with_backoff_and_keeps_the_phase() {
    let fixture = Fixture::new().with_status(importing_status());
    let decision = decision::after_failure(
        &fixture.resource(),
        &fixture.status,
        &failure("Throttling.User", ErrorClass::Retryable),
        3,
        &Timing::default(),
        now(),
    );
    assert_eq!(decision.status.phase, Some(Phase::Importing));
    assert_eq!(
        condition(&decision.status, types::RECONCILING),
        ("True".into(), "Retrying".into())
    );
    let backoff = Timing::default().backoff;
    let wait = decision.requeue.unwrap();
    assert!(
        wait >= backoff.ceiling(3) / 2 && wait <= backoff.ceiling(3),
        "{wait:?}"
    );
    assert_eq!(
        decision
            .status
            .last_error
            .as_ref()
            .and_then(|e| e.request_id.as_deref()),
        Some("R-9")
    );
}

#[test]
fn an_invalid_request_stalls_until_the_spec_or_the_secret_changes() {
    let fixture = Fixture::new();
    let stalled = decision::after_failure(
        &fixture.resource(),
        &ImageImportStatus::default(),
        &failure("InvalidImageName.Malformed", ErrorClass::InvalidRequest),
        1,
        &Timing::default(),
        now(),
    );
    assert_eq!(stalled.status.phase, Some(Phase::Failed));
    assert_eq!(
        condition(&stalled.status, types::STALLED),
        ("True".into(), "InvalidImageNameMalformed".into())
    );
    assert!(
        message(&stalled.status, types::STALLED).starts_with("InvalidImageName.Malformed: "),
        "{:?}",
        stalled.status.conditions
    );
    assert_eq!(
        stalled.status.last_error.as_ref().map(|e| e.code.as_str()),
        Some("InvalidImageName.Malformed")
    );
    assert_eq!(stalled.requeue, None);
    assert!(
        stalled.events.iter().any(|e| e.warning
            && e.reason == "InvalidImageNameMalformed"
            && e.message.starts_with("InvalidImageName.Malformed: ")),
        "{:?}",
        stalled.events
    );

    let same = Fixture::new().with_status(stalled.status.clone());
    let again = same.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        later(3600),
    );
    assert_eq!(again.action(), None, "the same spec fails the same way");

    let mut edited = Fixture::new().with_status(stalled.status.clone());
    edited.object.metadata.generation = Some(2);
    let retried = edited.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        later(10),
    );
    assert_eq!(retried.action(), Some(EcsAction::Import));
    assert_eq!(
        condition(&retried.status, types::STALLED).0,
        "False",
        "a retry clears the stall"
    );

    let mut rotated = Fixture::new().with_status(stalled.status);
    rotated.credentials_version = Some("rv-2".into());
    let retried = rotated.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        later(10),
    );
    assert_eq!(
        retried.action(),
        Some(EcsAction::Import),
        "a changed Secret is tried at once"
    );
}

#[test]
fn an_error_fixed_outside_kubernetes_is_retried_slowly() {
    let fixture = Fixture::new();
    let timing = Timing::default();
    let stalled = decision::after_failure(
        &fixture.resource(),
        &ImageImportStatus::default(),
        &failure("NoSetRoletoECSServiceAcount", ErrorClass::External),
        1,
        &timing,
        now(),
    );
    assert_eq!(stalled.requeue, Some(timing.external_retry));
    assert_eq!(
        condition(&stalled.status, types::STALLED).1,
        "NoSetRoletoECSServiceAcount"
    );
    let fixture = Fixture::new().with_status(stalled.status);
    let early = fixture.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        later(60),
    );
    assert_eq!(early.steps, []);
    assert_eq!(
        early.requeue,
        Some(timing.external_retry - Duration::from_secs(60))
    );
    let due = fixture.apply(
        &SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        later(301),
    );
    assert_eq!(due.action(), Some(EcsAction::Import));
}

#[test]
fn retain_lets_the_resource_go_without_touching_ecs() {
    let mut fixture = Fixture::new().with_status(importing_status());
    fixture.object.spec.deletion_policy =
        ecs_image_operator::api::image_import::DeletionPolicy::Retain;
    let observed = SourceObserved {
        image: Lookup::NotAsked,
        task: Lookup::Found(task("t-1", TaskStatus::Processing, None)),
    };
    let decision = fixture.cleanup(&observed);
    assert_eq!(
        (decision.action(), decision.finalize),
        (None, Finalize::Now)
    );
}

#[test]
fn deleting_while_importing_cancels_the_task_first() {
    let fixture = Fixture::new().with_status(importing_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Creating", Some(50))),
        task: Lookup::Found(task("t-1", TaskStatus::Processing, Some(50))),
    };
    let decision = fixture.cleanup(&observed);
    assert_eq!(
        decision.action(),
        Some(EcsAction::CancelTask {
            task_id: "t-1".into()
        })
    );
    assert_eq!(
        decision.finalize,
        Finalize::No,
        "the finalizer stays until the image is gone"
    );
    assert_eq!(decision.status.phase, Some(Phase::Deleting));
    assert!(decision.requeue.is_some());
}

#[test]
fn deleting_after_the_task_stopped_deletes_the_image_then_finalizes() {
    let fixture = Fixture::new().with_status(available_status());
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Available", None)),
        task: Lookup::Found(task("t-1", TaskStatus::Finished, None)),
    };
    let decision = fixture.cleanup(&observed);
    assert_eq!(
        decision.action(),
        Some(EcsAction::DeleteImage {
            image_id: "m-1".into()
        })
    );
    assert_eq!(decision.finalize, Finalize::AfterAction);
}

#[test]
fn deleting_with_nothing_left_in_ecs_finalizes_at_once() {
    let fixture = Fixture::new().with_status(available_status());
    let decision = fixture.cleanup(&SourceObserved {
        image: Lookup::Missing,
        task: Lookup::Missing,
    });
    assert_eq!(
        (decision.action(), decision.finalize),
        (None, Finalize::Now)
    );
    let never_imported = Fixture::new();
    let decision = never_imported.cleanup(&SourceObserved {
        image: Lookup::Missing,
        task: Lookup::NotAsked,
    });
    assert_eq!(
        (decision.action(), decision.finalize),
        (None, Finalize::Now)
    );
}

#[test]
fn deleting_finds_an_image_the_status_never_recorded() {
    let fixture = Fixture::new();
    let observed = SourceObserved {
        image: Lookup::Found(image("m-lost", "Available", None)),
        task: Lookup::Missing,
    };
    assert_eq!(
        fixture.cleanup(&observed).action(),
        Some(EcsAction::DeleteImage {
            image_id: "m-lost".into()
        })
    );
}

#[test]
fn a_paused_deletion_waits_and_says_so() {
    let mut fixture = Fixture::new().with_status(available_status());
    fixture.paused = true;
    let observed = SourceObserved {
        image: Lookup::Found(image("m-1", "Available", None)),
        task: Lookup::Missing,
    };
    let decision = fixture.cleanup(&observed);
    assert_eq!((decision.action(), decision.finalize), (None, Finalize::No));
    assert_eq!(
        condition(&decision.status, types::STALLED),
        ("True".into(), "Paused".into())
    );
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.warning && e.reason == "Paused"),
        "{:?}",
        decision.events
    );
}

#[test]
fn a_blocked_deletion_is_a_condition_an_event_and_a_slow_retry() {
    let fixture = Fixture::new().with_status(available_status());
    let deleting = fixture.cleanup(&SourceObserved {
        image: Lookup::Found(image("m-1", "Available", None)),
        task: Lookup::Missing,
    });
    let decision = decision::after_failure(
        &fixture.resource(),
        &deleting.status,
        &failure("ImageUsingByInstance", ErrorClass::External),
        1,
        &Timing::default(),
        now(),
    );
    assert_eq!(decision.status.phase, Some(Phase::Deleting));
    assert_eq!(
        condition(&decision.status, types::STALLED).1,
        "ImageUsingByInstance"
    );
    assert!(
        decision.requeue.is_some(),
        "a deletion never waits silently forever"
    );
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.warning && e.reason == "ImageUsingByInstance")
    );
}

#[test]
fn the_client_token_is_the_uid_and_tags_identify_the_resource() {
    let fixture = Fixture::new();
    assert_eq!(
        decision::client_token("6f1c2a4e-9b7d-4c1e-8f2a-0123456789ab"),
        "6f1c2a4e-9b7d-4c1e-8f2a-0123456789ab"
    );
    assert_eq!(decision::client_token(&"x".repeat(100)).len(), 64);
    let tags = decision::operator_tags(&fixture.resource());
    assert_eq!(
        tags.get("ecs-image-operator/uid").map(String::as_str),
        Some("6f1c2a4e-9b7d-4c1e-8f2a-0123456789ab")
    );
    assert_eq!(
        tags.get("ecs-image-operator/namespace").map(String::as_str),
        Some("images")
    );
    assert_eq!(
        tags.get("ecs-image-operator/name").map(String::as_str),
        Some("ubuntu")
    );
    let desired = decision::desired_tags(&fixture.resource());
    assert_eq!(desired.get("team").map(String::as_str), Some("platform"));
    assert_eq!(desired.len(), 4);
}

#[test]
fn the_import_request_carries_the_spec_the_token_and_the_operator_tags() {
    let mut fixture = Fixture::new();
    fixture.object.spec.architecture =
        Some(ecs_image_operator::api::image_import::Architecture::Arm64);
    fixture.object.spec.disk_device_mappings[0].disk_image_size = Some(40);
    let request = ecs_image_operator::controller::engine::import_request(&fixture.resource());
    assert_eq!(request.region_id, "cn-hangzhou");
    assert_eq!(request.image_name.as_deref(), Some("ubuntu-2204"));
    assert_eq!(request.platform.as_deref(), Some("Ubuntu"));
    assert_eq!(request.architecture.as_deref(), Some("arm64"));
    assert_eq!(
        request.boot_mode.as_deref(),
        Some("UEFI"),
        "arm64 imports say UEFI explicitly"
    );
    assert_eq!(
        request.client_token.as_deref(),
        Some("6f1c2a4e-9b7d-4c1e-8f2a-0123456789ab")
    );
    assert!(!request.dry_run);
    let disk = &request.disk_device_mappings[0];
    assert_eq!(
        (
            disk.oss_bucket.as_str(),
            disk.oss_object.as_str(),
            disk.format.as_deref(),
            disk.disk_image_size
        ),
        (
            "golden-images",
            "ubuntu/22.04.qcow2",
            Some("QCOW2"),
            Some(40)
        )
    );
    let tags: Vec<(&str, &str)> = request
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    assert!(tags.contains(&("team", "platform")));
    assert!(tags.contains(&(
        "ecs-image-operator/uid",
        "6f1c2a4e-9b7d-4c1e-8f2a-0123456789ab"
    )));
    assert_eq!(tags.len(), 4);
    let params = ecs_image_operator::ecs::api::Action::params(&request).unwrap();
    assert_eq!(
        params.get("DiskDeviceMapping.1.OSSObject"),
        Some("ubuntu/22.04.qcow2")
    );
}

#[test]
fn an_accepted_import_records_its_ids_and_announces_the_importing_phase() {
    let fixture = Fixture::new();
    let decision = decision::after_import(
        &fixture.resource(),
        &ImageImportStatus {
            phase: Some(Phase::Pending),
            ..Default::default()
        },
        "m-1",
        "t-1",
        &Timing::default(),
        now(),
    );
    assert_eq!(decision.status.image_id.as_deref(), Some("m-1"));
    assert_eq!(decision.status.import_task_id.as_deref(), Some("t-1"));
    assert_eq!(decision.status.phase, Some(Phase::Importing));
    assert_eq!(decision.requeue, Some(Timing::default().watchdog));
    let reasons: Vec<&str> = decision.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Importing"]);
}

/// A status as the API server returns it after a restart: written, then read back.
fn read_back(status: &ImageImportStatus) -> ImageImportStatus {
    serde_json::from_value(serde_json::to_value(status).unwrap()).unwrap()
}

fn nothing_in_ecs() -> SourceObserved {
    SourceObserved {
        image: Lookup::Missing,
        task: Lookup::NotAsked,
    }
}

#[test]
fn every_operator_code_is_retried_by_its_stored_rule_after_a_restart() {
    use ecs_image_operator::api::image_import::RetryRule;
    use ecs_image_operator::ecs::error::OPERATOR_CODES;
    let timing = Timing::default();
    for known in OPERATOR_CODES {
        let fixture = Fixture::new();
        let failed = decision::after_failure(
            &fixture.resource(),
            &ImageImportStatus::default(),
            &Failure::minted(known.code, format!("{} happened", known.code)),
            1,
            &timing,
            now(),
        );
        let stored = read_back(&failed.status);
        let rule = stored.last_error.as_ref().and_then(|e| e.retry);
        let restarted = Fixture::new().with_status(stored);
        let soon = restarted.apply(&nothing_in_ecs(), later(5));
        let after_external_retry = restarted.apply(&nothing_in_ecs(), later(301));
        match known.class {
            ErrorClass::Retryable | ErrorClass::RefreshCredentials => {
                assert_eq!(rule, Some(RetryRule::Backoff), "{}", known.code);
                assert_eq!(
                    soon.action(),
                    Some(EcsAction::Import),
                    "{} retries soon",
                    known.code
                );
            }
            ErrorClass::External => {
                assert_eq!(rule, Some(RetryRule::Slowly), "{}", known.code);
                assert_eq!(soon.steps, [], "{} waits", known.code);
                assert_eq!(
                    after_external_retry.action(),
                    Some(EcsAction::Import),
                    "{} is retried slowly",
                    known.code
                );
            }
            ErrorClass::InvalidRequest => {
                assert_eq!(rule, Some(RetryRule::OnChange), "{}", known.code);
                assert_eq!(
                    after_external_retry.action(),
                    None,
                    "{} waits for a change",
                    known.code
                );
                let mut edited = Fixture::new().with_status(restarted.status.clone());
                edited.object.metadata.generation = Some(2);
                assert_eq!(
                    edited.apply(&nothing_in_ecs(), later(5)).action(),
                    Some(EcsAction::Import),
                    "{} is retried once the spec changes",
                    known.code
                );
            }
        }
    }
}

#[test]
fn a_stall_stored_by_an_older_release_without_a_rule_is_retried_slowly() {
    // What the previous release wrote for an unreadable 200 answer: stalled, no retry rule.
    let fixture = Fixture::new();
    let mut stalled = decision::after_failure(
        &fixture.resource(),
        &ImageImportStatus::default(),
        &failure("UnreadableResponse", ErrorClass::External),
        1,
        &Timing::default(),
        now(),
    )
    .status;
    if let Some(error) = stalled.last_error.as_mut() {
        error.retry = None;
    }
    let restarted = Fixture::new().with_status(read_back(&stalled));
    assert_eq!(restarted.apply(&nothing_in_ecs(), later(60)).action(), None);
    assert_eq!(
        restarted.apply(&nothing_in_ecs(), later(301)).action(),
        Some(EcsAction::Import),
        "no code can wedge a resource for good"
    );
}

#[test]
fn the_account_is_recorded_before_the_import_and_then_holds() {
    let mut fixture = Fixture::new();
    fixture.credentials_account = Some("1111".into());
    let pending = fixture.apply(&nothing_in_ecs(), now());
    assert_eq!(pending.action(), Some(EcsAction::Import));
    assert_eq!(pending.status.account_id.as_deref(), Some("1111"));

    // No image yet: credentials of another account are simply the ones to import with.
    let mut switched = Fixture::new().with_status(pending.status.clone());
    switched.credentials_account = Some("2222".into());
    assert!(decision::account_guard(&switched.resource(), &Timing::default(), now()).is_none());
    assert_eq!(
        switched
            .apply(&nothing_in_ecs(), now())
            .status
            .account_id
            .as_deref(),
        Some("2222")
    );

    // A status from an older release, with an image and no account: recorded on first sight.
    let mut older = Fixture::new().with_status(importing_status());
    older.credentials_account = Some("1111".into());
    let seen = older.apply(
        &SourceObserved {
            image: Lookup::Found(image("m-1", "Creating", Some(40))),
            task: Lookup::Found(task("t-1", TaskStatus::Processing, Some(40))),
        },
        now(),
    );
    assert_eq!(seen.status.account_id.as_deref(), Some("1111"));
}

#[test]
fn credentials_of_another_account_stall_instead_of_importing_again() {
    let mut status = importing_status();
    status.account_id = Some("1111".into());
    let mut same = Fixture::new().with_status(status.clone());
    same.credentials_account = Some("1111".into());
    assert!(
        decision::account_guard(&same.resource(), &Timing::default(), now()).is_none(),
        "a new AccessKey of the same account is simply used"
    );

    let mut other = Fixture::new().with_status(status);
    other.credentials_account = Some("2222".into());
    let stalled = decision::account_guard(&other.resource(), &Timing::default(), now())
        .expect("another account is refused");
    assert_eq!(stalled.steps, []);
    assert_eq!(
        stalled.requeue, None,
        "nothing to do until the credentials point back"
    );
    assert_eq!(
        stalled.status.phase,
        Some(Phase::Importing),
        "the phase stays"
    );
    assert_eq!(
        condition(&stalled.status, types::STALLED),
        ("True".into(), "CredentialsAccountChanged".into())
    );
    let error = stalled.status.last_error.as_ref().unwrap();
    assert_eq!(error.code, "CredentialsAccountChanged");
    assert!(
        error.message.contains("1111") && error.message.contains("2222"),
        "{}",
        error.message
    );
    assert!(
        stalled
            .events
            .iter()
            .any(|e| e.warning && e.reason == "CredentialsAccountChanged")
    );
}

#[test]
fn a_deletion_with_another_accounts_credentials_stalls_with_the_way_out() {
    let mut status = importing_status();
    status.account_id = Some("1111".into());
    status.phase = Some(Phase::Deleting);
    let mut fixture = Fixture::new().with_status(status);
    fixture.credentials_account = Some("2222".into());
    let stalled = decision::account_guard(&fixture.resource(), &Timing::default(), now())
        .expect("another account is refused");
    assert_eq!(stalled.finalize, Finalize::No, "the finalizer stays");
    let message = stalled.status.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("restore credentials of account 1111"),
        "{message}"
    );
    assert!(
        message.contains("ecs.image-import.dev/abandon=true"),
        "{message}"
    );
}

#[test]
fn abandoning_lets_the_resource_go_without_ecs_and_says_what_stays() {
    let mut status = importing_status();
    status.account_id = Some("1111".into());
    let mut fixture = Fixture::new().with_status(status);
    fixture.abandon = true;
    let decision = decision::abandon(&fixture.resource());
    assert_eq!(decision.steps, []);
    assert_eq!(decision.finalize, Finalize::Now);
    let warning = decision
        .events
        .iter()
        .find(|e| e.warning && e.reason == "Abandoned")
        .expect("a Warning Event");
    assert!(
        warning.message.contains("m-1") && warning.message.contains("1111"),
        "{}",
        warning.message
    );
}

// The engine's decision: failures are inputs like any observation, and what the steps brought back
// feeds the next decision.

fn observed(source: SourceObserved) -> Observed {
    Observed {
        source,
        ..Observed::default()
    }
}

#[test]
fn credentials_that_cannot_be_had_are_decided_like_any_failure() {
    let fixture = Fixture::new().with_status(importing_status());
    let blocked = Observed {
        blocked: Some(failure("CredentialsSecretNotFound", ErrorClass::External)),
        failures: 2,
        ..Observed::default()
    };
    let plan = fixture.decide(&blocked, later(60));
    assert_eq!(plan.steps, []);
    assert!(plan.failed);
    assert_eq!(plan.status.phase, Some(Phase::Importing), "the phase holds");
    let error = plan.status.last_error.as_ref().unwrap();
    assert_eq!(error.code, "CredentialsSecretNotFound");
    assert_eq!(plan.requeue, Some(Timing::default().external_retry));
}

#[test]
fn a_failed_look_up_is_decided_like_a_failed_call_and_backs_off_by_the_count() {
    let fixture = Fixture::new().with_status(available_status());
    let mut edited = fixture;
    edited.object.metadata.generation = Some(2);
    let throttled = |failures| Observed {
        source: SourceObserved {
            image: Lookup::Failed(failure("Throttling.User", ErrorClass::Retryable)),
            task: Lookup::NotAsked,
        },
        failures,
        ..Observed::default()
    };
    let first = edited.decide(&throttled(0), later(60));
    let fourth = edited.decide(&throttled(3), later(60));
    assert_eq!((first.steps.clone(), first.failed), (vec![], true));
    assert_eq!(
        condition(&first.status, types::RECONCILING),
        ("True".into(), "Retrying".into())
    );
    assert!(fourth.requeue > first.requeue, "{fourth:?} vs {first:?}");
}

#[test]
fn another_accounts_credentials_are_refused_before_anything_is_looked_at() {
    let mut fixture = Fixture::new().with_status(ImageImportStatus {
        account_id: Some("1111".into()),
        ..available_status()
    });
    fixture.credentials_account = Some("2222".into());
    assert!(decision::account_changed(&fixture.resource()));
    let plan = fixture.decide(&Observed::default(), later(60));
    assert_eq!(plan.steps, []);
    assert_eq!(
        plan.status.last_error.as_ref().unwrap().code,
        decision::CREDENTIALS_ACCOUNT_CHANGED
    );
}

#[test]
fn a_settled_resource_keeps_its_status_and_waits_for_the_resync() {
    let fixture = Fixture::new().with_status(available_status());
    let plan = fixture.decide(&observed(SourceObserved::default()), later(60));
    assert_eq!(plan.steps, []);
    assert_eq!(plan.status, fixture.status);
    assert_eq!((plan.requeue, plan.events.len()), (None, 0));
}

#[test]
fn a_running_import_the_poller_has_not_seen_waits_for_it() {
    let fixture = Fixture::new().with_status(importing_status());
    // Long past the settle time, when an image ECS does not list would be taken as gone.
    let plan = fixture.decide(&observed(SourceObserved::default()), later(7200));
    assert_eq!(plan.steps, []);
    assert_eq!(
        plan.status, fixture.status,
        "no ImageNotFound from a look not made"
    );
    assert_eq!(plan.requeue, Some(Timing::default().watchdog));
}

#[test]
fn retain_and_abandon_need_no_ecs_and_let_the_finalizer_go() {
    let mut retained = Fixture::new().with_status(available_status());
    retained.object.spec.deletion_policy =
        ecs_image_operator::api::image_import::DeletionPolicy::Retain;
    retained.deleting = true;
    let mut abandoned = Fixture::new().with_status(available_status());
    abandoned.deleting = true;
    abandoned.abandon = true;
    for fixture in [retained, abandoned] {
        assert!(!decision::needs_ecs(&fixture.resource()));
        let plan = fixture.decide(&Observed::default(), later(60));
        assert_eq!((plan.steps, plan.finalize), (vec![], Finalize::Now));
    }
}

#[test]
fn a_deletion_in_progress_is_a_requeue_not_a_failure() {
    let mut fixture = Fixture::new().with_status(importing_status());
    fixture.deleting = true;
    let running = observed(SourceObserved {
        image: Lookup::Found(image("m-1", "Creating", Some(40))),
        task: Lookup::Found(task("t-1", TaskStatus::Processing, Some(40))),
    });
    let plan = fixture.decide(&running, later(60));
    assert_eq!(
        plan.steps,
        [EcsAction::CancelTask {
            task_id: "t-1".into()
        }]
    );
    let after = decision::conclude(
        &fixture.resource(),
        &plan,
        &Outcome::default(),
        0,
        &Timing::default(),
        later(61),
    );
    assert_eq!((after.finalize, after.failed), (Finalize::No, false));
    assert!(
        after.requeue.is_some(),
        "a deletion never waits for a change"
    );
    assert_eq!(after.events, [], "the plan's events were published with it");
}

#[test]
fn a_deletion_whose_step_succeeded_lets_the_finalizer_go() {
    let mut fixture = Fixture::new().with_status(available_status());
    fixture.deleting = true;
    let stopped = observed(SourceObserved {
        image: Lookup::Found(image("m-1", "Available", None)),
        task: Lookup::Found(task("t-1", TaskStatus::Finished, None)),
    });
    let plan = fixture.decide(&stopped, later(60));
    assert_eq!(plan.finalize, Finalize::AfterAction);
    let done = decision::conclude(
        &fixture.resource(),
        &plan,
        &Outcome::default(),
        0,
        &Timing::default(),
        later(61),
    );
    assert_eq!(done.finalize, Finalize::Now);
    let refused = Outcome {
        failure: Some(failure("IncorrectImageStatus", ErrorClass::External)),
        ..Outcome::default()
    };
    let kept = decision::conclude(
        &fixture.resource(),
        &plan,
        &refused,
        0,
        &Timing::default(),
        later(61),
    );
    assert_eq!((kept.finalize, kept.failed), (Finalize::No, true));
    assert_eq!(kept.status.phase, Some(Phase::Deleting));
    assert!(kept.requeue.is_some());
}

#[test]
fn an_accepted_import_is_concluded_with_its_ids_and_a_failed_one_on_the_planned_status() {
    let fixture = Fixture::new();
    let plan = fixture.decide(&observed(nothing_in_ecs()), now());
    assert_eq!(plan.steps, [EcsAction::Import]);
    let accepted = Outcome {
        imported: Some(decision::Accepted {
            image_id: "m-9".into(),
            task_id: "t-9".into(),
        }),
        ..Outcome::default()
    };
    let importing = decision::conclude(
        &fixture.resource(),
        &plan,
        &accepted,
        0,
        &Timing::default(),
        now(),
    );
    assert_eq!(importing.status.image_id.as_deref(), Some("m-9"));
    assert_eq!(importing.status.phase, Some(Phase::Importing));
    let quota = Outcome {
        failure: Some(failure("QuotaExceed.Image", ErrorClass::External)),
        ..Outcome::default()
    };
    let stalled = decision::conclude(
        &fixture.resource(),
        &plan,
        &quota,
        4,
        &Timing::default(),
        now(),
    );
    assert_eq!(
        stalled.status.last_error.as_ref().unwrap().code,
        "QuotaExceed.Image"
    );
    assert_eq!(
        stalled.status.observed_generation,
        plan.status.observed_generation
    );
    assert!(stalled.failed);
}

// Distribution: copies are followed by the poller, and a copy gone from its region is believed
// only after the settle time.

/// A resource whose available image is to be copied to Shanghai, with the copy accepted by ECS
/// at `now()` as `m-c1`.
fn copying() -> Fixture {
    let mut fixture = Fixture::new().with_status(available_status());
    fixture.object.spec.distribution = Some(Distribution {
        regions: vec![RegionCopy {
            region_id: "cn-shanghai".into(),
            ..RegionCopy::default()
        }],
        share_with: Vec::new(),
    });
    // Adding the distribution is a spec change.
    fixture.object.metadata.generation = fixture.object.metadata.generation.map(|g| g + 1);
    let source = SourceObserved {
        image: Lookup::Found(image("m-1", "Available", Some(100))),
        task: Lookup::NotAsked,
    };
    let nothing_there = Observed {
        copies: vec![copy_seen(Lookup::Missing)],
        ..observed(source)
    };
    let plan = fixture.decide(&nothing_there, now());
    assert_eq!(
        plan.steps,
        [EcsAction::Copy {
            region_id: "cn-shanghai".into()
        }]
    );
    let uid = fixture.object.metadata.uid.clone().unwrap();
    let generation = fixture.object.metadata.generation.unwrap();
    let token = decision::copy_token(&uid, "cn-shanghai", generation);
    assert_eq!(plan.status.copies[0].client_token.as_ref(), Some(&token));
    assert!(token.len() <= 64, "{token}");
    // The same plan made again on this (stale) status asks for the same copy.
    let again = fixture.decide(&nothing_there, later(5));
    assert_eq!(again.status.copies[0].client_token.as_ref(), Some(&token));
    let outcome = Outcome {
        copied: vec![("cn-shanghai".into(), "m-c1".into())],
        ..Outcome::default()
    };
    let timing = Timing::default();
    let concluded = decision::conclude(&fixture.resource(), &plan, &outcome, 0, &timing, now());
    fixture.status = concluded.status;
    fixture
}

fn copy_seen(image: Lookup<ImageView>) -> CopyObserved {
    CopyObserved {
        region_id: "cn-shanghai".into(),
        image,
    }
}

fn observed_copy(image: Lookup<ImageView>) -> Observed {
    Observed {
        copies: vec![copy_seen(image)],
        ..observed(SourceObserved {
            image: Lookup::Found(self::image("m-1", "Available", Some(100))),
            task: Lookup::NotAsked,
        })
    }
}

#[test]
fn a_running_copy_waits_for_the_poller_instead_of_being_looked_at_again_soon() {
    let fixture = copying();
    let copy = &fixture.status.copies[0];
    assert_eq!(
        (copy.image_id.as_deref(), copy.phase),
        (Some("m-c1"), Some(Phase::Importing))
    );
    let plan = fixture.decide(&observed_copy(Lookup::NotAsked), later(1));
    assert_eq!(plan.steps, []);
    assert_eq!(
        plan.requeue,
        Some(Timing::default().watchdog),
        "the poller wakes the resource; the watchdog only guards against a stall"
    );
    assert_eq!(plan.status.copies[0].phase, Some(Phase::Importing));
    let (reconciling, reason) = condition(&plan.status, types::RECONCILING);
    assert_eq!(
        (reconciling.as_str(), reason.as_str()),
        ("True", "Distributing")
    );
    assert!(
        decision::source_settled(&fixture.resource(), &Lookup::NotAsked),
        "the source needs no look-up of its own while only its copies run"
    );
}

#[test]
fn a_copy_gone_from_its_region_is_believed_after_the_settle_time_and_made_again() {
    let fixture = copying();
    let settle = Timing::default().settle_time.as_secs() as i64;
    let early = fixture.decide(&observed_copy(Lookup::Missing), later(settle / 2));
    assert_eq!(
        early.steps,
        [],
        "not found right after CopyImage may be lag"
    );
    assert_eq!(early.status.copies[0].image_id.as_deref(), Some("m-c1"));

    let late = fixture.decide(&observed_copy(Lookup::Missing), later(settle + 1));
    assert_eq!(
        late.steps,
        [EcsAction::Copy {
            region_id: "cn-shanghai".into()
        }]
    );
    let copy = &late.status.copies[0];
    assert_eq!(
        (copy.image_id.as_deref(), copy.phase),
        (None, Some(Phase::Pending))
    );
    let first = fixture.status.copies[0].client_token.clone().unwrap();
    let uid = fixture.object.metadata.uid.clone().unwrap();
    assert_eq!(
        copy.client_token,
        Some(decision::next_copy_token(&uid, &first)),
        "a copy made again is a new copy: the next token"
    );
    assert_ne!(copy.client_token.as_deref(), Some(first.as_str()));
    let event = late.events.iter().find(|e| e.reason == COPY_MISSING);
    assert!(
        event.is_some_and(|e| e.warning && e.message.contains("m-c1")),
        "{:?}",
        late.events
    );
}

#[test]
fn a_copy_renamed_or_gone_unsettles_a_ready_resource() {
    let fixture = copying();
    let resource = fixture.resource();
    let mut renamed = image("m-c1", "Available", Some(100));
    renamed.name = "renamed-by-hand".into();
    let same = image("m-c1", "Available", Some(100));
    assert!(decision::copies_settled(
        &resource,
        &[copy_seen(Lookup::NotAsked)]
    ));
    assert!(decision::copies_settled(
        &resource,
        &[copy_seen(Lookup::Found(same))]
    ));
    assert!(!decision::copies_settled(
        &resource,
        &[copy_seen(Lookup::Found(renamed))]
    ));
    assert!(!decision::copies_settled(
        &resource,
        &[copy_seen(Lookup::Missing)]
    ));
}

/// A status as the previous release stored it: ECS codes, dots included, as condition reasons.
const PREVIOUS_RELEASE_STATUS: &str = r#"
phase: Failed
imageId: m-1
importTaskId: t-1
observedGeneration: 1
message: "import of m-1 failed: InvalidImageFormat.Malformed: The image format is wrong."
lastError:
  code: InvalidImageFormat.Malformed
  message: The image format is wrong.
  retry: OnChange
conditions:
  - type: Ready
    status: "False"
    reason: ImportFailed
    message: "import of m-1 failed: InvalidImageFormat.Malformed: The image format is wrong."
    observedGeneration: 1
    lastTransitionTime: "2026-11-28T11:00:00Z"
  - type: Reconciling
    status: "False"
    reason: ImportFailed
    message: "import of m-1 failed: InvalidImageFormat.Malformed: The image format is wrong."
    observedGeneration: 1
    lastTransitionTime: "2026-11-28T11:00:00Z"
  - type: Stalled
    status: "True"
    reason: InvalidImageFormat.Malformed
    message: The image format is wrong.
    observedGeneration: 1
    lastTransitionTime: "2026-11-28T11:00:00Z"
"#;

fn reasons_of(status: &ImageImportStatus) -> Vec<(String, String)> {
    status
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.reason.clone()))
        .collect()
}

#[test]
fn dotted_reasons_of_the_previous_release_are_rewritten_by_the_next_decision() {
    let stored: ImageImportStatus = serde_saphyr::from_str(PREVIOUS_RELEASE_STATUS).unwrap();
    let fixture = Fixture::new().with_status(stored.clone());
    // A failed import is settled: nothing to ask ECS, and nothing else would change in status.
    let plan = fixture.decide(&Observed::default(), later(3600));
    assert_eq!(plan.steps, Vec::new());
    assert_eq!(
        reasons_of(&plan.status),
        [
            ("Ready".to_string(), "ImportFailed".to_string()),
            ("Reconciling".into(), "ImportFailed".into()),
            ("Stalled".into(), "InvalidImageFormatMalformed".into()),
        ]
    );
    assert_ne!(
        plan.status, stored,
        "the rewritten status differs from the stored one, so it is written"
    );
    let mut expected = stored.clone();
    expected.conditions[2].reason = "InvalidImageFormatMalformed".into();
    assert_eq!(
        plan.status, expected,
        "only the reason changes: the times, the messages and lastError.code stay"
    );
    let again = Fixture::new().with_status(plan.status.clone());
    assert_eq!(
        again.decide(&Observed::default(), later(7200)).status,
        plan.status,
        "once rewritten, the status stands"
    );
}

#[test]
fn a_stall_of_the_previous_release_is_rewritten_whatever_the_decision() {
    let mut stored: ImageImportStatus = serde_saphyr::from_str(PREVIOUS_RELEASE_STATUS).unwrap();
    // A stall before the import, retried slowly: an error fixed outside Kubernetes.
    stored.phase = Some(Phase::Failed);
    stored.image_id = None;
    stored.import_task_id = None;
    for condition in &mut stored.conditions {
        condition.reason = "QuotaExceed.Image".into();
    }
    let fixture = Fixture::new().with_status(stored.clone());
    let missing = Observed {
        source: SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        ..Observed::default()
    };
    let retried = fixture.decide(&missing, later(3600));
    let quota = Observed {
        source: SourceObserved {
            image: Lookup::Failed(failure("QuotaExceed.Image", ErrorClass::External)),
            task: Lookup::NotAsked,
        },
        ..Observed::default()
    };
    let failed = fixture.decide(&quota, later(3600));
    let waiting = decision::waiting_for_ecs(
        &stored,
        1,
        "ImportImage",
        Duration::from_secs(30),
        later(3600),
    );
    for (what, status) in [
        ("a retry", &retried.status),
        ("the same failure", &failed.status),
        ("a slow ECS call", &waiting),
    ] {
        for (type_, reason) in reasons_of(status) {
            assert!(
                conditions::is_valid_reason(&reason) && !reason.contains('.'),
                "{what}: {type_} keeps {reason:?}"
            );
        }
    }
    assert_eq!(
        condition(&failed.status, types::STALLED),
        ("True".into(), "QuotaExceedImage".into())
    );
    assert!(message(&failed.status, types::STALLED).starts_with("QuotaExceed.Image: "));
    assert_eq!(
        failed.status.last_error.as_ref().map(|e| e.code.as_str()),
        Some("QuotaExceed.Image")
    );
}
