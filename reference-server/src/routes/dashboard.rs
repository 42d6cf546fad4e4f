//! `GET /api/v1/dashboard`: the organization's dashboard, cached per organization.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{EVERYONE, Principal};
use crate::domain::dashboard;
use crate::error::AppError;
use crate::openapi::Problems;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// Receivables and payables with ageing, overdue invoices, cash, months and a 30-day forecast.
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = dashboard::Dashboard), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
async fn show(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<std::sync::Arc<dashboard::Dashboard>>, AppError> {
    // Serialized straight from the cached value: no copy of it per request.
    dashboard::dashboard(&state, &principal).await.map(Json)
}
