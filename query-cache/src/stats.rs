//! Statistics: counters striped per thread so a hit never writes a cache line another core is writing.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::tier::TIER_LABELS;

const STRIPES: usize = 16;
const TIERS: usize = 5;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Hit = 0,
    Miss,
    Load,
    LoadError,
    LoadMicros,
    StaleServed,
    Eviction,
    Refresh,
    NegativeHit,
    Invalidation,
}
const COUNTERS: usize = 10;

#[derive(Debug)]
#[repr(align(128))]
struct Stripe([AtomicU64; TIERS * COUNTERS]);

/// Global counters (not per tier).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Global {
    InvalidateKey = 0,
    InvalidateTag,
    InvalidateAll,
    L2Hit,
    L2Miss,
    L2Error,
    L1Flush,
}
const GLOBALS: usize = 7;

#[derive(Debug)]
pub(crate) struct Stats {
    stripes: Box<[Stripe]>,
    globals: [AtomicU64; GLOBALS],
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let v = i.get();
        if v == usize::MAX {
            let fresh = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            i.set(fresh);
            fresh
        } else {
            v
        }
    })
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            globals: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[inline]
    pub(crate) fn add(&self, tier: usize, counter: Counter, n: u64) {
        let slot = tier * COUNTERS + counter as usize;
        if let Some(cell) = self.stripes.get(stripe_index()).and_then(|s| s.0.get(slot)) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn incr(&self, tier: usize, counter: Counter) {
        self.add(tier, counter, 1);
    }

    pub(crate) fn global(&self, counter: Global) {
        self.globals[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self, tier: usize, counter: Counter) -> u64 {
        let slot = tier * COUNTERS + counter as usize;
        self.stripes
            .iter()
            .map(|s| s.0[slot].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let tiers = TIER_LABELS
            .iter()
            .enumerate()
            .map(|(i, label)| TierStats {
                tier: label,
                hits: self.sum(i, Counter::Hit),
                negative_hits: self.sum(i, Counter::NegativeHit),
                misses: self.sum(i, Counter::Miss),
                loads: self.sum(i, Counter::Load),
                load_errors: self.sum(i, Counter::LoadError),
                load_time: Duration::from_micros(self.sum(i, Counter::LoadMicros)),
                stale_served: self.sum(i, Counter::StaleServed),
                refreshes: self.sum(i, Counter::Refresh),
                evictions: self.sum(i, Counter::Eviction),
                invalidations: self.sum(i, Counter::Invalidation),
            })
            .collect();
        let g = |c: Global| self.globals[c as usize].load(Ordering::Relaxed);
        StatsSnapshot {
            tiers,
            invalidated_keys: g(Global::InvalidateKey),
            invalidated_tags: g(Global::InvalidateTag),
            invalidated_all: g(Global::InvalidateAll),
            l2_hits: g(Global::L2Hit),
            l2_misses: g(Global::L2Miss),
            l2_errors: g(Global::L2Error),
            l1_flushes: g(Global::L1Flush),
            entries: 0,
            weight: 0,
            redis: None,
        }
    }
}

/// Counters of one tier.
///
/// Counters are exact once every operation that touched them has returned (they are summed from per-thread
/// stripes when the snapshot is taken; no counter is sampled or estimated).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// `short`, `medium`, `long`, `very_long` or `custom`.
    pub tier: &'static str,
    /// Fresh values served from the cache.
    pub hits: u64,
    /// Cached absences served (negative caching), also counted in `hits`.
    pub negative_hits: u64,
    /// Lookups that found nothing usable (each waits for a load, its own or a shared one).
    pub misses: u64,
    /// Loader runs that succeeded (a value from Redis is not a load).
    pub loads: u64,
    /// Loader runs that failed.
    pub load_errors: u64,
    /// Time spent in loaders, summed.
    pub load_time: Duration,
    /// Stale values served while a refresh ran in the background.
    pub stale_served: u64,
    /// Background refreshes started (stale-while-revalidate and early refresh).
    pub refreshes: u64,
    /// Entries the in-process tier evicted to stay within its weight.
    pub evictions: u64,
    /// In-process entries of this tier removed because they were invalidated, counted in the tier the entry
    /// was stored with. An invalidation by key ([`QueryCache::invalidate`](crate::QueryCache::invalidate), or
    /// one received from another instance) counts here when it removes an entry, at once. A tag or tenant
    /// invalidation bumps a generation and scans nothing, so each entry it made obsolete counts here when a
    /// lookup next finds and removes it (an obsolete entry never read again leaves as an eviction, uncounted
    /// here). A flush ([`QueryCache::clear_local`], a subscriber reconnect) is counted only in
    /// [`StatsSnapshot::invalidated_all`] and [`StatsSnapshot::l1_flushes`]. Calls are counted whatever they
    /// removed in [`StatsSnapshot::invalidated_keys`] and [`StatsSnapshot::invalidated_tags`]. A cache with no
    /// in-process tier (Redis only) holds no entry to remove and counts only the calls.
    pub invalidations: u64,
}

/// A point-in-time view of a cache's statistics, for `/metrics` and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// One entry per tier, in the order `short`, `medium`, `long`, `very_long`, `custom`.
    pub tiers: Vec<TierStats>,
    /// Exact-key invalidations asked of this cache (calls, whether or not an entry was cached; per tier:
    /// [`TierStats::invalidations`]).
    pub invalidated_keys: u64,
    /// Tag and tenant invalidations asked of this cache (calls).
    pub invalidated_tags: u64,
    /// Whole-cache invalidations.
    pub invalidated_all: u64,
    /// Values found in Redis after an in-process miss.
    pub l2_hits: u64,
    /// Redis lookups that found nothing usable.
    pub l2_misses: u64,
    /// Redis operations that failed or timed out.
    pub l2_errors: u64,
    /// Times the in-process tier was flushed because invalidation messages may have been missed.
    pub l1_flushes: u64,
    /// Entries in the in-process tier (approximate: includes expired entries not yet evicted).
    pub entries: u64,
    /// Their total weight.
    pub weight: u64,
    /// The Redis tier's state, when there is one.
    pub redis: Option<RedisStatus>,
}

impl StatsSnapshot {
    /// Hits over all tiers.
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.tiers.iter().map(|t| t.hits).sum()
    }

    /// Misses over all tiers.
    #[must_use]
    pub fn misses(&self) -> u64 {
        self.tiers.iter().map(|t| t.misses).sum()
    }

    /// Loads over all tiers.
    #[must_use]
    pub fn loads(&self) -> u64 {
        self.tiers.iter().map(|t| t.loads).sum()
    }

    /// Stale values served over all tiers.
    #[must_use]
    pub fn stale_served(&self) -> u64 {
        self.tiers.iter().map(|t| t.stale_served).sum()
    }

    /// In-process entries removed by invalidations over all tiers (see [`TierStats::invalidations`]).
    #[must_use]
    pub fn invalidations(&self) -> u64 {
        self.tiers.iter().map(|t| t.invalidations).sum()
    }

    /// The counters of one tier.
    #[must_use]
    pub fn tier(&self, tier: crate::Tier) -> Option<&TierStats> {
        self.tiers.get(tier.index())
    }
}

/// The state of the Redis tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStatus {
    /// Whether the last Redis operation succeeded (reads skip Redis for a short while after a failure).
    pub up: bool,
    /// Whether the invalidation subscriber is connected (two-level store only; `false` otherwise).
    pub subscribed: bool,
    /// Consecutive failures since the last success.
    pub consecutive_failures: u64,
}
