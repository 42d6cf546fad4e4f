//! Shows health-kit in an axum service: a critical PostgreSQL check and a critical Redis check, a non-critical
//! disk space check and a snapshot check (how circuit breaker states or cache hit rates reach /health/status),
//! all run concurrently in the background and answered from the cache; /health/status details for a bearer
//! token; and a graceful shutdown that turns /health/ready to 503 for a drain period before the server stops.
//!
//! Run:   cargo run -p examples --example health
//! Then:  curl -i localhost:3000/health/ready
//!        curl -s -H 'Authorization: Bearer let-me-see' localhost:3000/health/status
//!        (Ctrl-C: /health/ready answers 503 for 5 s, then the server stops)
//!
//! DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL (default redis://127.0.0.1:6379),
//! BIND_ADDR (default 127.0.0.1:3000) and HEALTH_STATUS_TOKEN (default let-me-see) change the set-up. The pool
//! connects lazily, so the server starts even while PostgreSQL is down, and /health/ready says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use health_kit::checks::{DiskSpaceCheck, RedisCheck, SqlxPoolCheck};
use health_kit::{
    CheckOptions, ComponentType, DetailPolicy, Health, Measurement, Observation, snapshot_fn,
};

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

    // Stands in for a circuit breaker registry's snapshot: the application counts, the check reads.
    let upstream_failures = Arc::new(AtomicU64::new(0));
    let failures = Arc::clone(&upstream_failures);
    let breaker_snapshot = snapshot_fn(move || {
        let n = failures.load(Ordering::Relaxed);
        let observation = if n >= 5 {
            Observation::warn("payments breaker open")
        } else {
            Observation::pass()
        };
        observation.measurement(Measurement::new("failures").value(n).unit("calls"))
    });

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
            "breakers",
            breaker_snapshot,
            CheckOptions::non_critical().interval(Duration::from_secs(1)),
        )
        .release_id(env!("CARGO_PKG_VERSION"))
        .detail_policy(DetailPolicy::bearer_token(token))
        .build()?;
    let _refresher = health.spawn_refresher();

    let app = axum::Router::new()
        .route(
            "/api/pay",
            axum::routing::post(move || {
                upstream_failures.fetch_add(1, Ordering::Relaxed);
                async { "upstream failed (counted by the breaker snapshot)" }
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
