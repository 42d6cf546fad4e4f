//! `/api/v1/auth/*` (shared/API.md, authentication routes). Every failure is the same problem answer, which
//! does not say whether the account exists.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{EVERYONE, Principal};
use crate::domain::identity::{self, Registration, Tokens};
use crate::error::{AppError, JsonBody};
use crate::openapi::Problems;

/// The peer address of the connection (none in tests that call the app in process) and the headers, from
/// which the rate limiter reads the client address.
pub(crate) struct Client(
    pub(crate) Option<std::net::SocketAddr>,
    pub(crate) axum::http::HeaderMap,
);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        Ok(Self(peer, parts.headers.clone()))
    }
}

/// Runs a sign-in attempt under the `auth` and `auth_account` limits: refused at once (429) when the account
/// has no attempts left, charged to both when it fails.
async fn limited<F>(
    state: &AppState,
    client: &Client,
    account: &str,
    attempt: F,
) -> Result<Response, AppError>
where
    F: Future<Output = Result<Tokens, AppError>>,
{
    let account = account.trim().to_lowercase();
    if let Some(limits) = state.limits()
        && let Err(refused) = limits.account_may_try(&account).await
    {
        return Err(AppError::TooManyAttempts(refused));
    }
    match attempt.await {
        Ok(tokens) => Ok(Json(tokens).into_response()),
        Err(e) => {
            if let (Some(limits), AppError::Unauthorized) = (state.limits(), &e) {
                limits
                    .charge_failure(limits.client(client.0, &client.1), &account)
                    .await;
            }
            Err(e)
        }
    }
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(pin))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    organization_name: String,
    name: String,
    email: String,
    password: String,
}

/// Registers an organization and its owner, and signs the owner in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses((status = 201, body = Tokens), Problems),
    extensions(("x-roles" = json!("anyone"))))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Signs in with email and password (and a TOTP code when the organization requires one).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses((status = 200, body = Tokens), Problems),
    extensions(("x-roles" = json!("anyone"))))]
async fn login(
    State(state): State<AppState>,
    client: Client,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, AppError> {
    limited(
        &state,
        &client,
        &body.email,
        identity::login(&state, &body.email, &body.password, body.totp.as_deref()),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PinBody {
    email: String,
    pin: String,
    /// The current TOTP code, when the user has a second factor.
    #[serde(default)]
    totp: Option<String>,
}

/// Signs in with a PIN on a shared terminal; 5 failures in 15 minutes lock the account until its owner unlocks it.
///
/// PIN attempts are counted per account in the database (five failures lock the account until its owner
/// unlocks it, whatever the source), and per client address by the `auth` limit.
#[utoipa::path(post, path = "/api/v1/auth/pin", tag = "auth",
    request_body = PinBody,
    responses((status = 200, body = Tokens), Problems),
    extensions(("x-roles" = json!("anyone"))))]
async fn pin(
    State(state): State<AppState>,
    client: Client,
    JsonBody(body): JsonBody<PinBody>,
) -> Result<Response, AppError> {
    let outcome = identity::login_pin(&state, &body.email, &body.pin, body.totp.as_deref()).await;
    if let (Some(limits), Err(AppError::Unauthorized)) = (state.limits(), &outcome)
        && let Some(auth) = limits.policies.limit("auth")
    {
        let ip = limits.client(client.0, &client.1);
        let _ = limits
            .limiter
            .decide(
                &[tower_ratelimit::Check::charge(
                    auth,
                    tower_ratelimit::Key::Ip(ip),
                )],
                1,
            )
            .await;
    }
    outcome.map(|tokens| Json(tokens).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Trades a refresh token for new tokens; a refresh token used twice ends its whole family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses((status = 200, body = Tokens), Problems),
    extensions(("x-roles" = json!("anyone"))))]
async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, AppError> {
    let tokens = identity::refresh(&state, &body.refresh_token).await?;
    Ok(Json(tokens).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    #[serde(default)]
    all: bool,
}

/// Ends this session, or every session of the user with `{"all": true}`.
///
/// The body is optional: no body ends this session only.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    request_body(content = Option<LogoutBody>),
    responses((status = 204, description = "Signed out"), Problems),
    extensions(("x-roles" = json!(EVERYONE)), ("x-while-enrolling" = json!(true))))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the password; the user's other sessions end.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordBody,
    responses((status = 204, description = "Changed"), Problems),
    extensions(("x-roles" = json!(EVERYONE))))]
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
