//! `/api/v1/auth/*` (shared/API.md, authentication routes). Every failure is the same problem answer, which
//! does not say whether the account exists.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Principal;
use crate::domain::identity::{self, Registration};
use crate::error::{AppError, JsonBody};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/pin", post(pin))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/password", post(password))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    organization_name: String,
    name: String,
    email: String,
    password: String,
}

async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Response, AppError> {
    let tokens = identity::register(
        &state,
        Registration {
            organization_name: body.organization_name,
            name: body.name,
            email: body.email,
            password: body.password,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(tokens)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, AppError> {
    let _ = body.totp;
    let tokens = identity::login(&state, &body.email, &body.password).await?;
    Ok(Json(tokens).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    email: String,
    pin: String,
}

async fn pin(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PinBody>,
) -> Result<Response, AppError> {
    let tokens = identity::login_pin(&state, &body.email, &body.pin).await?;
    Ok(Json(tokens).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, AppError> {
    let tokens = identity::refresh(&state, &body.refresh_token).await?;
    Ok(Json(tokens).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    #[serde(default)]
    all: bool,
}

/// The body is optional: no body ends this session only.
async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<StatusCode, AppError> {
    let all = if body.is_empty() {
        false
    } else {
        serde_json::from_slice::<LogoutBody>(&body)
            .map_err(|e| AppError::BadRequest(e.to_string(), StatusCode::BAD_REQUEST))?
            .all
    };
    identity::logout(&state, &principal, all).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

async fn password(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<StatusCode, AppError> {
    identity::change_password(
        &state,
        &principal,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
