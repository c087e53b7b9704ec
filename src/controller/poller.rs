//! Batched following of running imports and copies: one poll per (region, account) asks ECS about
//! up to 100 images per `DescribeImages` call, and wakes only the resources whose image changed.
//! A resource is followed in each region it has an image in: its source, and each copy of its
//! distribution.
//!
//! Per round that is `ceil(images in flight / 100)` read calls per account and region, however
//! many resources there are; a per-resource poller (Terraform's provider) makes one call per import.
//!
//! Finished imports are followed too, but only every resync interval (`--resync-seconds`), in the
//! same batches: an image deleted or changed outside the operator wakes its resource, which
//! imports it again or sets name, description and tags back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use tokio::sync::Notify;

use super::decision::{ImageView, Lookup};
use super::port::EcsPort;
use crate::ecs::CredentialProvider;
use crate::ecs::api::{Image, MAX_IDS_PER_CALL};

/// One account in one region: the unit of batching.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// Region.
    pub region: String,
    /// AccessKey ID of the account's credentials.
    pub account: String,
}

struct Tracked {
    image_id: String,
    latest: Option<Lookup<ImageView>>,
    /// A finished import: looked at only when the group's resync is due.
    settled: bool,
}

struct Group<K> {
    credentials: Arc<CredentialProvider>,
    tracked: HashMap<K, Tracked>,
    /// When the settled images of the group were last looked at.
    resynced: Option<Instant>,
}

struct State<K> {
    groups: HashMap<GroupKey, Group<K>>,
    /// The groups each resource has an image in (one image per group: a resource's images are in
    /// different regions).
    groups_of: HashMap<K, Vec<GroupKey>>,
}

/// One image of a resource to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    /// Its region and account.
    pub group: GroupKey,
    /// The image.
    pub image_id: String,
    /// A finished image, looked at only on the resync schedule; else every round.
    pub settled: bool,
}

impl<K: Eq + Hash> State<K> {
    /// Takes `key` out of `group`, and the group out when nothing is left in it.
    fn leave(&mut self, group: &GroupKey, key: &K) {
        if let Some(entry) = self.groups.get_mut(group) {
            entry.tracked.remove(key);
            if entry.tracked.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

/// Follows running imports in batches. `K` identifies a resource (an `ObjectRef` in the controller).
pub struct Poller<K, P> {
    ecs: Arc<P>,
    state: Mutex<State<K>>,
    wake: UnboundedSender<K>,
    new_work: Notify,
    interval: Duration,
    resync: Duration,
}

/// How often finished imports are looked at unless [`Poller::with_resync`] says otherwise.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);

/// Newly tracked imports wait this long for others to join their first round, so a burst of
/// creations (or an operator restart) is looked up in a few batched calls instead of one each.
const BATCH_WINDOW: Duration = Duration::from_millis(250);

/// What one polling round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// `DescribeImages` calls made.
    pub calls: usize,
    /// Resources whose image changed and were woken.
    pub woken: usize,
    /// Calls that failed (their resources keep their last state).
    pub failed_calls: usize,
}

impl<K, P> Poller<K, P>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    P: EcsPort,
{
    /// A poller that wakes resources by sending their key on `wake`.
    pub fn new(ecs: Arc<P>, wake: UnboundedSender<K>, interval: Duration) -> Self {
        Self {
            ecs,
            state: Mutex::new(State {
                groups: HashMap::new(),
                groups_of: HashMap::new(),
            }),
            wake,
            new_work: Notify::new(),
            interval,
            resync: DEFAULT_RESYNC,
        }
    }

    /// Looks at finished imports every `resync` instead.
    #[must_use]
    pub fn with_resync(mut self, resync: Duration) -> Self {
        self.resync = resync;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // A panic while holding the lock cannot leave the maps half-updated in a harmful way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows `image_id` for `key` every round until [`Poller::untrack`] or [`Poller::settle`];
    /// returns the latest observation, if any round has seen it yet. `key` is followed in this
    /// group only.
    pub fn track(
        &self,
        key: K,
        group: GroupKey,
        credentials: Arc<CredentialProvider>,
        image_id: &str,
    ) -> Option<Lookup<ImageView>> {
        self.follow_one(key, group, credentials, image_id, false)
    }

    /// Follows the finished import `image_id` of `key` every resync interval only; returns the
    /// latest observation, if any round has seen it yet (the caller compares it with the spec).
    /// `key` is followed in this group only.
    pub fn settle(
        &self,
        key: K,
        group: GroupKey,
        credentials: Arc<CredentialProvider>,
        image_id: &str,
    ) -> Option<Lookup<ImageView>> {
        self.follow_one(key, group, credentials, image_id, true)
    }

    fn follow_one(
        &self,
        key: K,
        group: GroupKey,
        credentials: Arc<CredentialProvider>,
        image_id: &str,
        settled: bool,
    ) -> Option<Lookup<ImageView>> {
        let followed = Followed {
            group,
            image_id: image_id.to_string(),
            settled,
        };
        self.follow(key, &credentials, &[followed]).pop().flatten()
    }

    /// Follows exactly `images` for `key` (its images in other groups are no longer followed);
    /// returns the latest observation of each, in order, where a round has seen it yet.
    pub fn follow(
        &self,
        key: K,
        credentials: &Arc<CredentialProvider>,
        images: &[Followed],
    ) -> Vec<Option<Lookup<ImageView>>> {
        let mut state = self.lock();
        let wanted: Vec<GroupKey> = images.iter().map(|image| image.group.clone()).collect();
        let before = state.groups_of.remove(&key).unwrap_or_default();
        for group in before.iter().filter(|group| !wanted.contains(group)) {
            state.leave(group, &key);
        }
        if !wanted.is_empty() {
            state.groups_of.insert(key.clone(), wanted);
        }
        let mut latest = Vec::with_capacity(images.len());
        let mut new_running = false;
        for image in images {
            let entry = state
                .groups
                .entry(image.group.clone())
                .or_insert_with(|| Group {
                    credentials: Arc::clone(credentials),
                    tracked: HashMap::new(),
                    resynced: None,
                });
            // Rotated credentials of the same account replace the old provider.
            entry.credentials = Arc::clone(credentials);
            let tracked = entry.tracked.entry(key.clone()).or_insert_with(|| Tracked {
                image_id: image.image_id.clone(),
                latest: None,
                settled: image.settled,
            });
            if tracked.image_id != image.image_id {
                *tracked = Tracked {
                    image_id: image.image_id.clone(),
                    latest: None,
                    settled: image.settled,
                };
            }
            tracked.settled = image.settled;
            new_running |= tracked.latest.is_none() && !image.settled;
            latest.push(tracked.latest.clone());
        }
        drop(state);
        // A settled image waits for the resync; a running one is looked at shortly.
        if new_running {
            self.new_work.notify_one();
        }
        latest
    }

    /// Stops following `key` (its imports and copies ended, or the resource is gone).
    pub fn untrack(&self, key: &K) {
        let mut state = self.lock();
        for group in state.groups_of.remove(key).unwrap_or_default() {
            state.leave(&group, key);
        }
    }

    /// How many resources are followed.
    pub fn tracked(&self) -> usize {
        self.lock().groups_of.len()
    }

    /// Runs rounds forever: every interval, and shortly after new imports are tracked; `on_round`
    /// sees what each round did.
    pub async fn run(&self, on_round: impl Fn(&RoundStats)) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = self.new_work.notified() => tokio::time::sleep(BATCH_WINDOW).await,
            }
            let stats = self.round().await;
            on_round(&stats);
            if stats.calls > 0 {
                tracing::debug!(
                    calls = stats.calls,
                    woken = stats.woken,
                    failed = stats.failed_calls,
                    "poll round"
                );
            }
        }
    }

    /// One round over every group: its running imports, and its finished ones when their resync
    /// is due.
    pub async fn round(&self) -> RoundStats {
        let work: Vec<(GroupKey, Arc<CredentialProvider>, Vec<String>)> = {
            let mut state = self.lock();
            let now = Instant::now();
            state
                .groups
                .iter_mut()
                .filter_map(|(key, group)| {
                    let due = group
                        .resynced
                        .is_none_or(|at| now.duration_since(at) >= self.resync);
                    let has_settled = group.tracked.values().any(|t| t.settled);
                    // The first round after a start looks at every image settled by then: what
                    // changed while the operator was not running is seen at once.
                    let resyncing = due && has_settled;
                    if resyncing {
                        group.resynced = Some(now);
                    }
                    let mut ids: Vec<String> = group
                        .tracked
                        .values()
                        .filter(|t| !t.settled || resyncing)
                        .map(|t| t.image_id.clone())
                        .collect();
                    ids.sort();
                    ids.dedup();
                    (!ids.is_empty()).then(|| (key.clone(), Arc::clone(&group.credentials), ids))
                })
                .collect()
        };
        let mut stats = RoundStats::default();
        for (group, credentials, ids) in work {
            for chunk in ids.chunks(MAX_IDS_PER_CALL) {
                stats.calls += 1;
                match self.ecs.images(&credentials, &group.region, chunk).await {
                    Ok(images) => {
                        let found: HashMap<String, ImageView> = images
                            .iter()
                            .map(|image| (image.image_id.clone(), image_view(image)))
                            .collect();
                        stats.woken += self.record(&group, chunk, &found);
                    }
                    Err(error) => {
                        stats.failed_calls += 1;
                        tracing::warn!(region = %group.region, code = error.code(), "polling imports failed: {error}");
                    }
                }
            }
        }
        stats
    }

    fn record(
        &self,
        group: &GroupKey,
        chunk: &[String],
        found: &HashMap<String, ImageView>,
    ) -> usize {
        let mut to_wake = Vec::new();
        {
            let mut state = self.lock();
            let Some(entry) = state.groups.get_mut(group) else {
                return 0;
            };
            for (key, tracked) in entry
                .tracked
                .iter_mut()
                .filter(|(_, t)| chunk.contains(&t.image_id))
            {
                let now = match found.get(&tracked.image_id) {
                    Some(view) => Lookup::Found(view.clone()),
                    None => Lookup::Missing,
                };
                if worth_waking(tracked.latest.as_ref(), &now) {
                    to_wake.push(key.clone());
                }
                tracked.latest = Some(now);
            }
        }
        let woken = to_wake.len();
        for key in to_wake {
            // The controller may have stopped; then nobody needs waking.
            let _ = self.wake.unbounded_send(key);
        }
        woken
    }
}

/// Whether a new observation is worth a reconcile (and so a status write): any change but
/// progress, or progress reaching another tenth. Progress moves on every round of a long import;
/// waking for each step would cost one status write per import per round (1,000 writes a second
/// with 1,000 imports polled every second) and queue the wake-ups of finished imports behind them.
/// The next reconcile, for whatever reason, still shows the latest progress.
fn worth_waking(before: Option<&Lookup<ImageView>>, now: &Lookup<ImageView>) -> bool {
    match (before, now) {
        (Some(Lookup::Found(before)), Lookup::Found(now)) => {
            let tenth = |view: &ImageView| view.progress.map(|p| p / 10);
            before.status != now.status
                || before.name != now.name
                || before.description != now.description
                || before.tags != now.tags
                || before.id != now.id
                || tenth(before) != tenth(now)
        }
        (before, now) => before != Some(now),
    }
}

/// The decision's view of an ECS image.
pub fn image_view(image: &Image) -> ImageView {
    ImageView {
        id: image.image_id.clone(),
        status: image.state(),
        progress: image.progress_percent(),
        name: image.image_name.clone(),
        description: image.description.clone(),
        tags: image
            .tags
            .iter()
            .map(|tag| (tag.key.clone(), tag.value.clone()))
            .collect(),
    }
}
