//! Counters per action and per error code, and fault counts, readable over the admin API.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

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
    /// `502` answers with an HTML page.
    pub html_bad_gateway: u64,
    /// `200` answers whose body is not JSON.
    pub invalid_json: u64,
    /// `200` answers without the action's required fields.
    pub missing_fields: u64,
    /// `200` answers cut off halfway.
    pub truncated: u64,
    /// `200` answers with an oversized body.
    pub oversized: u64,
    /// Requests never answered.
    pub hung: u64,
}

/// A hostile answer, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// `502` with an HTML page.
    HtmlBadGateway,
    /// `200`, not JSON.
    InvalidJson,
    /// `200`, required fields missing.
    MissingFields,
    /// `200`, body cut off.
    Truncated,
    /// `200`, oversized body.
    Oversized,
    /// Never answered.
    Hung,
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
    /// ECS API requests by the wall-clock second they arrived in, counted from the emulator's start
    /// (or the last reset): entry `i` is the requests received in `[i s, i+1 s)`. Counted on
    /// arrival, before any injected latency, so a client's rate budget can be checked against it.
    pub per_second: Vec<u64>,
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
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
    origin: Mutex<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            origin: Mutex::new(Instant::now()),
        }
    }
}

/// The per-second histogram grows with the emulator's uptime; past this many seconds (a day) later
/// requests are counted in the last entry.
const MAX_SECONDS: usize = 86_400;

/// How one request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A successful answer.
    Ok,
    /// An error answer with this code.
    Error(&'a str),
    /// The connection was dropped.
    Dropped,
    /// A hostile answer (neither a success nor an ECS error code).
    Hostile(Hostile),
}

impl Stats {
    /// Counts the arrival of one ECS API request in the current wall-clock second.
    pub fn arrived(&self) {
        let second = self
            .origin
            .lock()
            .map(|origin| origin.elapsed().as_secs())
            .unwrap_or_default();
        self.arrived_at_second(usize::try_from(second).unwrap_or(usize::MAX));
    }

    fn arrived_at_second(&self, second: usize) {
        let Ok(mut stats) = self.inner.lock() else {
            return;
        };
        let index = second.min(MAX_SECONDS - 1);
        if stats.per_second.len() <= index {
            stats.per_second.resize(index + 1, 0);
        }
        stats.per_second[index] += 1;
    }

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
            Outcome::Hostile(kind) => {
                let faults = &mut stats.faults;
                let counter = match kind {
                    Hostile::HtmlBadGateway => &mut faults.html_bad_gateway,
                    Hostile::InvalidJson => &mut faults.invalid_json,
                    Hostile::MissingFields => &mut faults.missing_fields,
                    Hostile::Truncated => &mut faults.truncated,
                    Hostile::Oversized => &mut faults.oversized,
                    Hostile::Hung => &mut faults.hung,
                };
                *counter += 1;
            }
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
                Outcome::Dropped | Outcome::Hostile(_) => {}
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
        if let Ok(mut origin) = self.origin.lock() {
            *origin = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_counted_by_second_and_reset_with_the_rest() {
        let stats = Stats::default();
        stats.arrived();
        stats.arrived_at_second(3);
        stats.arrived_at_second(3);
        stats.arrived_at_second(usize::MAX);
        let snapshot = stats.snapshot(Vec::new());
        assert_eq!(&snapshot.per_second[..4], &[1, 0, 0, 2]);
        assert_eq!(snapshot.per_second.len(), MAX_SECONDS);
        assert_eq!(snapshot.per_second[MAX_SECONDS - 1], 1);
        stats.reset();
        assert!(stats.snapshot(Vec::new()).per_second.is_empty());
    }
}
