//! `/api/v1/integrity/*`: the integrity audit's runs and the deviations still open, and a way to run it now.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{MANAGERS, Principal};
use crate::domain::integrity::{self, AUDITORS, EventView, RunView};
use crate::error::AppError;
use crate::openapi::Problems;
use crate::routes::Page;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(runs, run_now))
        .routes(routes!(open_events))
}

/// One page of integrity audit runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct RunPage {
    items: Vec<RunView>,
    next_cursor: Option<String>,
}

/// The integrity audit runs, newest first.
#[utoipa::path(get, path = "/api/v1/integrity/runs", tag = "tenant", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, description = "Where the previous page ended (`next_cursor`)"),
        ("limit" = Option<String>, Query, description = "Page size, 1 to 200 (default 50)")),
    responses((status = 200, body = RunPage), Problems),
    extensions(("x-roles" = json!(AUDITORS))))]
async fn runs(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Json<RunPage>, AppError> {
    let (before, limit) = page.parse(|c| Uuid::parse_str(c).ok())?;
    let items = integrity::runs(&state, &principal, before, limit).await?;
    let next_cursor = Page::next(&items, limit, |r| r.id.to_string());
    Ok(Json(RunPage { items, next_cursor }))
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

/// One page of open integrity events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct EventPage {
    items: Vec<EventView>,
    next_cursor: Option<String>,
}

/// Deviations still open, oldest first.
#[utoipa::path(get, path = "/api/v1/integrity/events", tag = "tenant", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, description = "Where the previous page ended (`next_cursor`)"),
        ("limit" = Option<String>, Query, description = "Page size, 1 to 200 (default 50)")),
    responses((status = 200, body = EventPage), Problems),
    extensions(("x-roles" = json!(AUDITORS))))]
async fn open_events(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Json<EventPage>, AppError> {
    let (after, limit) = page.parse(|c| Uuid::parse_str(c).ok())?;
    let items = integrity::open_events_of(&state, &principal, after, limit).await?;
    let next_cursor = Page::next(&items, limit, |e| e.id.to_string());
    Ok(Json(EventPage { items, next_cursor }))
}
