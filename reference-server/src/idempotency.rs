//! `Idempotency-Key` on POST under `/api/v1` (not `/api/v1/auth/*`), per shared/API.md and
//! draft-ietf-httpapi-idempotency-key-header: scoped to the user and the key, kept 24 hours. The same key and
//! body replay the stored answer; the same key with another body is 422; while the first request still runs,
//! 409. A 5xx answer is not stored, so the client may retry.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{AppError, FieldError};
use crate::with_pool;

const HEADER: &str = "idempotency-key";
/// How long an answer is kept for replay (retention deletes older records).
pub(crate) const KEPT: time::Duration = time::Duration::hours(24);
/// Stored answers larger than this are not kept (the route's own answers are small JSON documents).
const MAX_STORED: usize = 1 << 20;

/// Middleware; runs inside authentication, so the caller is known.
pub(crate) async fn idempotency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let applies = request.method() == Method::POST
        && request.uri().path().starts_with("/api/v1/")
        && !request.uri().path().starts_with("/api/v1/auth/");
    let key = request.headers().get(HEADER).cloned();
    let (Some(key), true) = (key, applies) else {
        return next.run(request).await;
    };
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        return next.run(request).await; // the route answers 401 itself
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
    else {
        return AppError::Validation(vec![FieldError::new(
            "idempotency-key",
            "/headers/idempotency-key",
            "must be 1 to 255 visible characters",
        )])
        .into_response();
    };
    match run(&state, &principal, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(
    state: &AppState,
    principal: &Principal,
    key: String,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let (parts, body) = request.into_parts();
    // The body limit layer outside bounds this read.
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let fingerprint = hasher.finalize().to_vec();
    let now = state.clock().now();
    let user = principal.user_id;

    let claimed = claim(state, user, &key, &fingerprint, now)
        .await
        .map_err(IntoResponse::into_response)?;
    if let Some(existing) = claimed {
        return Err(existing);
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_server_error() {
        let _ = with_pool!(state.db(), |pool| sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND idempotency_key = $2"
        )
        .bind(user)
        .bind(&key)
        .execute(pool)
        .await
        .map(drop));
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, MAX_STORED).await else {
        return Ok(
            AppError::Internal("an answer too large to keep for Idempotency-Key".into())
                .into_response(),
        );
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let stored = with_pool!(state.db(), |pool| {
        sqlx::query(
        "UPDATE idempotency_keys SET status = 'done', response_status = $1, content_type = $2, response_body = $3 \
         WHERE user_id = $4 AND idempotency_key = $5"
    )
    .bind(i32::from(parts.status.as_u16()))
    .bind(&content_type)
    .bind(body.to_vec())
    .bind(user)
    .bind(&key)
    .execute(pool)
    .await
    .map(drop)
    });
    if let Err(e) = stored {
        tracing::warn!(error = %e, "could not store the answer of an idempotent request");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

#[derive(Debug, sqlx::FromRow)]
struct Stored {
    fingerprint: Vec<u8>,
    status: String,
    response_status: Option<i32>,
    content_type: Option<String>,
    response_body: Option<Vec<u8>>,
    created_at: OffsetDateTime,
}

/// How long past `REQUEST_TIMEOUT` a `running` key is taken for abandoned.
const ABANDON_MARGIN: time::Duration = time::Duration::seconds(5);

/// Claims the key for this request: `Ok(None)` when it is ours to run, `Ok(Some(answer))` when the answer is
/// a replay, a 409 or a 422.
async fn claim(
    state: &AppState,
    user: uuid::Uuid,
    key: &str,
    fingerprint: &[u8],
    now: OffsetDateTime,
) -> Result<Option<Response>, AppError> {
    for _ in 0..2 {
        let inserted = with_pool!(state.db(), |pool| {
            sqlx::query(
            "INSERT INTO idempotency_keys (user_id, idempotency_key, fingerprint, status, created_at) \
             VALUES ($1, $2, $3, 'running', $4) ON CONFLICT (user_id, idempotency_key) DO NOTHING"
        )
        .bind(user)
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        })?;
        if inserted == 1 {
            return Ok(None);
        }
        let existing: Option<Stored> = with_pool!(state.db(), |pool| {
            sqlx::query_as(
            "SELECT fingerprint, status, response_status, content_type, response_body, created_at FROM idempotency_keys \
             WHERE user_id = $1 AND idempotency_key = $2"
        )
        .bind(user)
        .bind(key)
        .fetch_optional(pool)
        .await
        })?;
        let Some(existing) = existing else { continue };
        // A request cannot run longer than REQUEST_TIMEOUT: a key still `running` after that was abandoned
        // (a panic, a timeout, a stopped process) and is free again rather than 409 for a day.
        let abandoned = existing.status == "running"
            && now - existing.created_at
                > time::Duration::try_from(state.config().request_timeout)
                    .unwrap_or(KEPT)
                    .saturating_add(ABANDON_MARGIN);
        if abandoned || now - existing.created_at > KEPT {
            with_pool!(state.db(), |pool| {
                sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND idempotency_key = $2 AND created_at = $3")
                .bind(user)
                .bind(key)
                .bind(existing.created_at)
                .execute(pool)
                .await
                .map(drop)
            })?;
            continue;
        }
        if existing.fingerprint != fingerprint {
            return Ok(Some(
                AppError::Validation(vec![FieldError::new(
                    "idempotency-key",
                    "/headers/idempotency-key",
                    "this key was used with another request",
                )])
                .into_response(),
            ));
        }
        if existing.status == "running" {
            return Ok(Some(
                AppError::Conflict("a request with this Idempotency-Key is still running")
                    .into_response(),
            ));
        }
        let status = existing
            .response_status
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok());
        let mut replay = Response::new(Body::from(existing.response_body.unwrap_or_default()));
        *replay.status_mut() = status.unwrap_or(StatusCode::OK);
        if let Some(value) = existing
            .content_type
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            replay.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        replay
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(Some(replay));
    }
    Err(AppError::Conflict(
        "the Idempotency-Key changed hands meanwhile",
    ))
}
