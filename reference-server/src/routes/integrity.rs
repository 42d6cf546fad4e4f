//! `/api/v1/integrity/*`: the integrity audit's runs and the deviations still open, and a way to run it now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::domain::integrity::{self, EventView, RunView};
use crate::error::AppError;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/integrity/runs", get(runs).post(run_now))
        .route("/api/v1/integrity/events", get(open_events))
}

async fn runs(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<RunView>>, AppError> {
    integrity::runs(&state, &principal, 50).await.map(Json)
}

async fn run_now(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, AppError> {
    principal.require(&[Role::Owner, Role::Admin])?;
    let run = integrity::run_for(&state, principal.organization_id)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

async fn open_events(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<EventView>>, AppError> {
    integrity::open_events_of(&state, &principal)
        .await
        .map(Json)
}
