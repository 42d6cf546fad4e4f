//! `GET /api/v1/audit-events`: the organization's audit trail, oldest first, for owners and admins.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::domain::audit::{self, StoredEvent};
use crate::error::{AppError, FieldError};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit-events", get(list))
}

/// Cursor pagination (shared/API.md): an opaque `cursor` and a `limit` (default 50, at most 200).
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    cursor: Option<String>,
    limit: Option<String>,
}

impl Page {
    /// The position after which to continue, and the page size.
    pub(crate) fn parse(&self) -> Result<(i64, i64), AppError> {
        let mut errors = Vec::new();
        let after = match self.cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => i64::from_str_radix(c, 16)
                .ok()
                .filter(|n| *n >= 0)
                .unwrap_or_else(|| {
                    errors.push(FieldError::new(
                        "cursor",
                        "/cursor",
                        "is not a cursor this API gave out",
                    ));
                    0
                }),
        };
        let limit = match self.limit.as_deref() {
            None => 50,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .unwrap_or_else(|| {
                    errors.push(FieldError::new(
                        "limit",
                        "/limit",
                        "must be a whole number from 1 to 200",
                    ));
                    50
                }),
        };
        if errors.is_empty() {
            Ok((after, limit))
        } else {
            Err(AppError::Validation(errors))
        }
    }
}

#[derive(Debug, Serialize)]
struct EventPage {
    items: Vec<StoredEvent>,
    next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Json<EventPage>, AppError> {
    principal.require(&[Role::Owner, Role::Admin])?;
    let (after, limit) = page.parse()?;
    let items = audit::list(state.db(), principal.organization_id, after, limit).await?;
    let full = i64::try_from(items.len()).unwrap_or(i64::MAX) == limit;
    let next_cursor = items
        .last()
        .filter(|_| full)
        .map(|e| format!("{:x}", e.seq));
    Ok(Json(EventPage { items, next_cursor }))
}
