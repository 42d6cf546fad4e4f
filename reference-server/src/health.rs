//! The health endpoints, from health-kit: `/health/live`, `/health/ready`, `/health/startup` and
//! `/health/status`, answered from checks run in the background (shared/API.md, Health).
//!
//! Checks: the database (critical: ready is 503 while it does not answer), open integrity deviations and the
//! dashboard cache's hit rate (both non-critical: they turn the status to `warn`, never take the instance
//! out of the load balancer). `/health/status` shows details to `HEALTH_STATUS_TOKEN` and to owners and admins.

use std::sync::Arc;
use std::time::Duration;

use health_kit::Check;
use health_kit::checks::{RedisCheck, SqlxPoolCheck};
use health_kit::{
    CheckOptions, ComponentType, DetailPolicy, Health, Measurement, Observation, check_fn,
    snapshot_fn,
};
use query_cache::QueryCache;

use crate::auth::{Principal, Role};
use crate::config::Config;
use crate::db::Db;
use crate::domain::dashboard::Dashboard;
use crate::domain::integrity;

/// How often the database is asked, and how long an answer may take before it counts as down.
const DB_INTERVAL: Duration = Duration::from_secs(1);
const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// Open integrity deviations change only when an audit runs.
const INTEGRITY_INTERVAL: Duration = Duration::from_secs(30);

/// A PING of Redis over a connection made at the first run and kept (a `ConnectionManager` reconnects by
/// itself). Not critical: while Redis is away the rate limits fall back to memory and the cache to this
/// instance, so the instance still serves; `/health/status` shows the check failing.
fn with_redis(builder: health_kit::HealthBuilder, url: &[u8]) -> health_kit::HealthBuilder {
    let client = match redis::Client::open(String::from_utf8_lossy(url).as_ref()) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "REDIS_URL not usable for the health check");
            return builder;
        }
    };
    let connection = Arc::new(tokio::sync::OnceCell::new());
    builder.check(
        "redis",
        check_fn(move || {
            let (client, connection) = (client.clone(), Arc::clone(&connection));
            async move {
                match connection
                    .get_or_try_init(|| redis::aio::ConnectionManager::new(client))
                    .await
                {
                    Ok(conn) => RedisCheck::new(conn.clone()).run().await,
                    Err(e) => Observation::fail(format!("cannot connect: {e}")),
                }
            }
        }),
        CheckOptions::non_critical()
            .timeout(DB_TIMEOUT)
            .interval(DB_INTERVAL)
            .component_type(ComponentType::Datastore),
    )
}

/// Builds the registry of the server's checks.
///
/// # Errors
///
/// Never for this fixed set of checks; health-kit refuses duplicate or malformed names at build.
pub fn registry(
    config: &Config,
    db: &Db,
    dashboards: Option<&QueryCache<Arc<Dashboard>>>,
    breakers: &tower_circuitbreaker::BreakerRegistry,
) -> Result<Health, health_kit::ConfigError> {
    let database = CheckOptions::critical()
        .timeout(DB_TIMEOUT)
        .interval(DB_INTERVAL)
        .component_type(ComponentType::Datastore);
    let mut builder = match db {
        Db::Sqlite(pool) => {
            Health::builder().check("sqlite", SqlxPoolCheck::new(pool.clone()), database)
        }
        Db::Postgres(pool) => {
            Health::builder().check("postgres", SqlxPoolCheck::new(pool.clone()), database)
        }
    };
    let audit_db = db.clone();
    builder = builder.check(
        "integrity",
        check_fn(move || {
            let db = audit_db.clone();
            async move {
                match integrity::open_events(&db).await {
                    Ok(0) => {
                        Observation::pass().measurement(Measurement::new("openDeviations").value(0))
                    }
                    Ok(n) => Observation::warn(format!("{n} integrity deviations open"))
                        .measurement(Measurement::new("openDeviations").value(n)),
                    Err(e) => Observation::fail(format!("cannot read integrity events: {e}")),
                }
            }
        }),
        CheckOptions::non_critical()
            .interval(INTEGRITY_INTERVAL)
            .component_type(ComponentType::Component),
    );
    if let Some(url) = &config.redis_url {
        builder = with_redis(builder, url.expose());
    }
    builder = builder.check(
        "upstreams",
        health_kit::checks::BreakerRegistryCheck::new(breakers),
        CheckOptions::non_critical().component_type(ComponentType::Component),
    );
    if let Some(cache) = dashboards.cloned() {
        builder = builder.check(
            "dashboard-cache",
            snapshot_fn(move || {
                let stats = cache.stats();
                let (hits, misses) = (stats.hits(), stats.misses());
                let lookups = hits.saturating_add(misses);
                // Whole percent, computed in integers.
                let rate = hits.saturating_mul(100).checked_div(lookups).unwrap_or(0);
                Observation::pass().measurement(
                    Measurement::new("hitRate")
                        .value(rate)
                        .unit("percent")
                        .field("hits", hits)
                        .field("misses", misses),
                )
            }),
            CheckOptions::non_critical().component_type(ComponentType::Component),
        );
    }
    let admins = DetailPolicy::when(|parts| {
        parts
            .extensions
            .get::<Principal>()
            .is_some_and(|p| matches!(p.role, Role::Owner | Role::Admin))
    });
    let policy = match &config.health_status_token {
        Some(token) => {
            DetailPolicy::bearer_token(String::from_utf8_lossy(token.expose()).into_owned())
                .or(admins)
        }
        None => admins,
    };
    builder
        .release_id(env!("CARGO_PKG_VERSION"))
        .version("1")
        .detail_policy(policy)
        .build()
}
