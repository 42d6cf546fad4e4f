//! Caches expensive query results (dashboard aggregations, rate-limited upstream APIs) with named TTL tiers,
//! single-flight loads and precise invalidation by key, tag and tenant, in process, in Redis, or both.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use query_cache::{CacheKey, QueryCache, Tier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache: QueryCache<i64> = QueryCache::builder()
//!     .tier_ttl(Tier::Short, Duration::from_secs(30))
//!     .stale_while_revalidate(Duration::from_secs(10))
//!     .build()?;
//!
//! // One organization's dashboard total, depending on its invoices.
//! let key = CacheKey::new("org-42", "dashboard.total", &("2026-11", "AUD"))?.tagged(["invoices"])?;
//! let total = cache.get_or_load(&key, Tier::Short, || async { Ok::<_, std::io::Error>(121_00) }).await?;
//! assert_eq!(total, 121_00);
//! assert_eq!(cache.get(&key), Some(121_00)); // a hit: no load
//!
//! // An invoice of org-42 was written: every cached query tagged `invoices` of org-42 is gone.
//! cache.invalidate_tag("org-42", "invoices").await?;
//! assert_eq!(cache.get(&key), None);
//! assert_eq!(cache.stats().loads(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! With the `http-layer` feature, [`layer::GetCacheLayer`] caches `GET` responses by route, query and caller:
//!
//! ```
//! # #[cfg(feature = "http-layer")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use query_cache::layer::{CACHE_STATUS, GetCacheLayer};
//! use query_cache::{QueryCache, Tier};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let cache = QueryCache::builder().build().unwrap();
//! // Tenant and caller; a real server takes them from verified token claims in the request extensions.
//! let caller = |_: &http::request::Parts| Some(("42".to_owned(), "user-1".to_owned()));
//! let svc = GetCacheLayer::new(cache, Tier::Short, "reference-server", caller).layer(service_fn(
//!     |_req: Request<Full<Bytes>>| async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("{}")))) },
//! ));
//! let get = || Request::get("/api/v1/dashboard").body(Full::new(Bytes::new())).unwrap();
//! let first = svc.clone().oneshot(get()).await.unwrap();
//! assert_eq!(first.headers()[CACHE_STATUS], "reference-server; fwd=miss; stored");
//! let second = svc.oneshot(get()).await.unwrap();
//! assert_eq!(second.headers()[CACHE_STATUS], "reference-server; hit; ttl=60");
//! # }
//! # #[cfg(not(feature = "http-layer"))]
//! # fn main() {}
//! ```
//!
//! # What it does
//!
//! - **Tiers**: [`Tier::Short`] 60 s, [`Tier::Medium`] 300 s, [`Tier::Long`] 3 600 s, [`Tier::VeryLong`]
//!   86 400 s (configurable), or [`Tier::Ttl`] per call.
//! - **Keys** ([`CacheKey`]): tenant, query name and postcard-encoded parameters, stable across processes and
//!   program versions; tags scoped to the tenant.
//! - **Single flight**: concurrent misses of one key share one load, run in its own task (a cancelled caller
//!   stalls no one); optional stale-while-revalidate and early probabilistic refresh (XFetch).
//! - **Invalidation** by key, tag or tenant through generation counters: one atomic increment in process, one
//!   `INCR` in Redis; no key is ever scanned. A load that raced an invalidation is not stored.
//! - **Stores**: in process (quick_cache, weight-bounded, expiry checked on read against a coarse clock);
//!   Redis only; or two-level, whose in-process tiers on every instance are kept coherent over Redis pub/sub.
//! - **Redis down**: reads fall back to the loader (and the in-process tier), never fail; the state is in
//!   [`QueryCache::stats`]; invalidations Redis missed are replayed before Redis is read again.
//! - **Statistics** per tier ([`StatsSnapshot`]): hits, misses, loads, load time, stale served, refreshes,
//!   evictions, invalidations (entries removed, in the tier they were stored with; see
//!   [`TierStats::invalidations`] for how tag invalidations are attributed); invalidation calls; Redis state.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `redis` | no | [`RedisStore`], `QueryCacheBuilder::two_level` and `redis_only` (redis 1.x); values as postcard or JSON |
//! | `http-layer` | no | [`layer::GetCacheLayer`]: caches `GET` responses with RFC 9211 `Cache-Status` |
//!
//! # Pitfalls
//!
//! - **Clock.** The default clock is a process-wide millisecond ticker (one thread); an entry can be served up
//!   to about a millisecond (plus scheduling delay) past its TTL. Tests use [`Clock::manual`].
//! - **Memory.** The in-process tier is bounded by weight ([`QueryCacheBuilder::max_weight`] with a
//!   [`QueryCacheBuilder::weigher`]); expired entries leave through eviction. The tag-generation table grows
//!   with the number of distinct (tenant, tag) pairs used, which an application bounds by design.
//! - **Missed invalidations.** Pub/sub is at-most-once. The subscriber pings every second and flushes the
//!   in-process tier on every disconnect and reconnect; while it is disconnected, in-process entries live at
//!   most [`QueryCacheBuilder::l1_max_age`] (5 s). An invalidation sent while Redis was unreachable reaches
//!   the other instances when Redis answers again (replayed by the instance that made it).
//! - **Patterns.** [`QueryCache::invalidate_local_matching`] walks every in-process entry (O(n)); Redis keys are
//!   never matched by pattern (that would need `SCAN`). Use tags.
//! - **Redis Cluster.** All keys of a tenant share the hash tag `{tenant}`: a very large tenant is one hot slot.
//! - **One method per key.** A key read with [`QueryCache::get_or_load_optional`] may hold a cached absence;
//!   [`QueryCache::get_or_load`] then answers [`LoadError::Absent`].
#![forbid(unsafe_code)]

mod cache;
mod clock;
mod error;
pub mod key;
#[cfg(feature = "http-layer")]
pub mod layer;
mod stats;
mod store;
mod tier;

pub use cache::{InvalidateError, QueryCache, QueryCacheBuilder};
pub use clock::{Clock, ManualClock};
pub use error::{ConfigError, KeyError, LoadError, StoreError};
pub use key::CacheKey;
pub use stats::{RedisStatus, StatsSnapshot, TierStats};
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder, ValueFormat};
pub use tier::Tier;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
