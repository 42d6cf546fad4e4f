//! The server's clock: the system's, shifted by an offset that tests can advance (session idleness, token expiry).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// Wall-clock time for the domain (timestamps stored with rows, token times). Clones share one offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in UTC, to the microsecond (what PostgreSQL keeps), so a stored time reads back equal.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        let shifted = OffsetDateTime::now_utc()
            + time::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed));
        let micros = shifted.microsecond();
        shifted.replace_microsecond(micros).unwrap_or(shifted)
    }

    /// Seconds since the Unix epoch, for token claims.
    #[must_use]
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves this clock (and its clones) forward; for tests of expiry and idleness.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
