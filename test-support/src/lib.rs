//! Real PostgreSQL and Redis for tests, one isolated slice per test, and a loopback proxy for fault tests.
//!
//! - [`postgres`] creates a fresh database for the calling test (from `DATABASE_URL`, or the machine's local
//!   server) and drops it when the returned [`PgDatabase`] is dropped.
//! - [`redis`] gives the test the Redis URL and a key prefix of its own; its keys are deleted on drop.
//! - [`FaultProxy`] sits between a client and a service on loopback and can refuse, drop or stall connections,
//!   so a test can cut a service without stopping the one every other test uses.
//!
//! When a service cannot be reached, the helpers print why and return `None`, and the test returns early
//! ([`require!`]); with `REQUIRE_SERVICES=1` (set by `.ci/run`) they panic instead, so CI cannot pass by
//! skipping.
//!
//! ```no_run
//! # async fn demo() {
//! let db = test_support::require!(test_support::postgres().await);
//! let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
//! # }
//! ```
#![forbid(unsafe_code)]

mod proxy;
mod services;

pub use proxy::{FaultProxy, ProxyMode};
pub use services::{
    PgDatabase, RedisSlice, postgres, postgres_admin_url, redis, redis_url, services_required,
};

/// Unwraps the `Option` from [`postgres`] or [`redis`], or returns from the test when the service is missing
/// (the helper has already printed why, and has panicked instead when `REQUIRE_SERVICES=1`).
#[macro_export]
macro_rules! require {
    ($service:expr) => {
        match $service {
            Some(value) => value,
            None => return,
        }
    };
}
