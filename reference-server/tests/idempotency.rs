//! `Idempotency-Key`: a retried POST is answered from the first one, a reused key with another body is 422,
//! a key whose request still runs is 409. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use reference_server::with_pool;
use serde_json::{Value, json};
use support::{Backend, call, server};
use tower::ServiceExt;

#[tokio::test]
async fn sqlite() {
    retries(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    retries(Backend::Postgres).await;
}

async fn post(
    state: &reference_server::AppState,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::post("/api/v1/invoices")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = reference_server::app(state.clone())
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        replayed,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn invoice(number: &str) -> Value {
    json!({
        "kind": "sales", "number": number, "counterparty": "Customer", "issue_date": "2026-11-01",
        "due_date": "2026-11-30", "currency": "AUD",
        "lines": [{"description": "Work", "quantity": "1", "net_price": "100.00", "tax_category": "S", "tax_rate": "10"}],
    })
}

async fn retries(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let s = &server.state;
    let (_, owner) = call(s, "POST", "/api/v1/auth/register", None, Some(json!({
        "organization_name": "Acme", "name": "Owner", "email": "o@acme.example", "password": "correct horse battery staple",
    })))
    .await;
    let token = owner["access_token"].as_str().unwrap();

    let (status, replayed, first) = post(s, token, Some("key-1"), &invoice("A-1")).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, None), "{first}");
    let (status, replayed, again) = post(s, token, Some("key-1"), &invoice("A-1")).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (StatusCode::CREATED, Some("true"))
    );
    assert_eq!(
        again["id"], first["id"],
        "the stored answer, not a second invoice"
    );
    let (_, list) = call(s, "GET", "/api/v1/invoices", Some(token), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let (status, _, problem) = post(s, token, Some("key-1"), &invoice("A-2")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "/problems/validation");

    // Without a key, the same body is a new request (here refused: the number is taken).
    assert_eq!(
        post(s, token, None, &invoice("A-1")).await.0,
        StatusCode::CONFLICT
    );

    // A request with this key is still running (as if on another instance): 409.
    let user: uuid::Uuid = {
        let (_, me) = call(s, "GET", "/api/v1/users/me", Some(token), None).await;
        me["id"].as_str().unwrap().parse().unwrap()
    };
    let now = s.clock().now();
    with_pool!(s.db(), |pool| sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idempotency_key, fingerprint, status, created_at) VALUES ($1, 'key-2', $2, 'running', $3)"
    )
    .bind(user)
    .bind(vec![0u8; 32])
    .bind(now)
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
    let (status, _, problem) = post(s, token, Some("key-2"), &invoice("A-3")).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "another body than the running one: {problem}"
    );

    // Keys are kept 24 hours: after that the key may be used again.
    s.clock().advance(std::time::Duration::from_secs(25 * 3600));
    let (_, relog) = call(
        s,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "o@acme.example", "password": "correct horse battery staple"})),
    )
    .await;
    let fresh = relog["access_token"].as_str().unwrap();
    let (status, replayed, _) = post(s, fresh, Some("key-1"), &invoice("A-9")).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, None));
}

#[tokio::test]
async fn a_key_whose_first_request_still_runs_gets_409() {
    let server = test_support::require!(server(Backend::Sqlite, &[]).await);
    let s = &server.state;
    let (_, owner) = call(s, "POST", "/api/v1/auth/register", None, Some(json!({
        "organization_name": "Acme", "name": "Owner", "email": "o@acme.example", "password": "correct horse battery staple",
    })))
    .await;
    let token = owner["access_token"].as_str().unwrap();
    let body = invoice("B-1");
    // The fingerprint the middleware computes: SHA-256 of "POST /api/v1/invoices\n" and the body.
    let fingerprint = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"POST /api/v1/invoices\n");
        h.update(body.to_string().as_bytes());
        h.finalize().to_vec()
    };
    let (_, me) = call(s, "GET", "/api/v1/users/me", Some(token), None).await;
    let user: uuid::Uuid = me["id"].as_str().unwrap().parse().unwrap();
    let now = s.clock().now();
    with_pool!(s.db(), |pool| sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idempotency_key, fingerprint, status, created_at) VALUES ($1, 'key-3', $2, 'running', $3)"
    )
    .bind(user)
    .bind(fingerprint.clone())
    .bind(now)
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
    assert_eq!(
        post(s, token, Some("key-3"), &body).await.0,
        StatusCode::CONFLICT
    );
    // A key left `running` for longer than any request may run (REQUEST_TIMEOUT, 30 s by default) was
    // abandoned: the request runs, rather than 409 for the rest of the day.
    with_pool!(s.db(), |pool| sqlx::query(
        "UPDATE idempotency_keys SET created_at = $1 WHERE idempotency_key = 'key-3'"
    )
    .bind(now - time::Duration::seconds(40))
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
    assert_eq!(
        post(s, token, Some("key-3"), &body).await.0,
        StatusCode::CREATED
    );
}
