//! Fault injection: throttling, 5xx answers, added latency and dropped connections, per action or
//! for all, drawn from a seedable generator so a test run can be repeated exactly.
//!
//! Faults apply to the ECS API only, never to the admin API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Faults for one action (or all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Share of requests answered `Throttling.User` (HTTP 400), 0.0–1.0.
    pub throttle_rate: f64,
    /// Share answered `InternalError` (500) or `ServiceUnavailable` (503), half each.
    pub error_rate: f64,
    /// Share whose TCP connection is closed without an HTTP answer.
    pub drop_rate: f64,
    /// Milliseconds added before answering.
    pub latency_ms: u64,
    /// Share of requests that get `latency_ms` (latency spikes), 0.0–1.0; every request when unset.
    pub latency_rate: Option<f64>,
    /// Answer every request not otherwise faulted with this ECS error code (one the operator's
    /// table knows, e.g. `QuotaExceed.Snapshot`), with its documented HTTP status: for codes no
    /// request to the emulator's world would produce.
    pub answer_code: Option<String>,
}

impl FaultSpec {
    fn is_quiet(&self) -> bool {
        self.throttle_rate <= 0.0
            && self.error_rate <= 0.0
            && self.drop_rate <= 0.0
            && self.latency_ms == 0
            && self.answer_code.is_none()
    }
}

/// All fault settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Faults of actions without their own entry.
    pub default: FaultSpec,
    /// Faults by action name (`DescribeTasks`…); an entry replaces `default` for that action.
    pub actions: BTreeMap<String, FaultSpec>,
    /// Reseeds the generator when set, so what follows is reproducible.
    pub seed: Option<u64>,
}

impl FaultSettings {
    fn spec(&self, action: &str) -> &FaultSpec {
        self.actions.get(action).unwrap_or(&self.default)
    }

    fn is_quiet(&self) -> bool {
        self.default.is_quiet() && self.actions.values().all(FaultSpec::is_quiet)
    }
}

/// What to do to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `Throttling.User`.
    Throttle,
    /// Answer with this 5xx status.
    ServerError(u16),
    /// Close the connection without answering.
    Drop,
    /// Answer with this known ECS error code.
    Answer(&'static str),
}

/// The decision for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Wait this long first.
    pub latency: Option<Duration>,
    /// Then fail this way, or serve normally.
    pub fault: Option<Fault>,
}

/// The live fault settings and their generator.
#[derive(Debug)]
pub struct Faults {
    settings: RwLock<FaultSettings>,
    // Checked first so a quiet emulator never touches the lock or the generator.
    quiet: AtomicBool,
    rng: Mutex<StdRng>,
}

impl Faults {
    /// Faults with these settings; `seed` seeds the generator.
    pub fn new(settings: FaultSettings, seed: u64) -> Self {
        let faults = Self {
            settings: RwLock::new(FaultSettings::default()),
            quiet: AtomicBool::new(true),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        };
        faults.set(settings);
        faults
    }

    /// Replaces the settings (and reseeds when they carry a seed).
    pub fn set(&self, settings: FaultSettings) {
        if let Some(seed) = settings.seed
            && let Ok(mut rng) = self.rng.lock()
        {
            *rng = StdRng::seed_from_u64(seed);
        }
        self.quiet.store(settings.is_quiet(), Ordering::Release);
        if let Ok(mut current) = self.settings.write() {
            *current = settings;
        }
    }

    /// The current settings.
    pub fn get(&self) -> FaultSettings {
        self.settings
            .read()
            .map(|settings| settings.clone())
            .unwrap_or_default()
    }

    /// Draws the fate of one request to `action`.
    pub fn decide(&self, action: &str) -> Decision {
        if self.quiet.load(Ordering::Acquire) {
            return Decision::default();
        }
        let Ok(settings) = self.settings.read() else {
            return Decision::default();
        };
        let spec = settings.spec(action).clone();
        drop(settings);
        let Ok(mut rng) = self.rng.lock() else {
            return Decision::default();
        };
        let spiked = spec
            .latency_rate
            .is_none_or(|rate| rng.random::<f64>() < rate);
        let latency =
            (spec.latency_ms > 0 && spiked).then(|| Duration::from_millis(spec.latency_ms));
        let draw: f64 = rng.random();
        let fault = if draw < spec.drop_rate {
            Some(Fault::Drop)
        } else if draw < spec.drop_rate + spec.throttle_rate {
            Some(Fault::Throttle)
        } else if draw < spec.drop_rate + spec.throttle_rate + spec.error_rate {
            Some(Fault::ServerError(if rng.random_bool(0.5) {
                500
            } else {
                503
            }))
        } else {
            spec.answer_code
                .as_deref()
                .and_then(crate::ecs::error::known_code)
                .map(|known| Fault::Answer(known.code))
        };
        Decision { latency, fault }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults_and_actions_override_the_default() {
        let settings = FaultSettings {
            default: FaultSpec {
                throttle_rate: 0.5,
                ..Default::default()
            },
            actions: [(
                "DescribeRegions".to_string(),
                FaultSpec {
                    drop_rate: 1.0,
                    ..Default::default()
                },
            )]
            .into(),
            seed: None,
        };
        let draws = |faults: &Faults| -> Vec<Option<Fault>> {
            (0..64)
                .map(|_| faults.decide("DescribeTasks").fault)
                .collect()
        };
        let a = Faults::new(settings.clone(), 9);
        let b = Faults::new(settings, 9);
        let first = draws(&a);
        assert_eq!(first, draws(&b));
        let throttled = first.iter().filter(|f| f.is_some()).count();
        assert!((16..=48).contains(&throttled), "{throttled} of 64");
        assert_eq!(a.decide("DescribeRegions").fault, Some(Fault::Drop));
    }

    #[test]
    fn an_answer_code_is_given_only_when_the_operator_knows_it() {
        let answer = |code: &str| {
            let settings = FaultSettings {
                default: FaultSpec {
                    answer_code: Some(code.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            Faults::new(settings, 1).decide("ImportImage").fault
        };
        assert_eq!(
            answer("QuotaExceed.Snapshot"),
            Some(Fault::Answer("QuotaExceed.Snapshot"))
        );
        assert_eq!(answer("NoSuchCode.Anywhere"), None);
    }

    #[test]
    fn a_latency_rate_delays_only_that_share_of_requests() {
        let spikes = |latency_rate: Option<f64>| {
            let settings = FaultSettings {
                default: FaultSpec {
                    latency_ms: 1_000,
                    latency_rate,
                    ..Default::default()
                },
                ..Default::default()
            };
            let faults = Faults::new(settings, 5);
            (0..200)
                .filter(|_| faults.decide("DescribeImages").latency == Some(Duration::from_secs(1)))
                .count()
        };
        assert_eq!(spikes(None), 200);
        assert_eq!(spikes(Some(0.0)), 0);
        let some = spikes(Some(0.25));
        assert!((20..=80).contains(&some), "{some} of 200 delayed");
    }

    #[test]
    fn quiet_settings_never_fault() {
        let faults = Faults::new(FaultSettings::default(), 1);
        assert_eq!(faults.decide("ImportImage"), Decision::default());
    }
}
