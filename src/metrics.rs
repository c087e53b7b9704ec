//! Prometheus metrics of the operator, served on `/metrics` in the OpenMetrics text format.
//!
//! One [`Metrics`] value (cheap to clone, shared by every task) owns the registry. The recording
//! methods take plain types, so the controller and the ECS client (through
//! [`CallObserver`]) report without knowing prometheus-client. Labels carry only action names,
//! error codes, phases and resource names: never credentials, tokens or request parameters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::image_import::{ImageImportStatus, Phase};
use crate::ecs::observe::CallObserver;

/// The `Content-Type` of the exposition, as Prometheus negotiates it for OpenMetrics.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The phases counted by `ecs_image_operator_imports`, always exported so a phase with no
/// resources reads 0 instead of vanishing from dashboards.
pub const PHASES: [&str; 6] = [
    "Uploading",
    "Pending",
    "Importing",
    "Available",
    "Failed",
    "Deleting",
];

/// ECS answers from 5 ms (a warm connection to a nearby endpoint) to 30 s (the client's request
/// timeout).
const ECS_CALL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Imports take from about a minute (a small image) to hours (a large one, a busy region).
const IMPORT_BUCKETS: [f64; 10] = [
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
];

/// Longest error code kept as a label value; longer ones are cut.
const MAX_OUTCOME_LEN: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: &'static str,
    error_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EcsCallLabels {
    action: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    namespace: String,
    name: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Computes readiness for the `ready` gauge.
type ReadySource = Arc<dyn Fn() -> bool + Send + Sync>;

/// Wraps a [`ReadySource`] so `Inner` stays `Debug`.
#[derive(Clone)]
struct ReadyFn(ReadySource);

impl std::fmt::Debug for ReadyFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyFn")
    }
}

/// The operator's metrics; clones share one registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<ResultLabels>,
    ecs_calls: Family<EcsCallLabels, Counter>,
    ecs_call_duration: HistogramFamily<ActionLabels>,
    imports: Family<PhaseLabels, Gauge>,
    progress: Family<ResourceLabels, Gauge>,
    import_duration: Histogram,
    poll_rounds: Counter,
    status_write_failures: Counter,
    leader: Gauge,
    ready: Gauge,
    /// Where `ready` comes from at scrape time, when set (the probe server's readiness).
    ready_source: Mutex<Option<ReadyFn>>,
    /// The last phase seen per (namespace, name): the phase gauge is derived from it, so a
    /// repeated report or a report after a missed one cannot make the counts drift.
    phases: Mutex<HashMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding every family, with the phase gauges at 0 and leader and ready at 0.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ecs_image_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        // A family without series is left out of the exposition; a zero `ok` series keeps
        // `rate()` and alerts defined from the first scrape.
        reconciles
            .get_or_create(&ReconcileLabels {
                result: "ok",
                error_kind: String::new(),
            })
            .inc_by(0);
        registry.register(
            "reconciles",
            "Reconciles of ImageImport resources, by result and error kind",
            reconciles.clone(),
        );
        // A reconcile waits on ECS calls (retries included) and API server writes: the ECS
        // buckets, which reach minutes, fit.
        let reconcile_duration: HistogramFamily<ResultLabels> =
            Family::new_with_constructor(|| Histogram::new(ECS_CALL_BUCKETS));
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of reconciles of ImageImport resources, by result (ok or error)",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let ecs_calls = Family::<EcsCallLabels, Counter>::default();
        registry.register(
            "ecs_calls",
            "ECS API call attempts, by action and outcome (ok or the ECS error code)",
            ecs_calls.clone(),
        );
        let ecs_call_duration: HistogramFamily<ActionLabels> =
            Family::new_with_constructor(|| Histogram::new(ECS_CALL_BUCKETS));
        registry.register_with_unit(
            "ecs_call_duration",
            "Duration of ECS API call attempts, by action",
            Unit::Seconds,
            ecs_call_duration.clone(),
        );
        let imports = Family::<PhaseLabels, Gauge>::default();
        for phase in PHASES {
            imports
                .get_or_create(&PhaseLabels {
                    phase: phase.to_string(),
                })
                .set(0);
        }
        registry.register(
            "imports",
            "ImageImport resources known to this replica, by phase",
            imports.clone(),
        );
        let progress = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "import_progress",
            "Progress of a running import in percent",
            progress.clone(),
        );
        let import_duration = Histogram::new(IMPORT_BUCKETS);
        registry.register_with_unit(
            "import_duration",
            "Time from the start of an import to its image being available",
            Unit::Seconds,
            import_duration.clone(),
        );
        let poll_rounds = Counter::default();
        registry.register(
            "poll_rounds",
            "Polling rounds that asked ECS about running imports (each asks at most 100 images per call)",
            poll_rounds.clone(),
        );
        let status_write_failures = Counter::default();
        registry.register(
            "status_write_failures",
            "Status writes refused by the API server even in their compact form",
            status_write_failures.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            leader.clone(),
        );
        let ready = Gauge::default();
        registry.register("ready", "1 while this replica is ready", ready.clone());
        Self {
            inner: Arc::new(Inner {
                registry,
                reconciles,
                reconcile_duration,
                ecs_calls,
                ecs_call_duration,
                imports,
                progress,
                import_duration,
                poll_rounds,
                status_write_failures,
                leader,
                ready,
                ready_source: Mutex::new(None),
                phases: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Counts and times one reconcile: `Ok(())`, or `Err(kind)` with the error's metric label
    /// (`reconciler::Error::metric_label`).
    pub fn record_reconcile(&self, result: Result<(), &str>, elapsed: Duration) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.inner
            .reconcile_duration
            .get_or_create(&ResultLabels { result: outcome })
            .observe(elapsed.as_secs_f64());
        let labels = match result {
            Ok(()) => ReconcileLabels {
                result: "ok",
                error_kind: String::new(),
            },
            Err(kind) => ReconcileLabels {
                result: "error",
                error_kind: kind.to_string(),
            },
        };
        self.inner.reconciles.get_or_create(&labels).inc();
    }

    /// Counts and times one attempt of an ECS call; `outcome` is `"ok"` or the error code.
    pub fn record_ecs_call(&self, action: &'static str, outcome: &str, elapsed: Duration) {
        self.inner
            .ecs_calls
            .get_or_create(&EcsCallLabels {
                action,
                outcome: outcome_label(outcome),
            })
            .inc();
        self.inner
            .ecs_call_duration
            .get_or_create(&ActionLabels { action })
            .observe(elapsed.as_secs_f64());
    }

    /// Records the phase of a resource (`None`: it is gone), keeping the per-phase counts exact
    /// whatever the previous reports were.
    pub fn set_phase(&self, namespace: &str, name: &str, phase: Option<&str>) {
        let mut phases = self
            .inner
            .phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (namespace.to_string(), name.to_string());
        let previous = match phase {
            Some(phase) => {
                if phases.get(&key).is_some_and(|known| known == phase) {
                    return;
                }
                self.add_to_phase(phase, 1);
                phases.insert(key, phase.to_string())
            }
            None => phases.remove(&key),
        };
        if let Some(previous) = previous {
            self.add_to_phase(&previous, -1);
        }
    }

    /// Sets the progress (0–100, higher values count as 100) of a resource's running import.
    pub fn set_progress(&self, namespace: &str, name: &str, percent: u8) {
        self.inner
            .progress
            .get_or_create(&resource_labels(namespace, name))
            .set(i64::from(percent.min(100)));
    }

    /// Removes a resource's progress series, for an import that is no longer running.
    pub fn clear_progress(&self, namespace: &str, name: &str) {
        self.inner
            .progress
            .remove(&resource_labels(namespace, name));
    }

    /// Forgets a resource that is gone: its phase no longer counts and its progress series goes.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.set_phase(namespace, name, None);
        self.clear_progress(namespace, name);
    }

    /// Forgets every resource, for a replica that stops reconciling (it lost leadership), so it
    /// does not export stale counts next to the new leader's.
    pub fn forget_all(&self) {
        let mut phases = self
            .inner
            .phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for phase in phases.values() {
            self.add_to_phase(phase, -1);
        }
        phases.clear();
        self.inner.progress.clear();
    }

    /// Records how long one import took, from its start to its image being available.
    pub fn observe_import_duration(&self, elapsed: Duration) {
        self.inner.import_duration.observe(elapsed.as_secs_f64());
    }

    /// The phase and progress of resource `namespace`/`name` as `status` says, counted on every
    /// reconcile (changed or not), so a restarted operator knows every phase again.
    pub fn record_status(&self, namespace: &str, name: &str, status: &ImageImportStatus) {
        self.set_phase(namespace, name, status.phase.map(Phase::as_str));
        match (status.phase, status.progress) {
            (Some(Phase::Importing), Some(percent)) => self.set_progress(namespace, name, percent),
            _ => self.clear_progress(namespace, name),
        }
    }

    /// A status `after` was written over `before`: an import that has just become available is
    /// timed, once (a write that failed is not counted, and its retry is).
    pub fn record_written(&self, before: Option<&ImageImportStatus>, after: &ImageImportStatus) {
        let was = before.and_then(|status| status.phase);
        if was != Some(Phase::Available)
            && after.phase == Some(Phase::Available)
            && let (Some(start), Some(done)) = (&after.start_time, &after.completion_time)
            && let Ok(took) = Duration::try_from(done.0.duration_since(start.0))
        {
            self.observe_import_duration(took);
        }
    }

    /// Counts one polling round that made at least one ECS call: with `ecs_calls_total` of the
    /// `Describe*` actions it gives the reads per round.
    pub fn record_poll_round(&self) {
        self.inner.poll_rounds.inc();
    }

    /// Counts a status write that failed even in its compact form.
    pub fn record_status_write_failure(&self) {
        self.inner.status_write_failures.inc();
    }

    /// Sets whether this replica is the leader.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// Sets whether this replica is ready (overridden at each scrape once a source is set).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    /// Makes `ready` follow `source` (what `/readyz` answers), read at every encode, so the gauge
    /// and the probe can never disagree.
    pub fn set_ready_source(&self, source: impl Fn() -> bool + Send + Sync + 'static) {
        *self
            .inner
            .ready_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(ReadyFn(Arc::new(source)));
    }

    /// The whole exposition in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let source = self
            .inner
            .ready_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(source) = source {
            self.set_ready((source.0)());
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }

    /// A router serving `GET /metrics`, to merge into the probe server's router.
    pub fn router(&self) -> axum::Router {
        let metrics = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { metrics.response() }
            }),
        )
    }

    /// The HTTP answer to a scrape: the exposition with its content type, or a 500.
    pub fn response(&self) -> axum::response::Response {
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse;
        match self.encode() {
            Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
            Err(error) => {
                tracing::error!("failed to encode metrics: {error}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to encode metrics",
                )
                    .into_response()
            }
        }
    }

    fn add_to_phase(&self, phase: &str, delta: i64) {
        self.inner
            .imports
            .get_or_create(&PhaseLabels {
                phase: phase.to_string(),
            })
            .inc_by(delta);
    }
}

impl CallObserver for Metrics {
    fn observe(&self, action: &'static str, outcome: &str, elapsed: Duration) {
        self.record_ecs_call(action, outcome, elapsed);
    }
}

fn resource_labels(namespace: &str, name: &str) -> ResourceLabels {
    ResourceLabels {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// An error code as a label value: only the characters ECS codes use, and bounded, so an odd
/// answer from a proxy cannot flood the label space or the exposition.
fn outcome_label(outcome: &str) -> String {
    let label: String = outcome
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(MAX_OUTCOME_LEN)
        .collect();
    if label.is_empty() {
        "unknown".to_string()
    } else {
        label
    }
}
