//! Shows fin-invariants in an axum service: `Validated<T>` turns a body that breaks a financial invariant
//! into `422 application/problem+json` with every violation, and the service checks again with the same
//! code before it changes anything (invoices that add up, journal entries that balance, accounts that
//! must not go negative).
//!
//! Run:   cargo run -p examples --example fininvariants
//! Then:  curl -s localhost:3000/api/v1/invoices/example | tee invoice.json
//!        curl -si -H 'content-type: application/json' -d @invoice.json localhost:3000/api/v1/invoices
//!        sed 's/"payable_amount":"[0-9.]*"/"payable_amount":"1.00"/' invoice.json \
//!          | curl -si -H 'content-type: application/json' -d @- localhost:3000/api/v1/invoices
//!        curl -si -H 'content-type: application/json' localhost:3000/api/v1/journal-entries -d \
//!          '{"id":1,"organization":1,"lines":[{"account":1,"side":"debit","amount":{"amount":"110.00","currency":"AUD"}},
//!            {"account":2,"side":"credit","amount":{"amount":"100.00","currency":"AUD"}},
//!            {"account":3,"side":"credit","amount":{"amount":"10.00","currency":"AUD"}}]}'
//!        curl -s localhost:3000/api/v1/accounts/1/balance
//!
//! BIND_ADDR (default 127.0.0.1:3000) changes the address. Nothing else is needed: the ledger is in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use fin_invariants::invoice::{Invoice, InvoiceLine, InvoiceWithTotals, TaxCategory, compute};
use fin_invariants::journal::{
    Account, AccountId, Balance, BalanceLimit, JournalEntry, Ledger, OrganizationId, Posted,
};
use fin_invariants::{Currency, Decimal, Validate, Validated, ValidationRejection, Violations};

#[derive(Clone)]
struct AppState {
    accounts: Arc<HashMap<AccountId, Account>>,
    ledger: Arc<Mutex<Ledger>>,
}

/// An Australian tax invoice with its totals, computed (GST 10 %).
async fn example_invoice() -> Result<Json<InvoiceWithTotals>, ValidationRejection> {
    let line = |quantity: i64, cents: i64| {
        InvoiceLine::new(
            Decimal::from(quantity),
            Decimal::new(cents, 2),
            TaxCategory::Standard,
            Some(Decimal::TEN),
        )
    };
    let invoice = Invoice {
        currency: Currency::AUD,
        lines: vec![line(2, 995), line(1, 120_000), line(3, 333)],
        allowances: vec![],
        charges: vec![],
        paid_amount: None,
        rounding_amount: None,
    };
    let totals = compute(&invoice)?;
    Ok(Json(InvoiceWithTotals { invoice, totals }))
}

/// Accepts an invoice only when its stated totals follow from its lines.
async fn create_invoice(
    Validated(doc): Validated<InvoiceWithTotals>,
) -> Result<(StatusCode, Json<InvoiceWithTotals>), ValidationRejection> {
    // The service layer checks again: other callers than this route reach it too.
    doc.validate()?;
    Ok((StatusCode::CREATED, Json(doc)))
}

/// Posts a journal entry: the extractor checks that it balances; the service checks its accounts and
/// their limits, and applies it all or nothing (the same id again is an idempotent retry).
async fn post_entry(
    State(state): State<AppState>,
    Validated(entry): Validated<JournalEntry>,
) -> Result<(StatusCode, &'static str), ValidationRejection> {
    let mut ledger = state.ledger.lock().map_err(|_| Violations::new())?;
    match ledger.post(&entry, state.accounts.as_ref())? {
        Posted::Applied => Ok((StatusCode::CREATED, "applied")),
        Posted::AlreadyApplied => Ok((StatusCode::OK, "already applied")),
        _ => Ok((StatusCode::OK, "")),
    }
}

async fn balance(
    State(state): State<AppState>,
    Path(id): Path<u128>,
) -> Result<Json<Balance>, StatusCode> {
    let ledger = state
        .ledger
        .lock()
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    ledger
        .balance(AccountId(id))
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let org = OrganizationId(1);
    let account = |id: u128, limit| {
        (
            AccountId(id),
            Account {
                id: AccountId(id),
                organization: org,
                currency: Currency::AUD,
                limit,
            },
        )
    };
    let accounts = HashMap::from([
        // Cash may not be paid out beyond what came in; GST payable may not be overpaid.
        account(1, BalanceLimit::CreditsMustNotExceedDebits),
        account(2, BalanceLimit::None),
        account(3, BalanceLimit::DebitsMustNotExceedCredits),
    ]);
    let state = AppState {
        accounts: Arc::new(accounts),
        ledger: Arc::new(Mutex::new(Ledger::new())),
    };
    let app = Router::new()
        .route("/api/v1/invoices/example", get(example_invoice))
        .route("/api/v1/invoices", post(create_invoice))
        .route("/api/v1/journal-entries", post(post_entry))
        .route("/api/v1/accounts/{id}/balance", get(balance))
        .with_state(state);
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("fininvariants example listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
