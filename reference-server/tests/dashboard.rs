//! The dashboard's figures: ageing of receivables and payables in every bucket, the overdue list, cash, and the
//! 30-day forecast, from invoices due at known distances from today. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failure is a failed test

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Backend, call, on_both_backends, owner, server};
use time::Duration;

fn aud(amount: &str) -> Value {
    json!({"amount": amount, "currency": "AUD"})
}

/// Creates and issues an invoice of `net` + 10 % GST due `due_in` days from today (negative: overdue).
async fn issued(
    s: &reference_server::AppState,
    token: &str,
    kind: &str,
    number: &str,
    net: &str,
    due_in: i64,
) -> String {
    let today = s.clock().now().date();
    let due = today + Duration::days(due_in);
    let issue = due.min(today) - Duration::days(1);
    let (status, invoice) = call(s, "POST", "/api/v1/invoices", Some(token), Some(json!({
        "kind": kind, "number": number, "counterparty": "Counterparty", "issue_date": issue.to_string(),
        "due_date": due.to_string(), "currency": "AUD",
        "lines": [{"description": "Work", "quantity": "1", "net_price": net, "tax_category": "S", "tax_rate": "10"}],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let id = invoice["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        s,
        "POST",
        &format!("/api/v1/invoices/{id}/issue"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

async fn figures(backend: Backend) {
    let server = test_support::require!(server(backend, &[("RATE_LIMIT_DISABLED", "true")]).await);
    let s = &server.state;
    let token = owner(&server, "Hotel", "owner@hotel.example").await;
    // Receivables in every bucket (gross = net + 10 %): current 110, 1-30 220, 31-60 330, 61-90 440, 90+ 550.
    issued(s, &token, "sales", "S-CUR", "100.00", 5).await;
    let partly = issued(s, &token, "sales", "S-10", "200.00", -10).await;
    issued(s, &token, "sales", "S-45", "300.00", -45).await;
    issued(s, &token, "sales", "S-75", "400.00", -75).await;
    issued(s, &token, "sales", "S-120", "500.00", -120).await;
    // A payable 1-30 days overdue, 66.00 gross, and one due in 40 days (outside the forecast).
    issued(s, &token, "purchase", "P-20", "60.00", -20).await;
    issued(s, &token, "purchase", "P-LATER", "1000.00", 40).await;
    // 20.00 of S-10 is paid: its outstanding 200.00 stays in 1-30, and cash holds 20.00.
    let today = s.clock().now().date();
    let (status, body) = call(
        s,
        "POST",
        &format!("/api/v1/invoices/{partly}/payments"),
        Some(&token),
        Some(json!({
            "amount": aud("20.00"), "paid_on": today.to_string(),
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, board) = call(s, "GET", "/api/v1/dashboard", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let r = &board["receivables"];
    assert_eq!(r["current"], aud("110.00"), "{board}");
    assert_eq!(r["days_1_30"], aud("200.00"));
    assert_eq!(r["days_31_60"], aud("330.00"));
    assert_eq!(r["days_61_90"], aud("440.00"));
    assert_eq!(r["days_90_plus"], aud("550.00"));
    assert_eq!(r["total"], aud("1630.00"));
    let p = &board["payables"];
    assert_eq!(p["days_1_30"], aud("66.00"), "{board}");
    assert_eq!(p["current"], aud("1100.00"));
    assert_eq!(p["total"], aud("1166.00"));
    assert_eq!(board["cash"], aud("20.00"));
    // Overdue: most overdue first, with days and outstanding.
    assert_eq!(board["overdue_count"], 5);
    let overdue: Vec<(&str, i64, &Value)> = board["overdue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["number"].as_str().unwrap(),
                o["days_overdue"].as_i64().unwrap(),
                &o["outstanding"],
            )
        })
        .collect();
    assert_eq!(
        overdue,
        vec![
            ("S-120", 120, &aud("550.00")),
            ("S-75", 75, &aud("440.00")),
            ("S-45", 45, &aud("330.00")),
            ("P-20", 20, &aud("66.00")),
            ("S-10", 10, &aud("200.00")),
        ]
    );
    // The forecast: everything overdue is expected today, S-CUR in 5 days; P-LATER is beyond 30 days.
    let f = &board["forecast"];
    assert_eq!(f["inflow"], aud("1630.00"), "{board}");
    assert_eq!(f["outflow"], aud("66.00"));
    assert_eq!(f["projected_cash"], aud("1584.00"));
    let days: Vec<(&str, &Value, &Value)> = f["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), &d["inflow"], &d["outflow"]))
        .collect();
    let (today_s, in5) = (today.to_string(), (today + Duration::days(5)).to_string());
    assert_eq!(
        days,
        vec![
            (today_s.as_str(), &aud("1520.00"), &aud("66.00")),
            (in5.as_str(), &aud("110.00"), &aud("0.00")),
        ]
    );
}

on_both_backends!(figures);
