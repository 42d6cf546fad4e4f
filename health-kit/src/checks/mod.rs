//! Built-in checks, each behind the feature of what it talks to.

#[cfg(feature = "tower-circuitbreaker")]
mod breakers;
#[cfg(feature = "disk")]
mod disk;
#[cfg(feature = "query-cache")]
mod query_cache;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlx")]
mod sqlx;

#[cfg(feature = "tower-circuitbreaker")]
pub use breakers::BreakerRegistryCheck;
#[cfg(feature = "disk")]
pub use disk::DiskSpaceCheck;
#[cfg(feature = "query-cache")]
pub use query_cache::QueryCacheCheck;
#[cfg(feature = "redis")]
pub use redis::RedisCheck;
#[cfg(feature = "sqlx")]
pub use sqlx::SqlxPoolCheck;
