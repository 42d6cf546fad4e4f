//! The generic cell rate algorithm: quotas, limits and the arithmetic every store shares.
//!
//! A key's whole state is its theoretical arrival time (TAT), in microseconds of the limiter's clock, kept in one
//! word (governor's formulation). With emission interval `T` (the window divided by the rate) and tolerance
//! `tau = burst x T`, a request of cost `n` arriving at `now` is admitted when
//! `max(tat, now) + n x T - now <= tau`, and then the TAT becomes `max(tat, now) + n x T`. So in any window of
//! length `W` no more than `burst + W / T` units are admitted. A TAT at or before `now` is the same as no state at
//! all, which is why idle keys can be dropped without changing any decision.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;

/// The most limits one decision may check together.
pub const MAX_LIMITS_PER_DECISION: usize = 8;

/// A rate (`rate` units per `window`) and a burst (units that may arrive at once; `rate` unless set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u64,
    window: Duration,
    burst: u64,
    emission_micros: u64,
}

impl Quota {
    /// `rate` units per `window`, with a burst of `rate`.
    ///
    /// The emission interval (`window / rate`) is rounded up to whole microseconds, so the quota is never more
    /// generous than written.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidQuota`] when `rate` is 0, the window is shorter than `rate` microseconds, or longer
    /// than ten years.
    pub fn new(rate: u64, window: Duration) -> Result<Self, ConfigError> {
        let window_micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        if rate == 0 {
            return Err(ConfigError::InvalidQuota(
                "the rate must be at least 1".into(),
            ));
        }
        if window_micros > 10 * 366 * 86_400 * 1_000_000 {
            return Err(ConfigError::InvalidQuota(
                "the window must be at most ten years".into(),
            ));
        }
        let emission_micros = window_micros.div_ceil(rate);
        if emission_micros == 0 || window_micros < rate {
            return Err(ConfigError::InvalidQuota(format!(
                "{rate} per {window:?} is finer than one unit per microsecond"
            )));
        }
        Ok(Self {
            rate,
            window,
            burst: rate,
            emission_micros,
        })
    }

    /// `rate` units per second.
    ///
    /// # Errors
    ///
    /// As [`Quota::new`].
    pub fn per_second(rate: u64) -> Result<Self, ConfigError> {
        Self::new(rate, Duration::from_secs(1))
    }

    /// `rate` units per minute.
    ///
    /// # Errors
    ///
    /// As [`Quota::new`].
    pub fn per_minute(rate: u64) -> Result<Self, ConfigError> {
        Self::new(rate, Duration::from_secs(60))
    }

    /// `rate` units per hour.
    ///
    /// # Errors
    ///
    /// As [`Quota::new`].
    pub fn per_hour(rate: u64) -> Result<Self, ConfigError> {
        Self::new(rate, Duration::from_secs(3600))
    }

    /// The same rate with another burst.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidQuota`] when `burst` is 0 or so large that `burst x T` overflows.
    pub fn with_burst(self, burst: u64) -> Result<Self, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::InvalidQuota(
                "the burst must be at least 1".into(),
            ));
        }
        if burst
            .checked_mul(self.emission_micros)
            .is_none_or(|tau| tau > (1 << 52))
        {
            return Err(ConfigError::InvalidQuota("the burst is too large".into()));
        }
        Ok(Self { burst, ..self })
    }

    /// Units per window.
    #[must_use]
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The window the rate is given for.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Units that may arrive at once (the `q` of `RateLimit-Policy`).
    #[must_use]
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The time one unit takes to be replenished, in microseconds.
    #[must_use]
    pub fn emission_interval_micros(&self) -> u64 {
        self.emission_micros
    }

    /// The tolerance `tau = burst x T`, in microseconds.
    #[must_use]
    pub fn tolerance_micros(&self) -> u64 {
        self.burst.saturating_mul(self.emission_micros)
    }

    /// The `w` of `RateLimit-Policy`: `burst x T` in whole seconds, at least 1.
    #[must_use]
    pub fn policy_window_secs(&self) -> u64 {
        self.tolerance_micros().div_ceil(1_000_000).max(1)
    }
}

/// A named quota. The name identifies the limit's state in every store: two limits with one name share it.
///
/// Names are 1 to 64 characters of `a-z`, `0-9`, `_`, `-` and `.`, so they are safe in headers, JSON and Redis
/// keys alike.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Limit {
    inner: Arc<LimitInner>,
}

#[derive(PartialEq, Eq, Hash)]
struct LimitInner {
    name: Box<str>,
    quota: Quota,
    name_hash: u64,
    policy_item: Box<str>,
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limit")
            .field("name", &self.name())
            .field("quota", &self.quota())
            .finish()
    }
}

impl Limit {
    /// A limit named `name` with `quota`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidName`] when the name is empty, longer than 64 characters, or has a character
    /// outside `a-z0-9_-.`.
    pub fn new(name: &str, quota: Quota) -> Result<Self, ConfigError> {
        validate_name(name)?;
        let mut ser = sfv::ListSerializer::new();
        let string =
            sfv::StringRef::from_str(name).map_err(|_| ConfigError::InvalidName(name.into()))?;
        let burst = sfv::Integer::try_from(quota.burst().min(999_999_999_999_999))
            .unwrap_or(sfv::integer(0));
        let window = sfv::Integer::try_from(quota.policy_window_secs().min(999_999_999_999_999))
            .unwrap_or(sfv::integer(1));
        ser.bare_item(string)
            .parameter(sfv::key_ref("q"), burst)
            .parameter(sfv::key_ref("w"), window);
        let policy_item = ser.finish().unwrap_or_default().into_boxed_str();
        Ok(Self {
            inner: Arc::new(LimitInner {
                name: name.into(),
                quota,
                name_hash: fnv1a(name.as_bytes()),
                policy_item,
            }),
        })
    }

    /// The name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The quota.
    #[must_use]
    pub fn quota(&self) -> &Quota {
        &self.inner.quota
    }

    /// This limit as one member of a `RateLimit-Policy` field: `"name";q=100;w=60`.
    #[must_use]
    pub fn policy_item(&self) -> &str {
        &self.inner.policy_item
    }

    pub(crate) fn name_hash(&self) -> u64 {
        self.inner.name_hash
    }
}

pub(crate) fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidName(name.into()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The GCRA step for one limit: the TAT after admitting `cost` units at `now`, or `None` when they do not fit.
#[inline]
pub(crate) fn admit(tat: u64, now: u64, quota: &Quota, cost: u64) -> Option<u64> {
    let base = tat.max(now);
    let new_tat = base.checked_add(quota.emission_micros.checked_mul(cost)?)?;
    (new_tat - now <= quota.tolerance_micros()).then_some(new_tat)
}

/// What one limit says about one request, derived from its state. The figures are computed when asked for, so
/// a decision that nobody reads costs no division.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitOutcome {
    /// How far the state (after any charge) is ahead of now, in microseconds.
    pub(crate) ahead: u64,
    /// The emission interval.
    pub(crate) t: u64,
    /// The tolerance.
    pub(crate) tau: u64,
    /// Microseconds until the request would fit; 0 exactly when it fits (so no separate flag: a decision of
    /// eight outcomes stays small to copy); `u64::MAX` when it never can (cost > burst).
    pub(crate) wait_micros: u64,
}

impl LimitOutcome {
    /// Whether this limit alone admits the request.
    #[must_use]
    pub fn fits(&self) -> bool {
        self.wait_micros == 0
    }

    /// Units still available after this decision.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        if self.t == 0 {
            return 0;
        }
        self.tau.saturating_sub(self.ahead) / self.t
    }

    /// Time until [`remaining`](Self::remaining) next rises; zero when the quota is full.
    #[must_use]
    pub fn reset(&self) -> Duration {
        Duration::from_micros(self.reset_micros())
    }

    pub(crate) fn reset_micros(&self) -> u64 {
        if self.ahead == 0 {
            return 0;
        }
        // remaining rises when `ahead` falls to tau - (remaining + 1) x T.
        self.ahead
            .saturating_add((self.remaining() + 1).saturating_mul(self.t))
            .saturating_sub(self.tau)
    }

    /// Time until the request would fit under this limit; `None` when it fits now, `Some(Duration::MAX)` when it
    /// never can (its cost exceeds the burst).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self.wait_micros {
            0 => None,
            u64::MAX => Some(Duration::MAX),
            w => Some(Duration::from_micros(w)),
        }
    }

    /// `t` of the `RateLimit` field: whole seconds, rounded up; the wait when refused.
    #[must_use]
    pub fn reset_secs(&self) -> u64 {
        if self.fits() {
            self.reset_micros().div_ceil(1_000_000)
        } else {
            retry_secs(self.wait_micros)
        }
    }
}

/// Whole seconds for `Retry-After`: rounded up, never 0 (tower-governor#65), capped at one day and a bit.
pub(crate) fn retry_secs(wait_micros: u64) -> u64 {
    wait_micros.div_ceil(1_000_000).clamp(1, 999_999_999)
}

/// The figures of one limit given its state `tat` (after any charge) at `now`.
#[inline]
pub(crate) fn describe(
    tat: u64,
    now: u64,
    quota: &Quota,
    cost: u64,
    charged: bool,
) -> LimitOutcome {
    let t = quota.emission_micros;
    let tau = quota.tolerance_micros();
    let ahead = tat.saturating_sub(now);
    let wait_micros = if charged {
        0
    } else {
        match t.checked_mul(cost) {
            Some(inc) if inc <= tau => ahead.saturating_add(inc).saturating_sub(tau),
            _ => u64::MAX,
        }
    };
    LimitOutcome {
        ahead,
        t,
        tau,
        wait_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_rounds_the_emission_interval_up() {
        let q = Quota::new(3, Duration::from_secs(1)).unwrap();
        assert_eq!(q.emission_interval_micros(), 333_334);
        assert_eq!(
            Quota::per_minute(60).unwrap().emission_interval_micros(),
            1_000_000
        );
        assert!(Quota::new(0, Duration::from_secs(1)).is_err());
        assert!(Quota::new(2_000_000, Duration::from_secs(1)).is_err());
        assert!(Quota::per_second(1).unwrap().with_burst(0).is_err());
    }

    #[test]
    fn burst_is_admitted_at_once_then_one_per_interval() {
        let q = Quota::per_second(10).unwrap();
        let mut tat = 0;
        for _ in 0..10 {
            tat = admit(tat, 1_000, &q, 1).unwrap();
        }
        assert!(admit(tat, 1_000, &q, 1).is_none());
        assert!(admit(tat, 1_000 + 100_000, &q, 1).is_some());
    }

    #[test]
    fn figures_follow_the_state() {
        let q = Quota::per_minute(60).unwrap(); // T = 1 s, tau = 60 s
        let now = 10_000_000;
        let out = describe(0, now, &q, 1, false);
        assert_eq!(
            (out.fits(), out.remaining(), out.reset_micros()),
            (true, 60, 0)
        );
        let tat = admit(0, now, &q, 1).unwrap();
        let out = describe(tat, now, &q, 1, true);
        assert_eq!((out.remaining(), out.reset_micros()), (59, 1_000_000));
        let full = now + 60_000_000;
        let out = describe(full, now, &q, 1, false);
        assert_eq!(
            (out.fits(), out.remaining(), out.wait_micros),
            (false, 0, 1_000_000)
        );
        assert_eq!(out.reset_secs(), 1);
        let out = describe(0, now, &q, 61, false);
        assert_eq!(out.retry_after(), Some(Duration::MAX));
    }

    #[test]
    fn names_are_checked_and_policy_items_precomputed() {
        assert!(Limit::new("Bad Name", Quota::per_second(1).unwrap()).is_err());
        let l = Limit::new("api_read", Quota::per_minute(100).unwrap()).unwrap();
        assert_eq!(l.policy_item(), "\"api_read\";q=100;w=60");
    }
}
