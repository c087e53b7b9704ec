//! Counters per action and per error code, and fault counts, readable over the admin API.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::world::ImportCall;

/// Counters of one action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionStats {
    /// Requests naming this action.
    pub calls: u64,
    /// Successful answers.
    pub ok: u64,
    /// Error answers by code (including injected faults).
    pub errors: BTreeMap<String, u64>,
}

/// Injected faults served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// `Throttling.User` answers.
    pub throttled: u64,
    /// Injected 500/503 answers.
    pub server_errors: u64,
    /// Connections closed without an answer.
    pub dropped: u64,
    /// Requests delayed by added latency.
    pub delayed: u64,
}

/// Everything counted since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// ECS API requests received (admin requests are not counted).
    pub requests: u64,
    /// Counters by action; requests without a known action count under their code only.
    pub actions: BTreeMap<String, ActionStats>,
    /// Error answers by code, over all actions.
    pub codes: BTreeMap<String, u64>,
    /// Injected faults.
    pub faults: FaultCounts,
    /// Every `ImportImage` call with its `ClientToken` and result, oldest first.
    pub import_calls: Vec<ImportCall>,
}

impl StatsSnapshot {
    /// Calls of one action.
    pub fn calls(&self, action: &str) -> u64 {
        self.actions.get(action).map_or(0, |stats| stats.calls)
    }

    /// Answers with one error code.
    pub fn code(&self, code: &str) -> u64 {
        self.codes.get(code).copied().unwrap_or(0)
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

/// How one request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A successful answer.
    Ok,
    /// An error answer with this code.
    Error(&'a str),
    /// The connection was dropped.
    Dropped,
}

impl Stats {
    /// Counts one request. `action` is `None` when the request named no known action.
    pub fn record(&self, action: Option<&str>, outcome: Outcome<'_>, delayed: bool) {
        let Ok(mut stats) = self.inner.lock() else {
            return;
        };
        stats.requests += 1;
        if delayed {
            stats.faults.delayed += 1;
        }
        match outcome {
            Outcome::Dropped => stats.faults.dropped += 1,
            Outcome::Error("Throttling.User") => stats.faults.throttled += 1,
            Outcome::Ok | Outcome::Error(_) => {}
        }
        if let Outcome::Error(code) = outcome {
            *stats.codes.entry(code.to_string()).or_default() += 1;
        }
        if let Some(action) = action {
            let entry = stats.actions.entry(action.to_string()).or_default();
            entry.calls += 1;
            match outcome {
                Outcome::Ok => entry.ok += 1,
                Outcome::Error(code) => *entry.errors.entry(code.to_string()).or_default() += 1,
                Outcome::Dropped => {}
            }
        }
    }

    /// Counts an injected 5xx answer (also recorded as an error by [`Self::record`]).
    pub fn record_server_error(&self) {
        if let Ok(mut stats) = self.inner.lock() {
            stats.faults.server_errors += 1;
        }
    }

    /// The counters, with the import log added by the caller.
    pub fn snapshot(&self, import_calls: Vec<ImportCall>) -> StatsSnapshot {
        let mut snapshot = self
            .inner
            .lock()
            .map(|stats| stats.clone())
            .unwrap_or_default();
        snapshot.import_calls = import_calls;
        snapshot
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        if let Ok(mut stats) = self.inner.lock() {
            *stats = StatsSnapshot::default();
        }
    }
}
