//! `/api/v1/invoices`: create (computed, or an import checked against its stated totals), list, read, issue,
//! pay, void.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fin_invariants::Validated;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{EVERYONE, Principal};
use crate::domain::invoices::{self, INVOICING, InvoiceView, NewInvoice, NewPayment};
use crate::domain::ledger::BOOKKEEPERS;
use crate::error::{AppError, JsonBody};
use crate::openapi::Problems;
use crate::routes::Page;
use crate::routes::ledger::path_id;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read))
        .routes(routes!(issue))
        .routes(routes!(pay))
        .routes(routes!(void))
}

/// Creates a draft invoice: totals computed from the lines, or an import's stated totals checked.
///
/// Checked twice: at the route by the `Validated` extractor, and in the domain before the transaction.
#[utoipa::path(post, path = "/api/v1/invoices", tag = "tenant", security(("bearer" = [])),
    request_body = NewInvoice,
    responses((status = 201, body = InvoiceView), Problems),
    extensions(("x-roles" = json!(INVOICING))))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Validated(body): Validated<NewInvoice>,
) -> Result<Response, AppError> {
    let id = invoices::create(&state, &principal, &body).await?;
    let invoice = invoices::current(&state, &principal, id).await?;
    Ok((StatusCode::CREATED, Json(invoice)).into_response())
}

/// One page of invoices, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct InvoicePage {
    items: Vec<InvoiceView>,
    next_cursor: Option<String>,
}

/// Lists the organization's invoices.
#[utoipa::path(get, path = "/api/v1/invoices", tag = "tenant", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, description = "Where the previous page ended (`next_cursor`)"),
        ("limit" = Option<String>, Query, description = "Page size, 1 to 200 (default 50)")),
    responses((status = 200, body = InvoicePage), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Json<InvoicePage>, AppError> {
    let (after, limit) = page.parse(|c| Uuid::parse_str(c).ok())?;
    let items = invoices::list(&state, &principal, after, limit).await?;
    let next_cursor = Page::next(&items, limit, |i| i.id.to_string());
    Ok(Json(InvoicePage { items, next_cursor }))
}

/// Reads one invoice (and records the view in the audit trail).
#[utoipa::path(get, path = "/api/v1/invoices/{id}", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")), 
    responses((status = 200, body = InvoiceView), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::read(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

/// Issues a draft: posts its journal entry in the same transaction.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/issue", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")), 
    responses((status = 200, body = InvoiceView), Problems),
    extensions(("x-roles" = json!(INVOICING))))]
async fn issue(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::issue(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

/// Records a payment of an issued invoice and posts it.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/payments", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")), request_body = NewPayment, 
    responses((status = 200, body = InvoiceView), Problems),
    extensions(("x-roles" = json!(INVOICING))))]
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

/// Voids an invoice; an issued one gets a reversing entry.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/void", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")), 
    responses((status = 200, body = InvoiceView), Problems),
    extensions(("x-roles" = json!(BOOKKEEPERS))))]
async fn void(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, AppError> {
    invoices::void(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}
