//! The emulated world: regions, OSS objects, accounts, images, import tasks, copies and shares.
//!
//! Pure logic without HTTP or clocks of its own: every method that depends on time takes `now`
//! (emulated time), and task and image states are computed from timestamps when asked, so nothing
//! ticks in the background and the answer for a given instant is exact.
//!
//! This file holds the [`World`] itself, its constructor and what every part shares. Each concern
//! has a file of its own, re-exported here so every `crate::emulator::world::X` path stays:
//! `regions.rs`, `oss.rs` (objects, and the checks an import makes on them), `accounts.rs`
//! (settings, quotas, resource groups), `images.rs`, `tasks.rs` (records and the state computed
//! from their timestamps), `import.rs` (the validated request and the state checks of
//! `ImportImage`), `copies.rs` (`CopyImage` and `CancelCopyImage`, a copy's state computed from
//! its timestamps) and `shares.rs` (the accounts an image is shared with). The tests share
//! fixtures and live in `tests.rs`.

mod accounts;
mod copies;
mod images;
mod import;
mod oss;
mod regions;
mod shares;
mod tasks;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use accounts::*;
pub use copies::*;
pub use images::*;
pub use import::*;
pub use oss::*;
pub use regions::*;
pub use shares::*;
pub use tasks::*;

/// One GiB, the unit of disk sizes.
pub const GIB: u64 = 1 << 30;

fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
struct TokenRec {
    fingerprint: String,
    image_id: String,
    task_id: String,
}

/// The whole emulated state.
#[derive(Debug)]
pub struct World {
    regions: Vec<RegionDef>,
    objects: BTreeMap<(String, String), OssObject>,
    buckets: BTreeMap<String, BucketDef>,
    resource_groups: Vec<String>,
    accounts: HashMap<String, AccountSettings>,
    known_accounts: BTreeSet<String>,
    default_account: AccountSettings,
    images: BTreeMap<String, ImageRec>,
    tasks: BTreeMap<String, TaskRec>,
    tokens: HashMap<(String, String), TokenRec>,
    copy_tokens: HashMap<(String, String), CopyTokenRec>,
    import_calls: VecDeque<ImportCall>,
    next_id: u64,
    timing: ImportTiming,
    copy_timing: ImportTiming,
    import_failure_rate: f64,
    rng: StdRng,
}

/// Resource groups every account has.
pub const DEFAULT_RESOURCE_GROUP: &str = "rg-default";

impl World {
    /// An empty world with these regions.
    pub fn new(regions: Vec<RegionDef>, timing: ImportTiming, seed: u64) -> Self {
        Self {
            regions,
            objects: BTreeMap::new(),
            buckets: BTreeMap::new(),
            resource_groups: vec![DEFAULT_RESOURCE_GROUP.to_string()],
            accounts: HashMap::new(),
            known_accounts: BTreeSet::new(),
            default_account: AccountSettings::default(),
            images: BTreeMap::new(),
            tasks: BTreeMap::new(),
            tokens: HashMap::new(),
            copy_tokens: HashMap::new(),
            import_calls: VecDeque::new(),
            next_id: 1,
            timing,
            copy_timing: default_copy_timing(),
            import_failure_rate: 0.0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Forgets images, tasks, tokens and the import log; keeps objects, regions and accounts.
    pub fn reset(&mut self) {
        self.images.clear();
        self.tasks.clear();
        self.tokens.clear();
        self.copy_tokens.clear();
        self.import_calls.clear();
    }

    /// A random number from the world's seeded generator (for IDs that must differ per run).
    pub fn random_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// The next serial of a new image (and of its task): ids sort in creation order.
    fn next_serial(&mut self) -> u64 {
        let serial = self.next_id;
        self.next_id += 1;
        serial
    }
}

/// The records named in `ids` that `owned` accepts, in key order (ids sort like creation order:
/// a prefix and a zero-padded serial), or every accepted record when `ids` is empty.
fn among<'a, T>(
    records: &'a BTreeMap<String, T>,
    ids: &[&str],
    owned: impl Fn(&T) -> bool,
) -> Vec<&'a T> {
    if ids.is_empty() {
        return records.values().filter(|record| owned(record)).collect();
    }
    let mut wanted = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
        .into_iter()
        .filter_map(|id| records.get(id))
        .filter(|record| owned(record))
        .collect()
}
