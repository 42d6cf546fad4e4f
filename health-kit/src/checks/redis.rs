//! A Redis PING check over any async redis-rs connection.

use redis::aio::ConnectionLike;
use tokio::time::Instant;

use crate::check::{Check, CheckFuture};
use crate::observation::{Measurement, Observation};

/// Sends `PING` and reports its round trip as `responseTime` (ms).
///
/// Works with any cloneable async connection: a `ConnectionManager` (reconnects by itself after an outage,
/// which is what a health check wants) or a `MultiplexedConnection`. Register it with
/// `ComponentType::Datastore`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use health_kit::{CheckOptions, ComponentType, Health, checks::RedisCheck};
///
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let conn = redis::aio::ConnectionManager::new(client).await?;
/// let health = Health::builder()
///     .check("redis", RedisCheck::new(conn), CheckOptions::critical().component_type(ComponentType::Datastore))
///     .build()?;
/// # let _ = health;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisCheck<C> {
    conn: C,
}

impl<C> std::fmt::Debug for RedisCheck<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck").finish_non_exhaustive()
    }
}

impl<C> RedisCheck<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A check over `conn`; each run clones it (a handle to the shared connection).
    #[must_use]
    pub fn new(conn: C) -> Self {
        Self { conn }
    }
}

impl<C> Check for RedisCheck<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn run(&self) -> CheckFuture<'_> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let started = Instant::now();
            let reply = redis::cmd("PING").query_async::<String>(&mut conn).await;
            let elapsed = started.elapsed();
            let observation = match reply {
                Ok(pong) if pong == "PONG" => Observation::pass(),
                Ok(other) => Observation::fail(format!("unexpected reply to PING: {other:?}")),
                Err(e) => Observation::fail(e.to_string()),
            };
            observation.measurement(Measurement::response_time(elapsed))
        })
    }
}
