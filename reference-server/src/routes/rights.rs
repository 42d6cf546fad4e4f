//! Data rights: `GET /api/v1/organization/export`, `GET /api/v1/users/{id}/export`,
//! `POST /api/v1/users/{id}/erase`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::AppState;
use crate::auth::Principal;
use crate::domain::rights;
use crate::error::AppError;
use crate::routes::ledger::path_id;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/organization/export", get(export_organization))
        .route("/api/v1/users/{id}/export", get(export_user))
        .route("/api/v1/users/{id}/erase", post(erase_user))
}

async fn export_organization(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    rights::export_organization(&state, &principal)
        .await
        .map(Json)
}

async fn export_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    rights::export_user(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

async fn erase_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    rights::erase_user(&state, &principal, path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
