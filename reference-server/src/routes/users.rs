//! `/api/v1/users`: the organization's users. Owners and admins add users; owners unlock PIN sign-in.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{EVERYONE, MANAGERS, OWNER, Principal, Role};
use crate::domain::identity::{self, NewUser, UserView};
use crate::domain::totp::{self, Code, Enrolment, Requirement};
use crate::error::{AppError, JsonBody};
use crate::openapi::Problems;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(me))
        .routes(routes!(unlock_pin))
        .routes(routes!(begin_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(require_totp))
}

/// A new member of the organization: a password, a PIN (staff on a shared terminal), or both.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NewUserBody)]
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

/// Adds a user to the organization.
#[utoipa::path(post, path = "/api/v1/users", tag = "tenant", security(("bearer" = [])),
    request_body = CreateBody,
    responses((status = 201, body = UserView), Problems),
    extensions(("x-roles" = json!(MANAGERS))))]
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

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = UserView), Problems),
    extensions(("x-roles" = json!(EVERYONE)), ("x-while-enrolling" = json!(true))))]
async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<UserView>, AppError> {
    identity::user(&state, &principal, principal.user_id)
        .await
        .map(Json)
}

/// Lets a user whose PIN sign-in locked after 5 failures sign in again.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock-pin", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Unlocked"), Problems),
    extensions(("x-roles" = json!(OWNER))))]
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

/// Starts setting up the caller's TOTP second factor: a new secret and its `otpauth://` URL, shown once.
#[utoipa::path(post, path = "/api/v1/users/me/totp", tag = "tenant", security(("bearer" = [])),
    responses((status = 201, body = Enrolment), Problems),
    extensions(("x-roles" = json!(EVERYONE)), ("x-while-enrolling" = json!(true))))]
async fn begin_totp(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, AppError> {
    let enrolment = totp::begin(&state, &principal).await?;
    Ok((StatusCode::CREATED, Json(enrolment)).into_response())
}

/// Confirms the second factor with a first code; from then on sign-in asks for a code.
#[utoipa::path(post, path = "/api/v1/users/me/totp/confirm", tag = "tenant", security(("bearer" = [])),
    request_body = Code,
    responses((status = 204, description = "Confirmed"), Problems),
    extensions(("x-roles" = json!(EVERYONE)), ("x-while-enrolling" = json!(true))))]
async fn confirm_totp(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<Code>,
) -> Result<StatusCode, AppError> {
    totp::confirm(&state, &principal, &body.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Requires (or stops requiring) a TOTP second factor of every member of the organization.
#[utoipa::path(put, path = "/api/v1/organization/totp-requirement", tag = "tenant", security(("bearer" = [])),
    request_body = Requirement,
    responses((status = 200, body = Requirement), Problems),
    extensions(("x-roles" = json!(OWNER))))]
async fn require_totp(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<Requirement>,
) -> Result<Json<Requirement>, AppError> {
    totp::require(&state, &principal, &body).await.map(Json)
}
