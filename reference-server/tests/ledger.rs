//! The ledger through the HTTP API: journal entries checked twice by fin-invariants, immutable, reversible
//! once, and a trial balance rebuilt from the lines. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Backend, PASSWORD, TestServer, call, server};

support::on_both_backends!(
    a_balanced_entry_posts_and_the_trial_balance_balances,
    entries_that_break_invariants_get_every_violation_and_write_nothing,
    an_account_that_may_not_go_negative_refuses_the_entry,
    a_reversal_undoes_an_entry_once,
    roles_and_tenants_are_enforced,
    the_chart_of_accounts_comes_in_pages_by_code,
);

async fn account(server: &TestServer, token: &str, code: &str) -> String {
    let (status, accounts) =
        call(&server.state, "GET", "/api/v1/accounts", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == code)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn aud(amount: &str) -> Value {
    json!({"amount": amount, "currency": "AUD"})
}

fn entry(lines: &[(&str, &str, &str)]) -> Value {
    json!({
        "entry_date": "2026-11-30",
        "description": "Owner contribution",
        "lines": lines.iter().map(|(a, side, amount)| json!({"account_id": a, "side": side, "amount": aud(amount)})).collect::<Vec<_>>(),
    })
}

async fn post_entry(server: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
    call(
        &server.state,
        "POST",
        "/api/v1/journal-entries",
        Some(token),
        Some(body),
    )
    .await
}

async fn trial(server: &TestServer, token: &str) -> Value {
    let (status, body) = call(
        &server.state,
        "GET",
        "/api/v1/trial-balance",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn balance_of(trial: &Value, code: &str) -> String {
    let line = trial["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == code)
        .unwrap();
    line["balance"]["amount"].as_str().unwrap().to_owned()
}

fn codes(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_balanced_entry_posts_and_the_trial_balance_balances(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let (cash, equity) = (
        account(&server, &token, "1000").await,
        account(&server, &token, "3000").await,
    );
    let (status, posted) = post_entry(
        &server,
        &token,
        entry(&[(&cash, "debit", "1000.00"), (&equity, "credit", "1000.00")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    assert_eq!(posted["lines"].as_array().unwrap().len(), 2);
    assert_eq!(posted["lines"][0]["amount"], aud("1000.00"));

    let tb = trial(&server, &token).await;
    assert_eq!(tb["balanced"], true);
    assert_eq!(tb["total_debits"], aud("1000.00"));
    assert_eq!(balance_of(&tb, "1000"), "1000.00");
    assert_eq!(balance_of(&tb, "3000"), "1000.00");
}

async fn entries_that_break_invariants_get_every_violation_and_write_nothing(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let (cash, equity) = (
        account(&server, &token, "1000").await,
        account(&server, &token, "3000").await,
    );

    let (status, problem) = post_entry(
        &server,
        &token,
        entry(&[(&cash, "debit", "100.00"), (&equity, "credit", "99.99")]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(codes(&problem), ["UNBALANCED"]);
    assert_eq!(problem["errors"][0]["expected"], "100.00");
    assert_eq!(problem["errors"][0]["actual"], "99.99");

    let (status, problem) = post_entry(&server, &token, entry(&[(&cash, "debit", "-5.00")])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let found = codes(&problem);
    for code in ["TOO-FEW-LINES", "NON-POSITIVE-AMOUNT", "UNBALANCED"] {
        assert!(
            found.iter().any(|c| c == code),
            "{code} missing from {found:?}"
        );
    }

    // An account id that is no account of this organization.
    let stranger = uuid_like();
    let (status, problem) = post_entry(
        &server,
        &token,
        entry(&[(&stranger, "debit", "1.00"), (&equity, "credit", "1.00")]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(codes(&problem), ["UNKNOWN-ACCOUNT"]);

    let (status, _) = post_entry(
        &server,
        &token,
        json!({"entry_date": "yesterday", "description": "", "lines": []}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let tb = trial(&server, &token).await;
    assert_eq!(tb["total_debits"], aud("0.00"), "nothing was written: {tb}");
}

fn uuid_like() -> String {
    "0190f5f0-0000-7000-8000-000000000001".to_owned()
}

async fn an_account_that_may_not_go_negative_refuses_the_entry(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let (status, petty) = call(
        &server.state,
        "POST",
        "/api/v1/accounts",
        Some(&token),
        Some(json!({"code": "1010", "name": "Petty cash", "kind": "asset", "no_negative": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{petty}");
    let petty = petty["id"].as_str().unwrap().to_owned();
    let (cash, expense) = (
        account(&server, &token, "1000").await,
        account(&server, &token, "5000").await,
    );

    let (status, problem) = post_entry(
        &server,
        &token,
        entry(&[(&expense, "debit", "20.00"), (&petty, "credit", "20.00")]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(codes(&problem), ["EXCEEDS-DEBITS"]);

    let (status, _) = post_entry(
        &server,
        &token,
        entry(&[(&petty, "debit", "50.00"), (&cash, "credit", "50.00")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post_entry(
        &server,
        &token,
        entry(&[(&expense, "debit", "20.00"), (&petty, "credit", "20.00")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "enough in petty cash now");
    assert_eq!(balance_of(&trial(&server, &token).await, "1010"), "30.00");
}

async fn a_reversal_undoes_an_entry_once(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let (cash, equity) = (
        account(&server, &token, "1000").await,
        account(&server, &token, "3000").await,
    );
    let (_, posted) = post_entry(
        &server,
        &token,
        entry(&[(&cash, "debit", "250.00"), (&equity, "credit", "250.00")]),
    )
    .await;
    let id = posted["id"].as_str().unwrap();

    let path = format!("/api/v1/journal-entries/{id}/reverse");
    let (status, reversal) = call(&server.state, "POST", &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["reverses_id"], id);
    assert_eq!(reversal["lines"][0]["side"], "credit");
    assert_eq!(balance_of(&trial(&server, &token).await, "1000"), "0.00");

    assert_eq!(
        call(&server.state, "POST", &path, Some(&token), None)
            .await
            .0,
        StatusCode::CONFLICT
    );
    // Posted entries are immutable: there is no route that edits or deletes one.
    let entry_path = format!("/api/v1/journal-entries/{id}");
    assert_eq!(
        call(&server.state, "DELETE", &entry_path, Some(&token), None)
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(&server.state, "GET", &entry_path, Some(&token), None)
            .await
            .0,
        StatusCode::OK
    );
}

async fn roles_and_tenants_are_enforced(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    let other = support::owner(&server, "Other", "o@other.example").await;
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

    let (cash, equity) = (
        account(&server, &token, "1000").await,
        account(&server, &token, "3000").await,
    );
    let body = entry(&[(&cash, "debit", "10.00"), (&equity, "credit", "10.00")]);
    assert_eq!(
        post_entry(&server, viewer, body.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &server.state,
            "GET",
            "/api/v1/trial-balance",
            Some(viewer),
            None
        )
        .await
        .0,
        StatusCode::OK
    );

    let (_, posted) = post_entry(&server, &token, body.clone()).await;
    let path = format!("/api/v1/journal-entries/{}", posted["id"].as_str().unwrap());
    assert_eq!(
        call(&server.state, "GET", &path, Some(&other), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Another organization cannot post to these accounts: they are unknown to it, without a hint.
    let (status, problem) = post_entry(&server, &other, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(codes(&problem), ["UNKNOWN-ACCOUNT", "UNKNOWN-ACCOUNT"]);
}

async fn the_chart_of_accounts_comes_in_pages_by_code(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = support::owner(&server, "Acme", "o@acme.example").await;
    // Codes that sort differently bytewise and by a language's rules (B2 before a1, f1 before é1: a
    // database collated by language would get both wrong), and one a query string must escape.
    for (code, name) in [
        ("1010", "Petty cash"),
        ("B2", "Upper"),
        ("a1", "Lower"),
        ("f1", "Plain"),
        ("é1", "Accented"),
        ("a&b=c", "Escaped"),
    ] {
        let (status, body) = call(
            &server.state,
            "POST",
            "/api/v1/accounts",
            Some(&token),
            Some(json!({"code": code, "name": name, "kind": "asset"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let codes = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, whole) = call(&server.state, "GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["next_cursor"], Value::Null);
    let all = codes(&whole);
    let mut sorted = all.clone();
    sorted.sort(); // bytewise, as Rust orders strings
    assert_eq!(all, sorted);
    assert!(all.len() > 4, "{all:?}");

    let mut paged = Vec::new();
    let mut path = "/api/v1/accounts?limit=2".to_owned();
    loop {
        let (status, page) = call(&server.state, "GET", &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 2);
        paged.extend(codes(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/accounts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, all, "the pages are the whole chart, in order");

    for bad in ["?cursor=zz", "?cursor=abc", "?limit=0", "?limit=201"] {
        let (status, problem) = call(
            &server.state,
            "GET",
            &format!("/api/v1/accounts{bad}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
    }
}
