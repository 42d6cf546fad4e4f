//! Where entries live: the in-process tier ([`memory`]) and, with the `redis` feature, Redis.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::StoreError;
use crate::key::CacheKey;
use crate::stats::RedisStatus;

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A value as the second tier holds it.
#[derive(Debug)]
pub(crate) struct L2Value<V> {
    /// `None`: a cached absence.
    pub(crate) value: Option<V>,
    /// Freshness left, by the second tier's clock.
    pub(crate) fresh_for: Duration,
    /// How long the loader took, for early refresh.
    pub(crate) load_ms: u64,
}

/// What a second-tier read found, with the generations it saw (the condition of a later write).
#[derive(Debug)]
pub(crate) struct L2Lookup<V> {
    pub(crate) found: Option<L2Value<V>>,
    pub(crate) generations: Vec<u64>,
}

/// A shared tier behind the in-process one (Redis). Object-safe so the cache needs no feature-gated fields.
pub(crate) trait SecondTier<V>: Send + Sync + 'static {
    /// Reads a value that is still fresh or stale-servable, and the current generations of its key and tags.
    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<L2Lookup<V>, StoreError>>;

    /// Writes a value if the generations are still those of the read (no invalidation in between); with
    /// `None`, writes it under the current generations (a direct insert of a value known to be current).
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        value: &'a Option<V>,
        fresh: Duration,
        stale: Duration,
        load_ms: u64,
        generations: Option<Vec<u64>>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Invalidates one key everywhere.
    fn invalidate_key<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Invalidates a tag of a tenant everywhere (`None`: the whole tenant).
    fn invalidate_tag<'a>(
        &'a self,
        tenant: &'a str,
        tag: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The tier's state.
    fn status(&self) -> RedisStatus;

    /// Queues an invalidation of `key` for when the tier answers again (without trying now).
    fn defer_invalidation(&self, key: &CacheKey);

    /// Whether reads may use the tier now (false while it is marked down or invalidations wait to be replayed).
    fn readable(&self) -> bool;
}

/// What the invalidation subscriber does to the in-process tier of one cache.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) trait LocalInvalidator: Send + Sync + 'static {
    /// Drops one key (`full` as [`CacheKey::as_str`]).
    fn invalidate_local_key(&self, full: &str);
    /// Bumps a tag (`None`: the whole tenant).
    fn invalidate_local_tag(&self, tenant: &str, tag: Option<&str>);
    /// Forgets everything (messages may have been missed).
    fn flush_local(&self);
    /// Caps (or uncaps) how long in-process entries are trusted (subscriber down / up).
    fn set_coherent(&self, coherent: bool);
}
