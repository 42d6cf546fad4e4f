//! Invoices through the HTTP API: totals computed by fin-invariants, imports checked, the lifecycle with its
//! journal entries, and tenancy. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Backend, PASSWORD, TestServer, call, server};

support::on_both_backends!(
    a_sales_invoice_is_computed_issued_and_paid_with_its_journal_entries,
    an_import_whose_totals_do_not_add_up_is_refused_with_every_violation,
    a_purchase_invoice_posts_to_payables,
    voiding_reverses_an_unpaid_invoice_and_refuses_a_paid_one,
    reading_is_audited_and_tenants_and_roles_are_enforced,
    concurrent_payments_of_one_invoice_are_never_lost,
);

fn aud(amount: &str) -> Value {
    json!({"amount": amount, "currency": "AUD"})
}

fn sales(number: &str) -> Value {
    json!({
        "kind": "sales", "number": number, "counterparty": "Hotel Pty Ltd",
        "issue_date": "2026-11-01", "due_date": "2026-11-30", "currency": "AUD",
        "lines": [
            {"description": "Towels", "quantity": "2", "net_price": "9.95", "tax_category": "S", "tax_rate": "10"},
            {"description": "Linen service", "quantity": "1", "net_price": "120.00", "tax_category": "S", "tax_rate": "10"},
        ],
    })
}

async fn create(server: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
    call(
        &server.state,
        "POST",
        "/api/v1/invoices",
        Some(token),
        Some(body),
    )
    .await
}

async fn act(
    server: &TestServer,
    token: &str,
    id: &str,
    action: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call(
        &server.state,
        "POST",
        &format!("/api/v1/invoices/{id}/{action}"),
        Some(token),
        body,
    )
    .await
}

async fn balances(server: &TestServer, token: &str) -> Vec<(String, String)> {
    let (_, tb) = call(
        &server.state,
        "GET",
        "/api/v1/trial-balance",
        Some(token),
        None,
    )
    .await;
    assert_eq!(tb["balanced"], true, "{tb}");
    tb["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["code"].as_str().unwrap().to_owned(),
                a["balance"]["amount"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, b)| b != "0.00")
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn a_sales_invoice_is_computed_issued_and_paid_with_its_journal_entries(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let (status, invoice) = create(&server, &token, sales("INV-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    assert_eq!(invoice["status"], "draft");
    assert_eq!(invoice["line_net_total"], aud("139.90"));
    assert_eq!(invoice["tax_total"], aud("13.99"));
    assert_eq!(invoice["payable_amount"], aud("153.89"));
    let id = invoice["id"].as_str().unwrap();
    assert_eq!(
        balances(&server, &token).await,
        pairs(&[]),
        "a draft posts nothing"
    );

    let (status, pay_draft) = act(
        &server,
        &token,
        id,
        "payments",
        Some(json!({"amount": aud("1.00"), "paid_on": "2026-11-02"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{pay_draft}");

    let (status, issued) = act(&server, &token, id, "issue", None).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(
        balances(&server, &token).await,
        pairs(&[("1100", "153.89"), ("2100", "13.99"), ("4000", "139.90")])
    );
    assert_eq!(
        act(&server, &token, id, "issue", None).await.0,
        StatusCode::CONFLICT
    );

    let (status, part) = act(
        &server,
        &token,
        id,
        "payments",
        Some(json!({"amount": aud("100.00"), "paid_on": "2026-11-10"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{part}");
    assert_eq!(part["status"], "partially_paid");
    assert_eq!(part["outstanding"], aud("53.89"));

    let (status, over) = act(
        &server,
        &token,
        id,
        "payments",
        Some(json!({"amount": aud("53.90"), "paid_on": "2026-11-11"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{over}");
    assert_eq!(over["errors"][0]["expected"], "53.89");

    let (status, paid) = act(
        &server,
        &token,
        id,
        "payments",
        Some(json!({"amount": aud("53.89"), "paid_on": "2026-11-12"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["outstanding"], aud("0.00"));
    assert_eq!(
        balances(&server, &token).await,
        pairs(&[("1000", "153.89"), ("2100", "13.99"), ("4000", "139.90")])
    );
}

async fn an_import_whose_totals_do_not_add_up_is_refused_with_every_violation(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let mut body = sales("IMP-1");
    body["totals"] = json!({
        "line_net_total": "139.90", "tax_exclusive_amount": "139.90", "tax_total": "13.98",
        "tax_inclusive_amount": "153.89", "payable_amount": "153.89",
        "tax_breakdown": [{"category": "S", "rate": "10", "taxable_amount": "139.90", "tax_amount": "13.99"}],
    });
    let (status, problem) = create(&server, &token, body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "/problems/validation");
    let codes: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["BR-CO-14", "BR-CO-15"], "{problem}");

    let (_, list) = call(&server.state, "GET", "/api/v1/invoices", Some(&token), None).await;
    assert_eq!(list["items"], json!([]), "nothing was written");

    body["totals"]["tax_total"] = json!("13.99");
    let (status, imported) = create(&server, &token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
}

async fn a_purchase_invoice_posts_to_payables(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let body = json!({
        "kind": "purchase", "number": "SUP-77", "counterparty": "Supplier Co",
        "issue_date": "2026-11-01", "due_date": "2026-12-01", "currency": "AUD",
        "lines": [{"description": "Stationery", "quantity": "3", "net_price": "10.00", "tax_category": "S", "tax_rate": "10"}],
    });
    let (status, invoice) = create(&server, &token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let id = invoice["id"].as_str().unwrap();
    assert_eq!(
        act(&server, &token, id, "issue", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        balances(&server, &token).await,
        pairs(&[("1200", "3.00"), ("2000", "33.00"), ("5000", "30.00")])
    );
    let (status, paid) = act(
        &server,
        &token,
        id,
        "payments",
        Some(json!({"amount": aud("33.00"), "paid_on": "2026-11-20"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(
        balances(&server, &token).await,
        pairs(&[("1000", "-33.00"), ("1200", "3.00"), ("5000", "30.00")])
    );
}

async fn voiding_reverses_an_unpaid_invoice_and_refuses_a_paid_one(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let (_, draft) = create(&server, &token, sales("INV-D")).await;
    let (status, voided) = act(&server, &token, draft["id"].as_str().unwrap(), "void", None).await;
    assert_eq!(
        (status, voided["status"].as_str()),
        (StatusCode::OK, Some("void"))
    );

    let (_, issued) = create(&server, &token, sales("INV-I")).await;
    let id = issued["id"].as_str().unwrap();
    act(&server, &token, id, "issue", None).await;
    let (status, voided) = act(&server, &token, id, "void", None).await;
    assert_eq!(status, StatusCode::OK, "{voided}");
    assert_eq!(
        balances(&server, &token).await,
        pairs(&[]),
        "the issue entry is reversed"
    );

    let (_, paid) = create(&server, &token, sales("INV-P")).await;
    let id = paid["id"].as_str().unwrap();
    act(&server, &token, id, "issue", None).await;
    act(
        &server,
        &token,
        id,
        "payments",
        Some(json!({"amount": aud("10.00"), "paid_on": "2026-11-03"})),
    )
    .await;
    assert_eq!(
        act(&server, &token, id, "void", None).await.0,
        StatusCode::CONFLICT
    );
}

async fn reading_is_audited_and_tenants_and_roles_are_enforced(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let other = support::owner(&server, "Acme", "o@other.example").await;
    let (_, invoice) = create(&server, &token, sales("INV-9")).await;
    let path = format!("/api/v1/invoices/{}", invoice["id"].as_str().unwrap());

    assert_eq!(
        call(&server.state, "GET", &path, Some(&token), None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, events) = call(
        &server.state,
        "GET",
        "/api/v1/audit-events?limit=200",
        Some(&token),
        None,
    )
    .await;
    let views = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "invoice.view")
        .count();
    assert_eq!(
        views, 1,
        "this read is recorded; the answer of the create is not a read"
    );

    assert_eq!(
        call(&server.state, "GET", &path, Some(&other), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(
            &server,
            &other,
            invoice["id"].as_str().unwrap(),
            "issue",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &server.state,
            "GET",
            "/api/v1/invoices/not-a-uuid",
            Some(&token),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let (status, _) = call(
        &server.state,
        "POST",
        "/api/v1/users",
        Some(&token),
        Some(json!({"email": "v@acme.example", "name": "Viewer", "role": "viewer", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, viewer) = call(
        &server.state,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "v@acme.example", "password": PASSWORD})),
    )
    .await;
    let viewer = viewer["access_token"].as_str().unwrap();
    assert_eq!(
        create(&server, viewer, sales("INV-V")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&server.state, "GET", &path, Some(viewer), None)
            .await
            .0,
        StatusCode::OK
    );
}

async fn concurrent_payments_of_one_invoice_are_never_lost(backend: Backend) {
    let server = test_support::require!(server(backend, &[("RATE_LIMIT_DISABLED", "true")]).await);
    let token = support::owner(&server, "Acme", "olive@acme.example").await;
    let (_, invoice) = create(&server, &token, sales("C-1")).await;
    let id = invoice["id"].as_str().unwrap().to_owned();
    assert_eq!(
        act(&server, &token, &id, "issue", None).await.0,
        StatusCode::OK
    );
    // 20 payments of 1.00 at once: each is recorded whole or refused with 409, never half.
    let payments = (0..20).map(|_| {
        let (state, token, path) = (
            server.state.clone(),
            token.clone(),
            format!("/api/v1/invoices/{id}/payments"),
        );
        tokio::spawn(async move {
            let body = json!({"amount": aud("1.00"), "paid_on": "2026-11-10"});
            call(&state, "POST", &path, Some(&token), Some(body))
                .await
                .0
        })
    });
    let mut accepted = 0;
    for payment in payments.collect::<Vec<_>>() {
        match payment.await.unwrap() {
            StatusCode::OK => accepted += 1,
            StatusCode::CONFLICT => {}
            other => panic!("a concurrent payment answered {other}"),
        }
    }
    assert!(accepted >= 1);
    let (_, invoice) = call(
        &server.state,
        "GET",
        &format!("/api/v1/invoices/{id}"),
        Some(&token),
        None,
    )
    .await;
    let paid = format!("{accepted}.00");
    assert_eq!(invoice["paid"], aud(&paid), "{invoice}");
    // The ledger agrees: cash holds exactly the accepted payments.
    let cash = balances(&server, &token)
        .await
        .into_iter()
        .find(|(code, _)| code == "1000")
        .map(|(_, b)| b);
    assert_eq!(cash.as_deref(), Some(paid.as_str()));
}
