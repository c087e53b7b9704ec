//! What an attempt writes, decided from the Lease as read and the wall clock, without I/O: the
//! election's rules in one pure function, so the tests can check each case without an API server.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::ObjectMeta;

use super::LeaseConfig;

/// The write an attempt makes, decided from what was read.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Plan {
    Create(Lease),
    Replace(Lease),
    Wait { holder: String },
}

/// Decides the write from the Lease as read (`None`: absent) at wall-clock time `now`.
pub(super) fn plan(current: Option<Lease>, config: &LeaseConfig, now: Timestamp) -> Plan {
    let duration = config.duration_seconds();
    let Some(mut lease) = current else {
        return Plan::Create(Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        });
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec
        .holder_identity
        .clone()
        .filter(|holder| !holder.is_empty());
    match holder {
        Some(holder) if holder == config.identity => {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration);
            if spec.acquire_time.is_none() {
                spec.acquire_time = Some(MicroTime(now));
            }
        }
        Some(holder) if !expired(spec, now) => return Plan::Wait { holder },
        _ => {
            spec.holder_identity = Some(config.identity.clone());
            spec.lease_duration_seconds = Some(duration);
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
    }
    // `lease.metadata.resource_version` is still the one read: the replace is conditional on it.
    Plan::Replace(lease)
}

/// Whether a held Lease's `renewTime + leaseDurationSeconds` lies before `now`; a Lease missing
/// either field cannot prove it is alive.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    let Ok(expiry) = renewed
        .0
        .checked_add(jiff::SignedDuration::from_secs(i64::from(seconds)))
    else {
        return false;
    };
    expiry < now
}
