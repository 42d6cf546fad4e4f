//! The states of a tower-circuitbreaker registry, read from its public snapshots and transition events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;
use tower_circuitbreaker::{BreakerRegistry, BreakerState, Transition};

use crate::check::{Check, CheckFuture};
use crate::observation::{Measurement, Observation, duration_ms};
use crate::status::Status;

/// Reports every breaker of a [`BreakerRegistry`]: one measurement per breaker, `breaker.<name>` (its state as `observedValue`, unit `state`,
/// with `nextProbeInMs`, the window's calls and failures and the totals beside it) and a `breakers`
/// measurement counting them.
///
/// | what it sees | status |
/// |---|---|
/// | a breaker `open` or `forced_open` | `warn`, or `fail` with [`BreakerRegistryCheck::fail_when_open`] |
/// | a breaker `half_open` | `warn` |
/// | a breaker closed now that opened since the previous run (read from the transition events) | `warn` |
/// | otherwise (`closed`, `disabled`, `metrics_only`, or no breaker yet) | `pass` |
///
/// `output` names each breaker at fault, with the time until its next probe when it is open. An open breaker
/// whose time is up reads `open` until a call probes it, shown as `next probe on the next call`.
///
/// Register it non-critical (the default here is `warn` for an open breaker): an upstream that is down is a
/// reason to look, rarely a reason to take every instance out of the load balancer, which would not bring the
/// upstream back. Reading the snapshots takes the registry's read lock once; no call is made.
///
/// ```
/// use health_kit::{CheckOptions, Health, checks::BreakerRegistryCheck};
/// use tower_circuitbreaker::{BreakerConfig, BreakerRegistry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breakers = BreakerRegistry::new(BreakerConfig::default())?;
/// let health = Health::builder()
///     .check("upstreams", BreakerRegistryCheck::new(&breakers), CheckOptions::non_critical())
///     .build()?;
/// # let _ = health;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BreakerRegistryCheck {
    registry: BreakerRegistry,
    fail_when_open: bool,
    max_listed: usize,
    events: Mutex<Receiver<Transition>>,
}

/// How many breakers at fault `output` names before `and N more`.
const MAX_NAMED: usize = 10;

impl BreakerRegistryCheck {
    /// Default for [`BreakerRegistryCheck::max_listed`].
    pub const DEFAULT_MAX_LISTED: usize = 100;

    /// A check of `registry` (a clone: registries are handles). It subscribes to the registry's transitions
    /// now, so a breaker that opens and closes again between two runs is still reported once.
    #[must_use]
    pub fn new(registry: &BreakerRegistry) -> Self {
        Self {
            registry: registry.clone(),
            fail_when_open: false,
            max_listed: Self::DEFAULT_MAX_LISTED,
            events: Mutex::new(registry.subscribe()),
        }
    }

    /// Reports an open (or forced open) breaker as `fail` rather than `warn` (`half_open` stays `warn`).
    #[must_use]
    pub fn fail_when_open(mut self, fail: bool) -> Self {
        self.fail_when_open = fail;
        self
    }

    /// Lists at most `max` breakers as measurements, those at fault first (a registry may hold thousands, one
    /// per upstream host); the `breakers` measurement still counts them all and `output` names the first ten at
    /// fault.
    #[must_use]
    pub fn max_listed(mut self, max: usize) -> Self {
        self.max_listed = max;
        self
    }

    /// The breakers that went to a refusing state since the last call, by name, and how many events were lost.
    fn openings_since_last_run(&self) -> (BTreeMap<String, u64>, u64) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let mut opened: BTreeMap<String, u64> = BTreeMap::new();
        let mut lost = 0;
        loop {
            match events.try_recv() {
                Ok(t) if t.to.refuses_calls() => {
                    *opened.entry(t.name.to_string()).or_default() += 1
                }
                Ok(_) => {}
                Err(TryRecvError::Lagged(n)) => lost += n,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        (opened, lost)
    }

    fn observe(&self) -> Observation {
        let (opened, lost) = self.openings_since_last_run();
        let snapshots = self.registry.snapshots();
        let open_status = if self.fail_when_open {
            Status::Fail
        } else {
            Status::Warn
        };
        let mut status = Status::Pass;
        let mut output = String::new();
        let mut notes = 0usize;
        let mut note = |s: Status, text: &str| {
            status = status.max(s);
            notes += 1;
            if notes <= MAX_NAMED {
                if !output.is_empty() {
                    output.push_str("; ");
                }
                output.push_str(text);
            }
        };
        let (mut open, mut half_open) = (0u64, 0u64);
        // Breakers at fault first, so a cap on the list never hides one of them behind closed ones.
        let mut at_fault = Vec::new();
        let mut fine = Vec::new();
        for s in &snapshots {
            let faulty = s.state.refuses_calls()
                || s.state == BreakerState::HalfOpen
                || opened.contains_key(&*s.name);
            match s.state {
                BreakerState::Open | BreakerState::ForcedOpen => {
                    open += 1;
                    let mut text = format!("{} {}", s.name, s.state);
                    match s.next_probe_in {
                        Some(d) if !d.is_zero() => {
                            let _ = write!(text, ", next probe in {}", crate::registry::human(d));
                        }
                        Some(_) => text.push_str(", next probe on the next call"),
                        None => text.push_str(" until reset"),
                    }
                    note(open_status, &text);
                }
                BreakerState::HalfOpen => {
                    half_open += 1;
                    note(Status::Warn, &format!("{} half_open, probing", s.name));
                }
                _ => {
                    if let Some(n) = opened.get(&*s.name) {
                        note(
                            Status::Warn,
                            &format!(
                                "{} opened {n} time(s) since the last check, now {}",
                                s.name, s.state
                            ),
                        );
                    }
                }
            }
            let mut m = Measurement::new(format!("breaker.{}", s.name))
                .value(s.state.as_str())
                .unit("state")
                .field("generation", s.generation)
                .field("windowCalls", s.window_calls)
                .field("windowFailures", s.window_failures)
                .field("windowSlow", s.window_slow)
                .field("consecutiveFailures", s.consecutive_failures)
                .field("successes", s.successes)
                .field("failures", s.failures)
                .field("rejected", s.rejected)
                .field(
                    "openedSinceLastCheck",
                    opened.get(&*s.name).copied().unwrap_or(0),
                );
            if let Some(d) = s.next_probe_in {
                m = m.field("nextProbeInMs", duration_ms(d));
            }
            if faulty {
                at_fault.push(m);
            } else if fine.len() < self.max_listed {
                fine.push(m);
            }
        }
        if lost > 0 {
            note(
                Status::Warn,
                &format!("{lost} breaker transition(s) since the last check were not seen"),
            );
        }
        if notes > MAX_NAMED {
            let _ = write!(output, "; and {} more", notes - MAX_NAMED);
        }
        let mut measurements = at_fault;
        measurements.extend(fine);
        measurements.truncate(self.max_listed);
        let summary = Measurement::new("breakers")
            .value(snapshots.len())
            .unit("breakers")
            .field("open", open)
            .field("halfOpen", half_open)
            .field("listed", measurements.len());
        let mut observation = match status {
            Status::Pass => Observation::pass(),
            Status::Warn => Observation::warn(output),
            Status::Fail => Observation::fail(output),
        }
        .measurement(summary);
        for m in measurements {
            observation = observation.measurement(m);
        }
        observation
    }
}

impl Check for BreakerRegistryCheck {
    fn run(&self) -> CheckFuture<'_> {
        let observation = self.observe();
        Box::pin(std::future::ready(observation))
    }
}
