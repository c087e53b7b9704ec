//! Tests of the pure lease decision ([`plan`]) and of the timing checks.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::ObjectMeta;

use super::LeaseConfig;
use super::plan::{Plan, plan};

fn config() -> LeaseConfig {
    LeaseConfig::new("ops", "lease", "me")
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap_or_default()
}

fn held(holder: &str, renewed: &str, seconds: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("lease".into()),
            resource_version: Some("7".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            acquire_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }),
    }
}

/// The spec of a conditional replace on the Lease as read (resourceVersion 7), or `None`.
fn replaced(plan: Plan) -> Option<LeaseSpec> {
    match plan {
        Plan::Replace(lease) if lease.metadata.resource_version.as_deref() == Some("7") => {
            lease.spec
        }
        _ => None,
    }
}

#[test]
fn an_absent_lease_is_created_with_us_as_holder() {
    // Anything but a create leaves an empty spec, which fails the assertions below.
    let spec = match plan(None, &config(), at("2026-01-01T00:00:00Z")) {
        Plan::Create(lease) => lease.spec.unwrap_or_default(),
        _ => LeaseSpec::default(),
    };
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
}

#[test]
fn a_valid_lease_of_another_is_left_alone() {
    let lease = held("other", "2026-01-01T00:00:00Z", 15);
    assert_eq!(
        plan(Some(lease), &config(), at("2026-01-01T00:00:14Z")),
        Plan::Wait {
            holder: "other".into()
        }
    );
}

#[test]
fn an_expired_lease_is_taken_conditionally_and_counts_a_transition() {
    let lease = held("other", "2026-01-01T00:00:00Z", 15);
    let spec =
        replaced(plan(Some(lease), &config(), at("2026-01-01T00:00:16Z"))).unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert_eq!(spec.renew_time, Some(MicroTime(at("2026-01-01T00:00:16Z"))));
}

#[test]
fn our_own_lease_is_renewed_without_a_transition() {
    let lease = held("me", "2026-01-01T00:00:00Z", 15);
    let spec =
        replaced(plan(Some(lease), &config(), at("2026-01-01T00:00:05Z"))).unwrap_or_default();
    assert_eq!(spec.lease_transitions, Some(3));
    assert_eq!(
        spec.acquire_time,
        Some(MicroTime(at("2026-01-01T00:00:00Z")))
    );
    assert_eq!(spec.renew_time, Some(MicroTime(at("2026-01-01T00:00:05Z"))));
}

#[test]
fn a_released_lease_is_free_at_once() {
    let mut lease = held("", "2026-01-01T00:00:00Z", 15);
    let spec = replaced(plan(
        Some(lease.clone()),
        &config(),
        at("2026-01-01T00:00:01Z"),
    ))
    .unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
    }
    let spec =
        replaced(plan(Some(lease), &config(), at("2026-01-01T00:00:01Z"))).unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
}

#[test]
fn timings_that_leave_no_room_to_retry_are_refused() {
    assert!(config().validate().is_ok());
    let mut bad = config();
    bad.renew_interval = Duration::from_secs(11);
    assert!(bad.validate().is_err());
    let mut fractional = config();
    fractional.lease_duration = Duration::from_millis(1500);
    assert!(fractional.validate().is_err());
    let mut no_margin = config();
    no_margin.safety_margin = Duration::ZERO;
    assert!(no_margin.validate().is_err());
}
