//! `GET /api/v1/audit-events`: the organization's audit trail, oldest first, for owners and admins.

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{MANAGERS, Principal};
use crate::domain::audit::{self, StoredEvent};
use crate::error::AppError;
use crate::openapi::Problems;
use crate::routes::Page;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// One page of audit events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct EventPage {
    items: Vec<StoredEvent>,
    next_cursor: Option<String>,
}

/// The organization's audit trail, oldest first.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "tenant", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, description = "Where the previous page ended (`next_cursor`)"),
        ("limit" = Option<String>, Query, description = "Page size, 1 to 200 (default 50)")),
    responses((status = 200, body = EventPage), Problems),
    extensions(("x-roles" = json!(MANAGERS))))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Json<EventPage>, AppError> {
    let (after, limit) = page.parse(|c| i64::from_str_radix(c, 16).ok().filter(|n| *n >= 0))?;
    let after = after.unwrap_or(0);
    let items = audit::list(state.db(), principal.organization_id, after, limit).await?;
    let next_cursor = Page::next(&items, limit, |e| format!("{:x}", e.seq));
    Ok(Json(EventPage { items, next_cursor }))
}
