//! Bad input at every write route: generated JSON of the wrong types, huge numbers, deep nesting, invalid
//! UTF-8 and a 10 MB body never get a 500 and never write part of anything (row counts unchanged after every
//! refusal).
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use reference_server::with_pool;
use serde_json::{Value, json};
use support::{Backend, TestServer, call, server};
use tower::ServiceExt;

const TABLES: &[&str] = &[
    "organizations",
    "users",
    "sessions",
    "refresh_tokens",
    "audit_events",
    "accounts",
    "journal_entries",
    "journal_lines",
    "invoices",
    "invoice_lines",
    "payments",
    "integrity_runs",
    "idempotency_keys",
    "audit_heads",
    "invoice_adjustments",
    "invoice_tax",
    "integrity_events",
    "account_months",
];

struct World {
    server: TestServer,
    token: String,
    routes: Vec<(&'static str, String)>,
}

async fn world(backend: Backend) -> Option<World> {
    // Limits off: the generated requests should reach the handlers, not stop at 429.
    let server = server(
        backend,
        &[("MAX_BODY_SIZE", "1MiB"), ("RATE_LIMIT_DISABLED", "true")],
    )
    .await?;
    let s = &server.state;
    let (_, owner) = call(s, "POST", "/api/v1/auth/register", None, Some(json!({
        "organization_name": "Acme", "name": "Owner", "email": "o@acme.example", "password": "correct horse battery staple",
    })))
    .await;
    let token = owner["access_token"].as_str().unwrap().to_owned();
    let (_, user) = call(
        s,
        "POST",
        "/api/v1/users",
        Some(&token),
        Some(json!({
            "email": "s@acme.example", "name": "Staff", "role": "staff", "pin": "1234",
        })),
    )
    .await;
    let (_, invoice) = call(s, "POST", "/api/v1/invoices", Some(&token), Some(json!({
        "kind": "sales", "number": "X-1", "counterparty": "C", "issue_date": "2026-11-01", "due_date": "2026-11-30",
        "currency": "AUD", "lines": [{"description": "W", "quantity": "1", "net_price": "10.00", "tax_category": "S", "tax_rate": "10"}],
    })))
    .await;
    let (user, invoice) = (
        user["id"].as_str().unwrap().to_owned(),
        invoice["id"].as_str().unwrap().to_owned(),
    );
    let entry = uuid::Uuid::now_v7();
    // Every route that writes, with a body or without (a body it does not read must not matter either);
    // not logout, which would end the session the rest of the test signs in with.
    let routes = vec![
        ("POST", "/api/v1/auth/register".to_owned()),
        ("POST", "/api/v1/auth/login".to_owned()),
        ("POST", "/api/v1/auth/pin".to_owned()),
        ("POST", "/api/v1/auth/refresh".to_owned()),
        ("POST", "/api/v1/auth/password".to_owned()),
        ("POST", "/api/v1/users".to_owned()),
        ("POST", "/api/v1/accounts".to_owned()),
        ("POST", "/api/v1/journal-entries".to_owned()),
        ("POST", format!("/api/v1/journal-entries/{entry}/reverse")),
        ("POST", "/api/v1/invoices".to_owned()),
        ("POST", format!("/api/v1/invoices/{invoice}/issue")),
        ("POST", format!("/api/v1/invoices/{invoice}/payments")),
        ("POST", format!("/api/v1/invoices/{invoice}/void")),
        ("POST", format!("/api/v1/users/{user}/unlock-pin")),
        ("POST", format!("/api/v1/users/{user}/erase")),
        ("POST", "/api/v1/users/me/totp".to_owned()),
        ("POST", "/api/v1/users/me/totp/confirm".to_owned()),
        ("PUT", "/api/v1/organization/totp-requirement".to_owned()),
        ("POST", "/api/v1/integrity/runs".to_owned()),
    ];
    Some(World {
        server,
        token,
        routes,
    })
}

async fn counts(world: &World) -> Vec<i64> {
    let mut all = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = with_pool!(world.server.state.db(), |pool| sqlx::query_scalar(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .fetch_one(pool)
        .await)
        .unwrap();
        all.push(n);
    }
    all
}

async fn send_raw(world: &World, method: &str, path: &str, body: Vec<u8>) -> StatusCode {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", world.token))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap();
    reference_server::app(world.server.state.clone())
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[0-9]{1,40}(\\.[0-9]{0,30})?".prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("1e308")),
        Just(Value::from("-99999999999999999999999999999.99")),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("email".to_owned()),
                    Just("password".to_owned()),
                    Just("amount".to_owned()),
                    Just("lines".to_owned()),
                    Just("quantity".to_owned()),
                    Just("net_price".to_owned()),
                    Just("currency".to_owned()),
                    Just("kind".to_owned()),
                    Just("role".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: generated JSON, a document nested deeper than any parser should follow, or invalid UTF-8.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => (1usize..5000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|mut bytes| { bytes.insert(0, 0xff); bytes }),
    ]
}

#[test]
fn sqlite_generated_bodies_at_every_write_route_never_500_and_never_write_part() {
    bad_bodies(Backend::Sqlite, 256);
}

#[test]
fn postgres_generated_bodies_at_every_write_route_never_500_and_never_write_part() {
    bad_bodies(Backend::Postgres, 64);
}

fn bad_bodies(backend: Backend, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(world) = runtime.block_on(world(backend)) else {
        return;
    };
    let routes = world.routes.len();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(route in 0..routes, body in body())| {
        runtime.block_on(async {
            let before = counts(&world).await;
            let (method, path) = &world.routes[route];
            let status = send_raw(&world, method, path, body).await;
            prop_assert!(!status.is_server_error(), "{method} {path} answered {status}");
            if status.is_client_error() {
                prop_assert_eq!(counts(&world).await, before, "{} {} refused with {} but wrote", method, path, status);
            }
            Ok(())
        })?;
    });

    // A 10 MB body (with its length declared, as clients send it): refused with 413 before anything runs.
    runtime.block_on(async {
        let before = counts(&world).await;
        for (method, path) in &world.routes {
            let huge = vec![b' '; 10 * 1024 * 1024];
            assert_eq!(
                send_raw(&world, method, path, huge).await,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path}"
            );
        }
        assert_eq!(counts(&world).await, before);
    });
}
