//! What trips a breaker, how long it stays open, and how it probes.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::duration_to_nanos;
use crate::error::ConfigError;

/// The sliding window over which failure and slow-call rates are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The outcomes of the last `n` calls.
    Count(NonZeroU32),
    /// The outcomes of the calls that ended within the last `d`. The window is kept as
    /// `clamp(whole seconds of d, 10, 60)` buckets of equal width (see [`Window::bucket_width`]), so its far
    /// edge moves one bucket at a time, as in resilience4j's time-based window.
    Time(Duration),
}

impl Window {
    /// How many buckets a time window is kept in (`None` for a count window).
    #[must_use]
    pub fn buckets(&self) -> Option<u32> {
        match self {
            Self::Count(_) => None,
            Self::Time(d) => {
                let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
                Some(secs.clamp(10, 60))
            }
        }
    }

    /// The width of one bucket of a time window (`None` for a count window); at least one nanosecond.
    #[must_use]
    pub fn bucket_width(&self) -> Option<Duration> {
        match self {
            Self::Count(_) => None,
            Self::Time(d) => {
                let n = u64::from(self.buckets().unwrap_or(1));
                Some(Duration::from_nanos((duration_to_nanos(*d) / n).max(1)))
            }
        }
    }
}

/// Growth of the open duration while probes keep failing: the `k`-th reopening in a row stays open
/// `min(open_duration * multiplier^k, max)`, then jittered by up to `jitter_percent` either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    multiplier: u32,
    max: Duration,
    jitter_percent: u8,
}

impl Backoff {
    /// Multiply the open duration by `multiplier` on each failed probe, up to `max`, without jitter.
    #[must_use]
    pub fn exponential(multiplier: u32, max: Duration) -> Self {
        Self {
            multiplier,
            max,
            jitter_percent: 0,
        }
    }

    /// No growth: every opening lasts the configured open duration.
    #[must_use]
    pub fn none() -> Self {
        Self {
            multiplier: 1,
            max: Duration::MAX,
            jitter_percent: 0,
        }
    }

    /// Spread each open duration by up to `percent` of itself, either way (0 to 100), so that many instances
    /// tripped together do not probe together. The jitter is derived from the breaker's generation, so a
    /// given sequence of events always gives the same durations.
    #[must_use]
    pub fn jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = percent;
        self
    }

    /// The multiplier.
    #[must_use]
    pub fn multiplier(&self) -> u32 {
        self.multiplier
    }

    /// The cap.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter, in percent.
    #[must_use]
    pub fn jitter(&self) -> u8 {
        self.jitter_percent
    }

    /// How long the `level`-th opening in a row lasts (level 0 = the first trip), before jitter.
    #[must_use]
    pub fn duration(&self, base: Duration, level: u32) -> Duration {
        let mut d = base.min(self.max);
        for _ in 0..level {
            if d >= self.max {
                break;
            }
            d = d.saturating_mul(self.multiplier).min(self.max);
        }
        d
    }
}

/// The configuration of one breaker. Built from [`BreakerConfig::default`] with by-value setters; checked once
/// when a breaker is built.
///
/// Defaults: open after 5 consecutive failures, or when at least 50 % of at least 20 calls ended in failure
/// within a 60 s time window; no slow-call threshold; open for 60 s, doubling on every failed probe up to
/// 10 min, no jitter; 1 probe in half-open, which reopens if it has not ended within 60 s; an upstream's
/// `Retry-After` may hold the circuit open for up to 10 min.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub(crate) consecutive_failures: Option<NonZeroU32>,
    pub(crate) failure_rate: Option<u8>,
    pub(crate) slow_call: Option<(Duration, u8)>,
    pub(crate) window: Window,
    pub(crate) minimum_calls: u32,
    pub(crate) open_duration: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) half_open_permits: NonZeroU32,
    pub(crate) half_open_max_wait: Duration,
    pub(crate) max_retry_after: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: NonZeroU32::new(5),
            failure_rate: Some(50),
            slow_call: None,
            window: Window::Time(Duration::from_secs(60)),
            minimum_calls: 20,
            open_duration: Duration::from_secs(60),
            backoff: Backoff::exponential(2, Duration::from_secs(600)),
            half_open_permits: NonZeroU32::MIN,
            half_open_max_wait: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

impl BreakerConfig {
    /// Open after `n` consecutive failures (`None`: never for that reason).
    #[must_use]
    pub fn consecutive_failures(mut self, n: Option<NonZeroU32>) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Open when failures make up at least `percent` (1 to 100) of the calls in the window, once the window
    /// holds at least the minimum number of calls (`None`: never for that reason).
    #[must_use]
    pub fn failure_rate(mut self, percent: Option<u8>) -> Self {
        self.failure_rate = percent;
        self
    }

    /// A call that takes at least `duration` is slow; open when slow calls make up at least `percent` of the
    /// calls in the window. Measuring call durations costs a second clock reading per call.
    #[must_use]
    pub fn slow_calls(mut self, duration: Duration, percent: u8) -> Self {
        self.slow_call = Some((duration, percent));
        self
    }

    /// The sliding window of the rates.
    #[must_use]
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// How many calls the window must hold before a rate can open the circuit.
    #[must_use]
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = n;
        self
    }

    /// How long the circuit stays open after it trips, before the first probe.
    #[must_use]
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.open_duration = d;
        self
    }

    /// How the open duration grows while probes keep failing.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How many probe calls half-open admits at once; all of them must succeed to close the circuit, and the
    /// first failure reopens it.
    #[must_use]
    pub fn half_open_permits(mut self, n: NonZeroU32) -> Self {
        self.half_open_permits = n;
        self
    }

    /// How long half-open waits for its probes to decide; then it reopens (with back-off), so a hung probe
    /// cannot leave the circuit stuck.
    #[must_use]
    pub fn half_open_max_wait(mut self, d: Duration) -> Self {
        self.half_open_max_wait = d;
        self
    }

    /// The longest an upstream's `Retry-After` may hold the circuit open (zero: ignore `Retry-After`).
    #[must_use]
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// The open duration.
    #[must_use]
    pub fn get_open_duration(&self) -> Duration {
        self.open_duration
    }

    /// The window.
    #[must_use]
    pub fn get_window(&self) -> Window {
        self.window
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a percentage is outside 1 to 100 (jitter: 0 to 100), the back-off multiplier is
    /// zero, a time window is shorter than 10 ms, or the open duration or half-open wait is zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (what, p) in [
            ("failure_rate", self.failure_rate),
            ("slow_calls", self.slow_call.map(|(_, p)| p)),
        ] {
            if let Some(p) = p
                && !(1..=100).contains(&p)
            {
                return Err(ConfigError::Percent { what, value: p });
            }
        }
        if self.backoff.jitter_percent > 100 {
            return Err(ConfigError::Percent {
                what: "jitter",
                value: self.backoff.jitter_percent,
            });
        }
        if self.backoff.multiplier == 0 {
            return Err(ConfigError::ZeroMultiplier);
        }
        if let Window::Time(d) = self.window
            && d < Duration::from_millis(10)
        {
            return Err(ConfigError::WindowTooShort(d));
        }
        if self.open_duration.is_zero() {
            return Err(ConfigError::ZeroDuration("open_duration"));
        }
        if self.half_open_max_wait.is_zero() {
            return Err(ConfigError::ZeroDuration("half_open_max_wait"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::exponential(2, Duration::from_secs(600));
        let base = Duration::from_secs(60);
        let got: Vec<u64> = (0..6).map(|k| b.duration(base, k).as_secs()).collect();
        assert_eq!(got, [60, 120, 240, 480, 600, 600]);
        assert_eq!(b.duration(base, u32::MAX), Duration::from_secs(600));
        assert_eq!(Backoff::none().duration(base, 9), base);
    }

    #[test]
    fn time_window_buckets_are_clamped() {
        assert_eq!(Window::Time(Duration::from_secs(60)).buckets(), Some(60));
        assert_eq!(
            Window::Time(Duration::from_secs(600)).bucket_width(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(Window::Time(Duration::from_secs(2)).buckets(), Some(10));
        assert_eq!(
            Window::Time(Duration::from_secs(10)).bucket_width(),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn invalid_configurations_are_refused() {
        assert!(BreakerConfig::default().validate().is_ok());
        assert!(
            BreakerConfig::default()
                .failure_rate(Some(0))
                .validate()
                .is_err()
        );
        assert!(
            BreakerConfig::default()
                .failure_rate(Some(101))
                .validate()
                .is_err()
        );
        assert!(
            BreakerConfig::default()
                .slow_calls(Duration::from_secs(1), 0)
                .validate()
                .is_err()
        );
        assert!(
            BreakerConfig::default()
                .open_duration(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            BreakerConfig::default()
                .window(Window::Time(Duration::from_millis(1)))
                .validate()
                .is_err()
        );
        assert!(
            BreakerConfig::default()
                .backoff(Backoff::exponential(0, Duration::from_secs(1)))
                .validate()
                .is_err()
        );
    }
}
