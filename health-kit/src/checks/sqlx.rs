//! A check over any sqlx pool: one round trip, and the pool's connections in use and idle.

use sqlx::{Connection, Database, Pool};
use tokio::time::Instant;

use crate::check::{Check, CheckFuture};
use crate::observation::{Measurement, Observation};

/// Acquires a connection from the pool and pings the database over it (a real round trip on PostgreSQL and
/// SQLite), reporting `responseTime` (ms, acquire plus ping) and `connections` (in use by the application when the
/// check began, with `idle`, `size` and `max` beside it).
///
/// With sqlx's default `test_before_acquire(true)`, acquiring an idle connection pings it first, so a run
/// costs two round trips on a pool that has idle connections; either way it is one run per interval.
///
/// Register it with `ComponentType::Datastore`. The registry's timeout bounds the whole run, so a pool whose
/// `acquire_timeout` is longer cannot hold a probe's answer back: the probe reads the cache anyway.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), health_kit::ConfigError> {
/// use health_kit::{CheckOptions, ComponentType, Health, checks::SqlxPoolCheck};
///
/// let health = Health::builder()
///     .check("postgres", SqlxPoolCheck::new(pool), CheckOptions::critical().component_type(ComponentType::Datastore))
///     .build()?;
/// # let _ = health;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqlxPoolCheck<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlxPoolCheck<DB> {
    /// A check over `pool` (a clone: sqlx pools are handles).
    #[must_use]
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }
}

impl<DB: Database> Check for SqlxPoolCheck<DB> {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            // The pool's figures before this check takes a connection: what the application is using. (After
            // the ping, the connection goes back to the pool on a task of its own, so they would be off by one.)
            let size = self.pool.size();
            let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
            let started = Instant::now();
            let result = async {
                let mut conn = self.pool.acquire().await?;
                conn.ping().await
            }
            .await;
            let elapsed = started.elapsed();
            let connections = Measurement::new("connections")
                .value(size.saturating_sub(idle))
                .unit("connections")
                .field("idle", idle)
                .field("size", size)
                .field("max", self.pool.options().get_max_connections());
            let observation = match result {
                Ok(()) => Observation::pass(),
                Err(e) => Observation::fail(e.to_string()),
            };
            observation
                .measurement(Measurement::response_time(elapsed))
                .measurement(connections)
        })
    }
}
