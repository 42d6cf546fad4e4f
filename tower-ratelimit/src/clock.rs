//! Where the limiter reads the time: a monotonic clock by default, a manual one in tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source of monotonic time in whole microseconds since the clock's own origin.
///
/// The value must never go backwards (governor#299 saw a clock that did). Microseconds are the unit of every
/// stored state, so the memory and Redis stores decide a sequence the same way.
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since this clock's origin.
    fn now_micros(&self) -> u64;

    /// Whether this clock is the real time of this process. The Redis store takes its time from Redis (`TIME`)
    /// when this is `true`, and passes [`now_micros`](Clock::now_micros) to its script when it is `false`, so a
    /// test clock drives both stores through the same sequence.
    fn is_real_time(&self) -> bool {
        true
    }
}

/// The default clock: `std::time::Instant`, which is monotonic, measured from the moment the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_micros(&self) -> u64 {
        // Starts at 1 so that a stored state of 0 always means "never used".
        u64::try_from(self.origin.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}

/// The default clock: the CPU's time-stamp counter (TSC) read through `quanta`, scaled to microseconds, and
/// clamped so that it never runs backwards; `std::time::Instant` where the TSC is not trustworthy.
///
/// Why it cannot run backwards: every value a thread gets is `max(last value this thread got, scaled TSC)`
/// (a thread-local word, no shared cache line), and all `TscClock`s share one origin, so the clamp is valid
/// across clocks. A thread that moves to a core whose counter is slightly behind (governor#299) therefore sees
/// the same time again, never an earlier one.
///
/// Why threads agree: the TSC is used only when the Linux kernel itself chose `tsc` as its clocksource, which
/// it does only after verifying that the counter is invariant and synchronized across CPUs (and keeps watching
/// it); `std::time::Instant` then reads the very same counter in the vDSO, so two threads agree as closely as
/// they do through `Instant`. Elsewhere (another clocksource, another OS, no invariant TSC) this clock reads
/// `Instant`, like [`MonotonicClock`], and is exact all the same. A decision takes one reading for all its
/// limits, and GCRA's compare-and-swap on each key's TAT makes concurrent decisions consistent whatever their
/// readings.
///
/// The first `TscClock` of a process calibrates the counter against the OS clock (up to 200 ms, once).
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    source: TscSource,
}

#[derive(Debug, Clone, Copy)]
enum TscSource {
    Tsc(&'static TscBase),
    Std(MonotonicClock),
}

#[derive(Debug)]
struct TscBase {
    clock: quanta::Clock,
    origin: u64,
}

static TSC_BASE: std::sync::OnceLock<Option<TscBase>> = std::sync::OnceLock::new();

thread_local! {
    /// The last value this thread read from any `TscClock` (they share one origin).
    static LAST_TSC_MICROS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn kernel_trusts_tsc() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|s| s.trim() == "tsc")
}

impl TscClock {
    /// The process's TSC clock (calibrated on first use), or `Instant` where the TSC is not trustworthy.
    #[must_use]
    pub fn new() -> Self {
        let base = TSC_BASE.get_or_init(|| {
            if !kernel_trusts_tsc() {
                return None;
            }
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            Some(TscBase { clock, origin })
        });
        let source = match base {
            Some(base) => TscSource::Tsc(base),
            None => TscSource::Std(MonotonicClock::new()),
        };
        Self { source }
    }

    /// Whether this clock reads the TSC (`false`: it reads `std::time::Instant`).
    #[must_use]
    pub fn reads_tsc(&self) -> bool {
        matches!(self.source, TscSource::Tsc(_))
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TscClock {
    #[inline]
    fn now_micros(&self) -> u64 {
        match self.source {
            TscSource::Tsc(base) => {
                // `delta_as_nanos` is 0 for a reading at or before the origin; starts at 1 like `MonotonicClock`.
                let micros = base.clock.delta_as_nanos(base.origin, base.clock.raw()) / 1000 + 1;
                LAST_TSC_MICROS.with(|last| {
                    let now = micros.max(last.get());
                    last.set(now);
                    now
                })
            }
            TscSource::Std(clock) => clock.now_micros(),
        }
    }
}

/// A clock that moves only when told to; clones share one time. For tests and simulations.
#[derive(Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("micros", &self.now_micros())
            .finish()
    }
}

impl ManualClock {
    /// A clock standing at `start_micros`.
    #[must_use]
    pub fn starting_at(start_micros: u64) -> Self {
        Self {
            micros: Arc::new(AtomicU64::new(start_micros)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .micros
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some(m.saturating_add(micros))
            });
    }

    /// Moves the clock forward by a number of microseconds.
    pub fn advance_micros(&self, micros: u64) {
        let _ = self
            .micros
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some(m.saturating_add(micros))
            });
    }

    /// Sets the time; a value earlier than the current one is ignored, so the clock never runs backwards.
    pub fn set_micros(&self, micros: u64) {
        self.micros.fetch_max(micros, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.micros.load(Ordering::Acquire)
    }

    fn is_real_time(&self) -> bool {
        false
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_micros(&self) -> u64 {
        (**self).now_micros()
    }

    fn is_real_time(&self) -> bool {
        (**self).is_real_time()
    }
}

/// A clock read with one atomic load, advanced by a background thread every `tick`: for limiters where reading
/// `Instant` (about 25 ns on a virtual machine) is a noticeable share of a decision.
///
/// Its time is never ahead of the real monotonic time and lags it by at most one tick plus the thread's
/// scheduling delay. A lag of `d` can admit at most `d / T` more units in a window than the exact bound (one unit
/// per millisecond of lag at 1 000 units per second), so pick a tick well below the emission intervals in use.
/// The thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct CoarseClock {
    inner: Arc<CoarseInner>,
}

struct CoarseInner {
    micros: AtomicU64,
}

impl fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseClock")
            .field("micros", &self.now_micros())
            .finish()
    }
}

impl CoarseClock {
    /// A clock advanced every `tick` (at least 100 microseconds).
    ///
    /// # Errors
    ///
    /// When the operating system refuses to start the ticking thread.
    pub fn new(tick: Duration) -> std::io::Result<Self> {
        let tick = tick.max(Duration::from_micros(100));
        let monotonic = MonotonicClock::new();
        let inner = Arc::new(CoarseInner {
            micros: AtomicU64::new(monotonic.now_micros()),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("ratelimit-clock".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    let Some(inner) = weak.upgrade() else { return };
                    inner
                        .micros
                        .fetch_max(monotonic.now_micros(), Ordering::AcqRel);
                }
            })?;
        Ok(Self { inner })
    }
}

impl Clock for CoarseClock {
    fn now_micros(&self) -> u64 {
        self.inner.micros.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_clock_never_runs_backwards_on_any_thread_and_keeps_pace_with_instant() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let clock = TscClock::new();
                    let other = TscClock::new();
                    let mut last = 0;
                    for i in 0..200_000u32 {
                        // Two clocks read in turn: one origin, one clamp.
                        let now = if i % 2 == 0 {
                            clock.now_micros()
                        } else {
                            other.now_micros()
                        };
                        assert!(now >= last, "went back from {last} to {now}");
                        assert!(now >= 1);
                        last = now;
                        if i % 10_000 == 0 {
                            std::thread::yield_now(); // invite a move to the other core
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Against Instant: the TSC stretch [t0, t1] lies inside [i0, i3] and contains [i1, i2], so preemption
        // only widens the outer bracket; equal rates within 1 % plus a microsecond of rounding on each side.
        let clock = TscClock::new();
        let i0 = Instant::now();
        let t0 = clock.now_micros();
        let i1 = Instant::now();
        while i1.elapsed() < Duration::from_millis(50) {
            std::hint::spin_loop();
        }
        let i2 = Instant::now();
        let t1 = clock.now_micros();
        let i3 = Instant::now();
        let ours = t1 - t0;
        let inner = u64::try_from((i2 - i1).as_micros()).unwrap();
        let outer = u64::try_from((i3 - i0).as_micros()).unwrap();
        assert!(
            ours + inner / 100 + 2 >= inner,
            "tsc {ours} us, at least {inner} us passed"
        );
        assert!(
            ours <= outer + outer / 100 + 2,
            "tsc {ours} us, at most {outer} us passed"
        );
    }

    #[test]
    fn tsc_clock_is_used_exactly_when_the_kernel_trusts_the_tsc() {
        assert_eq!(TscClock::new().reads_tsc(), kernel_trusts_tsc());
    }

    #[test]
    fn coarse_clock_moves_and_never_leads_the_monotonic_one() {
        let coarse = CoarseClock::new(Duration::from_millis(1)).unwrap();
        let first = coarse.now_micros();
        // The ticking thread is real time by nature: wait for it with a bound, not to make a point.
        let deadline = Instant::now() + Duration::from_secs(5);
        while coarse.now_micros() == first && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(coarse.now_micros() > first);
        let manual = ManualClock::starting_at(5);
        manual.set_micros(3);
        assert_eq!(
            manual.now_micros(),
            5,
            "a manual clock never runs backwards"
        );
    }
}
