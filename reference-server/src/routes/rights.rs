//! Data rights: `GET /api/v1/organization/export`, `GET /api/v1/users/{id}/export`,
//! `POST /api/v1/users/{id}/erase`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{EVERYONE, OWNER, Principal};
use crate::domain::rights;
use crate::error::AppError;
use crate::openapi::Problems;
use crate::routes::ledger::path_id;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_organization))
        .routes(routes!(export_user))
        .routes(routes!(erase_user))
}

/// Everything the organization holds, as JSON.
#[utoipa::path(get, path = "/api/v1/organization/export", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = Object), Problems),
    extensions(("x-roles" = json!(OWNER))))]
async fn export_organization(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    rights::export_organization(&state, &principal)
        .await
        .map(Json)
}

/// One user's personal data and activity, as JSON: their own, or any member's for owners and admins (404 otherwise).
#[utoipa::path(get, path = "/api/v1/users/{id}/export", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = Object), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn export_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    rights::export_user(&state, &principal, path_id(&id)?)
        .await
        .map(Json)
}

/// Pseudonymizes a user's personal data; financial records and the audit chain stay valid.
#[utoipa::path(post, path = "/api/v1/users/{id}/erase", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Erased"), Problems),
    extensions(("x-roles" = json!(OWNER))))]
async fn erase_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    rights::erase_user(&state, &principal, path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
