//! Kubernetes Events (`events.k8s.io/v1`) for phase changes and for what blocks progress.
//!
//! kube-runtime's `Recorder` keeps a full copy of every Event it published in the last six minutes
//! (to count repeats as a series). With 10,000 resources going through their phases that copy is
//! tens of MiB, most of the operator's memory after a burst. This publisher counts repeated
//! Warnings (a blocked deletion retried) in a series as the `Recorder` does, remembering a few
//! dozen bytes per recent Warning: a hash of what makes two Warnings "the same" and when the first
//! one was made, from which its name is derived again. Normal Events (phase changes) are not
//! remembered.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};

use crate::api::conditions;

/// A Warning repeated within this window (same object and reason) bumps the first one's series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What one Event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note<'a> {
    /// A Warning rather than a Normal Event.
    pub warning: bool,
    /// CamelCase reason (made to follow the API conventions, and at most 128 characters, when sent).
    pub reason: &'a str,
    /// For people (at most 1,000 characters are sent).
    pub message: &'a str,
}

/// The first Event of a series, and how often it has been seen.
#[derive(Debug, Clone, Copy)]
struct Recent {
    first: Timestamp,
    last: Timestamp,
    count: i32,
}

/// Publishes Events as one reporting controller instance.
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    recent: Mutex<HashMap<u64, Recent>>,
    pruned: Mutex<Timestamp>,
}

impl EventPublisher {
    /// A publisher reporting as `controller` (and `instance`, the Pod's name, when known).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            recent: Mutex::new(HashMap::new()),
            pruned: Mutex::new(Timestamp::now()),
        }
    }

    /// How many Warnings are remembered for counting repeats.
    pub fn remembered(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Publishes `note` about `object`: a new Event, or, for a repeated Warning, the next count of
    /// the first one's series.
    pub async fn publish<K>(&self, object: &K, note: &Note<'_>) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = object.object_ref(&());
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = Timestamp::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if !note.warning {
            // Normal Events mark phase changes, which do not repeat within minutes: nothing to
            // count, so nothing to remember (10,000 imports make 30,000 of them).
            self.create(&api, regarding, &namespace, note, now).await?;
            return Ok(());
        }
        let key = series_key(&regarding, note);
        self.prune(now);
        let previous = self
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied()
            .filter(|recent| recent.last + SERIES_WINDOW > now);
        let recorded = match previous {
            Some(recent) => {
                let count = recent.count + 1;
                let name = event_name(&regarding, recent.first);
                let series = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) },
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await
                {
                    Ok(_) => Recent {
                        last: now,
                        count,
                        ..recent
                    },
                    // Deleted meanwhile (or expired by the API server): start a new one.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        self.create(&api, regarding, &namespace, note, now).await?
                    }
                    Err(error) => return Err(error),
                }
            }
            None => self.create(&api, regarding, &namespace, note, now).await?,
        };
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, recorded);
        Ok(())
    }

    async fn create(
        &self,
        api: &Api<Event>,
        regarding: ObjectReference,
        namespace: &str,
        note: &Note<'_>,
        now: Timestamp,
    ) -> Result<Recent, kube::Error> {
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name(&regarding, now)),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            action: Some("Reconcile".into()),
            reason: Some(event_reason(note.reason)),
            note: Some(note.message.chars().take(1000).collect()),
            type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        Ok(Recent {
            first: now,
            last: now,
            count: 1,
        })
    }

    /// Forgets series older than the window, at most once a minute (a scan of every entry).
    fn prune(&self, now: Timestamp) {
        let mut pruned = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
        if *pruned + SignedDuration::from_mins(1) > now {
            return;
        }
        *pruned = now;
        drop(pruned);
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, recent| recent.last + SERIES_WINDOW > now);
    }
}

/// The longest reason `events.k8s.io/v1` stores.
const MAX_EVENT_REASON_CHARS: usize = 128;

/// `reason` as the API conventions want it (see [`conditions::reason_of`]), within the Events
/// API's limit: a cut could end on a `:` or `,`, so the cut is conformed again.
fn event_reason(reason: &str) -> String {
    let reason = conditions::reason_of(reason);
    if reason.len() <= MAX_EVENT_REASON_CHARS {
        return reason;
    }
    let cut: String = reason.chars().take(MAX_EVENT_REASON_CHARS).collect();
    conditions::reason_of(&cut)
}

/// What makes two Events the same series: the object (by UID), the type and the reason.
fn series_key(regarding: &ObjectReference, note: &Note<'_>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    regarding.uid.hash(&mut hasher);
    regarding.namespace.hash(&mut hasher);
    regarding.name.hash(&mut hasher);
    note.warning.hash(&mut hasher);
    note.reason.hash(&mut hasher);
    hasher.finish()
}

/// `<object name>.<first occurrence in nanoseconds, hex>`, as kube's recorder names Events.
fn event_name(regarding: &ObjectReference, first: Timestamp) -> String {
    format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or("ecs-image-operator"),
        first.as_nanosecond()
    )
}
