//! `/api/v1/accounts`, `/api/v1/journal-entries`, `/api/v1/trial-balance`: the ledger.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fin_invariants::Validated;
use uuid::Uuid;

use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{EVERYONE, Principal};
use crate::domain::ledger::{self, BOOKKEEPERS, NewAccount, NewEntry};
use crate::error::{AppError, JsonBody};
use crate::openapi::Problems;
use crate::routes::Page;
use serde::Serialize;
use utoipa::ToSchema;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts, create_account))
        .routes(routes!(post_entry))
        .routes(routes!(entry))
        .routes(routes!(reverse))
        .routes(routes!(trial_balance))
}

/// A path id that is not a UUID names nothing of this organization: the same 404 as any other.
pub(crate) fn path_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

/// One page of the chart of accounts, by code.
#[derive(Debug, Serialize, ToSchema)]
struct AccountPage {
    items: Vec<ledger::AccountView>,
    next_cursor: Option<String>,
}

/// The chart of accounts, by code.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "tenant", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, description = "Where the previous page ended (`next_cursor`)"),
        ("limit" = Option<String>, Query, description = "Page size, 1 to 200 (default 50)")),
    responses((status = 200, body = AccountPage), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn accounts(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Json<AccountPage>, AppError> {
    // The cursor is the last code, hex-encoded: opaque, and safe in a query string whatever the code holds.
    let (after, limit) = page.parse(|c| String::from_utf8(crate::hex::decode(c)?).ok())?;
    let items = ledger::accounts(&state, &principal, after.as_deref(), limit).await?;
    let next_cursor = Page::next(&items, limit, |a| crate::hex::encode(a.code.as_bytes()));
    Ok(Json(AccountPage { items, next_cursor }))
}

/// Adds an account to the chart.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "tenant", security(("bearer" = [])),
    request_body = NewAccount,
    responses((status = 201, body = ledger::AccountView), Problems),
    extensions(("x-roles" = json!(BOOKKEEPERS))))]
async fn create_account(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewAccount>,
) -> Result<Response, AppError> {
    let account = ledger::create_account(&state, &principal, body).await?;
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

/// Posts a manual journal entry; posted entries are immutable.
///
/// Checked twice: by the `Validated` extractor at the route (structure), and in the domain with the accounts.
#[utoipa::path(post, path = "/api/v1/journal-entries", tag = "tenant", security(("bearer" = [])),
    request_body = NewEntry,
    responses((status = 201, body = ledger::EntryView), Problems),
    extensions(("x-roles" = json!(BOOKKEEPERS))))]
async fn post_entry(
    State(state): State<AppState>,
    principal: Principal,
    Validated(body): Validated<NewEntry>,
) -> Result<Response, AppError> {
    let id = ledger::post_manual(&state, &principal, &body).await?;
    let entry = ledger::entry(&state, &principal, id).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// Reads one journal entry.
#[utoipa::path(get, path = "/api/v1/journal-entries/{id}", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Journal entry id")),
    responses((status = 200, body = ledger::EntryView), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn entry(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ledger::EntryView>, AppError> {
    ledger::entry(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

/// Posts the entry that reverses this one.
#[utoipa::path(post, path = "/api/v1/journal-entries/{id}/reverse", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Journal entry id")),
    responses((status = 201, body = ledger::EntryView), Problems),
    extensions(("x-roles" = json!(BOOKKEEPERS))))]
async fn reverse(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = ledger::reverse(&state, &principal, path_id(&id)?).await?;
    let entry = ledger::entry(&state, &principal, id).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// Every account with its debits, credits and balance.
#[utoipa::path(get, path = "/api/v1/trial-balance", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = ledger::TrialBalance), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn trial_balance(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ledger::TrialBalance>, AppError> {
    ledger::trial_balance(&state, &principal).await.map(Json)
}
