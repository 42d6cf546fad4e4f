//! Errors: a refused call, and a configuration that cannot work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::state::StripeRef;

/// A call refused because the circuit is open (or forced open, or half-open with all probes taken).
///
/// The generic tower layer returns it boxed in a `BoxError`; downcast to read it.
#[derive(Clone, thiserror::Error)]
#[error("circuit `{}` is open", self.name())]
#[non_exhaustive]
pub struct CircuitOpen {
    // The refusing thread's own reference to the breaker (for the name): cloning it bumps a count no other
    // thread bumps, so a storm of refusals on many threads shares no cache line.
    breaker: Arc<StripeRef>,
    retry_after: Option<Duration>,
}

impl fmt::Debug for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitOpen")
            .field("name", &self.name())
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl CircuitOpen {
    pub(crate) fn new(breaker: Arc<StripeRef>, retry_after: Option<Duration>) -> Self {
        Self {
            breaker,
            retry_after,
        }
    }

    /// The name of the breaker that refused the call.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.breaker.0.name
    }

    /// The exact time until the next probe may be admitted, when that is known (`None` when the circuit is
    /// forced open, or half-open with every probe taken).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// `retry_after` in whole seconds for a `Retry-After` header: rounded up, and at least 1 (RFC 9110
    /// 10.2.3); 1 when unknown.
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        whole_secs_at_least_one(self.retry_after)
    }
}

fn whole_secs_at_least_one(d: Option<Duration>) -> u64 {
    match d {
        Some(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            secs.max(1)
        }
        None => 1,
    }
}

/// A breaker configuration that cannot work, refused when the breaker is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A percentage outside its range (1 to 100; jitter 0 to 100).
    #[error("{what} must be a percentage from 1 to 100, got {value}")]
    Percent {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: u8,
    },
    /// A back-off multiplier of zero would make the open duration zero.
    #[error("back-off multiplier must be at least 1")]
    ZeroMultiplier,
    /// A time window shorter than 10 ms.
    #[error("time window must be at least 10 ms, got {0:?}")]
    WindowTooShort(Duration),
    /// A duration that must not be zero.
    #[error("{0} must not be zero")]
    ZeroDuration(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Breaker, BreakerConfig};

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let secs = |d| whole_secs_at_least_one(d);
        assert_eq!(secs(Some(Duration::from_millis(1))), 1);
        assert_eq!(secs(Some(Duration::ZERO)), 1);
        assert_eq!(secs(Some(Duration::from_millis(59_001))), 60);
        assert_eq!(secs(Some(Duration::from_secs(60))), 60);
        assert_eq!(secs(None), 1);
    }

    #[test]
    fn refusal_names_its_breaker() {
        let b = Breaker::new("x", BreakerConfig::default()).unwrap();
        b.force_open();
        let e = b.try_acquire().unwrap_err();
        assert_eq!(e.to_string(), "circuit `x` is open");
        assert_eq!(e.name(), "x");
        assert_eq!(e.retry_after(), None);
        assert_eq!(e.retry_after_secs(), 1);
        assert!(format!("{e:?}").contains("\"x\""));
    }

    #[test]
    fn names_of_any_length_read_back_whole() {
        for name in [
            String::new(),
            "é".repeat(19),
            "ü".repeat(40),
            "payments.bank.example.com:443".to_owned(),
        ] {
            let b = Breaker::new(name.as_str(), BreakerConfig::default()).unwrap();
            b.force_open();
            let e = b.try_acquire().unwrap_err();
            assert_eq!(e.name(), name);
            assert_eq!(e.clone().name(), name);
            assert_eq!(e.to_string(), format!("circuit `{name}` is open"));
        }
    }
}
