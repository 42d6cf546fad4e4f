//! The breaker: a state machine over atomics, with an injected clock, usable without tower.
//!
//! The state word holds the kind of state and a generation that grows with every transition. A call takes a
//! ticket carrying the generation it started in; its result decides nothing unless that generation is still
//! the current one, so a late answer from before a trip cannot close or reopen anything.
//!
//! The closed path (admit, record a success or failure) reads and updates atomics only: the state word, the
//! consecutive-failure counter (read-only while calls succeed) and the calling thread's stripe of counters.
//! Transitions, the open-to-half-open step and every half-open decision take a mutex; they are rare.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::clock::{Clock, ClockSource, MonotonicClock, duration_to_nanos};
use crate::config::{BreakerConfig, Window};
use crate::error::{CircuitOpen, ConfigError};
use crate::window::{
    CountWindow, Mark, Padded, TimeWindow, Totals, WindowSum, stripe_count, stripe_index,
};

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; outcomes are counted and may trip the circuit.
    Closed,
    /// Calls are refused until the open duration has passed.
    Open,
    /// A limited number of probe calls go through; their outcomes close or reopen the circuit.
    HalfOpen,
    /// Calls are refused until the breaker is reset (by hand, through [`Breaker::force_open`]).
    ForcedOpen,
    /// Calls go through and nothing is counted but the totals (through [`Breaker::disable`]).
    Disabled,
    /// Calls go through; outcomes are counted and rates computed, but the circuit never opens
    /// (through [`Breaker::metrics_only`]).
    MetricsOnly,
}

impl BreakerState {
    fn code(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::Disabled => 4,
            Self::MetricsOnly => 5,
        }
    }

    /// The lowercase name (`closed`, `open`, `half_open`, `forced_open`, `disabled`, `metrics_only`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
            Self::MetricsOnly => "metrics_only",
        }
    }

    /// Whether calls are refused in this state (`Open`, `ForcedOpen`; `HalfOpen` admits probes).
    #[must_use]
    pub fn refuses_calls(self) -> bool {
        matches!(self, Self::Open | Self::ForcedOpen)
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const KIND_BITS: u32 = 3;
const KIND_MASK: u64 = (1 << KIND_BITS) - 1;

#[inline]
fn kind_of(word: u64) -> BreakerState {
    match word & KIND_MASK {
        0 => BreakerState::Closed,
        1 => BreakerState::Open,
        2 => BreakerState::HalfOpen,
        3 => BreakerState::ForcedOpen,
        4 => BreakerState::Disabled,
        _ => BreakerState::MetricsOnly,
    }
}

#[inline]
fn generation_of(word: u64) -> u64 {
    word >> KIND_BITS
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The upstream did its job.
    Success,
    /// The upstream failed (5xx, 429, transport error, timeout).
    Failure,
    /// A failure whose upstream asked to be left alone for a while (429 or 503 with `Retry-After`): if the
    /// circuit opens on it, it stays open at least that long (capped by
    /// [`BreakerConfig::max_retry_after`]).
    FailureRetryAfter(Duration),
    /// Neither: the caller cancelled, or the caller was at fault (most 4xx). Counted in the totals only.
    Ignored,
}

impl Outcome {
    fn is_failure(self) -> bool {
        matches!(self, Self::Failure | Self::FailureRetryAfter(_))
    }
}

/// A change of state, sent to every subscriber ([`Breaker::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Transition {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// The generation of the new state.
    pub generation: u64,
    /// The breaker clock's reading when it happened (serialized as `at_ms`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "at_ms", serialize_with = "crate::state::as_ms")
    )]
    pub at: Duration,
    /// When the new state is `Open`: how long until the first probe (serialized as `open_for_ms`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "open_for_ms", serialize_with = "crate::state::as_ms_opt")
    )]
    pub open_for: Option<Duration>,
}

/// A breaker's state and counts at one moment, for health checks and metrics.
///
/// Totals count every call since the breaker was built: `successes + failures + ignored` calls were admitted
/// and `rejected` refused. They are exact once no call is in flight; while calls run, a sum may miss updates
/// still being made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The current state.
    pub state: BreakerState,
    /// Incremented on every transition.
    pub generation: u64,
    /// Admitted calls that succeeded.
    pub successes: u64,
    /// Admitted calls that failed.
    pub failures: u64,
    /// Admitted calls counted as neither (cancelled, caller's fault).
    pub ignored: u64,
    /// Calls refused while open.
    pub rejected: u64,
    /// Admitted calls that were slow (also counted as successes or failures).
    pub slow: u64,
    /// Failures in a row in the current closed state.
    pub consecutive_failures: u32,
    /// Calls in the sliding window.
    pub window_calls: u64,
    /// Failures in the sliding window.
    pub window_failures: u64,
    /// Slow calls in the sliding window.
    pub window_slow: u64,
    /// When open: the time until the next probe is admitted (serialized as `next_probe_in_ms`, rounded up).
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "next_probe_in_ms",
            serialize_with = "crate::state::as_ms_opt"
        )
    )]
    pub next_probe_in: Option<Duration>,
}

impl Snapshot {
    /// All calls seen: admitted plus rejected.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.successes + self.failures + self.ignored + self.rejected
    }
}

/// A refused call, before it becomes a [`CircuitOpen`] (which needs the caller's stripe reference).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    pub(crate) retry_after: Option<Duration>,
}

/// A call's claim on the breaker: the generation it started in, whether it is a half-open probe, and when it
/// started (if slow calls are measured). Two whole words and no `bool` field: permits and futures copy it
/// around, and a byte written next to a word read back whole stalls store-to-load forwarding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    /// generation << 1 | half-open; `TAKEN` once recorded
    tag: u64,
    started: u64,
}

impl Ticket {
    const TAKEN: u64 = u64::MAX;

    #[inline]
    fn new(generation: u64, half_open: bool, started: u64) -> Self {
        Self {
            tag: (generation << 1) | u64::from(half_open),
            started,
        }
    }

    #[inline]
    fn generation(self) -> u64 {
        self.tag >> 1
    }

    #[inline]
    fn half_open(self) -> bool {
        self.tag & 1 == 1
    }

    /// The ticket, leaving it marked as recorded; `None` if it was already.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<Self> {
        if self.tag == Self::TAKEN {
            None
        } else {
            let t = *self;
            self.tag = Self::TAKEN;
            Some(t)
        }
    }
}

/// Bookkeeping of the slow paths, under the mutex.
#[derive(Debug, Default)]
struct Slow {
    /// How many times in a row the circuit has reopened from half-open (the back-off level).
    reopenings: u32,
    /// Half-open: probes admitted and not yet ended, probes that succeeded, and when half-open began.
    probes_in_flight: u32,
    probe_successes: u32,
    half_open_since: u64,
}

pub(crate) struct Core {
    pub(crate) name: Arc<str>,
    config: BreakerConfig,
    clock: ClockSource,
    state: Padded<AtomicU64>,
    consecutive: Padded<AtomicU32>,
    /// When open: the clock reading (ns) from which a probe may go.
    open_until: AtomicU64,
    stripes: usize,
    totals: Box<[Padded<Totals>]>,
    time_window: Option<TimeWindow>,
    count_window: Option<CountWindow>,
    measure_time: bool,
    rates: bool,
    slow_nanos: u64,
    slow: Mutex<Slow>,
    events: broadcast::Sender<Transition>,
    /// The registry's channel, when the breaker belongs to one.
    registry_events: Option<broadcast::Sender<Transition>>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A circuit breaker. Cheap to clone: clones share one state.
///
/// Use it directly ([`Breaker::try_acquire`], then record the outcome on the [`Permit`]) or through
/// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer) and
/// [`HttpCircuitBreakerLayer`](crate::HttpCircuitBreakerLayer).
#[derive(Clone)]
pub struct Breaker {
    // One reference per stripe, each in its own allocation with its own reference count, so that response
    // futures on different threads clone different counters (see `Breaker::local`).
    refs: Arc<[Arc<StripeRef>]>,
}

/// One of a breaker's per-stripe references to its core.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct StripeRef(pub(crate) Arc<Core>);

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core().fmt(f)
    }
}

/// The default channel capacity of transition events; a subscriber that falls further behind loses the oldest.
const EVENT_CAPACITY: usize = 64;

impl Breaker {
    /// A breaker on the system's monotonic clock ([`MonotonicClock`](crate::MonotonicClock)); under tokio's
    /// paused time, use [`Breaker::with_clock`] with a [`TokioClock`](crate::TokioClock).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the configuration cannot work.
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::build(
            name.into(),
            config,
            ClockSource::Monotonic(MonotonicClock::new()),
            None,
        )
    }

    /// A breaker on the given clock (a [`ManualClock`](crate::ManualClock) in tests).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the configuration cannot work.
    pub fn with_clock(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
        clock: impl Clock,
    ) -> Result<Self, ConfigError> {
        Self::build(
            name.into(),
            config,
            ClockSource::Custom(Arc::new(clock)),
            None,
        )
    }

    fn build(
        name: Arc<str>,
        config: BreakerConfig,
        clock: ClockSource,
        events: Option<broadcast::Sender<Transition>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::construct(name, config, clock, events))
    }

    /// Builds from a configuration that has been validated.
    pub(crate) fn construct(
        name: Arc<str>,
        config: BreakerConfig,
        clock: ClockSource,
        events: Option<broadcast::Sender<Transition>>,
    ) -> Self {
        let stripes = stripe_count();
        let rates = config.failure_rate.is_some() || config.slow_call.is_some();
        let (time_window, count_window) = match (rates, config.window) {
            (false, _) => (None, None),
            (true, Window::Time(_)) => {
                let width = config.window.bucket_width().map_or(1, duration_to_nanos);
                let buckets = config.window.buckets().unwrap_or(10) as usize;
                (Some(TimeWindow::new(width, buckets, stripes)), None)
            }
            (true, Window::Count(n)) => (None, Some(CountWindow::new(n.get() as usize))),
        };
        let slow_nanos = config
            .slow_call
            .map_or(u64::MAX, |(d, _)| duration_to_nanos(d));
        let core = Arc::new(Core {
            name,
            measure_time: config.slow_call.is_some(),
            rates,
            slow_nanos,
            config,
            clock,
            state: Padded(AtomicU64::new(BreakerState::Closed.code())),
            consecutive: Padded(AtomicU32::new(0)),
            open_until: AtomicU64::new(0),
            stripes,
            totals: (0..stripes).map(|_| Padded(Totals::default())).collect(),
            time_window,
            count_window,
            slow: Mutex::new(Slow::default()),
            events: broadcast::channel(EVENT_CAPACITY).0,
            registry_events: events,
        });
        let refs = (0..stripes)
            .map(|_| Arc::new(StripeRef(Arc::clone(&core))))
            .collect();
        Self { refs }
    }

    /// Whether this handle is the only one and no call is in flight.
    pub(crate) fn is_unshared(&self) -> bool {
        Arc::strong_count(&self.refs) == 1 && self.refs.iter().all(|r| Arc::strong_count(r) == 1)
    }

    #[inline]
    pub(crate) fn core(&self) -> &Core {
        &self.refs[0].0
    }

    /// The calling thread's own reference to the core: cloning it touches a reference count no other thread
    /// (of the first `stripes`) touches.
    #[inline]
    pub(crate) fn local(&self) -> Arc<StripeRef> {
        Arc::clone(&self.refs[stripe_index(self.refs.len())])
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core().name
    }

    /// The error for a refusal, holding this thread's stripe reference (no shared count to bump).
    #[cold]
    pub(crate) fn refusal(&self, refusal: Refusal) -> CircuitOpen {
        CircuitOpen::new(self.local(), refusal.retry_after)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.core().config
    }

    /// The current state (an open circuit whose time is up still reads `Open` until a call probes it).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.core().state()
    }

    /// Asks to make a call: a [`Permit`] to record the outcome on, or the refusal.
    ///
    /// # Errors
    ///
    /// [`CircuitOpen`] when the circuit is open, forced open, or half-open with every probe taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, CircuitOpen> {
        let core = self.core();
        if let Some(ticket) = core.fast_ticket() {
            return Ok(Permit { core, ticket });
        }
        match core.acquire() {
            Ok(ticket) => Ok(Permit { core, ticket }),
            Err(refusal) => Err(self.refusal(refusal)),
        }
    }

    /// The state and counts now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.core().snapshot()
    }

    /// Transition events from now on. A subscriber that falls behind by more than 64 events loses the oldest
    /// (tokio broadcast semantics); [`Breaker::snapshot`] always tells the current state.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.core().events.subscribe()
    }

    /// Opens the circuit until [`Breaker::reset`] (or another manual transition).
    pub fn force_open(&self) {
        self.core().manual(BreakerState::ForcedOpen);
    }

    /// Lets every call through and counts only totals, until another manual transition.
    pub fn disable(&self) {
        self.core().manual(BreakerState::Disabled);
    }

    /// Counts and computes rates but never opens, until another manual transition.
    pub fn metrics_only(&self) {
        self.core().manual(BreakerState::MetricsOnly);
    }

    /// Closes the circuit and forgets the window, the failure streak and the back-off.
    pub fn reset(&self) {
        self.core().manual(BreakerState::Closed);
    }

    /// Runs `call` if the breaker admits it and records its outcome as `classify` says.
    ///
    /// # Errors
    ///
    /// [`CircuitOpen`] when refused; otherwise the call's own result inside `Ok`.
    pub async fn call<F, T, E>(
        &self,
        call: F,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<Result<T, E>, CircuitOpen>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        permit.record(classify(&result));
        Ok(result)
    }
}

/// The right to make one call. Record how it ended with [`Permit::record`]; a permit dropped unrecorded
/// counts as [`Outcome::Ignored`] (a cancelled call), which also frees a half-open probe slot.
#[derive(Debug)]
#[must_use = "a permit dropped unrecorded counts the call as ignored"]
pub struct Permit<'a> {
    core: &'a Core,
    ticket: Ticket,
}

impl Permit<'_> {
    /// Records the outcome.
    pub fn record(mut self, outcome: Outcome) {
        if let Some(t) = self.ticket.take() {
            self.core.record(t, outcome);
        }
    }

    /// Records a success.
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// Records a failure.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// The generation the call started in.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.ticket.generation()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.core.record(t, Outcome::Ignored);
        }
    }
}

impl Core {
    #[inline]
    fn state(&self) -> BreakerState {
        kind_of(self.state.load(Ordering::Acquire))
    }

    #[inline]
    fn totals(&self) -> &Totals {
        &self.totals[stripe_index(self.stripes)]
    }

    fn lock(&self) -> MutexGuard<'_, Slow> {
        // The guarded data stays consistent at every step, so a panic elsewhere while holding it is harmless.
        self.slow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[inline]
    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// The closed path's admission: a ticket when the state admits every call, `None` otherwise (then call
    /// [`Core::acquire`]). Kept apart so the hot path never builds a `Result` holding a refusal.
    #[inline]
    pub(crate) fn fast_ticket(&self) -> Option<Ticket> {
        let word = self.state.load(Ordering::Acquire);
        match kind_of(word) {
            BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                let started = if self.measure_time { self.now() } else { 0 };
                Some(Ticket::new(generation_of(word), false, started))
            }
            _ => None,
        }
    }

    pub(crate) fn acquire(&self) -> Result<Ticket, Refusal> {
        let word = self.state.load(Ordering::Acquire);
        match kind_of(word) {
            BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                let started = if self.measure_time { self.now() } else { 0 };
                Ok(Ticket::new(generation_of(word), false, started))
            }
            BreakerState::Open => {
                // The coarse reading turns calls away cheaply; the move to half-open checks the precise one.
                let now = self.clock.coarse_nanos();
                let until = self.open_until.load(Ordering::Acquire);
                if now < until {
                    Err(self.reject(Some(Duration::from_nanos(until - now))))
                } else {
                    self.acquire_slow(self.now())
                }
            }
            BreakerState::HalfOpen => self.acquire_slow(self.now()),
            BreakerState::ForcedOpen => Err(self.reject(None)),
        }
    }

    #[cold]
    fn reject(&self, retry_after: Option<Duration>) -> Refusal {
        self.totals().add(Mark::Rejected, false);
        Refusal { retry_after }
    }

    #[cold]
    fn acquire_slow(&self, now: u64) -> Result<Ticket, Refusal> {
        let mut slow = self.lock();
        let mut word = self.state.load(Ordering::Acquire);
        if kind_of(word) == BreakerState::Open {
            let until = self.open_until.load(Ordering::Acquire);
            if now < until {
                drop(slow);
                return Err(self.reject(Some(Duration::from_nanos(until - now))));
            }
            slow.probes_in_flight = 0;
            slow.probe_successes = 0;
            slow.half_open_since = now;
            word = self.transition(word, BreakerState::HalfOpen, now, None);
        }
        match kind_of(word) {
            BreakerState::HalfOpen => {
                let waited = now.saturating_sub(slow.half_open_since);
                if waited >= duration_to_nanos(self.config.half_open_max_wait) {
                    // The probes hung: reopen as if they had failed.
                    let open_for = self.reopen(&mut slow, word, now, None);
                    drop(slow);
                    return Err(self.reject(Some(open_for)));
                }
                if slow.probes_in_flight < self.config.half_open_permits.get() {
                    slow.probes_in_flight += 1;
                    let started = if self.measure_time { now } else { 0 };
                    Ok(Ticket::new(generation_of(word), true, started))
                } else {
                    drop(slow);
                    Err(self.reject(None))
                }
            }
            BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                let started = if self.measure_time { now } else { 0 };
                Ok(Ticket::new(generation_of(word), false, started))
            }
            BreakerState::ForcedOpen | BreakerState::Open => {
                drop(slow);
                Err(self.reject(None))
            }
        }
    }

    #[inline]
    pub(crate) fn record(&self, ticket: Ticket, outcome: Outcome) {
        let slow =
            self.measure_time && self.now().saturating_sub(ticket.started) >= self.slow_nanos;
        let mark = match outcome {
            Outcome::Success => Mark::Success,
            Outcome::Failure | Outcome::FailureRetryAfter(_) => Mark::Failure,
            Outcome::Ignored => Mark::Ignored,
        };
        let stripe = stripe_index(self.stripes);
        self.totals[stripe].add(mark, slow && mark != Mark::Ignored);
        let word = self.state.load(Ordering::Acquire);
        if generation_of(word) != ticket.generation() {
            // Started in an earlier state: counted, but decides nothing now.
            return;
        }
        if ticket.half_open() {
            self.record_probe(word, outcome, slow);
            return;
        }
        let kind = kind_of(word);
        if outcome == Outcome::Ignored || kind == BreakerState::Disabled {
            return;
        }
        let failure = outcome.is_failure();
        // The window's buckets run on the coarse clock (read only when there is a time window).
        let now = if self.time_window.is_some() {
            self.clock.coarse_nanos()
        } else {
            0
        };
        if self.rates {
            self.record_window(stripe, failure, slow, now);
        }
        let may_trip = kind == BreakerState::Closed;
        let mut trip = false;
        if let Some(threshold) = self.config.consecutive_failures {
            if failure {
                let n = self
                    .consecutive
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                trip = n >= threshold.get();
            } else if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
        }
        if may_trip && !trip && self.rates && (failure || slow) {
            trip = self.rates_exceeded(now);
        }
        if may_trip && trip {
            let retry_after = match outcome {
                Outcome::FailureRetryAfter(d) => Some(d),
                _ => None,
            };
            self.trip(word, retry_after);
        }
    }

    #[inline]
    fn record_window(&self, stripe: usize, failure: bool, slow: bool, now: u64) {
        if let Some(w) = &self.time_window {
            w.record(stripe, now, failure, slow);
        } else if let Some(w) = &self.count_window {
            w.record(failure, slow);
        }
    }

    fn window_sum(&self, now: u64) -> WindowSum {
        if let Some(w) = &self.time_window {
            w.sum(now, self.stripes)
        } else if let Some(w) = &self.count_window {
            w.sum()
        } else {
            WindowSum::default()
        }
    }

    fn rates_exceeded(&self, now: u64) -> bool {
        let s = self.window_sum(now);
        if s.calls == 0 || s.calls < u64::from(self.config.minimum_calls) {
            return false;
        }
        let over =
            |bad: u64, pct: u8| bad.saturating_mul(100) >= u64::from(pct).saturating_mul(s.calls);
        self.config
            .failure_rate
            .is_some_and(|p| over(s.failures, p))
            || self.config.slow_call.is_some_and(|(_, p)| over(s.slow, p))
    }

    #[cold]
    fn trip(&self, expected: u64, retry_after: Option<Duration>) {
        // The hot path reads the clock only when a window or slow-call threshold needs it.
        let now = self.now();
        let mut slow = self.lock();
        if self.state.load(Ordering::Acquire) != expected {
            return; // someone else moved it first
        }
        slow.reopenings = 0;
        let open_for = self.open_for(0, generation_of(expected) + 1, retry_after);
        self.open(expected, now, open_for);
    }

    /// Reopens from half-open with the next back-off level; returns the open duration.
    fn reopen(
        &self,
        slow: &mut Slow,
        word: u64,
        now: u64,
        retry_after: Option<Duration>,
    ) -> Duration {
        slow.reopenings = slow.reopenings.saturating_add(1);
        let open_for = self.open_for(slow.reopenings, generation_of(word) + 1, retry_after);
        self.open(word, now, open_for);
        open_for
    }

    fn open(&self, word: u64, now: u64, open_for: Duration) {
        self.open_until.store(
            now.saturating_add(duration_to_nanos(open_for)),
            Ordering::Release,
        );
        self.transition(word, BreakerState::Open, now, Some(open_for));
    }

    /// The open duration at back-off `level`, jittered, and held at least as long as the upstream asked.
    fn open_for(&self, level: u32, generation: u64, retry_after: Option<Duration>) -> Duration {
        let backoff = self.config.backoff;
        let mut d = backoff.duration(self.config.open_duration, level);
        let jitter = u64::from(backoff.jitter());
        if jitter > 0 {
            // Deterministic per generation (splitmix64), uniform in [-jitter %, +jitter %].
            let mut z = generation.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let span = jitter * 2 + 1;
            let pct = z % span; // 0 ..= 2 * jitter
            let nanos = u128::from(duration_to_nanos(d));
            let scaled = nanos * u128::from(100 - jitter + pct) / 100;
            d = Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
                .max(Duration::from_nanos(1));
        }
        if let Some(r) = retry_after {
            d = d.max(r.min(self.config.max_retry_after));
        }
        d
    }

    #[cold]
    fn record_probe(&self, expected: u64, outcome: Outcome, slow_call: bool) {
        let now = self.now();
        let mut slow = self.lock();
        let word = self.state.load(Ordering::Acquire);
        if word != expected {
            return;
        }
        slow.probes_in_flight = slow.probes_in_flight.saturating_sub(1);
        match outcome {
            Outcome::Ignored => {}
            Outcome::Success if !slow_call => {
                slow.probe_successes += 1;
                if slow.probe_successes >= self.config.half_open_permits.get() {
                    slow.reopenings = 0;
                    self.clear_counts();
                    self.transition(word, BreakerState::Closed, now, None);
                }
            }
            Outcome::FailureRetryAfter(d) => {
                self.reopen(&mut slow, word, now, Some(d));
            }
            Outcome::Success | Outcome::Failure => {
                self.reopen(&mut slow, word, now, None);
            }
        }
    }

    fn clear_counts(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        if let Some(w) = &self.time_window {
            w.clear();
        }
        if let Some(w) = &self.count_window {
            w.clear();
        }
    }

    /// Moves from `word` to `to` with the next generation and tells subscribers. Call with the mutex held.
    fn transition(&self, word: u64, to: BreakerState, now: u64, open_for: Option<Duration>) -> u64 {
        let generation = generation_of(word) + 1;
        let next = (generation << KIND_BITS) | to.code();
        if to != BreakerState::Closed && to != BreakerState::MetricsOnly {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        self.state.store(next, Ordering::Release);
        let from = kind_of(word);
        if from != to {
            let event = Transition {
                name: Arc::clone(&self.name),
                from,
                to,
                generation,
                at: Duration::from_nanos(now),
                open_for,
            };
            log_transition(&event);
            // No subscriber is not an error.
            if let Some(r) = &self.registry_events {
                let _ = r.send(event.clone());
            }
            let _ = self.events.send(event);
        }
        next
    }

    fn manual(&self, to: BreakerState) {
        let now = self.now();
        let mut slow = self.lock();
        let word = self.state.load(Ordering::Acquire);
        slow.reopenings = 0;
        slow.probes_in_flight = 0;
        slow.probe_successes = 0;
        self.clear_counts();
        self.open_until.store(0, Ordering::Release);
        self.transition(word, to, now, None);
    }

    fn snapshot(&self) -> Snapshot {
        let now = self.now();
        let coarse = self.clock.coarse_nanos();
        let word = self.state.load(Ordering::Acquire);
        let state = kind_of(word);
        let t = Totals::sum(self.totals.iter().map(|p| &p.0));
        let w = self.window_sum(coarse);
        let next_probe_in = (state == BreakerState::Open).then(|| {
            Duration::from_nanos(self.open_until.load(Ordering::Acquire).saturating_sub(now))
        });
        Snapshot {
            name: Arc::clone(&self.name),
            state,
            generation: generation_of(word),
            successes: t.successes,
            failures: t.failures,
            ignored: t.ignored,
            rejected: t.rejected,
            slow: t.slow,
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            window_calls: w.calls,
            window_failures: w.failures,
            window_slow: w.slow,
            next_probe_in,
        }
    }
}

/// One log event per transition (never per call): WARN when calls start being refused (`open`,
/// `forced_open`), INFO otherwise. Fields: `breaker` (the name), `from`, `to`, `generation`, and
/// `open_for_ms` when opening.
fn log_transition(t: &Transition) {
    let open_for_ms = t
        .open_for
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if t.to.refuses_calls() {
        tracing::warn!(
            breaker = %t.name, from = t.from.as_str(), to = t.to.as_str(), generation = t.generation,
            open_for_ms, "circuit breaker opened"
        );
    } else {
        tracing::info!(
            breaker = %t.name, from = t.from.as_str(), to = t.to.as_str(), generation = t.generation,
            "circuit breaker changed state"
        );
    }
}

/// Whole milliseconds, rounded up (so a wait never reads as 0 while it lasts).
#[cfg(feature = "serde")]
fn ms(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(feature = "serde")]
fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(ms(*d))
}

#[cfg(feature = "serde")]
#[allow(clippy::ref_option)] // serde's `serialize_with` passes a reference to the field
fn as_ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&ms(*d)),
        None => s.serialize_none(),
    }
}

/// Whether `from -> to` is a transition a breaker may make.
#[must_use]
pub fn is_legal_transition(from: BreakerState, to: BreakerState) -> bool {
    use BreakerState::{Closed, Disabled, ForcedOpen, HalfOpen, MetricsOnly, Open};
    match (from, to) {
        (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Open) => true,
        // a probe closes; a reset closes from anywhere
        (_, Closed) => true,
        // manual transitions, from anywhere else
        (f, t) => f != t && matches!(t, ForcedOpen | Disabled | MetricsOnly),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::num::NonZeroU32;

    fn breaker(config: BreakerConfig) -> (Breaker, ManualClock) {
        let clock = ManualClock::new();
        (
            Breaker::with_clock("upstream", config, clock.clone()).unwrap(),
            clock,
        )
    }

    fn fail(b: &Breaker, n: usize) {
        for _ in 0..n {
            b.try_acquire().unwrap().failure();
        }
    }

    #[test]
    fn five_consecutive_failures_open_and_a_success_resets_the_streak() {
        let (b, _) = breaker(BreakerConfig::default());
        fail(&b, 4);
        b.try_acquire().unwrap().success();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        let err = b.try_acquire().unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn half_open_admits_one_probe_and_success_closes() {
        let (b, clock) = breaker(BreakerConfig::default());
        fail(&b, 5);
        clock.advance(Duration::from_secs(60));
        let probe = b.try_acquire().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire().is_err());
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 0);
    }

    #[test]
    fn failed_probes_back_off_exponentially_to_the_cap() {
        let (b, clock) = breaker(BreakerConfig::default());
        fail(&b, 5);
        for expected in [120, 240, 480, 600, 600] {
            clock.advance(Duration::from_secs(600));
            b.try_acquire().unwrap().failure();
            assert_eq!(
                b.snapshot().next_probe_in,
                Some(Duration::from_secs(expected))
            );
        }
    }

    #[test]
    fn a_hung_probe_reopens_after_the_maximum_wait() {
        let (b, clock) =
            breaker(BreakerConfig::default().half_open_max_wait(Duration::from_secs(5)));
        fail(&b, 5);
        clock.advance(Duration::from_secs(60));
        let hung = b.try_acquire().unwrap();
        clock.advance(Duration::from_secs(5));
        let err = b.try_acquire().unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        assert_eq!(b.state(), BreakerState::Open);
        hung.success(); // too late: decides nothing
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_dropped_probe_frees_its_slot() {
        let (b, clock) = breaker(BreakerConfig::default());
        fail(&b, 5);
        clock.advance(Duration::from_secs(60));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().ignored, 1);
    }

    #[test]
    fn several_probes_must_all_succeed() {
        let (b, clock) =
            breaker(BreakerConfig::default().half_open_permits(NonZeroU32::new(3).unwrap()));
        fail(&b, 5);
        clock.advance(Duration::from_secs(60));
        let p: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
        assert!(b.try_acquire().is_err());
        let mut p = p.into_iter();
        p.next().unwrap().success();
        p.next().unwrap().success();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p.next().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failure_rate_over_a_count_window_opens_after_the_minimum_calls() {
        let config = BreakerConfig::default()
            .consecutive_failures(None)
            .window(Window::Count(NonZeroU32::new(10).unwrap()))
            .minimum_calls(10);
        let (b, _) = breaker(config);
        for i in 0..9 {
            let p = b.try_acquire().unwrap();
            if i % 2 == 0 { p.failure() } else { p.success() }
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "9 calls are under the minimum"
        );
        b.try_acquire().unwrap().success();
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "a success does not evaluate the failure rate"
        );
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn slow_calls_open_on_their_rate() {
        let config = BreakerConfig::default()
            .consecutive_failures(None)
            .failure_rate(None)
            .slow_calls(Duration::from_secs(2), 50)
            .minimum_calls(2);
        let (b, clock) = breaker(config);
        b.try_acquire().unwrap().success();
        let p = b.try_acquire().unwrap();
        clock.advance(Duration::from_secs(2));
        p.success();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.snapshot().slow, 1);
    }

    #[test]
    fn retry_after_holds_the_circuit_open_up_to_the_cap() {
        let (b, _) = breaker(BreakerConfig::default().max_retry_after(Duration::from_secs(300)));
        fail(&b, 4);
        b.try_acquire()
            .unwrap()
            .record(Outcome::FailureRetryAfter(Duration::from_secs(120)));
        assert_eq!(b.snapshot().next_probe_in, Some(Duration::from_secs(120)));
        b.reset();
        fail(&b, 4);
        b.try_acquire()
            .unwrap()
            .record(Outcome::FailureRetryAfter(Duration::from_secs(3600)));
        assert_eq!(b.snapshot().next_probe_in, Some(Duration::from_secs(300)));
    }

    #[test]
    fn a_late_failure_from_before_the_trip_changes_nothing() {
        let (b, clock) = breaker(BreakerConfig::default());
        let late = b.try_acquire().unwrap();
        fail(&b, 5);
        clock.advance(Duration::from_secs(60));
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        late.failure();
        assert_eq!(b.snapshot().consecutive_failures, 0);
        assert_eq!(b.snapshot().failures, 6);
    }

    #[test]
    fn manual_states_override_and_reset_restores() {
        let (b, _) = breaker(BreakerConfig::default());
        b.force_open();
        assert!(b.try_acquire().unwrap_err().retry_after().is_none());
        b.disable();
        fail(&b, 20);
        assert_eq!(b.state(), BreakerState::Disabled);
        b.metrics_only();
        fail(&b, 30);
        assert_eq!(b.state(), BreakerState::MetricsOnly);
        assert_eq!(b.snapshot().window_failures, 30);
        b.reset();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().window_calls, 0);
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let config = BreakerConfig::default()
            .backoff(crate::Backoff::exponential(2, Duration::from_secs(600)).jitter_percent(20));
        let (b, clock) = breaker(config);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            fail(&b, 5);
            let d = b.snapshot().next_probe_in.unwrap();
            assert!(
                d >= Duration::from_secs(48) && d <= Duration::from_secs(72),
                "{d:?}"
            );
            seen.insert(d);
            clock.advance(Duration::from_secs(100));
            b.try_acquire().unwrap().success();
        }
        assert!(seen.len() > 1);
    }

    #[test]
    fn transitions_are_announced() {
        let (b, clock) = breaker(BreakerConfig::default());
        let mut rx = b.subscribe();
        fail(&b, 5);
        clock.advance(Duration::from_secs(60));
        b.try_acquire().unwrap().success();
        let seen: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|t| (t.from, t.to))
            .collect();
        use BreakerState::*;
        assert_eq!(seen, [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn snapshots_and_transitions_serialize_with_milliseconds() {
        let (b, _) = breaker(BreakerConfig::default());
        let mut rx = b.subscribe();
        fail(&b, 5);
        let json = serde_json::to_value(b.snapshot()).unwrap();
        assert_eq!(json["name"], "upstream");
        assert_eq!(json["state"], "open");
        assert_eq!(json["failures"], 5);
        assert_eq!(json["next_probe_in_ms"], 60_000);
        let t = serde_json::to_value(rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            (t["from"].as_str(), t["to"].as_str()),
            (Some("closed"), Some("open"))
        );
        assert_eq!(t["open_for_ms"], 60_000);
        b.force_open();
        let json = serde_json::to_value(b.snapshot()).unwrap();
        assert_eq!(json["state"], "forced_open");
        assert!(json["next_probe_in_ms"].is_null());
    }

    #[test]
    fn legal_transitions() {
        use BreakerState::*;
        assert!(is_legal_transition(Closed, Open));
        assert!(is_legal_transition(HalfOpen, Closed));
        assert!(is_legal_transition(Open, Closed)); // reset
        assert!(!is_legal_transition(Closed, HalfOpen));
        assert!(!is_legal_transition(Open, Open));
    }
}
