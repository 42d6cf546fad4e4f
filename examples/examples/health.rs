//! Shows health-kit in an axum service: a critical PostgreSQL check and a critical Redis check, a non-critical
//! disk space check, and the non-critical typed checks of a tower-circuitbreaker registry (breaker states) and
//! a query-cache (hit rate), all run concurrently in the background and answered from the cache;
//! /health/status details for a bearer token; and a graceful shutdown that turns /health/ready to 503 for a
//! drain period before the server stops.
//!
//! Run:   cargo run -p examples --example health
//! Then:  curl -i localhost:3000/health/ready
//!        curl -s -H 'Authorization: Bearer let-me-see' localhost:3000/health/status
//!        curl -s localhost:3000/api/dashboard    (a cache lookup: the hit rate shows on the next run)
//!        curl -s -X POST localhost:3000/api/pay  (5 times: the payments breaker opens, the check warns)
//!        (Ctrl-C: /health/ready answers 503 for 5 s, then the server stops)
//!
//! DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL (default redis://127.0.0.1:6379),
//! BIND_ADDR (default 127.0.0.1:3000) and HEALTH_STATUS_TOKEN (default let-me-see) change the set-up. The pool
//! connects lazily, so the server starts even while PostgreSQL is down, and /health/ready says so.

use std::time::Duration;

use health_kit::checks::{
    BreakerRegistryCheck, DiskSpaceCheck, QueryCacheCheck, RedisCheck, SqlxPoolCheck,
};
use health_kit::{CheckOptions, ComponentType, DetailPolicy, Health};
use query_cache::{CacheKey, QueryCache, Tier};
use tower_circuitbreaker::{BreakerConfig, BreakerRegistry};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database_url = env_or(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let bind = env_or("BIND_ADDR", "127.0.0.1:3000");
    let token = env_or("HEALTH_STATUS_TOKEN", "let-me-see");

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&database_url)?;
    let redis = redis::aio::ConnectionManager::new_with_config(
        redis::Client::open(redis_url.as_str())?,
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1))),
    )
    .await?;

    // The breakers of the upstreams the service calls, and a cache of dashboard queries.
    let breakers = BreakerRegistry::new(BreakerConfig::default())?;
    let cache: QueryCache<String> = QueryCache::builder().build()?;

    let datastore = || {
        CheckOptions::critical()
            .timeout(Duration::from_secs(1))
            .interval(Duration::from_secs(5))
            .slow_after(Duration::from_millis(250))
            .component_type(ComponentType::Datastore)
    };
    let health = Health::builder()
        .check("postgres", SqlxPoolCheck::new(pool), datastore())
        .check("redis", RedisCheck::new(redis), datastore())
        .check(
            "disk",
            DiskSpaceCheck::new("."),
            CheckOptions::non_critical()
                .interval(Duration::from_secs(30))
                .component_type(ComponentType::System),
        )
        .check(
            "upstreams",
            BreakerRegistryCheck::new(&breakers),
            CheckOptions::non_critical().interval(Duration::from_secs(1)),
        )
        .check(
            "dashboard-cache",
            QueryCacheCheck::new(&cache).warn_below(50).min_lookups(10),
            CheckOptions::non_critical()
                .interval(Duration::from_secs(5))
                .component_type(ComponentType::Datastore),
        )
        .release_id(env!("CARGO_PKG_VERSION"))
        .detail_policy(DetailPolicy::bearer_token(token))
        .build()?;
    let _refresher = health.spawn_refresher();

    let app = axum::Router::new()
        .route(
            "/api/pay",
            axum::routing::post(move || {
                // The payment provider is down in this example: every admitted call fails.
                let payments = breakers.get("payments");
                let answer = match payments.try_acquire() {
                    Ok(permit) => {
                        permit.failure();
                        "upstream failed (recorded by the payments breaker)"
                    }
                    Err(_) => "refused: the payments breaker is open",
                };
                async move { answer }
            }),
        )
        .route(
            "/api/dashboard",
            axum::routing::get(move || {
                let cache = cache.clone();
                async move {
                    let Ok(key) = CacheKey::new("org-1", "dashboard.total", &()) else {
                        return "bad key".to_owned();
                    };
                    cache
                        .get_or_load(&key, Tier::Short, || async {
                            Ok::<_, std::io::Error>("121.00 AUD".to_owned())
                        })
                        .await
                        .unwrap_or_else(|e| format!("load failed: {e}"))
                }
            }),
        )
        .merge(health_kit::axum::router(&health));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    health.mark_started();

    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(health.drain_after(ctrl_c, Duration::from_secs(5)))
        .await?;
    eprintln!("drained and stopped");
    Ok(())
}
