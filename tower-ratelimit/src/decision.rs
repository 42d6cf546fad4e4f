//! What a limiter answers: admitted or refused, with the figures of every limit it checked.

use std::time::Duration;

use crate::gcra::{LimitOutcome, MAX_LIMITS_PER_DECISION, retry_secs};

/// Which store made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecisionSource {
    /// The in-memory store (the configured store, or the fallback while Redis is unreachable).
    Memory,
    /// The Redis store.
    Redis,
    /// Redis was unreachable and the failure policy admitted the request without checking it.
    FailOpen,
    /// Redis was unreachable and the failure policy refused the request.
    FailClosed,
    /// The key is allow-listed; nothing was checked or charged.
    AllowListed,
    /// Redis refused this key a moment ago and it cannot fit yet: refused without a round trip.
    DenyCache,
}

/// The answer to one decision over up to [`MAX_LIMITS_PER_DECISION`] limits.
///
/// All limits of a decision are charged together or none is. [`outcomes`](Decision::outcomes) is in the
/// order the limits were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub(crate) allowed: bool,
    pub(crate) len: u8,
    pub(crate) outcomes: [LimitOutcome; MAX_LIMITS_PER_DECISION],
    pub(crate) source: DecisionSource,
}

impl Decision {
    pub(crate) fn new(source: DecisionSource) -> Self {
        Self {
            allowed: true,
            len: 0,
            outcomes: [LimitOutcome::default(); MAX_LIMITS_PER_DECISION],
            source,
        }
    }

    /// Whether the request was admitted (and its charged limits charged).
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The figures of each limit, in the order the limits were given.
    #[must_use]
    pub fn outcomes(&self) -> &[LimitOutcome] {
        &self.outcomes[..usize::from(self.len)]
    }

    /// Which store decided.
    #[must_use]
    pub fn source(&self) -> DecisionSource {
        self.source
    }

    /// The exact time until the whole request would fit, when refused: the longest wait of the limits that
    /// refused it. `Some(Duration::MAX)` when its cost exceeds a burst and it never can.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        if self.allowed {
            return None;
        }
        let wait = self
            .outcomes()
            .iter()
            .filter(|o| !o.fits())
            .map(|o| o.wait_micros)
            .max()
            .unwrap_or(0);
        Some(if wait == u64::MAX {
            Duration::MAX
        } else {
            Duration::from_micros(wait)
        })
    }

    /// `Retry-After` in whole seconds, rounded up and at least 1, when refused.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        if self.allowed {
            return None;
        }
        let wait = self
            .outcomes()
            .iter()
            .filter(|o| !o.fits())
            .map(|o| o.wait_micros)
            .max()
            .unwrap_or(0);
        Some(retry_secs(wait))
    }

    /// Indexes of the limits that refused the request (empty when admitted).
    pub fn violated(&self) -> impl Iterator<Item = usize> + '_ {
        let allowed = self.allowed;
        self.outcomes()
            .iter()
            .enumerate()
            .filter(move |(_, o)| !allowed && !o.fits())
            .map(|(i, _)| i)
    }

    /// The index of the limit to report in the `RateLimit` field: when refused, the refusing limit with the
    /// longest wait; when admitted, the limit with the fewest units left.
    #[must_use]
    pub fn binding(&self) -> Option<usize> {
        let outcomes = self.outcomes();
        if self.allowed {
            outcomes
                .iter()
                .enumerate()
                .min_by_key(|(_, o)| (o.remaining(), u64::MAX - o.reset_micros()))
                .map(|(i, _)| i)
        } else {
            outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| !o.fits())
                .max_by_key(|(_, o)| o.wait_micros)
                .map(|(i, _)| i)
        }
    }

    /// The fewest units left across the limits.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.outcomes()
            .iter()
            .map(LimitOutcome::remaining)
            .min()
            .unwrap_or(u64::MAX)
    }

    pub(crate) fn push(&mut self, outcome: LimitOutcome) {
        let i = usize::from(self.len);
        if i < MAX_LIMITS_PER_DECISION {
            self.outcomes[i] = outcome;
            self.len += 1;
        }
    }
}
