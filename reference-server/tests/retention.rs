//! Retention: expired idempotency records and long-ended sessions go; closed invoices past RETENTION_YEARS
//! keep every amount but lose their counterparty; the books, the integrity audit and the audit chain are
//! unchanged. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failure is a failed test

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use reference_server::domain::{audit, integrity, retention};
use serde_json::json;
use support::{Backend, call, count, on_both_backends, owner, server};
use time::OffsetDateTime;
use tower::ServiceExt;

const KEY: &str = "an-audit-chain-key-of-at-least-32-bytes!";

async fn invoice(
    s: &reference_server::AppState,
    token: &str,
    number: &str,
    issue_date: &str,
) -> String {
    let (status, invoice) = call(s, "POST", "/api/v1/invoices", Some(token), Some(json!({
        "kind": "sales", "number": number, "counterparty": "Jo Sole-Trader", "issue_date": issue_date,
        "due_date": issue_date, "currency": "AUD",
        "lines": [{"description": "Work", "quantity": "1", "net_price": "100.00", "tax_category": "S", "tax_rate": "10"}],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let id = invoice["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        s,
        "POST",
        &format!("/api/v1/invoices/{id}/void"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    id
}

async fn applies_retention(backend: Backend) {
    let server = test_support::require!(
        server(
            backend,
            &[("AUDIT_CHAIN_KEY", KEY), ("RATE_LIMIT_DISABLED", "true")]
        )
        .await
    );
    let s = &server.state;
    let token = owner(&server, "Acme", "olive@acme.example").await;
    let year = OffsetDateTime::now_utc().year();
    let old = invoice(s, &token, "OLD-1", &format!("{}-03-01", year - 8)).await;
    let recent = invoice(s, &token, "NEW-1", &format!("{}-03-01", year - 6)).await;
    // A second session that ended 31 days ago, and an idempotency record two days old.
    let (_, second) = call(
        s,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({
            "email": "olive@acme.example", "password": support::PASSWORD,
        })),
    )
    .await;
    let second = second["access_token"].as_str().unwrap().to_owned();
    let (status, _) = call(s, "POST", "/api/v1/auth/logout", Some(&second), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let long_ago = OffsetDateTime::now_utc() - time::Duration::days(31);
    reference_server::with_pool!(s.db(), |pool| sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NOT NULL"
    )
    .bind(long_ago)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))
    .unwrap();
    let request = Request::post("/api/v1/accounts")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "key-1")
        .body(Body::from(
            r#"{"code":"6100","name":"Travel","kind":"expense"}"#,
        ))
        .unwrap();
    let response = reference_server::app(s.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    reference_server::with_pool!(s.db(), |pool| sqlx::query(
        "UPDATE idempotency_keys SET created_at = $1"
    )
    .bind(OffsetDateTime::now_utc() - time::Duration::days(2))
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))
    .unwrap();
    let sessions_before = count(s, "SELECT COUNT(*) FROM sessions").await;

    let report = retention::run(s).await.unwrap();
    assert_eq!(report.idempotency_keys, 1);
    assert_eq!(report.sessions, 1);
    assert!(report.refresh_tokens >= 1);
    assert_eq!(report.invoices_pseudonymized, 1);
    assert_eq!(
        count(s, "SELECT COUNT(*) FROM sessions").await,
        sessions_before - 1
    );
    assert_eq!(count(s, "SELECT COUNT(*) FROM idempotency_keys").await, 0);
    // The live session still works.
    let (status, _) = call(s, "GET", "/api/v1/users/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    // The old invoice keeps its amounts and loses its counterparty; the recent one is untouched.
    let (_, old) = call(
        s,
        "GET",
        &format!("/api/v1/invoices/{old}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(old["counterparty"], retention::PSEUDONYM);
    assert_eq!(old["payable_amount"]["amount"], "110.00");
    let (_, recent) = call(
        s,
        "GET",
        &format!("/api/v1/invoices/{recent}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(recent["counterparty"], "Jo Sole-Trader");
    // Run again: nothing more to do.
    assert_eq!(
        retention::run(s).await.unwrap(),
        retention::Report::default()
    );
    // The books, the integrity audit and the chain are unchanged by it.
    let runs = integrity::run_all(s).await.unwrap();
    assert!(runs.iter().all(|r| r.status == "clean"), "{runs:?}");
    let reports = audit::verify(s.db(), KEY.as_bytes()).await.unwrap();
    assert!(reports.iter().all(|r| r.problems.is_empty()), "{reports:?}");
}

on_both_backends!(applies_retention);
