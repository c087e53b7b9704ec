//! Tests of the world: imports, look-ups, failures, cancelling, idempotency, deletion and quotas.

use jiff::{SignedDuration, Timestamp};

use super::*;

fn world() -> World {
    let mut world = World::new(default_regions(), ImportTiming::default(), 7);
    world.add_object(OssObject {
        bucket: "b".into(),
        key: "disk.raw".into(),
        region: "cn-hangzhou".into(),
        size: 2 * GIB,
        virtual_size_gib: 20,
        format: "RAW".into(),
        storage_class: "Standard".into(),
        readable: true,
        encrypted: false,
    });
    world
}

fn spec() -> ImportSpec {
    ImportSpec {
        region: "cn-hangzhou".into(),
        name: "img".into(),
        role_name: DEFAULT_IMPORT_ROLE.into(),
        disks: vec![DiskSpec {
            bucket: "b".into(),
            object: "disk.raw".into(),
            ..Default::default()
        }],
        fingerprint: "f".into(),
        ..Default::default()
    }
}

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

#[test]
fn an_import_progresses_and_finishes_after_its_duration() {
    let mut world = world();
    let result = world.import("acct", &spec(), t0()).unwrap();
    let task = world.task("acct", "cn-hangzhou", &result.task_id).unwrap();
    // 60 s + 2 GiB × 30 s.
    assert_eq!(task.duration, SignedDuration::from_secs(120));
    assert_eq!(task.state(t0()), TaskState::Processing { progress: 0 });
    let half = t0() + SignedDuration::from_secs(60);
    assert_eq!(task.state(half), TaskState::Processing { progress: 50 });
    let end = t0() + SignedDuration::from_secs(120);
    assert_eq!(task.state(end), TaskState::Finished { at: end });
    let image = world
        .image("acct", "cn-hangzhou", &result.image_id)
        .unwrap();
    assert_eq!(world.image_state(image, half), ("Creating", 50));
    assert_eq!(world.image_state(image, end), ("Available", 100));
}

#[test]
fn images_and_tasks_among_ids_are_looked_up_in_creation_order_within_the_account() {
    let mut world = world();
    let mut made = Vec::new();
    for n in 0..3 {
        let mut spec = spec();
        spec.name = format!("img-{n}");
        spec.fingerprint = format!("f-{n}");
        made.push(world.import("acct", &spec, t0()).unwrap());
    }
    let mut other = spec();
    other.name = "other".into();
    other.fingerprint = "f-other".into();
    let foreign = world.import("other-acct", &other, t0()).unwrap();
    let ids = |images: Vec<&ImageRec>| images.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    // Asked out of order, twice, with an unknown id and another account's image.
    let asked = [
        made[2].image_id.as_str(),
        "m-unknown",
        made[0].image_id.as_str(),
        foreign.image_id.as_str(),
        made[2].image_id.as_str(),
    ];
    assert_eq!(
        ids(world.images_among("acct", "cn-hangzhou", &asked)),
        vec![made[0].image_id.clone(), made[2].image_id.clone()]
    );
    assert_eq!(ids(world.images_among("acct", "cn-hangzhou", &[])).len(), 3);
    assert!(world.images_among("acct", "cn-beijing", &asked).is_empty());
    let tasks = [made[1].task_id.as_str(), foreign.task_id.as_str()];
    let found: Vec<String> = world
        .tasks_among("acct", "cn-hangzhou", &tasks)
        .iter()
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(found, vec![made[1].task_id.clone()]);
    assert_eq!(world.tasks_among("acct", "cn-hangzhou", &[]).len(), 3);
}

#[test]
fn a_wrong_format_fails_the_task_part_way() {
    let mut world = world();
    let mut spec = spec();
    spec.disks[0].format = Some("QCOW2".into());
    let result = world.import("acct", &spec, t0()).unwrap();
    let task = world.task("acct", "cn-hangzhou", &result.task_id).unwrap();
    let later = t0() + SignedDuration::from_secs(100);
    match task.state(later) {
        TaskState::Failed { code, progress, .. } => {
            assert_eq!(code, "InvalidImageFormat.Malformed");
            assert_eq!(progress, 40);
        }
        other => unreachable!("unexpected {other:?}"),
    }
}

#[test]
fn cancelling_stops_the_task_and_fails_the_image() {
    let mut world = world();
    let result = world.import("acct", &spec(), t0()).unwrap();
    let at = t0() + SignedDuration::from_secs(30);
    world
        .cancel("acct", "cn-hangzhou", &result.task_id, at)
        .unwrap();
    let task = world.task("acct", "cn-hangzhou", &result.task_id).unwrap();
    let later = t0() + SignedDuration::from_secs(500);
    assert_eq!(task.state(later).status(), TASK_STATUS_CANCELLED);
    assert_eq!(task.state(later).progress(), 25);
    let again = world.cancel("acct", "cn-hangzhou", &result.task_id, later);
    assert_eq!(again.unwrap_err().code, "InvalidTaskId.IncorrectTaskStatus");
    world
        .delete_image("acct", "cn-hangzhou", &result.image_id, later, false)
        .unwrap();
}

#[test]
fn the_same_token_returns_the_same_image_and_a_changed_request_is_refused() {
    let mut world = world();
    let mut spec = spec();
    spec.client_token = Some("tok".into());
    let first = world.import("acct", &spec, t0()).unwrap();
    let second = world.import("acct", &spec, t0()).unwrap();
    assert_eq!(first.image_id, second.image_id);
    assert!(second.replayed);
    assert_eq!(world.all_images().count(), 1);
    spec.fingerprint = "other".into();
    let third = world.import("acct", &spec, t0());
    assert_eq!(third.unwrap_err().code, "IdempotentParameterMismatch");
}

#[test]
fn deleting_an_importing_image_is_refused() {
    let mut world = world();
    let result = world.import("acct", &spec(), t0()).unwrap();
    let refused = world.delete_image("acct", "cn-hangzhou", &result.image_id, t0(), false);
    assert_eq!(refused.unwrap_err().code, "ImageIsImporting");
    let missing = world.delete_image("acct", "cn-hangzhou", "m-nope", t0(), false);
    assert_eq!(missing.unwrap_err().code, "InvalidImageId.NotFound");
}

#[test]
fn quotas_names_and_objects_are_checked() {
    let mut world = world();
    world.import("acct", &spec(), t0()).unwrap();
    let duplicate = world.import("acct", &spec(), t0());
    assert_eq!(duplicate.unwrap_err().code, "InvalidImageName.Duplicated");
    world.patch_account(
        "acct",
        AccountPatch {
            image_quota: Some(1),
            ..Default::default()
        },
    );
    let mut other = spec();
    other.name = "other".into();
    assert_eq!(
        world.import("acct", &other, t0()).unwrap_err().code,
        "QuotaExceed.Image"
    );
    other.disks[0].object = "missing.raw".into();
    assert_eq!(
        world.import("b-acct", &other, t0()).unwrap_err().code,
        "InvalidOSSObject.NotFound"
    );
}

/// An `Available` image of `acct` in cn-hangzhou, at `t0() + 120 s`.
fn available_image(world: &mut World) -> (String, Timestamp) {
    let result = world.import("acct", &spec(), t0()).unwrap();
    (result.image_id, t0() + SignedDuration::from_secs(120))
}

fn copy_spec(source: &str, destination: &str) -> CopySpec {
    CopySpec {
        source_region: "cn-hangzhou".into(),
        source_image_id: source.into(),
        destination_region: destination.into(),
        tags: vec![("uid".into(), "u-1".into())],
        fingerprint: format!("to-{destination}"),
        ..Default::default()
    }
}

#[test]
fn a_copy_is_creating_in_its_region_with_rising_progress_then_available() {
    let mut world = world();
    let (source, ready) = available_image(&mut world);
    let copy = world
        .copy_image("acct", &copy_spec(&source, "cn-shanghai"), ready)
        .unwrap();
    let image = world.image("acct", "cn-shanghai", &copy.image_id).unwrap();
    // 60 s + 20 GiB × 10 s.
    assert_eq!(
        image.copy.as_ref().unwrap().duration,
        SignedDuration::from_secs(260)
    );
    assert_eq!(image.tags, vec![("uid".to_string(), "u-1".to_string())]);
    assert_eq!(image.disks.len(), 1);
    assert_eq!(world.image_state(image, ready), ("Creating", 0));
    let half = ready + SignedDuration::from_secs(130);
    assert_eq!(world.image_state(image, half), ("Creating", 50));
    assert_eq!(world.image_remain_seconds(image, half), 130);
    let done = ready + SignedDuration::from_secs(260);
    assert_eq!(world.image_state(image, done), ("Available", 100));
    assert!(world.image("acct", "cn-hangzhou", &copy.image_id).is_none());
}

#[test]
fn a_copy_needs_an_available_source_another_open_region_and_room() {
    let mut world = world();
    let importing = world.import("acct", &spec(), t0()).unwrap().image_id;
    let code = |world: &mut World, spec: &CopySpec, at| {
        world.copy_image("acct", spec, at).unwrap_err().code
    };
    assert_eq!(
        code(&mut world, &copy_spec(&importing, "cn-shanghai"), t0()),
        "IncorrectImageStatus"
    );
    let ready = t0() + SignedDuration::from_secs(120);
    assert_eq!(
        code(&mut world, &copy_spec("m-nope", "cn-shanghai"), ready),
        "InvalidImageId.NotFound"
    );
    assert_eq!(
        code(&mut world, &copy_spec(&importing, "cn-hangzhou"), ready),
        "IncorrectDestinationRegion"
    );
    assert_eq!(
        code(&mut world, &copy_spec(&importing, "me-east-1"), ready),
        "RegionNotSupportCopy"
    );
    world.patch_account(
        "acct",
        AccountPatch {
            closed_regions: Some(vec!["cn-beijing".into()]),
            region_image_quotas: Some([("cn-shanghai".to_string(), 0)].into()),
            ..Default::default()
        },
    );
    assert_eq!(
        code(&mut world, &copy_spec(&importing, "cn-beijing"), ready),
        "RegionNotSupportCopy"
    );
    assert_eq!(
        code(&mut world, &copy_spec(&importing, "cn-shanghai"), ready),
        "QuotaExceed.Image"
    );
    // The other regions carry on.
    world
        .copy_image("acct", &copy_spec(&importing, "cn-qingdao"), ready)
        .unwrap();
}

#[test]
fn the_same_copy_token_returns_the_same_copy() {
    let mut world = world();
    let (source, ready) = available_image(&mut world);
    let mut spec = copy_spec(&source, "cn-shanghai");
    spec.client_token = Some("u-1-cn-shanghai".into());
    let first = world.copy_image("acct", &spec, ready).unwrap();
    let second = world.copy_image("acct", &spec, ready).unwrap();
    assert_eq!(first.image_id, second.image_id);
    assert!(second.replayed && !first.replayed);
    assert_eq!(world.all_images().count(), 2);
    spec.fingerprint = "changed".into();
    let changed = world.copy_image("acct", &spec, ready);
    assert_eq!(changed.unwrap_err().code, "IdempotentParameterMismatch");
}

#[test]
fn cancelling_a_running_copy_deletes_it_and_a_finished_one_is_refused() {
    let mut world = world();
    let (source, ready) = available_image(&mut world);
    let running = world
        .copy_image("acct", &copy_spec(&source, "cn-shanghai"), ready)
        .unwrap()
        .image_id;
    let deleting = world.delete_image("acct", "cn-shanghai", &running, ready, false);
    assert_eq!(deleting.unwrap_err().code, "OperationDenied.ImageCopying");
    let source_deleting = world.delete_image("acct", "cn-hangzhou", &source, ready, false);
    assert_eq!(
        source_deleting.unwrap_err().code,
        "OperationDenied.ImageCopying"
    );
    world
        .cancel_copy("acct", "cn-shanghai", &running, ready)
        .unwrap();
    assert!(world.image("acct", "cn-shanghai", &running).is_none());
    assert!(world.image("acct", "cn-hangzhou", &source).is_some());
    let finished = world
        .copy_image("acct", &copy_spec(&source, "cn-qingdao"), ready)
        .unwrap()
        .image_id;
    let later = ready + SignedDuration::from_secs(300);
    let refused = world.cancel_copy("acct", "cn-qingdao", &finished, later);
    assert_eq!(refused.unwrap_err().code, "IncorrectImageStatus");
    let not_a_copy = world.cancel_copy("acct", "cn-hangzhou", &source, later);
    assert_eq!(not_a_copy.unwrap_err().code, "ImageCreatedNotFromCopy");
}

#[test]
fn shares_need_existing_other_accounts_and_keep_the_image_from_deletion() {
    let mut world = world();
    world.add_account("friend");
    let (image, ready) = available_image(&mut world);
    let share = |world: &mut World, add: &[&str], remove: &[&str]| {
        world.modify_shares("acct", "cn-hangzhou", &image, add, remove, ready)
    };
    assert_eq!(
        share(&mut world, &["stranger"], &[]).unwrap_err().code,
        "InvalidAccount.NotFound"
    );
    assert_eq!(
        share(&mut world, &["acct"], &[]).unwrap_err().code,
        "InvalidAccount.Forbbiden"
    );
    share(&mut world, &["friend", "friend"], &[]).unwrap();
    let shared = world.shares("acct", "cn-hangzhou", &image).unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].account, "friend");
    let refused = world.delete_image("acct", "cn-hangzhou", &image, ready, false);
    assert_eq!(refused.unwrap_err().code, "ImageUseShared");
    share(&mut world, &[], &["friend"]).unwrap();
    world
        .delete_image("acct", "cn-hangzhou", &image, ready, false)
        .unwrap();
}

#[test]
fn an_image_is_shared_with_at_most_its_share_quota() {
    let mut world = world();
    for friend in ["f1", "f2", "f3"] {
        world.add_account(friend);
    }
    world.patch_account(
        "acct",
        AccountPatch {
            share_quota: Some(2),
            ..Default::default()
        },
    );
    let (image, ready) = available_image(&mut world);
    let too_many = world.modify_shares(
        "acct",
        "cn-hangzhou",
        &image,
        &["f1", "f2", "f3"],
        &[],
        ready,
    );
    assert_eq!(too_many.unwrap_err().code, "QuotaExceed.ShareImageUser");
    assert!(
        world
            .shares("acct", "cn-hangzhou", &image)
            .unwrap()
            .is_empty()
    );
    let importing = world.modify_shares("acct", "cn-hangzhou", &image, &["f1"], &[], t0());
    assert_eq!(importing.unwrap_err().code, "IncorrectImageStatus");
}
