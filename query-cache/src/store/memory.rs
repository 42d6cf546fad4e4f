//! The in-process tier: quick_cache (S3-FIFO, weight-bounded) holding `Arc`'d entries that carry their own
//! expiry and the tag generations they were loaded under.
//!
//! quick_cache was chosen over moka by measurement (README: a `get` costs about a sixth of moka's here); it has
//! no TTL of its own, so expiry is checked on read against the coarse clock, and expired entries leave through
//! the normal eviction (or are removed when read).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Lifecycle;
use quick_cache::sync::Cache;

use crate::key::{CacheKey, PrehashedState};
use crate::stats::{Counter, Stats};

/// One cached result.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    /// `None`: a cached absence (negative caching).
    pub(crate) value: Option<V>,
    /// Fresh while `now < fresh_until` (clock milliseconds).
    pub(crate) fresh_until: u64,
    /// Servable as stale (with a background refresh) while `now < stale_until`.
    pub(crate) stale_until: u64,
    /// How long the load took, in milliseconds (XFetch's delta).
    pub(crate) load_ms: u64,
    /// The cache epoch it was loaded under.
    pub(crate) epoch: u64,
    /// The generation of every tag (and of its tenant) when the load started.
    pub(crate) tags: Box<[(Arc<AtomicU64>, u64)]>,
    pub(crate) tier: u8,
    pub(crate) weight: u64,
}

impl<V> Entry<V> {
    /// Whether no invalidation has happened since the entry's load started.
    #[inline]
    pub(crate) fn is_current(&self, epoch: &AtomicU64) -> bool {
        self.epoch == epoch.load(Ordering::Acquire)
            && self
                .tags
                .iter()
                .all(|(generation, seen)| generation.load(Ordering::Acquire) == *seen)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EntryWeighter;

impl<V> quick_cache::Weighter<CacheKey, Arc<Entry<V>>> for EntryWeighter {
    fn weight(&self, _key: &CacheKey, entry: &Arc<Entry<V>>) -> u64 {
        entry.weight
    }
}

/// Counts evictions per tier.
#[derive(Debug, Clone)]
pub(crate) struct EvictionCounter(pub(crate) Arc<Stats>);

impl<V> Lifecycle<CacheKey, Arc<Entry<V>>> for EvictionCounter {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: CacheKey, entry: Arc<Entry<V>>) {
        self.0.incr(usize::from(entry.tier), Counter::Eviction);
    }
}

pub(crate) type L1<V> =
    Cache<CacheKey, Arc<Entry<V>>, EntryWeighter, PrehashedState, EvictionCounter>;

pub(crate) fn new_l1<V: Clone>(
    max_weight: u64,
    estimated_items: usize,
    stats: Arc<Stats>,
) -> L1<V> {
    Cache::with(
        estimated_items,
        max_weight,
        EntryWeighter,
        PrehashedState::default(),
        EvictionCounter(stats),
    )
}
