//! `/api/v1/accounts`, `/api/v1/journal-entries`, `/api/v1/trial-balance`: the ledger.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fin_invariants::Validated;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::domain::ledger::{self, NewAccount, NewEntry};
use crate::error::{AppError, JsonBody};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts", get(accounts).post(create_account))
        .route("/api/v1/journal-entries", post(post_entry))
        .route("/api/v1/journal-entries/{id}", get(entry))
        .route("/api/v1/journal-entries/{id}/reverse", post(reverse))
        .route("/api/v1/trial-balance", get(trial_balance))
}

/// A path id that is not a UUID names nothing of this organization: the same 404 as any other.
pub(crate) fn path_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

async fn accounts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ledger::AccountView>>, AppError> {
    ledger::accounts(&state, &principal).await.map(Json)
}

async fn create_account(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewAccount>,
) -> Result<Response, AppError> {
    let account = ledger::create_account(&state, &principal, body).await?;
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

/// Checked twice: by the `Validated` extractor at the route (structure), and in the domain with the accounts.
async fn post_entry(
    State(state): State<AppState>,
    principal: Principal,
    Validated(body): Validated<NewEntry>,
) -> Result<Response, AppError> {
    let id = ledger::post_manual(&state, &principal, &body).await?;
    let entry = ledger::entry(&state, &principal, id).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

async fn entry(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ledger::EntryView>, AppError> {
    ledger::entry(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

async fn reverse(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = ledger::reverse(&state, &principal, path_id(&id)?).await?;
    let entry = ledger::entry(&state, &principal, id).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

async fn trial_balance(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ledger::TrialBalance>, AppError> {
    ledger::trial_balance(&state, &principal).await.map(Json)
}
