//! Whether the cached copy of a resource has caught up with the status this process last wrote.
//!
//! The controller reconciles from the watch cache, which lags a moment behind the operator's own
//! status writes. A reconcile triggered in that moment (by the watch event of the write before
//! the last) would decide on an older status: look up again what the newer status already
//! recorded, or plan again what was just done. The operator is the only writer of status, so a
//! cached status that differs from the last one written is an older one; such a reconcile waits
//! for the cache instead. Only briefly: after [`PATIENCE`] the cache is believed whatever it says,
//! so nothing can wedge a resource.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::api::image_import::ImageImportStatus;

/// How long a written status is waited for in the cache before the cache is believed.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The last status written per resource (a digest, and when), until the cache shows it.
pub struct Freshness<K> {
    written: Mutex<HashMap<K, (u64, Instant)>>,
}

impl<K: Eq + Hash + Clone> Default for Freshness<K> {
    fn default() -> Self {
        Self {
            written: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> Freshness<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u64, Instant)>> {
        // Each entry is written whole: a panic elsewhere cannot leave one half-made.
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `status` is what the API server stored for `key` (its answer to the write).
    pub fn wrote(&self, key: &K, status: &ImageImportStatus) {
        self.lock()
            .insert(key.clone(), (digest(Some(status)), Instant::now()));
    }

    /// Whether `cached` (the cache's status of `key`) is older than the last status written,
    /// at `now`. The entry goes once the cache has caught up, or once [`PATIENCE`] has passed.
    pub fn behind(&self, key: &K, cached: Option<&ImageImportStatus>, now: Instant) -> bool {
        let mut written = self.lock();
        let Some((last, at)) = written.get(key).copied() else {
            return false;
        };
        let behind = digest(cached) != last && now.duration_since(at) < PATIENCE;
        if !behind {
            written.remove(key);
        }
        behind
    }

    /// The resource is gone.
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }
}

fn digest(status: Option<&ImageImportStatus>) -> u64 {
    let mut hasher = DefaultHasher::new();
    // Serialized, as the API server returns it; a status that cannot be serialized has no JSON
    // form to compare, and hashes as empty.
    serde_json::to_string(&status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_import::Phase;

    fn status(phase: Phase, image: Option<&str>) -> ImageImportStatus {
        ImageImportStatus {
            phase: Some(phase),
            image_id: image.map(String::from),
            ..ImageImportStatus::default()
        }
    }

    #[test]
    fn a_cache_showing_an_older_status_is_behind_until_it_shows_the_written_one() {
        let freshness = Freshness::default();
        let start = Instant::now();
        let pending = status(Phase::Pending, None);
        let importing = status(Phase::Importing, Some("m-1"));
        assert!(
            !freshness.behind(&"a", Some(&pending), start),
            "nothing written yet"
        );
        freshness.wrote(&"a", &importing);
        assert!(freshness.behind(&"a", Some(&pending), start));
        assert!(freshness.behind(&"a", None, start));
        assert!(
            !freshness.behind(&"b", Some(&pending), start),
            "another resource"
        );
        assert!(
            !freshness.behind(&"a", Some(&importing), start),
            "caught up"
        );
        assert!(
            !freshness.behind(&"a", Some(&pending), start),
            "once caught up, the cache is believed (someone may have changed it since)"
        );
    }

    #[test]
    fn a_cache_that_never_catches_up_is_believed_after_the_patience() {
        let freshness = Freshness::default();
        let start = Instant::now();
        freshness.wrote(&"a", &status(Phase::Importing, Some("m-1")));
        let old = status(Phase::Pending, None);
        assert!(freshness.behind(&"a", Some(&old), start));
        let later = Instant::now() + PATIENCE;
        assert!(!freshness.behind(&"a", Some(&old), later));
        freshness.wrote(&"a", &status(Phase::Available, Some("m-1")));
        freshness.forget(&"a");
        assert!(!freshness.behind(&"a", Some(&old), start));
    }
}
