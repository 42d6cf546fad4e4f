//! The OpenAPI document is the contract: every route is in it, every route that needs an organization is tagged
//! `tenant` and declares its roles, another organization's ids answer 404 on every such route, and each role
//! gets exactly what its `x-roles` allows. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::too_many_lines)] // a failure is a failed test

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Backend, PASSWORD, call, on_both_backends, owner, server};

/// Every operation the server has, and who may call it, written here independently of the document (the
/// README's table of roles). A route added without being documented, documented without being served, or
/// whose `x-roles` drifts from this table fails `document_lists_every_route`.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("post", "/api/v1/auth/register", ANYONE),
    ("post", "/api/v1/auth/login", ANYONE),
    ("post", "/api/v1/auth/pin", ANYONE),
    ("post", "/api/v1/auth/refresh", ANYONE),
    ("post", "/api/v1/auth/logout", EVERYONE),
    ("post", "/api/v1/auth/password", EVERYONE),
    ("post", "/api/v1/users", MANAGERS),
    ("get", "/api/v1/users/me", EVERYONE),
    ("post", "/api/v1/users/{id}/unlock-pin", OWNER),
    ("get", "/api/v1/users/{id}/export", EVERYONE),
    ("post", "/api/v1/users/{id}/erase", OWNER),
    ("get", "/api/v1/organization/export", OWNER),
    ("get", "/api/v1/audit-events", MANAGERS),
    ("get", "/api/v1/accounts", EVERYONE),
    ("post", "/api/v1/accounts", BOOKKEEPERS),
    ("post", "/api/v1/journal-entries", BOOKKEEPERS),
    ("get", "/api/v1/journal-entries/{id}", EVERYONE),
    ("post", "/api/v1/journal-entries/{id}/reverse", BOOKKEEPERS),
    ("get", "/api/v1/trial-balance", EVERYONE),
    ("get", "/api/v1/invoices", EVERYONE),
    ("post", "/api/v1/invoices", INVOICING),
    ("get", "/api/v1/invoices/{id}", EVERYONE),
    ("post", "/api/v1/invoices/{id}/issue", INVOICING),
    ("post", "/api/v1/invoices/{id}/payments", INVOICING),
    ("post", "/api/v1/invoices/{id}/void", BOOKKEEPERS),
    ("get", "/api/v1/integrity/runs", BOOKKEEPERS),
    ("post", "/api/v1/integrity/runs", MANAGERS),
    ("get", "/api/v1/integrity/events", BOOKKEEPERS),
    ("get", "/api/v1/dashboard", EVERYONE),
    ("post", "/api/v1/users/me/totp", EVERYONE),
    ("post", "/api/v1/users/me/totp/confirm", EVERYONE),
    ("put", "/api/v1/organization/totp-requirement", OWNER),
];

const ANYONE: &[&str] = &[];
const EVERYONE: &[&str] = &["owner", "admin", "accountant", "staff", "viewer"];
const INVOICING: &[&str] = &["owner", "admin", "accountant", "staff"];
const BOOKKEEPERS: &[&str] = &["owner", "admin", "accountant"];
const MANAGERS: &[&str] = &["owner", "admin"];
const OWNER: &[&str] = &["owner"];

/// One documented operation.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    tags: Vec<String>,
    roles: Option<Vec<String>>,
    anyone: bool,
    has_body: bool,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push(Operation {
                method: method.clone(),
                path: path.clone(),
                tags: op["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                roles: op["x-roles"].as_array().map(|r| {
                    r.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                }),
                anyone: op["x-roles"] == "anyone",
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    out
}

async fn document(s: &reference_server::AppState) -> Value {
    let (status, body) = support::get(s, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_str(&body).unwrap()
}

async fn document_lists_every_route(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let doc = document(&server.state).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let ops = operations(&doc);
    let documented: BTreeSet<(String, String)> = ops
        .iter()
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&expected).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not known to this test"
    );
    assert_eq!(
        expected.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but missing from the document"
    );
    for op in &ops {
        let tenant = op.tags.iter().any(|t| t == "tenant");
        assert_eq!(
            tenant,
            !op.path.starts_with("/api/v1/auth/"),
            "{} {}: every route outside /auth needs an organization and carries the tag `tenant`",
            op.method,
            op.path
        );
        let (_, _, allowed) = ROUTES
            .iter()
            .find(|(m, p, _)| *m == op.method && *p == op.path)
            .unwrap();
        if allowed.is_empty() {
            assert!(op.anyone, "{} {} is open to anyone", op.method, op.path);
        } else {
            let roles = op
                .roles
                .as_ref()
                .unwrap_or_else(|| panic!("{} {} declares no x-roles", op.method, op.path));
            assert_eq!(
                roles, allowed,
                "{} {}: x-roles differs from the table",
                op.method, op.path
            );
        }
    }
    // The schemas of the bodies are generated from the handlers' types: money is an object of strings.
    let money = &doc["components"]["schemas"]["Money"];
    assert_eq!(money["properties"]["amount"]["type"], "string", "{money}");
    assert!(doc["components"]["schemas"]["NewInvoice"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

/// What org A holds, to aim at: ids of each kind, and one token per role.
struct Tenant {
    tokens: Vec<(&'static str, String)>,
    user_ids: Vec<(&'static str, String)>,
    invoice: String,
    entry: String,
    account: String,
    accounts: (String, String),
}

async fn tenant(
    s: &reference_server::AppState,
    server: &support::TestServer,
    name: &str,
) -> Tenant {
    let owner_token = owner(server, name, &format!("owner@{name}.example")).await;
    let mut tokens = vec![("owner", owner_token.clone())];
    let (_, me) = call(s, "GET", "/api/v1/users/me", Some(&owner_token), None).await;
    let mut user_ids = vec![("owner", me["id"].as_str().unwrap().to_owned())];
    for role in &EVERYONE[1..] {
        let email = format!("{role}@{name}.example");
        let (status, user) = call(
            s,
            "POST",
            "/api/v1/users",
            Some(&owner_token),
            Some(json!({
                "email": email, "name": role, "role": role, "password": PASSWORD,
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        user_ids.push((role, user["id"].as_str().unwrap().to_owned()));
        let (status, login) = call(
            s,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({
                "email": email, "password": PASSWORD,
            })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{login}");
        tokens.push((role, login["access_token"].as_str().unwrap().to_owned()));
    }
    let (_, chart) = call(s, "GET", "/api/v1/accounts", Some(&owner_token), None).await;
    let code = |c: &str| {
        chart["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == c)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let accounts = (code("1000"), code("4000"));
    let (status, account) = call(
        s,
        "POST",
        "/api/v1/accounts",
        Some(&owner_token),
        Some(json!({
            "code": "6100", "name": "Travel", "kind": "expense",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let (status, entry) = call(s, "POST", "/api/v1/journal-entries", Some(&owner_token), Some(json!({
        "entry_date": "2026-11-02", "description": "Cash sale",
        "lines": [
            {"account_id": accounts.0, "side": "debit", "amount": {"amount": "50.00", "currency": "AUD"}},
            {"account_id": accounts.1, "side": "credit", "amount": {"amount": "50.00", "currency": "AUD"}},
        ],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let (status, invoice) = call(s, "POST", "/api/v1/invoices", Some(&owner_token), Some(json!({
        "kind": "sales", "number": format!("{name}-1"), "counterparty": "Customer",
        "issue_date": "2026-11-01", "due_date": "2026-11-30", "currency": "AUD",
        "lines": [{"description": "Work", "quantity": "1", "net_price": "100.00", "tax_category": "S", "tax_rate": "10"}],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let invoice = invoice["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        s,
        "POST",
        &format!("/api/v1/invoices/{invoice}/issue"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    Tenant {
        tokens,
        user_ids,
        invoice,
        entry: entry["id"].as_str().unwrap().to_owned(),
        account: account["id"].as_str().unwrap().to_owned(),
        accounts,
    }
}

/// The path with `{id}` replaced by the id of that kind of thing in `t` (`user` names which user).
fn aim(path: &str, t: &Tenant, user: &str) -> String {
    let id = if path.starts_with("/api/v1/invoices/") {
        t.invoice.as_str()
    } else if path.starts_with("/api/v1/journal-entries/") {
        t.entry.as_str()
    } else {
        user
    };
    path.replace("{id}", id)
}

/// A body that passes validation, so that only the organization can stop the request.
fn valid_body(op: &Operation, t: &Tenant) -> Option<Value> {
    if !op.has_body {
        return None;
    }
    Some(match op.path.as_str() {
        "/api/v1/invoices/{id}/payments" => {
            json!({"amount": {"amount": "10.00", "currency": "AUD"}, "paid_on": "2026-11-10"})
        }
        "/api/v1/journal-entries" => json!({
            "entry_date": "2026-11-03", "description": "Aimed at another organization's accounts",
            "lines": [
                {"account_id": t.accounts.0, "side": "debit", "amount": {"amount": "1.00", "currency": "AUD"}},
                {"account_id": t.accounts.1, "side": "credit", "amount": {"amount": "1.00", "currency": "AUD"}},
            ],
        }),
        _ => json!({}),
    })
}

async fn another_organization_gets_404(backend: Backend) {
    let server = test_support::require!(server(backend, &[("RATE_LIMIT_DISABLED", "true")]).await);
    let s = &server.state;
    let a = tenant(s, &server, "alpha").await;
    let b = tenant(s, &server, "bravo").await;
    let a_ids = [&a.invoice, &a.entry, &a.account, &a.user_ids[3].1];
    let ops = operations(&document(s).await);
    let (_, before) = call(
        s,
        "GET",
        "/api/v1/organization/export",
        Some(&a.tokens[0].1),
        None,
    )
    .await;
    let mut walked = 0;
    for op in ops.iter().filter(|o| o.tags.iter().any(|t| t == "tenant")) {
        // Aimed by B's owner, whom no role check stops, at A's things.
        let path = aim(&op.path, &a, &a.user_ids[3].1);
        let method = op.method.to_uppercase();
        let (status, body) =
            call(s, &method, &path, Some(&b.tokens[0].1), valid_body(op, &a)).await;
        if op.path == "/api/v1/journal-entries" {
            // An entry on A's accounts: to B they are accounts that do not exist, as any unknown id.
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path}: {body}"
            );
            assert!(
                body["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["code"] == "UNKNOWN-ACCOUNT"),
                "{body}"
            );
        } else if op.path.contains("{id}") {
            // A names one of A's things: to B it does not exist.
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert_eq!(
                body["type"], "/problems/not-found",
                "{method} {path}: {body}"
            );
        } else {
            // A collection: B sees and changes only B's own; nothing of A shows.
            assert!(
                status.is_success() || status.is_client_error(),
                "{method} {path}: {status}"
            );
            let text = body.to_string();
            for id in a_ids {
                assert!(
                    !text.contains(id.as_str()),
                    "{method} {path} shows A's {id}: {text}"
                );
            }
        }
        walked += 1;
    }
    assert!(walked >= 20, "walked only {walked} tenant routes");
    // Nothing B aimed at A changed A: the same export, but for the audit trail of A's own reads.
    let (_, after) = call(
        s,
        "GET",
        "/api/v1/organization/export",
        Some(&a.tokens[0].1),
        None,
    )
    .await;
    for part in ["invoices", "journal_entries", "accounts", "users"] {
        assert_eq!(before[part], after[part], "{part} of A changed");
    }
}

async fn each_role_gets_what_x_roles_allows(backend: Backend) {
    let server = test_support::require!(server(backend, &[("RATE_LIMIT_DISABLED", "true")]).await);
    let s = &server.state;
    let a = tenant(s, &server, "alpha").await;
    let ops = operations(&document(s).await);
    let unknown = uuid::Uuid::now_v7().to_string();
    for (role, token) in &a.tokens {
        let own_id = &a.user_ids.iter().find(|(r, _)| r == role).unwrap().1;
        for op in ops.iter().filter(|o| o.tags.iter().any(|t| t == "tenant")) {
            let allowed = op.roles.as_ref().unwrap().iter().any(|r| r == role);
            let method = op.method.to_uppercase();
            // Reads aim at real things (a user's export at their own); writes at an id that names nothing or
            // with an empty body, so an allowed caller is stopped by the data, never by the role, and nothing
            // changes between roles.
            let path = if method == "GET" {
                aim(&op.path, &a, own_id)
            } else {
                op.path.replace("{id}", &unknown)
            };
            let body = op.has_body.then(|| json!({}));
            let (status, answer) = call(s, &method, &path, Some(token), body).await;
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN
                        && status != StatusCode::UNAUTHORIZED
                        && !status.is_server_error(),
                    "{role} may {method} {path} but got {status}: {answer}"
                );
                if method == "GET" {
                    assert_eq!(status, StatusCode::OK, "{role} {method} {path}: {answer}");
                }
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} may not {method} {path}: {answer}"
                );
                if method == "GET" {
                    // HEAD runs the GET handler: it is held to the same rule.
                    let (status, _) = call(s, "HEAD", &path, Some(token), None).await;
                    assert_eq!(status, StatusCode::FORBIDDEN, "{role} may not HEAD {path}");
                }
            }
            // And without any token: 401.
            let (status, _) = call(s, &method, &path, None, op.has_body.then(|| json!({}))).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "anonymous {method} {path}"
            );
        }
    }
}

on_both_backends!(
    document_lists_every_route,
    another_organization_gets_404,
    each_role_gets_what_x_roles_allows,
);
