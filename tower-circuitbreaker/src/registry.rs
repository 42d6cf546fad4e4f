//! Named breakers, one per upstream, with idle retirement and one event stream for all of them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::clock::{Clock, ClockSource, MonotonicClock, duration_to_nanos};
use crate::config::BreakerConfig;
use crate::error::ConfigError;
use crate::state::{Breaker, BreakerState, Snapshot, Transition};

#[derive(Debug)]
struct Entry {
    breaker: Breaker,
    last_used: AtomicU64,
}

struct Inner {
    default: BreakerConfig,
    configs: RwLock<HashMap<String, BreakerConfig>>,
    clock: ClockSource,
    breakers: RwLock<HashMap<Arc<str>, Entry>>,
    events: broadcast::Sender<Transition>,
    max_breakers: AtomicUsize,
}

/// The name of the breaker shared by every name that finds the registry full.
pub const OVERFLOW_BREAKER: &str = "(overflow)";

/// The default cap on the number of breakers in a registry.
pub const DEFAULT_MAX_BREAKERS: usize = 10_000;

/// Breakers by name (an upstream host, an API), created on first use with the default configuration or the
/// one set for that name. Cheap to clone: clones share the breakers.
///
/// Memory: one breaker per name asked for, until [`BreakerRegistry::retire_idle`] removes those that are
/// closed, unused for a while and held by no one; and never more than [`BreakerRegistry::set_max_breakers`]
/// (default [`DEFAULT_MAX_BREAKERS`]): a new name that finds the registry full first evicts every breaker
/// that is closed and held by no one, and if it is still full shares the one breaker named
/// [`OVERFLOW_BREAKER`]. Derive names from your configuration (upstream hosts you call) where you can.
#[derive(Clone)]
pub struct BreakerRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl BreakerRegistry {
    /// A registry whose breakers use `default` and the system's monotonic clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `default` cannot work.
    pub fn new(default: BreakerConfig) -> Result<Self, ConfigError> {
        Self::build(default, ClockSource::Monotonic(MonotonicClock::new()))
    }

    /// A registry on the given clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `default` cannot work.
    pub fn with_clock(default: BreakerConfig, clock: impl Clock) -> Result<Self, ConfigError> {
        Self::build(default, ClockSource::Custom(Arc::new(clock)))
    }

    fn build(default: BreakerConfig, clock: ClockSource) -> Result<Self, ConfigError> {
        default.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                default,
                configs: RwLock::default(),
                clock,
                breakers: RwLock::default(),
                events: broadcast::channel(256).0,
                max_breakers: AtomicUsize::new(DEFAULT_MAX_BREAKERS),
            }),
        })
    }

    /// Sets the configuration of the breaker named `name`, used when it is next created.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `config` cannot work.
    pub fn configure(&self, name: &str, config: BreakerConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.inner
            .configs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), config);
        Ok(())
    }

    /// The breaker named `name`, created if needed. Keep the handle for the hot path: a lookup takes a
    /// read lock.
    #[must_use]
    pub fn get(&self, name: &str) -> Breaker {
        let now = self.inner.clock.now_nanos();
        {
            let map = self
                .inner
                .breakers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = map.get(name) {
                e.last_used.store(now, Ordering::Relaxed);
                return e.breaker.clone();
            }
        }
        let config = self
            .inner
            .configs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.inner.default.clone());
        let mut map = self
            .inner
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(name) && map.len() >= self.inner.max_breakers.load(Ordering::Relaxed) {
            // Full: evict what no one holds and is closed (recreated on demand, with fresh counts).
            map.retain(|_, e| {
                !(e.breaker.state() == BreakerState::Closed && e.breaker.is_unshared())
            });
        }
        let name = if !map.contains_key(name)
            && map.len() >= self.inner.max_breakers.load(Ordering::Relaxed)
        {
            OVERFLOW_BREAKER
        } else {
            name
        };
        let entry = map.entry(Arc::from(name)).or_insert_with_key(|name| Entry {
            // The configuration was validated when it was registered.
            breaker: Breaker::construct(
                Arc::clone(name),
                config,
                self.inner.clock.clone(),
                Some(self.inner.events.clone()),
            ),
            last_used: AtomicU64::new(now),
        });
        entry.last_used.store(now, Ordering::Relaxed);
        entry.breaker.clone()
    }

    /// The breaker for the authority (`host[:port]`) of `uri`, or `"unknown"` when it has none.
    #[must_use]
    pub fn for_uri(&self, uri: &http::Uri) -> Breaker {
        self.get(
            uri.authority()
                .map_or("unknown", http::uri::Authority::as_str),
        )
    }

    /// Caps the number of breakers (at least 1; see the type's docs for what happens when it is full).
    pub fn set_max_breakers(&self, max: usize) {
        self.inner.max_breakers.store(max.max(1), Ordering::Relaxed);
    }

    /// How many breakers the registry holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Snapshots of every breaker, sorted by name.
    #[must_use]
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let mut v: Vec<Snapshot> = self
            .inner
            .breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| e.breaker.snapshot())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Transition events of every breaker of the registry (capacity 256; a subscriber that falls further
    /// behind loses the oldest).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.inner.events.subscribe()
    }

    /// Removes the breakers that are closed, have not been looked up for `idle`, and are held by no one else
    /// (no handle, no call in flight). Returns how many were removed. Call it from a periodic task.
    pub fn retire_idle(&self, idle: Duration) -> usize {
        let now = self.inner.clock.now_nanos();
        let idle = duration_to_nanos(idle);
        let mut map = self
            .inner
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, e| {
            let unused = now.saturating_sub(e.last_used.load(Ordering::Relaxed)) >= idle;
            let closed = e.breaker.state() == BreakerState::Closed;
            !(unused && closed && e.breaker.is_unshared())
        });
        before - map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::num::NonZeroU32;

    #[test]
    fn names_share_one_breaker_and_idle_ones_retire() {
        let clock = ManualClock::new();
        let reg = BreakerRegistry::with_clock(BreakerConfig::default(), clock.clone()).unwrap();
        reg.configure(
            "bank",
            BreakerConfig::default().consecutive_failures(NonZeroU32::new(1)),
        )
        .unwrap();
        let mut events = reg.subscribe();
        let bank = reg.get("bank");
        bank.try_acquire().unwrap().failure();
        assert_eq!(reg.get("bank").state(), BreakerState::Open);
        let e = events.try_recv().unwrap();
        assert_eq!((&*e.name, e.to), ("bank", BreakerState::Open));
        let _ = reg.for_uri(&"https://api.example.com:8443/v1".parse().unwrap());
        assert_eq!(reg.len(), 2);
        clock.advance(Duration::from_secs(600));
        // bank is open and still held; the other is closed and held by no one
        assert_eq!(reg.retire_idle(Duration::from_secs(300)), 1);
        assert_eq!(
            reg.snapshots()
                .iter()
                .map(|s| s.name.to_string())
                .collect::<Vec<_>>(),
            ["bank"]
        );
        bank.reset();
        assert_eq!(reg.retire_idle(Duration::from_secs(300)), 0, "still held");
        drop(bank);
        assert_eq!(reg.retire_idle(Duration::from_secs(300)), 1);
        assert!(reg.is_empty());
    }

    #[test]
    fn a_flood_of_names_stays_within_the_cap() {
        let reg =
            BreakerRegistry::with_clock(BreakerConfig::default(), ManualClock::new()).unwrap();
        reg.set_max_breakers(100);
        // Names nobody holds on to: evicted as new ones come.
        for i in 0..10_000 {
            let _ = reg.get(&format!("host-{i}.example"));
            assert!(reg.len() <= 100);
        }
        // Names held on to: the registry fills, then the rest share the overflow breaker.
        let held: Vec<Breaker> = (0..150).map(|i| reg.get(&format!("held-{i}"))).collect();
        assert!(reg.len() <= 101, "{}", reg.len());
        assert_eq!(held[149].name(), OVERFLOW_BREAKER);
        assert_eq!(held[0].name(), "held-0");
        held[149].force_open();
        assert_eq!(
            held[120].state(),
            BreakerState::ForcedOpen,
            "overflow names share one breaker"
        );
    }
}
