//! `/api/v1/users`: the organization's users. Owners and admins add users; owners unlock PIN sign-in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::domain::identity::{self, NewUser};
use crate::error::{AppError, JsonBody};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", post(create))
        .route("/api/v1/users/me", get(me))
        .route("/api/v1/users/{id}/unlock-pin", post(unlock_pin))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    email: String,
    name: String,
    role: Role,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    pin: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, AppError> {
    let user = identity::create_user(
        &state,
        &principal,
        NewUser {
            email: body.email,
            name: body.name,
            role: body.role,
            password: body.password,
            pin: body.pin,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<identity::UserView>, AppError> {
    identity::user(&state, &principal, principal.user_id)
        .await
        .map(Json)
}

async fn unlock_pin(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    // An id that is not a UUID names no user of this organization: the same 404 as any other.
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    identity::unlock_pin(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
