//! Caching of expensive query results with named TTL tiers, single flight and tag invalidation.
#![forbid(unsafe_code)]

mod cache;
mod clock;
mod error;
pub mod key;
mod stats;
mod store;
mod tier;

pub use cache::{InvalidateError, QueryCache, QueryCacheBuilder};
pub use clock::{Clock, ManualClock};
pub use error::{ConfigError, KeyError, LoadError, StoreError};
pub use key::CacheKey;
pub use stats::{RedisStatus, StatsSnapshot, TierStats};
#[cfg(feature = "redis")]
pub use store::redis::{RedisStore, RedisStoreBuilder};
pub use tier::Tier;
