//! The decision for mappings with a `source`, branch by branch, without a network: the upload
//! before the import, its progress, resume, failures and stalls, the removal of the object once
//! the image is available, and the order of a deletion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

use ecs_image_operator::api::conditions::{self, types};
use ecs_image_operator::api::image_import::ImageImportStatus;
use ecs_image_operator::api::source::{DiskUpload, UploadStatus};
use ecs_image_operator::api::{ImageImport, Phase};
use ecs_image_operator::controller::decision::{
    self, EcsAction, Failure, Finalize, ImageView, Lookup, Observed, Outcome, Plan, Resource,
    SourceObserved, Timing, UploadDone, UploadObserved, UploadProgress,
};
use ecs_image_operator::ecs::api::ImageStatus;
use jiff::Timestamp;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn manifest(sources: &str) -> String {
    format!(
        r#"
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
  diskDeviceMappings:
{sources}"#
    )
}

/// One disk uploaded from a loopback URL, with its digest and size.
const ONE_SOURCE: &str = r#"
    - ossBucket: golden-images
      ossObject: ubuntu/22.04.qcow2
      format: QCOW2
      source:
        url: http://127.0.0.1:8099/images/ubuntu.qcow2
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        size: 1000
"#;

/// Two disks, both uploaded.
const TWO_SOURCES: &str = r#"
    - ossBucket: golden-images
      ossObject: ubuntu/system.qcow2
      source:
        url: https://images.example.com/system.qcow2
        size: 1000
    - ossBucket: golden-images
      ossObject: ubuntu/data.raw
      source:
        url: https://images.example.com/data.raw
        size: 3000
"#;

fn now() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

struct Fixture {
    object: ImageImport,
    status: ImageImportStatus,
    paused: bool,
    deleting: bool,
}

impl Fixture {
    fn new(sources: &str) -> Self {
        Self {
            object: serde_saphyr::from_str(&manifest(sources)).unwrap(),
            status: ImageImportStatus::default(),
            paused: false,
            deleting: false,
        }
    }

    fn one() -> Self {
        Self::new(ONE_SOURCE)
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
            credentials_version: None,
            credentials_account: None,
            abandon: false,
            deleting: self.deleting,
        }
    }

    fn decide(&self, observed: &Observed) -> Plan {
        decision::decide(&self.resource(), observed, &Timing::default(), now())
    }

    fn conclude(&self, plan: &Plan, outcome: &Outcome) -> Plan {
        decision::conclude(
            &self.resource(),
            plan,
            outcome,
            0,
            &Timing::default(),
            now(),
        )
    }

    /// The fixture as the next reconcile sees it, with the status `plan` wrote.
    fn after(mut self, plan: &Plan) -> Self {
        self.status = read_back(&plan.status);
        self
    }
}

/// The status as the API server would store and return it.
fn read_back(status: &ImageImportStatus) -> ImageImportStatus {
    serde_json::from_value(serde_json::to_value(status).unwrap()).unwrap()
}

/// Nothing in ECS yet, and the transfer's report.
fn observed(upload: UploadObserved) -> Observed {
    Observed {
        source: SourceObserved {
            image: Lookup::Missing,
            task: Lookup::NotAsked,
        },
        upload,
        ..Observed::default()
    }
}

fn idle(disk: u32) -> Observed {
    observed(UploadObserved::Idle { disk })
}

fn progress(bytes_done: u64) -> UploadProgress {
    UploadProgress {
        upload_id: "up-1".into(),
        part_size: 100,
        parts_done: u32::try_from(bytes_done / 100).unwrap(),
        bytes_done,
        bytes_total: Some(1000),
        bytes_per_second: Some(50),
        sha256_state: Some("0a0b".into()),
        validator: Some("\"etag-1\"".into()),
        restarted: None,
    }
}

fn done() -> UploadDone {
    UploadDone {
        size: 1000,
        sha256: SHA.into(),
        format: Some("QCOW2".into()),
    }
}

fn disk(status: &ImageImportStatus, disk: u32) -> DiskUpload {
    status
        .upload
        .as_ref()
        .and_then(|upload| upload.disk(disk))
        .cloned()
        .unwrap_or_else(|| panic!("no status.upload entry for disk {disk}: {status:?}"))
}

fn reasons(plan: &Plan) -> Vec<(bool, &str)> {
    plan.events
        .iter()
        .map(|e| (e.warning, e.reason.as_str()))
        .collect()
}

fn condition(status: &ImageImportStatus, type_: &str) -> (String, String) {
    let c = conditions::find(&status.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone())
}

fn imports(plan: &Plan) -> bool {
    plan.steps.contains(&EcsAction::Import)
}

/// A status with the disk's upload recorded as `entry`.
fn with_disk(mut status: ImageImportStatus, entry: DiskUpload) -> ImageImportStatus {
    status
        .upload
        .get_or_insert_with(UploadStatus::default)
        .disks
        .push(entry);
    status
}

/// The status of an upload of disk 0 that is half done.
fn half_uploaded() -> ImageImportStatus {
    let fixture = Fixture::one();
    let running = observed(UploadObserved::Running {
        disk: 0,
        progress: progress(500),
    });
    read_back(&fixture.decide(&running).status)
}

/// An available image whose disk 0 was uploaded (and, with `removed`, removed again).
fn available_uploaded(removed: bool) -> ImageImportStatus {
    let mut status = ImageImportStatus {
        phase: Some(Phase::Available),
        image_id: Some("m-1".into()),
        import_task_id: Some("t-1".into()),
        observed_generation: Some(1),
        progress: Some(100),
        ..ImageImportStatus::default()
    };
    conditions::set_condition(
        &mut status.conditions,
        types::READY,
        true,
        "Available",
        "image m-1 is available",
        Some(1),
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()),
    );
    with_disk(
        status,
        DiskUpload {
            disk: 0,
            upload_id: Some("up-1".into()),
            uploaded: true,
            removed,
            bytes_done: 1000,
            bytes_total: Some(1000),
            sha256: Some(SHA.into()),
            ..DiskUpload::default()
        },
    )
}

fn available_image() -> ImageView {
    let fixture = Fixture::one();
    ImageView {
        id: "m-1".into(),
        status: ImageStatus::parse("Available"),
        progress: Some(100),
        name: "ubuntu-2204".into(),
        description: "Ubuntu 22.04 golden image".into(),
        tags: decision::desired_tags(&fixture.resource()),
    }
}

#[test]
fn an_idle_source_is_uploaded_first_in_phase_uploading() {
    let fixture = Fixture::one();
    let plan = fixture.decide(&idle(0));
    assert_eq!(plan.steps, [EcsAction::Upload { disk: 0 }]);
    assert_eq!(plan.status.phase, Some(Phase::Uploading));
    assert_eq!(plan.status.progress, Some(0));
    assert_eq!(
        reasons(&plan),
        [(false, "Uploading"), (false, "UploadStarted")]
    );
    assert_eq!(
        condition(&plan.status, types::RECONCILING),
        ("True".into(), "Uploading".into())
    );
    assert_eq!(plan.requeue, Some(Timing::default().watchdog));
    assert_eq!(disk(&plan.status, 0).upload_id, None);
    assert_eq!(plan.status.upload.as_ref().unwrap().bytes_total, Some(1000));
}

#[test]
fn a_recorded_upload_id_is_resumed_with_its_own_event() {
    let fixture = Fixture::one().with_status(half_uploaded());
    let plan = fixture.decide(&idle(0));
    assert_eq!(plan.steps, [EcsAction::Upload { disk: 0 }]);
    assert_eq!(reasons(&plan), [(false, "UploadResumed")]);
    let said = &plan.events[0].message;
    assert!(
        said.contains("at byte 500") && said.contains("up-1"),
        "{said}"
    );
    // The resume point is kept for the transfer to read.
    let entry = disk(&plan.status, 0);
    assert_eq!(
        (
            entry.upload_id.as_deref(),
            entry.parts_done,
            entry.bytes_done
        ),
        (Some("up-1"), 5, 500)
    );
}

#[test]
fn a_running_upload_writes_its_progress_and_waits_for_the_transfer() {
    let fixture = Fixture::one();
    let plan = fixture.decide(&observed(UploadObserved::Running {
        disk: 0,
        progress: progress(500),
    }));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.requeue, Some(Timing::default().watchdog));
    assert_eq!(plan.status.phase, Some(Phase::Uploading));
    // The Progress column covers the upload.
    assert_eq!(plan.status.progress, Some(50));
    let upload = plan.status.upload.as_ref().unwrap();
    assert_eq!(
        (
            upload.bytes_done,
            upload.bytes_total,
            upload.percent,
            upload.bytes_per_second
        ),
        (500, Some(1000), Some(50), Some(50))
    );
    assert_eq!(
        disk(&plan.status, 0),
        DiskUpload {
            disk: 0,
            upload_id: Some("up-1".into()),
            part_size: Some(100),
            parts_done: 5,
            bytes_done: 500,
            bytes_total: Some(1000),
            sha256_state: Some("0a0b".into()),
            validator: Some("\"etag-1\"".into()),
            ..DiskUpload::default()
        }
    );
    assert!(
        plan.status.message.as_deref().unwrap().contains("50%"),
        "{:?}",
        plan.status.message
    );
}

#[test]
fn an_upload_that_started_over_says_why_in_a_warning() {
    let fixture = Fixture::one().with_status(half_uploaded());
    let mut again = progress(100);
    again.upload_id = "up-2".into();
    again.restarted = Some("the source answers without Range support".into());
    let plan = fixture.decide(&observed(UploadObserved::Running {
        disk: 0,
        progress: again,
    }));
    assert_eq!(reasons(&plan), [(true, "UploadRestarted")]);
    assert!(plan.events[0].message.contains("without Range support"));
    assert_eq!(disk(&plan.status, 0).upload_id.as_deref(), Some("up-2"));
}

#[test]
fn a_finished_upload_is_recorded_and_imported_in_the_same_decision() {
    let fixture = Fixture::one().with_status(half_uploaded());
    let plan = fixture.decide(&observed(UploadObserved::Finished {
        disk: 0,
        done: done(),
    }));
    assert_eq!(plan.steps, [EcsAction::Import]);
    assert_eq!(plan.status.phase, Some(Phase::Pending));
    assert_eq!(
        reasons(&plan),
        [(false, "UploadFinished"), (false, "Pending")]
    );
    let entry = disk(&plan.status, 0);
    assert!(entry.uploaded && !entry.removed);
    assert_eq!(entry.sha256.as_deref(), Some(SHA));
    assert_eq!(entry.format.as_deref(), Some("QCOW2"));
    assert_eq!(entry.sha256_state, None, "no resume point once complete");
    assert_eq!(plan.status.upload.as_ref().unwrap().percent, Some(100));
}

#[test]
fn a_finished_upload_goes_on_to_the_next_source_before_the_import() {
    let fixture = Fixture::new(TWO_SOURCES);
    let plan = fixture.decide(&observed(UploadObserved::Finished {
        disk: 0,
        done: UploadDone {
            size: 1000,
            sha256: SHA.into(),
            format: None,
        },
    }));
    assert_eq!(plan.steps, [EcsAction::Upload { disk: 1 }]);
    assert_eq!(plan.status.phase, Some(Phase::Uploading));
    assert!(disk(&plan.status, 0).uploaded);
    // 1000 of 4000 bytes over both disks.
    assert_eq!(plan.status.progress, Some(25));
    assert_eq!(
        reasons(&plan).into_iter().collect::<Vec<_>>(),
        [
            (false, "UploadFinished"),
            (false, "Uploading"),
            (false, "UploadStarted")
        ]
    );
}

#[test]
fn a_mapping_with_a_source_is_never_imported_before_its_upload_is_done() {
    let fixture = Fixture::one().with_status(half_uploaded());
    let reports = [
        UploadObserved::NotAsked,
        UploadObserved::Idle { disk: 0 },
        UploadObserved::Running {
            disk: 0,
            progress: progress(700),
        },
        UploadObserved::Failed {
            disk: 0,
            failure: Failure::minted("NetworkError", "connection reset".into()),
            restart: false,
        },
        // A report of another disk says nothing of this one.
        UploadObserved::Finished {
            disk: 3,
            done: done(),
        },
    ];
    for report in reports {
        let plan = fixture.decide(&observed(report.clone()));
        assert!(!imports(&plan), "{report:?}: {:?}", plan.steps);
        assert!(
            matches!(plan.status.phase, Some(Phase::Uploading)),
            "{report:?}: {:?}",
            plan.status.phase
        );
    }
    // Without a report the decision starts nothing either: a transfer may still run.
    let waiting = fixture.decide(&observed(UploadObserved::NotAsked));
    assert!(waiting.steps.is_empty(), "{:?}", waiting.steps);
    assert_eq!(waiting.requeue, Some(Timing::default().watchdog));
    // A fresh resource, never looked at by the transfer: the same.
    let fresh = Fixture::one().decide(&observed(UploadObserved::NotAsked));
    assert!(fresh.steps.is_empty(), "{:?}", fresh.steps);
    assert_eq!(fresh.status.phase, Some(Phase::Uploading));
}

#[test]
fn checksum_size_format_and_refusal_stall_until_the_spec_changes() {
    for code in [
        decision::SOURCE_CHECKSUM_MISMATCH,
        decision::SOURCE_SIZE_MISMATCH,
        decision::SOURCE_FORMAT_MISMATCH,
        decision::SOURCE_REFUSED,
    ] {
        let fixture = Fixture::one().with_status(half_uploaded());
        let plan = fixture.decide(&observed(UploadObserved::Failed {
            disk: 0,
            failure: Failure::minted(code, format!("{code} happened")),
            restart: true,
        }));
        assert!(plan.steps.is_empty(), "{code}");
        assert_eq!(plan.status.phase, Some(Phase::Failed), "{code}");
        assert_eq!(
            condition(&plan.status, types::STALLED),
            ("True".into(), code.to_string())
        );
        assert_eq!(plan.requeue, None, "{code}: waits for a change");
        assert!(plan.events.iter().any(|e| e.warning && e.reason == code));
        // The transfer is forgotten: Idle again, and still nothing starts.
        let held = Fixture::one().after(&plan).decide(&idle(0));
        assert!(held.steps.is_empty(), "{code}: {:?}", held.steps);
        assert_eq!(held.status.phase, Some(Phase::Failed), "{code}");
        // A new generation (the spec fixed) uploads again, from byte 0.
        let mut fixed = Fixture::one().after(&plan);
        fixed.object.metadata.generation = Some(2);
        let retried = fixed.decide(&idle(0));
        assert_eq!(retried.steps, [EcsAction::Upload { disk: 0 }], "{code}");
        assert_eq!(
            reasons(&retried),
            [(false, "Uploading"), (false, "UploadStarted")]
        );
        assert_eq!(condition(&retried.status, types::STALLED).0, "False");
    }
}

#[test]
fn a_transient_failure_backs_off_and_then_resumes() {
    let fixture = Fixture::one().with_status(half_uploaded());
    let plan = fixture.decide(&observed(UploadObserved::Failed {
        disk: 0,
        failure: Failure::minted("NetworkError", "connection reset by the source".into()),
        restart: false,
    }));
    assert!(plan.steps.is_empty());
    assert!(plan.failed);
    assert_eq!(plan.status.phase, Some(Phase::Uploading));
    assert_eq!(
        condition(&plan.status, types::RECONCILING),
        ("True".into(), "Retrying".into())
    );
    // Jittered backoff, well before the watchdog.
    let wait = plan.requeue.expect("a retry on a timer");
    assert!(wait <= Timing::default().backoff.base * 2, "{wait:?}");
    assert_eq!(disk(&plan.status, 0).upload_id.as_deref(), Some("up-1"));
    let resumed = Fixture::one().after(&plan).decide(&idle(0));
    assert_eq!(resumed.steps, [EcsAction::Upload { disk: 0 }]);
    assert_eq!(reasons(&resumed), [(false, "UploadResumed")]);
}

#[test]
fn a_restart_clears_the_upload_id_and_the_resume_point() {
    let fixture = Fixture::one().with_status(half_uploaded());
    let plan = fixture.decide(&observed(UploadObserved::Failed {
        disk: 0,
        failure: Failure::minted("NoSuchUpload", "the upload was aborted".into()),
        restart: true,
    }));
    let entry = disk(&plan.status, 0);
    assert_eq!(
        (
            entry.upload_id,
            entry.part_size,
            entry.parts_done,
            entry.bytes_done,
            entry.sha256_state,
            entry.validator
        ),
        (None, None, 0, 0, None, None)
    );
    assert_eq!(plan.status.upload.as_ref().unwrap().bytes_done, 0);
    let again = Fixture::one().after(&plan).decide(&idle(0));
    assert_eq!(again.steps, [EcsAction::Upload { disk: 0 }]);
    assert_eq!(reasons(&again), [(false, "UploadStarted")]);
}

#[test]
fn a_local_file_in_the_cluster_stalls_with_source_file_unsupported() {
    let file_source = ONE_SOURCE.replace(
        "url: http://127.0.0.1:8099/images/ubuntu.qcow2",
        "file: /var/images/ubuntu.qcow2",
    );
    let fixture = Fixture::new(&file_source);
    let plan = fixture.decide(&idle(0));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.status.phase, Some(Phase::Failed));
    let stalled = conditions::find(&plan.status.conditions, types::STALLED).unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", decision::SOURCE_FILE_UNSUPPORTED)
    );
    assert!(
        stalled.message.contains("source.url") && stalled.message.contains("import -f"),
        "{}",
        stalled.message
    );
    assert_eq!(plan.requeue, None);
    // The one-shot `import -f` reads local files.
    let local = Observed {
        local_files: true,
        ..idle(0)
    };
    assert_eq!(
        Fixture::new(&file_source).decide(&local).steps,
        [EcsAction::Upload { disk: 0 }]
    );
}

#[test]
fn a_paused_resource_starts_no_upload() {
    let mut fixture = Fixture::one();
    fixture.paused = true;
    let plan = fixture.decide(&idle(0));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(condition(&plan.status, types::READY).1, "Paused");
}

#[test]
fn the_uploaded_object_is_removed_once_the_image_is_available() {
    let fixture = Fixture::one().with_status(available_uploaded(false));
    let seen = Observed {
        source: SourceObserved {
            image: Lookup::Found(available_image()),
            task: Lookup::NotAsked,
        },
        ..Observed::default()
    };
    let plan = fixture.decide(&seen);
    assert_eq!(plan.steps, [EcsAction::DeleteObject { disk: 0 }]);
    let concluded = fixture.conclude(&plan, &Outcome::default());
    assert!(disk(&concluded.status, 0).removed);
    assert_eq!(reasons(&concluded), [(false, "SourceObjectRemoved")]);
    assert!(
        concluded.events[0]
            .message
            .contains("oss://golden-images/ubuntu/22.04.qcow2")
    );
    // Removed once: the next look plans nothing more for it.
    let next = Fixture::one().after(&concluded).decide(&seen);
    assert!(next.steps.is_empty(), "{:?}", next.steps);
    // A failed removal records nothing, so it runs again.
    let failed = fixture.conclude(
        &plan,
        &Outcome {
            failure: Some(Failure::minted("NetworkError", "reset".into())),
            ..Outcome::default()
        },
    );
    assert!(!disk(&failed.status, 0).removed);
    // `cleanup: Retain` keeps the object.
    let retained =
        Fixture::new(&ONE_SOURCE.replace("size: 1000", "size: 1000\n        cleanup: Retain"))
            .with_status(available_uploaded(false));
    assert!(retained.decide(&seen).steps.is_empty());
}

#[test]
fn a_deletion_aborts_the_upload_before_the_image_is_cleaned_up() {
    let mut status = half_uploaded();
    // An image recorded as well, to see the order.
    status.image_id = Some("m-1".into());
    let mut fixture = Fixture::one().with_status(status);
    fixture.deleting = true;
    let gone = Observed {
        source: SourceObserved {
            image: Lookup::Found(available_image()),
            task: Lookup::NotAsked,
        },
        ..Observed::default()
    };
    let plan = fixture.decide(&gone);
    assert_eq!(
        plan.steps,
        [EcsAction::AbortUpload {
            disk: 0,
            upload_id: "up-1".into()
        }]
    );
    assert_eq!(plan.finalize, Finalize::No);
    assert_eq!(plan.status.phase, Some(Phase::Deleting));
    let concluded = fixture.conclude(&plan, &Outcome::default());
    assert_eq!(disk(&concluded.status, 0).upload_id, None);
    assert_eq!(reasons(&concluded), [(false, "UploadAborted")]);
    let mut next = Fixture::one().after(&concluded);
    next.deleting = true;
    let then = next.decide(&gone);
    assert_eq!(
        then.steps,
        [EcsAction::DeleteImage {
            image_id: "m-1".into()
        }]
    );
}

#[test]
fn a_deletion_aborts_a_running_upload_not_yet_recorded() {
    let mut fixture = Fixture::one();
    fixture.deleting = true;
    let plan = fixture.decide(&observed(UploadObserved::Running {
        disk: 0,
        progress: progress(100),
    }));
    assert_eq!(
        plan.steps,
        [EcsAction::AbortUpload {
            disk: 0,
            upload_id: "up-1".into()
        }]
    );
}

#[test]
fn a_deletion_removes_an_uploaded_object_before_the_image() {
    let mut fixture = Fixture::one().with_status(available_uploaded(false));
    fixture.deleting = true;
    let seen = Observed {
        source: SourceObserved {
            image: Lookup::Found(available_image()),
            task: Lookup::NotAsked,
        },
        ..Observed::default()
    };
    let plan = fixture.decide(&seen);
    assert_eq!(plan.steps, [EcsAction::DeleteObject { disk: 0 }]);
    let concluded = fixture.conclude(&plan, &Outcome::default());
    let mut next = Fixture::one().after(&concluded);
    next.deleting = true;
    assert_eq!(
        next.decide(&seen).steps,
        [EcsAction::DeleteImage {
            image_id: "m-1".into()
        }]
    );
}

#[test]
fn an_image_deleted_outside_is_uploaded_again_when_its_object_was_removed() {
    let fixture = Fixture::one().with_status(available_uploaded(true));
    let missing = observed(UploadObserved::NotAsked);
    let plan = fixture.decide(&missing);
    assert_eq!(plan.steps, [EcsAction::Upload { disk: 0 }]);
    assert!(!imports(&plan));
    assert_eq!(plan.status.phase, Some(Phase::Uploading));
    assert_eq!(plan.status.image_id, None);
    assert_eq!(plan.status.reimports, Some(1));
    let entry = disk(&plan.status, 0);
    assert!(!entry.uploaded && !entry.removed && entry.upload_id.is_none());
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.reason == decision::IMAGE_MISSING)
    );
    // An object kept in OSS is imported again at once.
    let kept = Fixture::one()
        .with_status(available_uploaded(false))
        .decide(&missing);
    assert_eq!(kept.steps, [EcsAction::Import]);
}

#[test]
fn an_upload_step_that_fails_to_start_is_decided_like_any_failure() {
    let fixture = Fixture::one();
    let plan = fixture.decide(&idle(0));
    let concluded = fixture.conclude(
        &plan,
        &Outcome {
            failure: Some(Failure::minted(
                "CredentialsSecretNotFound",
                "the headers Secret is missing".into(),
            )),
            ..Outcome::default()
        },
    );
    assert!(concluded.failed);
    assert_eq!(
        condition(&concluded.status, types::STALLED),
        ("True".into(), "CredentialsSecretNotFound".into())
    );
}

#[test]
fn every_source_code_stalls_until_the_spec_changes() {
    use ecs_image_operator::api::image_import::RetryRule;
    use ecs_image_operator::ecs::ErrorClass;
    use ecs_image_operator::ecs::error::operator_code_class;
    for code in [
        decision::SOURCE_CHECKSUM_MISMATCH,
        decision::SOURCE_SIZE_MISMATCH,
        decision::SOURCE_FORMAT_MISMATCH,
        decision::SOURCE_REFUSED,
        decision::SOURCE_FILE_UNSUPPORTED,
    ] {
        assert_eq!(
            operator_code_class(code),
            ErrorClass::InvalidRequest,
            "{code}"
        );
        assert_eq!(
            decision::retry_rule(operator_code_class(code)),
            RetryRule::OnChange
        );
    }
}

#[test]
fn a_deletion_removes_an_object_the_transfer_finished_but_status_does_not_record() {
    let mut fixture = Fixture::one().with_status(half_uploaded());
    fixture.deleting = true;
    let plan = fixture.decide(&observed(UploadObserved::Finished {
        disk: 0,
        done: done(),
    }));
    assert_eq!(plan.steps, [EcsAction::DeleteObject { disk: 0 }]);
    assert!(disk(&plan.status, 0).uploaded);
    // An upload the transfer already aborted has nothing left to abort.
    let aborted = fixture.decide(&observed(UploadObserved::Failed {
        disk: 0,
        failure: Failure::minted("NoSuchUpload", "aborted".into()),
        restart: true,
    }));
    assert!(
        !aborted
            .steps
            .iter()
            .any(|step| matches!(step, EcsAction::AbortUpload { .. })),
        "{:?}",
        aborted.steps
    );
}

/// The one-source mapping with another URL and digest, as a user edits it mid-upload.
fn one_source_changed() -> String {
    ONE_SOURCE
        .replace("images/ubuntu.qcow2", "images/ubuntu-fixed.qcow2")
        .replace(SHA, &"a".repeat(64))
}

/// A status whose disk 0 started uploading from `ONE_SOURCE` (its mapping recorded) and is
/// 300 bytes in.
fn started_and_running() -> ImageImportStatus {
    let fixture = Fixture::one();
    let started = fixture.decide(&idle(0));
    assert_eq!(started.steps, [EcsAction::Upload { disk: 0 }]);
    let fixture = fixture.after(&started);
    let recorded = disk(&fixture.status, 0);
    assert_eq!(recorded.oss_bucket.as_deref(), Some("golden-images"));
    assert_eq!(recorded.oss_object.as_deref(), Some("ubuntu/22.04.qcow2"));
    assert_eq!(recorded.mapping_digest.as_deref().map(str::len), Some(16));
    let running = fixture.decide(&observed(UploadObserved::Running {
        disk: 0,
        progress: progress(300),
    }));
    read_back(&running.status)
}

#[test]
fn a_mapping_changed_while_it_uploads_aborts_the_old_upload_and_starts_afresh() {
    let status = started_and_running();
    let old_digest = disk(&status, 0).mapping_digest;
    let changed = Fixture::new(&one_source_changed()).with_status(status);
    let plan = changed.decide(&observed(UploadObserved::Running {
        disk: 0,
        progress: progress(400),
    }));
    assert_eq!(
        plan.steps,
        [EcsAction::AbortUpload {
            disk: 0,
            upload_id: "up-1".into()
        }]
    );
    assert!(!imports(&plan));
    assert_eq!(plan.status.phase, Some(Phase::Uploading));
    assert!(
        reasons(&plan).contains(&(false, "UploadSourceChanged")),
        "{:?}",
        plan.events
    );
    let reset = disk(&plan.status, 0);
    assert_eq!(reset.upload_id, None, "the old upload is not resumed");
    assert_eq!(reset.bytes_done, 0);
    assert_eq!(reset.mapping_digest, None);
    // The next pass uploads the mapping as it is now, from byte 0.
    let next = Fixture::new(&one_source_changed()).after(&plan);
    let restarted = next.decide(&idle(0));
    assert_eq!(restarted.steps, [EcsAction::Upload { disk: 0 }]);
    let recorded = disk(&restarted.status, 0);
    assert!(recorded.mapping_digest.is_some());
    assert_ne!(recorded.mapping_digest, old_digest);
    assert!(reasons(&restarted).contains(&(false, "UploadStarted")));
}

#[test]
fn an_object_uploaded_for_an_old_mapping_is_uploaded_again_before_the_import() {
    let fixture = Fixture::one().with_status(started_and_running());
    let finished = fixture.decide(&observed(UploadObserved::Finished {
        disk: 0,
        done: done(),
    }));
    // Finished, and the import planned at once: the spec had not changed.
    assert!(imports(&finished), "{:?}", finished.steps);
    // The user changes the object before the import was asked for (the status of the finished
    // upload, without the import's).
    let mut status = read_back(&finished.status);
    status.image_id = None;
    status.import_task_id = None;
    let changed = Fixture::new(&ONE_SOURCE.replace("ubuntu/22.04.qcow2", "ubuntu/fixed.qcow2"))
        .with_status(status);
    let plan = changed.decide(&idle(0));
    assert!(plan.steps.is_empty(), "nothing to abort: {:?}", plan.steps);
    assert!(!imports(&plan));
    assert!(!disk(&plan.status, 0).uploaded);
    assert!(reasons(&plan).contains(&(false, "UploadSourceChanged")));
}

#[test]
fn a_record_of_the_previous_release_without_a_mapping_digest_is_taken_as_it_is() {
    let changed = Fixture::new(&one_source_changed()).with_status(half_uploaded());
    let plan = changed.decide(&observed(UploadObserved::Running {
        disk: 0,
        progress: progress(600),
    }));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(disk(&plan.status, 0).bytes_done, 600);
    assert!(!reasons(&plan).contains(&(false, "UploadSourceChanged")));
}
