//! Fault injection: throttling, 5xx answers, added latency and dropped connections, and hostile
//! answers a proxy or a broken gateway gives (an HTML 502 page, a 200 that is not JSON, a 200
//! without the fields the action must return, a truncated body, an oversized body, a request never
//! answered), per action or for all, drawn from a seedable generator so a test run can be repeated
//! exactly. A faulted request is never carried out in the world.
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
    /// Share answered `502 Bad Gateway` with a `text/html` page, as a load balancer or gateway in
    /// front of ECS would: no ECS error body at all.
    pub html_502_rate: f64,
    /// Share answered `200` with a body that is not JSON (nor XML).
    pub invalid_json_rate: f64,
    /// Share answered `200` with valid JSON carrying only `RequestId`: every field the action must
    /// return is missing (`ImportImage` without `ImageId`, `DescribeTasks` without its task set…).
    pub missing_fields_rate: f64,
    /// Share answered `200` whose `Content-Length` promises a whole body of which only the first
    /// half is sent before the connection is closed.
    pub truncated_rate: f64,
    /// Share answered `200` with a body of `oversized_bytes` (valid JSON, padded with spaces),
    /// streamed in chunks so the emulator never holds it in memory.
    pub oversized_rate: f64,
    /// Size of an oversized body; 50 MiB when unset.
    pub oversized_bytes: Option<u64>,
    /// Share of requests read and then never answered: the connection stays open until the client
    /// gives up and closes it (or, at the latest, `hang_ms` later, when the emulator closes it).
    pub hang_rate: f64,
    /// Longest a hung request is held open, in milliseconds; 10 minutes when unset.
    pub hang_ms: Option<u64>,
}

/// Size of an oversized body when [`FaultSpec::oversized_bytes`] is unset: 50 MiB.
pub const DEFAULT_OVERSIZED_BYTES: u64 = 50 * 1024 * 1024;

/// Longest a hung request is held when [`FaultSpec::hang_ms`] is unset: 10 minutes, far past any
/// client's timeout, and bounded so a forgotten fault does not keep connections forever.
pub const DEFAULT_HANG: Duration = Duration::from_secs(600);

impl FaultSpec {
    fn is_quiet(&self) -> bool {
        self.throttle_rate <= 0.0
            && self.error_rate <= 0.0
            && self.drop_rate <= 0.0
            && self.latency_ms == 0
            && self.answer_code.is_none()
            && self.hostile_rates().iter().all(|(rate, _)| *rate <= 0.0)
    }

    /// The hostile answers with their shares, in the order they are drawn.
    fn hostile_rates(&self) -> [(f64, Fault); 6] {
        [
            (self.html_502_rate, Fault::HtmlBadGateway),
            (self.invalid_json_rate, Fault::InvalidJson),
            (self.missing_fields_rate, Fault::MissingFields),
            (self.truncated_rate, Fault::Truncated),
            (
                self.oversized_rate,
                Fault::Oversized(self.oversized_bytes.unwrap_or(DEFAULT_OVERSIZED_BYTES)),
            ),
            (
                self.hang_rate,
                Fault::Hang(self.hang_ms.map_or(DEFAULT_HANG, Duration::from_millis)),
            ),
        ]
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
    /// Answer `502` with an HTML page from a gateway.
    HtmlBadGateway,
    /// Answer `200` with a body that is not JSON.
    InvalidJson,
    /// Answer `200` with JSON holding only `RequestId`.
    MissingFields,
    /// Answer `200`, send half the promised body, close the connection.
    Truncated,
    /// Answer `200` with a body of this many bytes.
    Oversized(u64),
    /// Never answer; close the connection after this long if the client has not.
    Hang(Duration),
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
        let common = spec.drop_rate + spec.throttle_rate + spec.error_rate;
        let fault = if draw < spec.drop_rate {
            Some(Fault::Drop)
        } else if draw < spec.drop_rate + spec.throttle_rate {
            Some(Fault::Throttle)
        } else if draw < common {
            Some(Fault::ServerError(if rng.random_bool(0.5) {
                500
            } else {
                503
            }))
        } else {
            // The hostile answers share the rest of the draw, one after the other.
            let mut upper = common;
            let hostile = spec.hostile_rates().into_iter().find_map(|(rate, fault)| {
                upper += rate.max(0.0);
                (draw < upper).then_some(fault)
            });
            hostile.or_else(|| {
                spec.answer_code
                    .as_deref()
                    .and_then(crate::ecs::error::known_code)
                    .map(|known| Fault::Answer(known.code))
            })
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
    fn each_hostile_answer_is_drawn_at_its_rate_with_its_settings() {
        let draw = |spec: FaultSpec| {
            let settings = FaultSettings {
                default: spec,
                ..Default::default()
            };
            Faults::new(settings, 3).decide("ImportImage").fault
        };
        assert_eq!(
            draw(FaultSpec {
                html_502_rate: 1.0,
                ..Default::default()
            }),
            Some(Fault::HtmlBadGateway)
        );
        assert_eq!(
            draw(FaultSpec {
                invalid_json_rate: 1.0,
                ..Default::default()
            }),
            Some(Fault::InvalidJson)
        );
        assert_eq!(
            draw(FaultSpec {
                missing_fields_rate: 1.0,
                ..Default::default()
            }),
            Some(Fault::MissingFields)
        );
        assert_eq!(
            draw(FaultSpec {
                truncated_rate: 1.0,
                ..Default::default()
            }),
            Some(Fault::Truncated)
        );
        assert_eq!(
            draw(FaultSpec {
                oversized_rate: 1.0,
                ..Default::default()
            }),
            Some(Fault::Oversized(DEFAULT_OVERSIZED_BYTES))
        );
        assert_eq!(
            draw(FaultSpec {
                oversized_rate: 1.0,
                oversized_bytes: Some(1_000),
                ..Default::default()
            }),
            Some(Fault::Oversized(1_000))
        );
        assert_eq!(
            draw(FaultSpec {
                hang_rate: 1.0,
                hang_ms: Some(50),
                ..Default::default()
            }),
            Some(Fault::Hang(Duration::from_millis(50)))
        );
        assert_eq!(
            draw(FaultSpec {
                hang_rate: 1.0,
                ..Default::default()
            }),
            Some(Fault::Hang(DEFAULT_HANG))
        );
    }

    #[test]
    fn quiet_settings_never_fault() {
        let faults = Faults::new(FaultSettings::default(), 1);
        assert_eq!(faults.decide("ImportImage"), Decision::default());
    }
}
