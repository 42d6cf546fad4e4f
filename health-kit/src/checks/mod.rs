//! Built-in checks, each behind the feature of what it talks to.

#[cfg(feature = "disk")]
mod disk;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlx")]
mod sqlx;

#[cfg(feature = "disk")]
pub use disk::DiskSpaceCheck;
#[cfg(feature = "redis")]
pub use redis::RedisCheck;
#[cfg(feature = "sqlx")]
pub use sqlx::SqlxPoolCheck;
