//! One error type for handlers, answered as RFC 9457 problem details (`application/problem+json`).
//!
//! The client gets a stable `type` and a title; an internal error's cause goes to the log only.

use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;

/// One field or rule at fault in a request: `{code, path, message, expected, actual}`, the same value
/// fin-invariants reports its violations with, so every 422 of the API has one shape.
pub type FieldError = fin_invariants::Violation;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The body or parameters are malformed or break a rule (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The body is not the JSON the route takes (400, or 415 for another content type).
    #[error("bad request: {0}")]
    BadRequest(String, StatusCode),
    /// No valid credentials, or credentials that were refused (401). Never says which.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated, but the role does not allow this (403).
    #[error("forbidden")]
    Forbidden,
    /// The organization requires a second factor the caller has not set up: only enrolment is open (403).
    #[error("second factor required")]
    TotpEnrolmentRequired,
    /// Nothing here, or nothing this tenant may see (404).
    #[error("not found")]
    NotFound,
    /// Too many failed sign-ins for the account named (429, with `Retry-After` in seconds and the
    /// `RateLimit-Policy` and `RateLimit` fields).
    #[error("too many attempts")]
    TooManyAttempts(crate::ratelimit::AccountRefused),
    /// The request conflicts with the current state (409).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A failure of ours; the cause is logged, never sent (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<fin_invariants::Violations> for AppError {
    fn from(violations: fin_invariants::Violations) -> Self {
        Self::Validation(violations.iter().cloned().collect())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(format!("database: {e}"))
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        // axum's own statuses: 415 without a JSON content type, 422 for the wrong shape, 400 for bad syntax,
        // 413 when the body is over the limit.
        Self::BadRequest(rejection.body_text(), rejection.status())
    }
}

/// An RFC 9457 problem: what every error answer of the API carries, as `application/problem+json`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// A stable relative URI per kind of problem (`/problems/validation`).
    #[serde(rename = "type")]
    kind: &'a str,
    /// The kind of problem, in words.
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// This occurrence, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// Every rule or field at fault (422).
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    /// On internal errors: the id to quote to an operator, who finds the cause in the log by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

/// Builds a problem+json response.
#[must_use]
pub fn problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: Option<String>,
    errors: &[FieldError],
) -> Response {
    let request_id = status
        .is_server_error()
        .then(tower_requestid::RequestContext::current)
        .flatten()
        .map(|context| context.id.to_string());
    let body = Problem {
        kind,
        title,
        status: status.as_u16(),
        detail,
        errors,
        request_id,
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(errors) => {
                let detail = format!(
                    "{} rule violation{}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "/problems/validation",
                    "The request is not valid",
                    Some(detail),
                    &errors,
                )
            }
            Self::BadRequest(detail, status) => problem(
                status,
                "/problems/validation",
                "The request body is not valid JSON for this route",
                Some(detail),
                &[],
            ),
            Self::Unauthorized => problem(
                StatusCode::UNAUTHORIZED,
                "/problems/unauthorized",
                "Authentication failed",
                Some("the credentials or token were not accepted".to_owned()),
                &[],
            ),
            Self::Forbidden => problem(
                StatusCode::FORBIDDEN,
                "/problems/forbidden",
                "Your role does not allow this",
                None,
                &[],
            ),
            Self::TotpEnrolmentRequired => problem(
                StatusCode::FORBIDDEN,
                "/problems/totp-enrolment-required",
                "Your organization requires a second factor",
                Some("set one up at /api/v1/users/me/totp, then confirm it with a code".to_owned()),
                &[],
            ),
            Self::NotFound => problem(
                StatusCode::NOT_FOUND,
                "/problems/not-found",
                "Not found",
                None,
                &[],
            ),
            Self::TooManyAttempts(refused) => {
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    tower_ratelimit::headers::QUOTA_EXCEEDED_TYPE,
                    "Too many attempts",
                    Some("the credentials or token were not accepted".to_owned()),
                    &[],
                );
                let headers = response.headers_mut();
                headers.insert(header::RETRY_AFTER, refused.retry_after.max(1).into());
                // As the limit layer's own 429s: never stored by a cache (RFC 6585 section 4).
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Some((policy, rate)) = refused.fields {
                    headers.insert(tower_ratelimit::headers::RATELIMIT_POLICY, policy);
                    headers.insert(tower_ratelimit::headers::RATELIMIT, rate);
                }
                response
            }
            Self::Conflict(what) => problem(
                StatusCode::CONFLICT,
                "/problems/conflict",
                "Conflict",
                Some(what.to_owned()),
                &[],
            ),
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "/problems/internal",
                    "Internal error",
                    None,
                    &[],
                )
            }
        }
    }
}

/// `axum::Json` whose rejections answer problem+json like every other error.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct JsonBody<T>(pub T);
