//! Liveness and readiness on both backends, and readiness following the database through an outage.

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use support::{Backend, get, server};

async fn ready_and_live_answer_200(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let (status, body) = get(&server.state, "/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"status":"pass"}"#);
    let (status, _) = get(&server.state, "/health/live").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn ready_and_live_answer_200_on_sqlite() {
    ready_and_live_answer_200(Backend::Sqlite).await;
}

#[tokio::test]
async fn ready_and_live_answer_200_on_postgres() {
    ready_and_live_answer_200(Backend::Postgres).await;
}

#[tokio::test]
async fn migrations_are_applied_on_postgres() {
    let server = test_support::require!(server(Backend::Postgres, &[]).await);
    let reference_server::db::Db::Postgres(pool) = server.state.db() else {
        panic!("expected PostgreSQL")
    };
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(applied >= 1);
    let organizations: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(organizations, 0);
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let server = test_support::require!(server(Backend::Sqlite, &[]).await);
    server.state.db().migrate().await.unwrap();
    let (status, _) = get(&server.state, "/health/ready").await;
    assert_eq!(status, StatusCode::OK);
}

/// Polls `path` until it answers `want`, returning how long that took.
async fn wait_for(
    state: &reference_server::AppState,
    path: &str,
    want: StatusCode,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let (status, _) = get(state, path).await;
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{path} did not answer {want} within {limit:?} (last {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn fault_ready_follows_postgres_outage_and_recovery_while_live_stays_200() {
    let db = test_support::require!(test_support::postgres().await);
    let (proxy, url) = test_support::FaultProxy::in_front_of(db.url())
        .await
        .unwrap();
    let server = support::server_at(&url, &[], None, Some(db)).await;
    assert_eq!(get(&server.state, "/health/ready").await.0, StatusCode::OK);

    for fault in ["refuse", "stall"] {
        match fault {
            "refuse" => proxy.cut(),
            _ => proxy.stall(),
        }
        let took = wait_for(
            &server.state,
            "/health/ready",
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(5),
        )
        .await;
        assert!(
            took < Duration::from_secs(5),
            "{fault}: ready took {took:?} to turn 503"
        );
        assert_eq!(
            get(&server.state, "/health/live").await.0,
            StatusCode::OK,
            "{fault}: live must not depend on the database"
        );

        proxy.restore();
        wait_for(
            &server.state,
            "/health/ready",
            StatusCode::OK,
            Duration::from_secs(10),
        )
        .await;
    }
}

#[tokio::test]
async fn draining_turns_ready_503_and_leaves_live_200() {
    let server = test_support::require!(server(Backend::Sqlite, &[]).await);
    server.state.start_draining();
    let (status, body) = get(&server.state, "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("fail"), "{body}");
    assert_eq!(get(&server.state, "/health/live").await.0, StatusCode::OK);
}

#[tokio::test]
async fn status_details_go_to_owners_and_the_status_token_only_and_startup_is_200() {
    let token = "an-operator-status-token";
    let server =
        test_support::require!(server(Backend::Sqlite, &[("HEALTH_STATUS_TOKEN", token)]).await);
    assert_eq!(
        get(&server.state, "/health/startup").await.0,
        StatusCode::OK
    );

    let (status, anonymous) =
        support::call(&server.state, "GET", "/health/status", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(anonymous.get("checks").is_none(), "{anonymous}");

    let (_, operator) =
        support::call(&server.state, "GET", "/health/status", Some(token), None).await;
    assert_eq!(
        operator["checks"]["sqlite:responseTime"][0]["status"], "pass",
        "{operator}"
    );

    let (_, owner) = support::call(
        &server.state,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(serde_json::json!({"organization_name": "Acme", "name": "O", "email": "o@acme.example", "password": "correct horse battery staple"})),
    )
    .await;
    let (_, details) = support::call(
        &server.state,
        "GET",
        "/health/status",
        owner["access_token"].as_str(),
        None,
    )
    .await;
    assert!(
        details["checks"].get("integrity:openDeviations").is_some(),
        "{details}"
    );

    let (_, ready) = support::call(&server.state, "GET", "/health/ready", Some(token), None).await;
    assert!(
        ready.get("checks").is_none(),
        "ready never shows details: {ready}"
    );
}

#[tokio::test]
async fn with_redis_configured_status_shows_a_redis_check_that_fails_when_redis_is_cut() {
    let redis = test_support::require!(test_support::redis().await);
    let (proxy, url) = test_support::FaultProxy::in_front_of(redis.url())
        .await
        .unwrap();
    let token = "an-operator-status-token";
    let server = test_support::require!(
        server(
            Backend::Sqlite,
            &[("HEALTH_STATUS_TOKEN", token), ("REDIS_URL", url.as_str())]
        )
        .await
    );
    let redis_status = |body: &serde_json::Value| {
        body["checks"]
            .as_object()
            .and_then(|checks| checks.iter().find(|(k, _)| k.starts_with("redis")))
            .map(|(_, v)| v[0]["status"].as_str().unwrap_or_default().to_owned())
    };
    server.state.health().refresh().await;
    let (_, status) =
        support::call(&server.state, "GET", "/health/status", Some(token), None).await;
    assert_eq!(redis_status(&status).as_deref(), Some("pass"), "{status}");
    proxy.cut();
    // The proxy drops the connection as it sees the cut; the check fails within a few runs.
    let mut last = serde_json::Value::Null;
    let mut code = StatusCode::OK;
    for _ in 0..50 {
        server.state.health().refresh().await;
        (code, last) =
            support::call(&server.state, "GET", "/health/status", Some(token), None).await;
        if redis_status(&last).as_deref() == Some("fail") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(redis_status(&last).as_deref(), Some("fail"), "{last}");
    let status = last;
    // Not critical: the rate limits and the cache fall back, so the instance stays ready.
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(get(&server.state, "/health/ready").await.0, StatusCode::OK);
}
