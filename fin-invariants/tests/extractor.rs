//! `Validated<T>`: 422 problem+json with every violation; 400/415 problem+json for unreadable bodies.
#![cfg(feature = "axum")]
// Helpers outside #[test] functions read test data; a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use fin_invariants::invoice::{Invoice, InvoiceLine, InvoiceWithTotals, TaxCategory, compute};
use fin_invariants::{Currency, Decimal, Validate, Validated, ValidationRejection, parse_decimal};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn create(
    Validated(doc): Validated<InvoiceWithTotals>,
) -> Result<String, ValidationRejection> {
    // The service checks again with the same code.
    doc.validate()?;
    Ok(doc.totals.payable_amount.to_string())
}

fn app() -> Router {
    Router::new().route("/api/v1/invoices", post(create))
}

fn body() -> Value {
    let d = |s| parse_decimal(s).unwrap();
    let invoice = Invoice {
        currency: Currency::AUD,
        lines: vec![
            InvoiceLine::new(d("2"), d("9.95"), TaxCategory::Standard, Some(d("10"))),
            InvoiceLine::new(d("1"), d("1200.00"), TaxCategory::Standard, Some(d("10"))),
        ],
        allowances: vec![],
        charges: vec![],
        paid_amount: None,
        rounding_amount: None,
    };
    let totals = compute(&invoice).unwrap();
    serde_json::to_value(InvoiceWithTotals { invoice, totals }).unwrap()
}

async fn send(content_type: &str, body: String) -> (StatusCode, Option<String>, Value) {
    let request = Request::post("/api/v1/invoices")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let ct = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, ct, value)
}

#[tokio::test]
async fn a_valid_invoice_reaches_the_handler() {
    let (status, _, body) = send("application/json", body().to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.to_string(), "1341.89");
}

#[tokio::test]
async fn an_invoice_that_does_not_add_up_gets_422_problem_json_with_every_violation() {
    let mut doc = body();
    doc["lines"][0]["net_amount"] = json!("19.91");
    doc["totals"]["line_net_total"] = json!("1219.91");
    doc["totals"]["payable_amount"] = json!("1341.88");
    let (status, content_type, problem) = send("application/json", doc.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(problem["type"], "/problems/validation");
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["instance"], "/api/v1/invoices");
    let errors = problem["errors"].as_array().unwrap();
    let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
    // The stated line net is one cent off; the sums follow it, except the VAT breakdown and the amount due.
    assert_eq!(codes, ["LINE-NET", "BR-CO-13", "BR-CO-16", "BR-S-08"]);
    assert_eq!(problem["detail"], "4 rule violations");
    let line = &errors[0];
    assert_eq!(line["path"], "/lines/0/net_amount");
    assert_eq!(line["expected"], "19.90");
    assert_eq!(line["actual"], "19.91");
}

#[tokio::test]
async fn amounts_as_json_numbers_are_refused_with_a_problem() {
    let mut doc = body();
    doc["totals"]["payable_amount"] = json!(1341.89);
    let (status, content_type, problem) = send("application/json", doc.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(problem["status"], 422);
    assert!(problem.get("errors").is_none());
}

#[tokio::test]
async fn malformed_json_is_400_and_a_wrong_media_type_415() {
    let (status, content_type, problem) = send("application/json", "{not json".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(problem["status"], 400);
    let (status, _, problem) = send("text/plain", body().to_string()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(problem["status"], 415);
}

#[tokio::test]
async fn violations_found_by_the_service_answer_the_same_way() {
    let violations: fin_invariants::Violations =
        fin_invariants::Violation::new("UNBALANCED", "/lines", "debits and credits in AUD differ")
            .with_values("10.00", "9.99")
            .into();
    let response = violations.into_response();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let problem: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(problem["detail"], "1 rule violation");
    assert_eq!(
        problem["errors"][0],
        json!({"code": "UNBALANCED", "path": "/lines", "message": "debits and credits in AUD differ", "expected": "10.00", "actual": "9.99"})
    );
    let _ = Decimal::ZERO;
}
