//! Data rights: exports of an organization and of a user, and erasure that keeps the books and the audit chain
//! valid. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::http::StatusCode;
use reference_server::domain::audit;
use serde_json::json;
use support::{Backend, call, server};

const PASSWORD: &str = "correct horse battery staple";
const KEY: &str = "an-audit-chain-key-of-at-least-32-bytes!";

#[tokio::test]
async fn sqlite() {
    exports_and_erasure(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    exports_and_erasure(Backend::Postgres).await;
}

async fn exports_and_erasure(backend: Backend) {
    let server = test_support::require!(server(backend, &[("AUDIT_CHAIN_KEY", KEY)]).await);
    let s = &server.state;
    let (_, owner) = call(s, "POST", "/api/v1/auth/register", None, Some(json!({
        "organization_name": "Acme", "name": "Olive Owner", "email": "olive@acme.example", "password": PASSWORD,
    })))
    .await;
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    let (_, sam) = call(
        s,
        "POST",
        "/api/v1/users",
        Some(&owner),
        Some(json!({
            "email": "sam@acme.example", "name": "Sam Staff", "role": "staff", "password": PASSWORD,
        })),
    )
    .await;
    let sam_id = sam["id"].as_str().unwrap().to_owned();
    let (_, sam_tokens) = call(
        s,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "sam@acme.example", "password": PASSWORD})),
    )
    .await;
    let sam_token = sam_tokens["access_token"].as_str().unwrap().to_owned();
    let (status, invoice) = call(s, "POST", "/api/v1/invoices", Some(&sam_token), Some(json!({
        "kind": "sales", "number": "A-1", "counterparty": "Customer", "issue_date": "2026-11-01", "due_date": "2026-11-30",
        "currency": "AUD", "lines": [{"description": "Work", "quantity": "1", "net_price": "100.00", "tax_category": "S", "tax_rate": "10"}],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");

    let (status, org) = call(s, "GET", "/api/v1/organization/export", Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(org["users"].as_array().unwrap().len(), 2);
    assert_eq!(
        org["invoices"][0]["payable_amount"],
        json!({"amount": "110.00", "currency": "AUD"}),
        "money is never a JSON number"
    );
    assert!(org.to_string().contains("sam@acme.example"));
    assert_eq!(
        call(
            s,
            "GET",
            "/api/v1/organization/export",
            Some(&sam_token),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    let (status, mine) = call(
        s,
        "GET",
        &format!("/api/v1/users/{sam_id}/export"),
        Some(&sam_token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["user"]["email"], "sam@acme.example");
    assert_eq!(mine["sessions"].as_array().unwrap().len(), 1);
    assert!(
        mine["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "invoice.create")
    );
    let owner_id = org["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(
            s,
            "GET",
            &format!("/api/v1/users/{owner_id}/export"),
            Some(&sam_token),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let erase = format!("/api/v1/users/{sam_id}/erase");
    assert_eq!(
        call(s, "POST", &erase, Some(&sam_token), None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(s, "POST", &erase, Some(&owner), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(s, "POST", &erase, Some(&owner), None).await.0,
        StatusCode::NOT_FOUND,
        "erased once"
    );
    assert_eq!(
        call(
            s,
            "POST",
            &format!("/api/v1/users/{owner_id}/erase"),
            Some(&owner),
            None
        )
        .await
        .0,
        StatusCode::CONFLICT
    );

    assert_eq!(
        call(s, "GET", "/api/v1/users/me", Some(&sam_token), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "sessions ended"
    );
    let (status, _) = call(
        s,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "sam@acme.example", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (_, org) = call(s, "GET", "/api/v1/organization/export", Some(&owner), None).await;
    let text = org.to_string();
    assert!(
        !text.contains("sam@acme.example") && !text.contains("Sam Staff"),
        "personal data is gone"
    );
    assert_eq!(
        org["invoices"].as_array().unwrap().len(),
        1,
        "financial records stay"
    );
    let reports = audit::verify(s.db(), KEY.as_bytes()).await.unwrap();
    assert!(
        reports.iter().all(audit::ChainReport::is_intact),
        "the audit chain stays valid: {reports:?}"
    );
}
