//! Model-based property test: random configurations, outcome sequences, durations and clock advances go
//! through the breaker and through a plain reference model written from the documented semantics; after
//! every step the state, the generation, the admission decisions, the totals, the window and the time to the
//! next probe must agree, and every announced transition must be legal and follow the previous one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Duration;

use proptest::prelude::*;
use tower_circuitbreaker::{
    Backoff, Breaker, BreakerConfig, BreakerState, ManualClock, Outcome, Permit, Window,
    is_legal_transition,
};

const MS: u64 = 1_000_000;

#[derive(Debug, Clone)]
struct Params {
    consecutive: Option<u32>,
    failure_rate: Option<u8>,
    slow: Option<(u64, u8)>,  // (ms, percent)
    window: Result<u32, u64>, // Ok(count) or Err(time window in ms)
    minimum_calls: u32,
    open_ms: u64,
    multiplier: u32,
    max_ms: u64,
    permits: u32,
    max_wait_ms: u64,
    max_retry_after_ms: u64,
}

impl Params {
    fn config(&self) -> BreakerConfig {
        let mut c = BreakerConfig::default()
            .consecutive_failures(self.consecutive.and_then(NonZeroU32::new))
            .failure_rate(self.failure_rate)
            .window(match self.window {
                Ok(n) => Window::Count(NonZeroU32::new(n).unwrap()),
                Err(ms) => Window::Time(Duration::from_millis(ms)),
            })
            .minimum_calls(self.minimum_calls)
            .open_duration(Duration::from_millis(self.open_ms))
            .backoff(Backoff::exponential(
                self.multiplier,
                Duration::from_millis(self.max_ms),
            ))
            .half_open_permits(NonZeroU32::new(self.permits).unwrap())
            .half_open_max_wait(Duration::from_millis(self.max_wait_ms))
            .max_retry_after(Duration::from_millis(self.max_retry_after_ms));
        if let Some((ms, pct)) = self.slow {
            c = c.slow_calls(Duration::from_millis(ms), pct);
        }
        c
    }
}

fn params() -> impl Strategy<Value = Params> {
    (
        (
            proptest::option::of(1u32..6),
            proptest::option::of(10u8..=100),
            proptest::option::of((1u64..3000, 10u8..=100)),
        ),
        prop_oneof![
            (1u32..12).prop_map(Ok),
            prop_oneof![Just(5_000u64), Just(10_000), Just(20_000), Just(90_000)].prop_map(Err)
        ],
        (0u32..8, 1u64..20_000, 1u32..4, 1u64..100_000),
        (1u32..4, 1u64..30_000, 0u64..50_000),
    )
        .prop_map(
            |(
                (consecutive, failure_rate, slow),
                window,
                (minimum_calls, open_ms, multiplier, max_ms),
                (permits, max_wait_ms, max_retry_after_ms),
            )| Params {
                consecutive,
                failure_rate,
                slow,
                window,
                minimum_calls,
                open_ms,
                multiplier,
                max_ms,
                permits,
                max_wait_ms,
                max_retry_after_ms,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Advance(u64), // ms
    ForceOpen,
    Disable,
    MetricsOnly,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        4 => Just(Outcome::Success),
        4 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
        1 => (0u64..60).prop_map(|s| Outcome::FailureRetryAfter(Duration::from_secs(s))),
    ];
    prop_oneof![
        30 => Just(Op::Acquire),
        30 => (any::<usize>(), outcome).prop_map(|(i, o)| Op::Record(i, o)),
        15 => prop_oneof![0u64..50, 0u64..3_000, 0u64..40_000].prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::MetricsOnly),
        2 => Just(Op::Reset),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    generation: u64,
    half_open: bool,
    started: u64,
}

/// The reference: the documented semantics, written as plainly as possible.
#[derive(Debug)]
struct Model {
    p: Params,
    now: u64,
    state: BreakerState,
    generation: u64,
    open_until: u64,
    consecutive: u32,
    reopenings: u32,
    in_flight: u32,
    probe_successes: u32,
    half_open_since: u64,
    count_window: VecDeque<(bool, bool)>,
    time_window: Vec<(u64, bool, bool)>,
    successes: u64,
    failures: u64,
    ignored: u64,
    rejected: u64,
    slow: u64,
}

impl Model {
    fn new(p: Params) -> Self {
        Self {
            p,
            now: 0,
            state: BreakerState::Closed,
            generation: 0,
            open_until: 0,
            consecutive: 0,
            reopenings: 0,
            in_flight: 0,
            probe_successes: 0,
            half_open_since: 0,
            count_window: VecDeque::new(),
            time_window: Vec::new(),
            successes: 0,
            failures: 0,
            ignored: 0,
            rejected: 0,
            slow: 0,
        }
    }

    fn rates(&self) -> bool {
        self.p.failure_rate.is_some() || self.p.slow.is_some()
    }

    /// Time window: width = window / clamp(whole seconds, 10, 60).
    fn width(&self) -> u64 {
        match self.p.window {
            Ok(_) => 1,
            Err(ms) => {
                let n = (ms / 1000).clamp(10, 60);
                (ms * MS / n).max(1)
            }
        }
    }

    fn buckets(&self) -> u64 {
        match self.p.window {
            Ok(_) => 1,
            Err(ms) => (ms / 1000).clamp(10, 60),
        }
    }

    fn window(&self) -> (u64, u64, u64) {
        match self.p.window {
            Ok(_) => {
                let w = &self.count_window;
                (
                    w.len() as u64,
                    w.iter().filter(|x| x.0).count() as u64,
                    w.iter().filter(|x| x.1).count() as u64,
                )
            }
            Err(_) => {
                let cur = self.now / self.width();
                let live: Vec<_> = self
                    .time_window
                    .iter()
                    .filter(|(e, _, _)| cur - e < self.buckets())
                    .collect();
                (
                    live.len() as u64,
                    live.iter().filter(|x| x.1).count() as u64,
                    live.iter().filter(|x| x.2).count() as u64,
                )
            }
        }
    }

    fn transition(&mut self, to: BreakerState) {
        self.generation += 1;
        self.state = to;
        self.consecutive = 0;
    }

    fn open_for(&self, level: u32, retry_after: Option<Duration>) -> u64 {
        let max = u128::from(self.p.max_ms * MS);
        let mut d = u128::from(self.p.open_ms * MS).min(max);
        for _ in 0..level {
            d = (d * u128::from(self.p.multiplier)).min(max);
        }
        let mut d = u64::try_from(d).unwrap();
        if let Some(r) = retry_after {
            d = d.max(
                u64::try_from(r.as_nanos())
                    .unwrap()
                    .min(self.p.max_retry_after_ms * MS),
            );
        }
        d
    }

    fn open(&mut self, level: u32, retry_after: Option<Duration>) -> u64 {
        let d = self.open_for(level, retry_after);
        self.open_until = self.now + d;
        self.transition(BreakerState::Open);
        d
    }

    fn reopen(&mut self, retry_after: Option<Duration>) -> u64 {
        self.reopenings += 1;
        self.open(self.reopenings, retry_after)
    }

    fn clear(&mut self) {
        self.count_window.clear();
        self.time_window.clear();
    }

    /// `Ok(ticket)` or `Err(retry_after)`.
    fn acquire(&mut self) -> Result<Ticket, Option<u64>> {
        let fast = |m: &Self| Ticket {
            generation: m.generation,
            half_open: false,
            started: m.now,
        };
        match self.state {
            BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                Ok(fast(self))
            }
            BreakerState::ForcedOpen => {
                self.rejected += 1;
                Err(None)
            }
            BreakerState::Open if self.now < self.open_until => {
                self.rejected += 1;
                Err(Some(self.open_until - self.now))
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                if self.state == BreakerState::Open {
                    self.in_flight = 0;
                    self.probe_successes = 0;
                    self.half_open_since = self.now;
                    self.transition(BreakerState::HalfOpen);
                }
                if self.now - self.half_open_since >= self.p.max_wait_ms * MS {
                    let d = self.reopen(None);
                    self.rejected += 1;
                    Err(Some(d))
                } else if self.in_flight < self.p.permits {
                    self.in_flight += 1;
                    Ok(Ticket {
                        generation: self.generation,
                        half_open: true,
                        started: self.now,
                    })
                } else {
                    self.rejected += 1;
                    Err(None)
                }
            }
            _ => unreachable!(),
        }
    }

    fn record(&mut self, t: Ticket, outcome: Outcome) {
        let slow = self
            .p
            .slow
            .is_some_and(|(ms, _)| self.now - t.started >= ms * MS);
        let failure = matches!(outcome, Outcome::Failure | Outcome::FailureRetryAfter(_));
        let retry_after = match outcome {
            Outcome::FailureRetryAfter(d) => Some(d),
            _ => None,
        };
        match outcome {
            Outcome::Ignored => self.ignored += 1,
            _ if failure => self.failures += 1,
            _ => self.successes += 1,
        }
        if slow && outcome != Outcome::Ignored {
            self.slow += 1;
        }
        if t.generation != self.generation {
            return;
        }
        if t.half_open {
            self.in_flight -= 1;
            if outcome == Outcome::Ignored {
            } else if !failure && !slow {
                self.probe_successes += 1;
                if self.probe_successes >= self.p.permits {
                    self.reopenings = 0;
                    self.clear();
                    self.transition(BreakerState::Closed);
                }
            } else {
                self.reopen(retry_after);
            }
            return;
        }
        if outcome == Outcome::Ignored || self.state == BreakerState::Disabled {
            return;
        }
        if self.rates() {
            match self.p.window {
                Ok(n) => {
                    self.count_window.push_back((failure, slow));
                    if self.count_window.len() > n as usize {
                        self.count_window.pop_front();
                    }
                }
                Err(_) => self
                    .time_window
                    .push((self.now / self.width(), failure, slow)),
            }
        }
        let mut trip = false;
        if let Some(threshold) = self.p.consecutive {
            if failure {
                self.consecutive += 1;
                trip = self.consecutive >= threshold;
            } else {
                self.consecutive = 0;
            }
        }
        let closed = self.state == BreakerState::Closed;
        if closed && !trip && self.rates() && (failure || slow) {
            let (calls, fails, slows) = self.window();
            if calls > 0 && calls >= u64::from(self.p.minimum_calls) {
                trip = self
                    .p
                    .failure_rate
                    .is_some_and(|p| fails * 100 >= u64::from(p) * calls)
                    || self
                        .p
                        .slow
                        .is_some_and(|(_, p)| slows * 100 >= u64::from(p) * calls);
            }
        }
        if closed && trip {
            self.reopenings = 0;
            self.open(0, retry_after);
        }
    }

    fn manual(&mut self, to: BreakerState) {
        self.reopenings = 0;
        self.in_flight = 0;
        self.probe_successes = 0;
        self.clear();
        self.open_until = 0;
        self.transition(to);
    }
}

fn check(b: &Breaker, m: &Model) -> Result<(), TestCaseError> {
    let s = b.snapshot();
    prop_assert_eq!(s.state, m.state);
    prop_assert_eq!(s.generation, m.generation);
    prop_assert_eq!(
        (s.successes, s.failures, s.ignored, s.rejected, s.slow),
        (m.successes, m.failures, m.ignored, m.rejected, m.slow)
    );
    prop_assert_eq!(s.consecutive_failures, m.consecutive);
    prop_assert_eq!(
        (s.window_calls, s.window_failures, s.window_slow),
        m.window()
    );
    let next = (m.state == BreakerState::Open)
        .then(|| Duration::from_nanos(m.open_until.saturating_sub(m.now)));
    prop_assert_eq!(s.next_probe_in, next);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference_model(p in params(), ops in proptest::collection::vec(op(), 1..300)) {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock("model", p.config(), clock.clone()).unwrap();
        let mut events = breaker.subscribe();
        let mut model = Model::new(p);
        let mut held: Vec<(Permit<'_>, Ticket)> = Vec::new();
        let mut last = BreakerState::Closed;
        for op in ops {
            match op {
                Op::Acquire => {
                    let real = breaker.try_acquire();
                    let want = model.acquire();
                    match (real, want) {
                        (Ok(permit), Ok(ticket)) => {
                            prop_assert_eq!(permit.generation(), ticket.generation);
                            held.push((permit, ticket));
                        }
                        (Err(e), Err(retry)) => {
                            prop_assert_eq!(e.retry_after(), retry.map(Duration::from_nanos));
                        }
                        (real, want) => prop_assert!(false, "admission differs: real {:?}, model {:?}", real.is_ok(), want),
                    }
                }
                Op::Record(i, outcome) => {
                    if !held.is_empty() {
                        let (permit, ticket) = held.swap_remove(i % held.len());
                        permit.record(outcome);
                        model.record(ticket, outcome);
                    }
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    model.now += ms * MS;
                }
                Op::ForceOpen => { breaker.force_open(); model.manual(BreakerState::ForcedOpen); }
                Op::Disable => { breaker.disable(); model.manual(BreakerState::Disabled); }
                Op::MetricsOnly => { breaker.metrics_only(); model.manual(BreakerState::MetricsOnly); }
                Op::Reset => { breaker.reset(); model.manual(BreakerState::Closed); }
            }
            check(&breaker, &model)?;
            while let Ok(t) = events.try_recv() {
                prop_assert_eq!(t.from, last, "events follow one another");
                prop_assert!(is_legal_transition(t.from, t.to), "illegal {:?} -> {:?}", t.from, t.to);
                last = t.to;
            }
            prop_assert_eq!(last, model.state);
        }
    }
}
