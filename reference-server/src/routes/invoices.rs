//! `/api/v1/invoices`: create (computed, or an import checked against its stated totals), list, read, issue,
//! pay, void.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fin_invariants::Validated;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::domain::invoices::{self, InvoiceView, NewInvoice, NewPayment};
use crate::error::{AppError, FieldError, JsonBody};
use crate::routes::ledger::path_id;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/invoices", get(list).post(create))
        .route("/api/v1/invoices/{id}", get(read))
        .route("/api/v1/invoices/{id}/issue", post(issue))
        .route("/api/v1/invoices/{id}/payments", post(pay))
        .route("/api/v1/invoices/{id}/void", post(void))
}

/// Checked twice: at the route by the `Validated` extractor, and in the domain before the transaction.
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Validated(body): Validated<NewInvoice>,
) -> Result<Response, AppError> {
    let id = invoices::create(&state, &principal, &body).await?;
    let invoice = invoices::read(&state, &principal, id).await?;
    Ok((StatusCode::CREATED, Json(invoice)).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
struct InvoicePage {
    items: Vec<InvoiceView>,
    next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<InvoicePage>, AppError> {
    let mut errors = Vec::new();
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Uuid::parse_str(c).map(Some).unwrap_or_else(|_| {
            errors.push(FieldError::new(
                "cursor",
                "/cursor",
                "is not a cursor this API gave out",
            ));
            None
        }),
    };
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "limit",
                    "/limit",
                    "must be a whole number from 1 to 200",
                ));
                50
            }),
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let items = invoices::list(&state, &principal, after, limit).await?;
    let full = i64::try_from(items.len()).unwrap_or(i64::MAX) == limit;
    let next_cursor = items.last().filter(|_| full).map(|i| i.id.to_string());
    Ok(Json(InvoicePage { items, next_cursor }))
}

async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::read(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

async fn issue(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::issue(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

async fn pay(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewPayment>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::pay(&state, &principal, path_id(&id)?, &body)
        .await
        .map(Json)
}

async fn void(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::void(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}
