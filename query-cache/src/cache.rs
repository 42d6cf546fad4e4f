//! The cache: lookups, single-flight loads, background refreshes and invalidation by generation.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::{Clock, millis};
use crate::error::{ConfigError, KeyError, LoadError, StoreError};
use crate::key::{CacheKey, check_tag, check_tenant};
use crate::stats::{Counter, Global, Stats, StatsSnapshot};
use crate::store::memory::{Entry, L1, new_l1};
use crate::store::{LocalInvalidator, SecondTier};
use crate::tier::{Tier, TierTtls};

/// The internal tag every key of a tenant depends on (a space keeps it apart from every valid user tag).
const TENANT_TAG: &str = " tenant";
const FLIGHT_SHARDS: usize = 16;

/// A cache of query results with TTL tiers, single-flight loads and invalidation by key, tag and tenant.
///
/// Clones share one cache. See the [crate docs](crate) for an overview.
pub struct QueryCache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for QueryCache<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> std::fmt::Debug for QueryCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("ttls", &self.inner.ttls)
            .field("stale_window_ms", &self.inner.stale_window_ms)
            .field("early_refresh", &self.inner.early_refresh)
            .field("two_level", &self.inner.l2.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<V> {
    l1: Option<L1<V>>,
    l2: Option<Arc<dyn SecondTier<V>>>,
    flights: Box<[Mutex<HashMap<CacheKey, FlightSlot>>]>,
    tags: RwLock<HashMap<String, Arc<AtomicU64>>>,
    epoch: AtomicU64,
    clock: Clock,
    ttls: TierTtls,
    stale_window_ms: u64,
    early_refresh: bool,
    negative_ttl_ms: Option<u64>,
    /// Cap on how long an in-process entry is trusted when a second tier exists (missed invalidations).
    l1_max_age_ms: Option<u64>,
    /// False while the invalidation subscriber is disconnected: in-process entries are then capped harder.
    coherent: AtomicBool,
    weigher: Option<Arc<dyn Fn(&V) -> u64 + Send + Sync>>,
    stats: Arc<Stats>,
    next_flight: AtomicU64,
}

struct FlightSlot {
    id: u64,
    /// Set by an invalidation of the key while the load runs: its result must not be stored.
    cancelled: Arc<AtomicBool>,
    /// A `watch::Receiver<Option<Outcome<V, E>>>`, typed by the first caller's `V` and `E`.
    receiver: Arc<dyn Any + Send + Sync>,
}

type Outcome<V, E> = Result<Option<V>, LoadError<E>>;

/// What joining the loads of a key gave.
enum Join<V, E> {
    /// Wait for this load.
    Wait(watch::Receiver<Option<Outcome<V, E>>>),
    /// A load finished just before: its value.
    Value(Option<V>),
    /// A background refresh was started, or one was already running.
    Background,
}

/// Builds a [`QueryCache`].
#[must_use]
pub struct QueryCacheBuilder<V> {
    ttls: TierTtls,
    stale_window: Duration,
    early_refresh: bool,
    negative_ttl: Option<Duration>,
    max_weight: u64,
    estimated_items: usize,
    weigher: Option<Arc<dyn Fn(&V) -> u64 + Send + Sync>>,
    clock: Clock,
    in_process: bool,
    l2: Option<Arc<dyn SecondTier<V>>>,
    l1_max_age: Duration,
    #[cfg(feature = "redis")]
    pub(crate) coherence: Option<crate::store::redis::CoherenceStarter>,
}

impl<V> std::fmt::Debug for QueryCacheBuilder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCacheBuilder")
            .field("ttls", &self.ttls)
            .finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> Default for QueryCacheBuilder<V> {
    fn default() -> Self {
        Self {
            ttls: TierTtls::default(),
            stale_window: Duration::ZERO,
            early_refresh: false,
            negative_ttl: None,
            max_weight: 10_000,
            estimated_items: 10_000,
            weigher: None,
            clock: Clock::system(),
            in_process: true,
            l2: None,
            l1_max_age: Duration::from_secs(5),
            #[cfg(feature = "redis")]
            coherence: None,
        }
    }
}

impl<V: Clone + Send + Sync + 'static> QueryCacheBuilder<V> {
    /// Sets the TTL of a named tier (a [`Tier::Ttl`] argument is ignored: it carries its own TTL).
    pub fn tier_ttl(mut self, tier: Tier, ttl: Duration) -> Self {
        if let Some(slot) = self.ttls.0.get_mut(tier.index()) {
            *slot = ttl;
        }
        self
    }

    /// Serves a value for up to `window` after it expired while one background load refreshes it
    /// (stale-while-revalidate). Zero (the default) turns this off.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_window = window;
        self
    }

    /// Refreshes a hot value in the background shortly before it expires, with probability rising as expiry
    /// nears and with the load's duration (XFetch: Vattani, Chierichetti, Lowenstein, VLDB 2015, beta = 1).
    pub fn early_refresh(mut self, enabled: bool) -> Self {
        self.early_refresh = enabled;
        self
    }

    /// Caches absences (a loader of [`QueryCache::get_or_load_optional`] returning `Ok(None)`) for `ttl`.
    /// Off by default: absences are not cached.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Bounds the in-process tier to this total weight (default 10 000; with the default weigher, entries).
    pub fn max_weight(mut self, max_weight: u64) -> Self {
        self.max_weight = max_weight;
        self
    }

    /// A hint of how many entries the in-process tier will hold (sizes its tables; default 10 000).
    pub fn estimated_entries(mut self, entries: usize) -> Self {
        self.estimated_items = entries;
        self
    }

    /// Weighs each value (for example its size in bytes); the default weighs every entry 1. A weight of zero
    /// counts as 1.
    pub fn weigher(mut self, weigher: impl Fn(&V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// The clock (default [`Clock::system`]; tests use [`Clock::manual`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// With a second tier, how long an in-process entry is trusted at most (default 5 s) while the invalidation
    /// subscriber is down: the bound on serving a value whose invalidation message was missed.
    pub fn l1_max_age(mut self, max_age: Duration) -> Self {
        self.l1_max_age = max_age;
        self
    }

    /// Keeps no in-process tier: every lookup goes to the second tier (a Redis-only store).
    pub fn without_in_process_tier(mut self) -> Self {
        self.in_process = false;
        self
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn second_tier(mut self, l2: Arc<dyn SecondTier<V>>) -> Self {
        self.l2 = Some(l2);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a tier has a zero TTL or the capacity is zero.
    pub fn build(self) -> Result<QueryCache<V>, ConfigError> {
        for (ttl, label) in self.ttls.0.iter().zip(crate::tier::TIER_LABELS) {
            if ttl.is_zero() {
                return Err(ConfigError::ZeroTtl(label));
            }
        }
        if self.max_weight == 0 || self.estimated_items == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        let stats = Arc::new(Stats::new());
        let l1 = self
            .in_process
            .then(|| new_l1(self.max_weight, self.estimated_items, Arc::clone(&stats)));
        let has_l2 = self.l2.is_some();
        let inner = Arc::new(Inner {
            l1,
            l2: self.l2,
            flights: (0..FLIGHT_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            tags: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            clock: self.clock,
            ttls: self.ttls,
            stale_window_ms: millis(self.stale_window),
            early_refresh: self.early_refresh,
            negative_ttl_ms: self.negative_ttl.map(millis),
            l1_max_age_ms: has_l2.then(|| millis(self.l1_max_age)),
            coherent: AtomicBool::new(!has_l2),
            weigher: self.weigher,
            stats,
            next_flight: AtomicU64::new(1),
        });
        #[cfg(feature = "redis")]
        if let Some(start) = self.coherence {
            let weak: std::sync::Weak<Inner<V>> = Arc::downgrade(&inner);
            let weak: std::sync::Weak<dyn LocalInvalidator> = weak;
            start.start(weak);
        }
        Ok(QueryCache { inner })
    }
}

/// What a lookup of the in-process tier found.
enum Found<V> {
    Fresh(Arc<Entry<V>>),
    Stale(Arc<Entry<V>>),
    Miss,
}

impl<V: Clone + Send + Sync + 'static> QueryCache<V> {
    /// A builder with the default tiers, an in-process tier of 10 000 entries and the system clock.
    pub fn builder() -> QueryCacheBuilder<V> {
        QueryCacheBuilder::default()
    }

    /// A fresh value from the in-process tier, without loading (a cached absence reads as `None`). Counts a hit;
    /// a `None` here is not counted as a miss (nothing was loaded). Redis is not read.
    ///
    /// This is the hot path: one sharded lookup, one clock read from an atomic, one atomic per tag.
    #[inline]
    #[must_use]
    pub fn get(&self, key: &CacheKey) -> Option<V> {
        let now = self.inner.clock.now_ms();
        match self.inner.lookup(key, now) {
            Found::Fresh(entry) => {
                self.inner.stats.incr(usize::from(entry.tier), Counter::Hit);
                entry.value.clone()
            }
            Found::Stale(_) | Found::Miss => None,
        }
    }

    /// Like [`get`](Self::get), with the freshness left (for `Cache-Status: ...; ttl=`).
    #[must_use]
    pub fn get_with_ttl(&self, key: &CacheKey) -> Option<(V, Duration)> {
        let now = self.inner.clock.now_ms();
        match self.inner.lookup(key, now) {
            Found::Fresh(entry) => {
                self.inner.stats.incr(usize::from(entry.tier), Counter::Hit);
                let left = Duration::from_millis(entry.fresh_until.saturating_sub(now));
                entry.value.clone().map(|v| (v, left))
            }
            Found::Stale(_) | Found::Miss => None,
        }
    }

    /// The cached value of `key`, or the loader's.
    ///
    /// Concurrent callers for one key share one load (single flight), which runs in its own task so that a
    /// cancelled caller does not stall the others. With a second tier, a miss first reads Redis. With
    /// stale-while-revalidate, an expired value within the window is returned at once and refreshed in the
    /// background; with early refresh, a value near expiry may be refreshed before it expires.
    ///
    /// The loader is dropped unused on a hit. A loader's failure reaches every waiting caller and is not
    /// cached. Failures of the cache itself (Redis down) never fail the call.
    ///
    /// # Errors
    ///
    /// [`LoadError::Loader`] with the loader's error, or [`LoadError::Aborted`] when its task panicked.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &CacheKey,
        tier: Tier,
        loader: F,
    ) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let optional = move || {
            let fut = loader();
            async move { fut.await.map(Some) }
        };
        match self.get_or_load_optional(key, tier, optional).await? {
            Some(value) => Ok(value),
            // Only when the key also holds a cached absence from get_or_load_optional.
            None => Err(LoadError::Absent),
        }
    }

    /// Like [`get_or_load`](Self::get_or_load) for queries that may find nothing: `Ok(None)` from the loader
    /// is cached for the [`negative_ttl`](QueryCacheBuilder::negative_ttl) when one is set.
    ///
    /// # Errors
    ///
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn get_or_load_optional<F, Fut, E>(
        &self,
        key: &CacheKey,
        tier: Tier,
        loader: F,
    ) -> Result<Option<V>, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let tier_index = tier.index();
        match inner.lookup(key, now) {
            Found::Fresh(entry) => {
                inner.stats.incr(usize::from(entry.tier), Counter::Hit);
                if entry.value.is_none() {
                    inner
                        .stats
                        .incr(usize::from(entry.tier), Counter::NegativeHit);
                } else if inner.early_refresh && xfetch_due(&entry, now) {
                    Inner::start_flight(inner, key, tier, loader, true);
                }
                return Ok(entry.value.clone());
            }
            Found::Stale(entry) => {
                inner
                    .stats
                    .incr(usize::from(entry.tier), Counter::StaleServed);
                Inner::start_flight(inner, key, tier, loader, true);
                return Ok(entry.value.clone());
            }
            Found::Miss => {
                // Redis only: a hit needs no flight (no task, no channel); only a miss goes through one.
                if inner.l1.is_none()
                    && let Some(l2) = inner.l2.as_ref().filter(|l2| l2.readable())
                    && let Ok(lookup) = l2.get(key).await
                    && let Some(found) = lookup.found.filter(|f| !f.fresh_for.is_zero())
                {
                    inner.stats.incr(tier_index, Counter::Hit);
                    inner.stats.global(Global::L2Hit);
                    return Ok(found.value);
                }
                inner.stats.incr(tier_index, Counter::Miss);
            }
        }
        let mut receiver = match Inner::start_flight(inner, key, tier, loader, false) {
            Join::Wait(receiver) => receiver,
            Join::Value(value) => return Ok(value),
            Join::Background => return Err(LoadError::Aborted),
        };
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(LoadError::Aborted)),
            Err(_) => Err(LoadError::Aborted),
        }
    }

    /// Stores a value directly (write-through), fresh for the tier's TTL.
    ///
    /// With Redis, the value replaces the shared one and other instances drop their in-process copy; a load of
    /// the key running elsewhere cannot overwrite it. A store to Redis that fails is counted in statistics and
    /// the key's invalidation is queued for when Redis answers; this process has the value anyway.
    pub async fn insert(&self, key: &CacheKey, tier: Tier, value: V) {
        let inner = &self.inner;
        let value = Some(value);
        if inner.l1.is_some() {
            // Without an in-process tier (Redis only), no generation snapshot (a lock, allocations) is taken.
            let ttl = millis(inner.ttls.ttl(tier));
            inner.store_local(key, tier, &value, ttl, 0, inner.snapshot(key), None);
        }
        match &inner.l2 {
            Some(l2) if l2.readable() => {
                let fresh = inner.ttls.ttl(tier);
                let stale = Duration::from_millis(inner.stale_window_ms);
                // One round trip: the script bumps the key's generation, records the current ones, writes, and
                // tells the other instances to drop their copy. On failure it queues an invalidation.
                if l2.set(key, &value, fresh, stale, 0, None).await.is_err() {
                    inner.stats.global(Global::L2Error);
                }
            }
            // Redis is being skipped: its old value must not outlive the outage.
            Some(l2) => l2.defer_invalidation(key),
            None => {}
        }
    }

    /// Invalidates one key: in process at once, then in Redis and on every instance (two-level).
    ///
    /// A load of the key that is running now still answers its waiters but is not stored.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when Redis could not be told; the in-process tier is invalidated anyway, and the Redis
    /// invalidation is replayed when Redis answers again (Redis reads are skipped until then).
    pub async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        self.inner.stats.global(Global::InvalidateKey);
        self.inner.remove_local(key);
        match &self.inner.l2 {
            Some(l2) => l2.invalidate_key(key).await,
            None => Ok(()),
        }
    }

    /// Invalidates every key of `tenant` tagged `tag`, by bumping the tag's generation (no key is scanned).
    ///
    /// # Errors
    ///
    /// [`InvalidateError::Key`] for an invalid tenant or tag; [`InvalidateError::Store`] as for
    /// [`invalidate`](Self::invalidate).
    pub async fn invalidate_tag(&self, tenant: &str, tag: &str) -> Result<(), InvalidateError> {
        check_tenant(tenant)?;
        check_tag(tag)?;
        self.inner.stats.global(Global::InvalidateTag);
        self.inner.invalidate_local_tag(tenant, Some(tag));
        match &self.inner.l2 {
            Some(l2) => Ok(l2.invalidate_tag(tenant, Some(tag)).await?),
            None => Ok(()),
        }
    }

    /// Invalidates every key of `tenant` (one generation bump).
    ///
    /// # Errors
    ///
    /// As [`invalidate_tag`](Self::invalidate_tag).
    pub async fn invalidate_tenant(&self, tenant: &str) -> Result<(), InvalidateError> {
        check_tenant(tenant)?;
        self.inner.stats.global(Global::InvalidateTag);
        self.inner.invalidate_local_tag(tenant, None);
        match &self.inner.l2 {
            Some(l2) => Ok(l2.invalidate_tag(tenant, None).await?),
            None => Ok(()),
        }
    }

    /// Forgets everything in the in-process tier of this instance (Redis is untouched). Loads running now are
    /// not stored.
    pub fn clear_local(&self) {
        self.inner.stats.global(Global::InvalidateAll);
        self.inner.flush_local();
    }

    /// Removes, from the in-process tier, every entry whose key matches `predicate`. This walks every entry
    /// (O(entries) under each shard's lock in turn): for invalidation on writes, use tags, which cost one
    /// atomic increment. Redis is not touched: a pattern over Redis keys would need `SCAN`, which this crate
    /// never runs.
    ///
    /// Each entry removed counts in its tier's [`TierStats::invalidations`](crate::TierStats::invalidations).
    pub fn invalidate_local_matching(&self, predicate: impl Fn(&CacheKey) -> bool) {
        if let Some(l1) = &self.inner.l1 {
            l1.retain(|key, entry| {
                let keep = !predicate(key);
                if !keep {
                    self.inner
                        .stats
                        .incr(usize::from(entry.tier), Counter::Invalidation);
                }
                keep
            });
        }
    }

    /// A snapshot of the statistics (for `/metrics` and health checks).
    #[must_use]
    pub fn stats(&self) -> StatsSnapshot {
        let mut snapshot = self.inner.stats.snapshot();
        if let Some(l1) = &self.inner.l1 {
            snapshot.entries = l1.len() as u64;
            snapshot.weight = l1.weight();
        }
        snapshot.redis = self.inner.l2.as_ref().map(|l2| l2.status());
        snapshot
    }
}

/// An invalidation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidateError {
    /// The tenant or tag is not valid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Redis could not be told (the in-process tier was invalidated; the Redis part is replayed later).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<V: Clone + Send + Sync + 'static> Inner<V> {
    #[inline]
    fn lookup(&self, key: &CacheKey, now: u64) -> Found<V> {
        let Some(l1) = &self.l1 else {
            return Found::Miss;
        };
        let Some(entry) = l1.get(key) else {
            return Found::Miss;
        };
        if !entry.is_current(&self.epoch) {
            // A tag or tenant invalidation scans nothing: its entries are counted as they are found.
            if l1
                .remove_if(key, |current| Arc::ptr_eq(current, &entry))
                .is_some()
                && entry.epoch == self.epoch.load(Ordering::Acquire)
            {
                self.stats
                    .incr(usize::from(entry.tier), Counter::Invalidation);
            }
            return Found::Miss;
        }
        if now < entry.fresh_until {
            Found::Fresh(entry)
        } else if now < entry.stale_until {
            Found::Stale(entry)
        } else {
            Found::Miss
        }
    }

    fn flight_shard(&self, key: &CacheKey) -> &Mutex<HashMap<CacheKey, FlightSlot>> {
        let index = usize::try_from(key.precomputed_hash() >> 40).unwrap_or(0) % FLIGHT_SHARDS;
        &self.flights[index]
    }

    fn remove_local(&self, key: &CacheKey) {
        let shard = self.flight_shard(key);
        let guard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = guard.get(key) {
            slot.cancelled.store(true, Ordering::Release);
        }
        // Under the flight lock, so a load finishing now either sees `cancelled` or is removed here.
        if let Some(l1) = &self.l1
            && let Some((_, entry)) = l1.remove(key)
        {
            self.stats
                .incr(usize::from(entry.tier), Counter::Invalidation);
        }
        drop(guard);
    }

    fn tag_generation(&self, tenant: &str, tag: &str) -> Arc<AtomicU64> {
        let name = format!("{tenant}\u{0}{tag}");
        if let Some(found) = self
            .tags
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&name)
        {
            return Arc::clone(found);
        }
        let mut map = self
            .tags
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            map.entry(name)
                .or_insert_with(|| Arc::new(AtomicU64::new(0))),
        )
    }

    /// The generations a load starts under: the epoch, the tenant's and each tag's.
    fn snapshot(&self, key: &CacheKey) -> Snapshot {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut tags = Vec::with_capacity(key.tags().len() + 1);
        for tag in std::iter::once(TENANT_TAG).chain(key.tags().iter().map(|t| &**t)) {
            let generation = self.tag_generation(key.tenant(), tag);
            let seen = generation.load(Ordering::Acquire);
            tags.push((generation, seen));
        }
        Snapshot {
            epoch,
            tags: tags.into_boxed_slice(),
        }
    }

    /// Puts a loaded value into the in-process tier, unless the key was invalidated while it loaded.
    #[allow(clippy::too_many_arguments)]
    fn store_local(
        &self,
        key: &CacheKey,
        tier: Tier,
        value: &Option<V>,
        fresh_ms: u64,
        load_ms: u64,
        snapshot: Snapshot,
        cancelled: Option<&AtomicBool>,
    ) {
        let Some(l1) = &self.l1 else { return };
        let now = self.clock.now_ms();
        let mut fresh_until = now.saturating_add(fresh_ms);
        let mut stale_until = if value.is_some() {
            fresh_until.saturating_add(self.stale_window_ms)
        } else {
            fresh_until
        };
        if let Some(max_age) = self.l1_max_age_ms {
            // With a second tier, an in-process entry is only a copy: trust it for a bounded time while the
            // invalidation subscriber is down, and serve nothing stale from it that Redis would not.
            if !self.coherent.load(Ordering::Acquire) {
                fresh_until = fresh_until.min(now.saturating_add(max_age));
                stale_until = stale_until.min(fresh_until);
            }
        }
        let weight = match (value, &self.weigher) {
            (Some(v), Some(weigher)) => weigher(v).max(1),
            _ => 1,
        };
        let entry = Arc::new(Entry {
            value: value.clone(),
            fresh_until,
            stale_until,
            load_ms,
            epoch: snapshot.epoch,
            tags: snapshot.tags,
            tier: u8::try_from(tier.index()).unwrap_or(4),
            weight,
        });
        if !entry.is_current(&self.epoch) {
            return;
        }
        let shard = self.flight_shard(key);
        let guard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cancelled.is_some_and(|c| c.load(Ordering::Acquire)) {
            return;
        }
        l1.insert(key.clone(), entry);
        drop(guard);
    }

    /// Joins the running load of `key` or starts one. `background`: nobody waits (refresh); then returns None.
    fn start_flight<F, Fut, E>(
        this: &Arc<Self>,
        key: &CacheKey,
        tier: Tier,
        loader: F,
        background: bool,
    ) -> Join<V, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let shard = this.flight_shard(key);
        let mut guard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = guard.get(key) {
            if background {
                return Join::Background;
            }
            if let Some(receiver) = slot
                .receiver
                .downcast_ref::<watch::Receiver<Option<Outcome<V, E>>>>()
            {
                return Join::Wait(receiver.clone());
            }
            // Another caller loads this key with another error type: load alone, without the slot.
            drop(guard);
            let (sender, receiver) = watch::channel(None);
            let flight = Flight {
                inner: Arc::clone(this),
                key: key.clone(),
                id: 0,
                tier,
                background,
            };
            spawn(flight.run(loader, sender, Arc::new(AtomicBool::new(false))));
            return Join::Wait(receiver);
        }
        // A load may have finished between our lookup and this lock (it stores under this lock before it
        // removes its slot): look again, or a second load of the same key would start.
        // (A background refresh is asked for while the value is fresh, on purpose: no second look for it.)
        if !background && let Found::Fresh(entry) = this.lookup(key, this.clock.now_ms()) {
            return Join::Value(entry.value.clone());
        }
        let id = this.next_flight.fetch_add(1, Ordering::Relaxed);
        let cancelled = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = watch::channel(None);
        guard.insert(
            key.clone(),
            FlightSlot {
                id,
                cancelled: Arc::clone(&cancelled),
                receiver: Arc::new(receiver.clone()),
            },
        );
        drop(guard);
        if background {
            this.stats.incr(tier.index(), Counter::Refresh);
        }
        let flight = Flight {
            inner: Arc::clone(this),
            key: key.clone(),
            id,
            tier,
            background,
        };
        spawn(flight.run(loader, sender, cancelled));
        if background {
            Join::Background
        } else {
            Join::Wait(receiver)
        }
    }
}

/// Runs a load in its own task (or inline when there is no tokio runtime).
fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(fut);
    } else {
        // No runtime: nothing else could be waiting; drive it to completion here.
        futures_lite_block_on(fut);
    }
}

/// Polls a future on the current thread (used only outside a tokio runtime).
fn futures_lite_block_on(fut: impl Future<Output = ()>) {
    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        runtime.block_on(fut);
    }
}

struct Snapshot {
    epoch: u64,
    tags: Box<[(Arc<AtomicU64>, u64)]>,
}

/// One load of one key; removes its slot when done, even when the loader panics.
struct Flight<V: Clone + Send + Sync + 'static> {
    inner: Arc<Inner<V>>,
    key: CacheKey,
    /// 0: not registered in the flight map.
    id: u64,
    tier: Tier,
    background: bool,
}

impl<V: Clone + Send + Sync + 'static> Flight<V> {
    async fn run<F, Fut, E>(
        self,
        loader: F,
        sender: watch::Sender<Option<Outcome<V, E>>>,
        cancelled: Arc<AtomicBool>,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let key = self.key.clone();
        let tier = self.tier;
        let tier_index = tier.index();
        let snapshot = inner.snapshot(&key);
        let stale = Duration::from_millis(inner.stale_window_ms);

        // The second tier first: another instance may have loaded it already.
        let mut generations = None;
        if let Some(l2) = inner.l2.as_ref().filter(|l2| l2.readable()) {
            match l2.get(&key).await {
                Ok(lookup) => {
                    if let Some(found) = lookup.found.filter(|f| !f.fresh_for.is_zero()) {
                        inner.stats.global(Global::L2Hit);
                        inner.store_local(
                            &key,
                            tier,
                            &found.value,
                            millis(found.fresh_for),
                            found.load_ms,
                            snapshot,
                            Some(&cancelled),
                        );
                        self.finish();
                        sender.send_replace(Some(Ok(found.value)));
                        return;
                    }
                    inner.stats.global(Global::L2Miss);
                    generations = Some(lookup.generations);
                }
                Err(_) => inner.stats.global(Global::L2Error),
            }
        }

        let started = tokio::time::Instant::now();
        let result = loader().await;
        let elapsed = started.elapsed();
        let load_ms = millis(elapsed);
        inner.stats.add(
            tier_index,
            Counter::LoadMicros,
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        match result {
            Ok(value) => {
                inner.stats.incr(tier_index, Counter::Load);
                let ttl = match (&value, inner.negative_ttl_ms) {
                    (Some(_), _) => Some(inner.ttls.ttl(tier)),
                    (None, Some(negative)) => Some(Duration::from_millis(negative)),
                    (None, None) => None,
                };
                if let Some(ttl) = ttl {
                    inner.store_local(
                        &key,
                        tier,
                        &value,
                        millis(ttl),
                        load_ms,
                        snapshot,
                        Some(&cancelled),
                    );
                }
                if let (Some(l2), Some(generations), Some(ttl)) = (&inner.l2, generations, ttl) {
                    let stale = if value.is_some() {
                        stale
                    } else {
                        Duration::ZERO
                    };
                    // Before answering, so that a caller who then asks another instance finds it there. Not when
                    // the key was invalidated meanwhile (the Lua check would refuse it anyway).
                    if !cancelled.load(Ordering::Acquire)
                        && l2
                            .set(&key, &value, ttl, stale, load_ms, Some(generations))
                            .await
                            .is_err()
                    {
                        inner.stats.global(Global::L2Error);
                    }
                }
                // Only now: callers arriving while Redis was written joined this load instead of starting one.
                self.finish();
                sender.send_replace(Some(Ok(value)));
            }
            Err(error) => {
                inner.stats.incr(tier_index, Counter::LoadError);
                self.finish();
                sender.send_replace(Some(Err(LoadError::Loader(Arc::new(error)))));
            }
        }
    }

    /// Removes this flight's slot (only its own: a later flight of the same key keeps its slot).
    fn finish(&self) {
        if self.id == 0 {
            return;
        }
        let shard = self.inner.flight_shard(&self.key);
        let mut guard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.get(&self.key).is_some_and(|slot| slot.id == self.id) {
            guard.remove(&self.key);
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Drop for Flight<V> {
    fn drop(&mut self) {
        // Reached on every path, including a panicking loader: a stuck slot would block the key forever.
        self.finish();
        let _ = self.background;
    }
}

/// XFetch: refresh early when `now - delta * beta * ln(rand) >= expiry`, beta = 1.
fn xfetch_due<V>(entry: &Entry<V>, now: u64) -> bool {
    let delta = entry.load_ms.max(1);
    let remaining = entry.fresh_until.saturating_sub(now);
    // -ln(rand) exceeds 30 with probability e^-30: skip the random draw when expiry is that far away.
    if remaining > delta.saturating_mul(30) {
        return false;
    }
    let draw = -(random_unit().ln());
    let threshold = remaining;
    #[allow(clippy::cast_precision_loss)]
    let scaled = draw * delta as f64;
    #[allow(clippy::cast_precision_loss)]
    let due = scaled >= threshold as f64;
    due
}

/// A uniform draw in (0, 1] from a per-thread xorshift generator.
fn random_unit() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1));
            (seed ^ 0x9e37_79b9_7f4a_7c15) | 1
        });
    }
    let bits = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    // 53 random bits, mapped to (0, 1].
    #[allow(clippy::cast_precision_loss)]
    let unit = ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64;
    unit
}

impl<V: Clone + Send + Sync + 'static> LocalInvalidator for Inner<V> {
    fn invalidate_local_key(&self, full: &str) {
        if let Some(key) = CacheKey::from_full(full) {
            self.remove_local(&key);
        }
    }

    fn invalidate_local_tag(&self, tenant: &str, tag: Option<&str>) {
        let name = format!("{tenant}\u{0}{}", tag.unwrap_or(TENANT_TAG));
        if let Some(generation) = self
            .tags
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&name)
        {
            generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn flush_local(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.stats.global(Global::L1Flush);
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    fn set_coherent(&self, coherent: bool) {
        self.coherent.store(coherent, Ordering::Release);
    }
}
