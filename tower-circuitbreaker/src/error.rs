//! Errors: a refused call, and a configuration that cannot work.

use std::sync::Arc;
use std::time::Duration;

/// A call refused because the circuit is open (or forced open, or half-open with all probes taken).
///
/// The generic tower layer returns it boxed in a `BoxError`; downcast to read it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("circuit `{name}` is open")]
#[non_exhaustive]
pub struct CircuitOpen {
    name: Arc<str>,
    retry_after: Option<Duration>,
}

impl CircuitOpen {
    pub(crate) fn new(name: Arc<str>, retry_after: Option<Duration>) -> Self {
        Self { name, retry_after }
    }

    /// The name of the breaker that refused the call.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
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
        match self.retry_after {
            Some(d) => {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                secs.max(1)
            }
            None => 1,
        }
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

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let e = |d| CircuitOpen::new(Arc::from("x"), d);
        assert_eq!(e(Some(Duration::from_millis(1))).retry_after_secs(), 1);
        assert_eq!(e(Some(Duration::ZERO)).retry_after_secs(), 1);
        assert_eq!(
            e(Some(Duration::from_millis(59_001))).retry_after_secs(),
            60
        );
        assert_eq!(e(Some(Duration::from_secs(60))).retry_after_secs(), 60);
        assert_eq!(e(None).retry_after_secs(), 1);
        assert_eq!(e(None).to_string(), "circuit `x` is open");
    }
}
