//! `GET /api/v1/dashboard`: the organization's dashboard, cached per organization.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::Principal;
use crate::domain::dashboard;
use crate::error::AppError;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/dashboard", get(show))
}

async fn show(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<dashboard::Dashboard>, AppError> {
    let board = dashboard::dashboard(&state, &principal).await?;
    Ok(Json(board.as_ref().clone()))
}
