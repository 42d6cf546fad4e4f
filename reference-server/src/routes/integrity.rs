//! `/api/v1/integrity/*`: the integrity audit's runs and the deviations still open, and a way to run it now.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{MANAGERS, Principal};
use crate::domain::integrity::{self, AUDITORS, EventView, RunView};
use crate::error::AppError;
use crate::openapi::Problems;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(runs, run_now))
        .routes(routes!(open_events))
}

/// The latest integrity audit runs, newest first.
#[utoipa::path(get, path = "/api/v1/integrity/runs", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = Vec<RunView>), Problems),
    extensions(("x-roles" = json!(AUDITORS))))]
async fn runs(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<RunView>>, AppError> {
    integrity::runs(&state, &principal, 50).await.map(Json)
}

/// Audits every invoice and journal of the organization now.
#[utoipa::path(post, path = "/api/v1/integrity/runs", tag = "tenant", security(("bearer" = [])),
    responses((status = 201, body = RunView), Problems),
    extensions(("x-roles" = json!(MANAGERS))))]
async fn run_now(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, AppError> {
    let run = integrity::run_for(&state, principal.organization_id)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

/// Deviations still open.
#[utoipa::path(get, path = "/api/v1/integrity/events", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = Vec<EventView>), Problems),
    extensions(("x-roles" = json!(AUDITORS))))]
async fn open_events(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<EventView>>, AppError> {
    integrity::open_events_of(&state, &principal)
        .await
        .map(Json)
}
