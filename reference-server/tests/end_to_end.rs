//! The whole journey of issue 10's first "Done when", on SQLite and on PostgreSQL: register, login, accounts,
//! a journal entry, an invoice issued and seen on the dashboard, a payment seen at once, an audit trail that
//! shows every step and verifies, a clean integrity run, then tampering found by the integrity run and by
//! `audit verify`.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use reference_server::domain::audit;
use reference_server::with_pool;
use serde_json::{Value, json};
use support::{Backend, TestServer, call, server};

const PASSWORD: &str = "correct horse battery staple";
const KEY: &str = "an-audit-chain-key-of-at-least-32-bytes!";

#[tokio::test]
async fn sqlite() {
    journey(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    journey(Backend::Postgres).await;
}

fn aud(amount: &str) -> Value {
    json!({"amount": amount, "currency": "AUD"})
}

async fn ok(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let (status, answer) = call(&server.state, method, path, token, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

async fn sql(server: &TestServer, statement: &'static str) {
    with_pool!(server.state.db(), |pool| sqlx::query(statement)
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
}

async fn verify(server: &TestServer) -> Vec<String> {
    audit::verify(server.state.db(), KEY.as_bytes())
        .await
        .unwrap()
        .into_iter()
        .flat_map(|r| r.problems)
        .collect()
}

async fn journey(backend: Backend) {
    let server = test_support::require!(server(backend, &[("AUDIT_CHAIN_KEY", KEY)]).await);
    let today = server.state.clock().now().date();
    let due = today + time::Duration::days(10);

    ok(&server, "POST", "/api/v1/auth/register", None, Some(json!({
        "organization_name": "Harbour Hotel", "name": "Olive Owner", "email": "olive@harbour.example", "password": PASSWORD,
    })))
    .await;
    let login = ok(
        &server,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "olive@harbour.example", "password": PASSWORD})),
    )
    .await;
    let token = login["access_token"].as_str().unwrap();
    let t = Some(token);

    let accounts = ok(&server, "GET", "/api/v1/accounts", t, None).await;
    let id_of = |code: &str| {
        accounts["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == code)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    ok(
        &server,
        "POST",
        "/api/v1/journal-entries",
        t,
        Some(json!({
            "entry_date": today.to_string(), "description": "Opening capital",
            "lines": [
                {"account_id": id_of("1000"), "side": "debit", "amount": aud("5000.00")},
                {"account_id": id_of("3000"), "side": "credit", "amount": aud("5000.00")},
            ],
        })),
    )
    .await;
    let board = ok(&server, "GET", "/api/v1/dashboard", t, None).await;
    assert_eq!(board["cash"], aud("5000.00"));
    assert_eq!(board["receivables"]["total"], aud("0.00"));

    let invoice = ok(&server, "POST", "/api/v1/invoices", t, Some(json!({
        "kind": "sales", "number": "HH-1001", "counterparty": "Conference Co", "issue_date": today.to_string(),
        "due_date": due.to_string(), "currency": "AUD",
        "lines": [{"description": "Function room", "quantity": "1", "net_price": "1100.00", "tax_category": "S", "tax_rate": "10"}],
    })))
    .await;
    let id = invoice["id"].as_str().unwrap().to_owned();
    ok(
        &server,
        "POST",
        &format!("/api/v1/invoices/{id}/issue"),
        t,
        None,
    )
    .await;

    let board = ok(&server, "GET", "/api/v1/dashboard", t, None).await;
    assert_eq!(
        board["receivables"]["total"],
        aud("1210.00"),
        "the issued invoice is on the dashboard: {board}"
    );
    assert_eq!(board["receivables"]["current"], aud("1210.00"));
    assert_eq!(board["forecast"]["inflow"], aud("1210.00"));
    assert_eq!(board["forecast"]["projected_cash"], aud("6210.00"));
    assert_eq!(board["months"][0]["revenue"], aud("1100.00"));

    ok(
        &server,
        "POST",
        &format!("/api/v1/invoices/{id}/payments"),
        t,
        Some(json!({"amount": aud("1210.00"), "paid_on": today.to_string()})),
    )
    .await;
    let board = ok(&server, "GET", "/api/v1/dashboard", t, None).await;
    assert_eq!(
        board["receivables"]["total"],
        aud("0.00"),
        "the payment shows at once, not after the cache's TTL"
    );
    assert_eq!(board["cash"], aud("6210.00"));

    let trail = ok(&server, "GET", "/api/v1/audit-events?limit=200", t, None).await;
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for step in [
        "organization.register",
        "auth.login",
        "journal.post",
        "invoice.create",
        "invoice.issue",
        "invoice.pay",
    ] {
        assert!(
            actions.contains(&step),
            "{step} missing from the trail {actions:?}"
        );
    }
    assert_eq!(verify(&server).await, Vec::<String>::new());

    let run = ok(&server, "POST", "/api/v1/integrity/runs", t, None).await;
    assert_eq!(run["status"], "clean", "{run}");

    // Behind the server's back: the invoice's VAT total.
    sql(&server, "UPDATE invoices SET tax_total = tax_total + 1").await;
    let run = ok(&server, "POST", "/api/v1/integrity/runs", t, None).await;
    assert_eq!(run["status"], "deviations", "{run}");
    let events = ok(&server, "GET", "/api/v1/integrity/events", t, None).await;
    assert_eq!(events["items"][0]["record_id"], id.as_str());

    // An edited audit row, then (on a fresh look) a deleted newest row.
    sql(
        &server,
        "UPDATE audit_events SET action = 'invoice.cancel' WHERE action = 'invoice.pay'",
    )
    .await;
    let found = verify(&server).await;
    assert!(
        found.iter().any(|p| p.contains("does not match its hash")),
        "{found:?}"
    );
    sql(
        &server,
        "UPDATE audit_events SET action = 'invoice.pay' WHERE action = 'invoice.cancel'",
    )
    .await;
    assert_eq!(
        verify(&server).await,
        Vec::<String>::new(),
        "restored, the chain verifies again"
    );
    sql(
        &server,
        "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)",
    )
    .await;
    let found = verify(&server).await;
    assert!(found.iter().any(|p| p.contains("deleted")), "{found:?}");
}
