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
