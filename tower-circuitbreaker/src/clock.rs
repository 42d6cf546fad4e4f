//! Time sources for a breaker: the system's monotonic clock by default, tokio's (which follows paused time)
//! and a manual clock for tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic time source: the time elapsed since a fixed origin of the clock's choosing.
///
/// It must never run backwards; a breaker compares readings to decide when a circuit may be probed.
pub trait Clock: Send + Sync + 'static {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;

    /// A cheaper reading that may be off from [`Clock::now`] by up to a few milliseconds (one kernel tick),
    /// monotonic in itself. The closed path uses it to place calls in the time window's buckets and to turn
    /// away calls while open; every transition uses [`Clock::now`]. Defaults to `now`.
    fn now_coarse(&self) -> Duration {
        self.now()
    }
}

/// The system's monotonic clock, the default: [`std::time::Instant`] for [`Clock::now`], and on Linux
/// `CLOCK_MONOTONIC_COARSE` (read from the vDSO, a few nanoseconds, tick resolution) for
/// [`Clock::now_coarse`].
///
/// It does not follow tokio's paused time; tests that pause time use [`TokioClock`].
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: std::time::Instant,
    #[cfg(target_os = "linux")]
    coarse_origin: u64,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
            #[cfg(target_os = "linux")]
            // One tick before the coarse reading, so the coarse elapsed time is never behind the precise one
            // (it runs up to two ticks ahead): a refusal's `retry_after` never overstates the wait, and a
            // call that finds the open time up on the coarse clock is checked again on the precise one.
            coarse_origin: coarse_nanos().saturating_sub(coarse_tick()),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    #[inline]
    fn now_coarse(&self) -> Duration {
        #[cfg(target_os = "linux")]
        {
            Duration::from_nanos(coarse_nanos().saturating_sub(self.coarse_origin))
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.now()
        }
    }
}

#[cfg(target_os = "linux")]
fn coarse_tick() -> u64 {
    let t = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
    let tick = u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0));
    if tick == 0 { 10_000_000 } else { tick }
}

#[cfg(target_os = "linux")]
#[inline]
fn coarse_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// tokio's monotonic clock ([`tokio::time::Instant`]): in a test with `#[tokio::test(start_paused = true)]` it
/// follows `tokio::time::advance`. Its coarse reading is the precise one.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Duration {
        // `elapsed` saturates at zero, so this never runs backwards.
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to: for tests and simulations. Clones share one time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

/// The clock a breaker holds: the default one inline (no dynamic call on the hot path), any other behind a
/// pointer.
#[derive(Clone)]
pub(crate) enum ClockSource {
    Monotonic(MonotonicClock),
    Custom(Arc<dyn Clock>),
}

impl ClockSource {
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        let now = match self {
            Self::Monotonic(c) => c.now(),
            Self::Custom(c) => c.now(),
        };
        duration_to_nanos(now)
    }

    #[inline]
    pub(crate) fn coarse_nanos(&self) -> u64 {
        let now = match self {
            Self::Monotonic(c) => c.now_coarse(),
            Self::Custom(c) => c.now_coarse(),
        };
        duration_to_nanos(now)
    }
}

impl fmt::Debug for ClockSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Monotonic(c) => c.fmt(f),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Whole nanoseconds of `d`, saturating (585 years fit in a `u64`).
#[inline]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time_and_saturate() {
        let a = ManualClock::new();
        let b = a.clone();
        a.advance(Duration::from_secs(3));
        assert_eq!(b.now(), Duration::from_secs(3));
        b.advance(Duration::MAX);
        assert_eq!(a.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn monotonic_clock_coarse_reading_stays_near_the_precise_one() {
        let c = MonotonicClock::new();
        let mut last = c.now_coarse();
        for _ in 0..1000 {
            let coarse = c.now_coarse();
            assert!(coarse >= last);
            last = coarse;
        }
        let precise = c.now();
        let coarse = c.now_coarse();
        assert!(
            coarse >= precise,
            "the coarse reading is never behind: {coarse:?} < {precise:?}"
        );
        assert!(
            coarse - precise < Duration::from_millis(50),
            "{coarse:?} vs {precise:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock::new();
        assert_eq!(c.now(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(c.now(), Duration::from_secs(60));
    }
}
