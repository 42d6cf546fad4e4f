//! Built-in checks against the machine's real PostgreSQL, Redis and SQLite, with outages made by cutting a
//! `FaultProxy` in front of the service (never by stopping the service).
#![cfg(all(feature = "sqlx-postgres", feature = "sqlx-sqlite", feature = "redis"))]

use std::time::Duration;

use health_kit::checks::{RedisCheck, SqlxPoolCheck};
use health_kit::{Check, CheckOptions, ComponentType, Health, Status};
use http::StatusCode;
use test_support::FaultProxy;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a shared 2-core machine, beyond the interval and the timeout.
const SLACK: Duration = Duration::from_millis(1000);

fn options() -> CheckOptions {
    CheckOptions::critical()
        .interval(INTERVAL)
        .timeout(TIMEOUT)
        .component_type(ComponentType::Datastore)
}

/// Waits, polling the cache, until the check reports `want`; returns how long it took.
async fn wait_for(health: &Health, name: &str, want: Status, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if health.check_status(name) == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{name} did not become {want} within {within:?}: {:?}",
            health.check_observation(name)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Cuts the proxy: the check must fail within one interval (plus its timeout), ready must answer 503 while
/// live answers 200; restores it: the check must pass again within one interval.
async fn outage_and_recovery(health: &Health, name: &str, proxy: &FaultProxy) {
    health.mark_started();
    let refresher = health.spawn_refresher();
    wait_for(health, name, Status::Pass, Duration::from_secs(5)).await;
    assert_eq!(health.ready().status_code(), StatusCode::OK);

    proxy.cut();
    let took = wait_for(health, name, Status::Fail, INTERVAL + TIMEOUT + SLACK).await;
    eprintln!("{name}: fail seen {took:?} after the cut");
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(health.live().status_code(), StatusCode::OK);
    assert!(
        health
            .check_observation(name)
            .expect("the check has run")
            .output_text()
            .is_some()
    );

    proxy.restore();
    let took = wait_for(health, name, Status::Pass, INTERVAL + TIMEOUT + SLACK).await;
    eprintln!("{name}: pass seen {took:?} after the restore");
    assert_eq!(health.ready().status_code(), StatusCode::OK);
    refresher.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_flips_the_check_to_fail_within_one_interval_and_back() {
    let db = test_support::require!(test_support::postgres().await);
    let (proxy, url) = FaultProxy::in_front_of(db.url()).await.unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(TIMEOUT)
        .connect(&url)
        .await
        .unwrap();
    let health = Health::builder()
        .check("postgres", SqlxPoolCheck::new(pool.clone()), options())
        .build()
        .unwrap();
    outage_and_recovery(&health, "postgres", &proxy).await;

    let observation = health.check_observation("postgres").unwrap();
    let names: Vec<&str> = observation
        .measurements()
        .iter()
        .map(|m| m.name())
        .collect();
    assert_eq!(names, ["responseTime", "connections"]);
    let connections = &observation.measurements()[1];
    assert_eq!(connections.fields()["max"], 2);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_flips_the_check_to_fail_within_one_interval_and_back() {
    let redis = test_support::require!(test_support::redis().await);
    let (proxy, url) = FaultProxy::in_front_of(redis.url()).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1);
    let conn = redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .unwrap();
    let health = Health::builder()
        .check("redis", RedisCheck::new(conn), options())
        .build()
        .unwrap();
    outage_and_recovery(&health, "redis", &proxy).await;

    let observation = health.check_observation("redis").unwrap();
    assert_eq!(observation.measurements()[0].name(), "responseTime");
    assert_eq!(observation.measurements()[0].observed_unit(), Some("ms"));
}

/// A query cache whose Redis tier is cut: the check warns (never fails, a cache miss runs the query) within
/// one interval, readiness stays 200, and the warning clears once Redis answers again.
#[cfg(feature = "query-cache")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_cache_with_redis_cut_warns_within_one_interval_and_recovers() {
    use health_kit::checks::QueryCacheCheck;
    use query_cache::{CacheKey, QueryCache, RedisStore, Tier};

    let redis = test_support::require!(test_support::redis().await);
    let (proxy, url) = FaultProxy::in_front_of(redis.url()).await.unwrap();
    let store = RedisStore::builder(url.as_str())
        .prefix(redis.prefix())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let cache: QueryCache<String> = QueryCache::builder().redis_only(&store).build().unwrap();
    let health = Health::builder()
        .check(
            "cache",
            QueryCacheCheck::new(&cache),
            CheckOptions::non_critical()
                .interval(INTERVAL)
                .timeout(TIMEOUT),
        )
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();

    // The application keeps using the cache; each lookup of a new key reads Redis.
    let traffic = {
        let cache = cache.clone();
        tokio::spawn(async move {
            for n in 0u64.. {
                let key = CacheKey::new("42", "health", &n).expect("valid key");
                let _ = cache
                    .get_or_load(&key, Tier::Short, || async {
                        Ok::<_, std::convert::Infallible>("v".to_owned())
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_for(&health, "cache", Status::Pass, Duration::from_secs(5)).await;
    let observation = health.check_observation("cache").unwrap();
    let redis_m = observation
        .measurements()
        .iter()
        .find(|m| m.name() == "redis")
        .expect("a redis measurement");
    assert_eq!(redis_m.observed_value(), Some(&serde_json::json!("up")));

    proxy.cut();
    let took = wait_for(&health, "cache", Status::Warn, INTERVAL + TIMEOUT + SLACK).await;
    eprintln!("cache: warn seen {took:?} after the cut");
    let observation = health.check_observation("cache").unwrap();
    assert!(
        observation
            .output_text()
            .is_some_and(|o| o.starts_with("redis tier down")),
        "{observation:?}"
    );
    assert_eq!(health.ready().status_code(), StatusCode::OK);

    proxy.restore();
    let took = wait_for(
        &health,
        "cache",
        Status::Pass,
        INTERVAL + TIMEOUT + SLACK * 3,
    )
    .await;
    eprintln!("cache: pass seen {took:?} after the restore");
    traffic.abort();
    refresher.stop();
}

#[tokio::test]
async fn sqlite_pool_check_reports_round_trip_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("h.db").display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(3)
        .connect(&url)
        .await
        .unwrap();
    let observation = SqlxPoolCheck::new(pool.clone()).run().await;
    assert_eq!(observation.status(), Status::Pass, "{observation:?}");
    let connections = &observation.measurements()[1];
    assert_eq!(connections.fields()["max"], 3);
    assert_eq!(
        connections.observed_value().unwrap(),
        0,
        "the connection went back to the pool"
    );
    pool.close().await;
    let closed = SqlxPoolCheck::new(pool).run().await;
    assert_eq!(closed.status(), Status::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_probes_in_a_second_cause_at_most_one_postgres_check_per_interval() {
    let db = test_support::require!(test_support::postgres().await);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(db.url())
        .await
        .unwrap();
    let health = Health::builder()
        .check("postgres", SqlxPoolCheck::new(pool.clone()), options())
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    wait_for(&health, "postgres", Status::Pass, Duration::from_secs(5)).await;
    let before = health.executions("postgres").unwrap();

    let start = Instant::now();
    let service = health.service();
    for _ in 0..100 {
        for _ in 0..100 {
            let request = http::Request::get("/health/ready").body(()).unwrap();
            let response = tower::ServiceExt::oneshot(service.clone(), request)
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    let runs = health.executions("postgres").unwrap() - before;
    let intervals = u64::try_from(elapsed.as_millis() / INTERVAL.as_millis()).unwrap();
    eprintln!("10 000 probes in {elapsed:?}: {runs} checks ({intervals} whole intervals)");
    assert!(runs <= intervals + 1, "{runs} checks in {elapsed:?}");
    refresher.stop();
    pool.close().await;
}
