//! `/health/live` and `/health/ready` in `application/health+json` (draft-inadarei-api-health-check).
//!
//! Liveness answers from the process alone. Readiness asks the database for one round trip, bounded by a
//! timeout so a hung database turns it to 503 rather than hanging the probe, and answers 503 while draining.
//! health-kit (issue 6) replaces this with cached, concurrent checks.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// Longer than a healthy round trip by far, shorter than a kubelet's patience for the probe.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

fn health(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/health+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn live() -> Response {
    health(StatusCode::OK, r#"{"status":"pass"}"#)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        return health(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"fail","output":"draining"}"#,
        );
    }
    match tokio::time::timeout(READY_TIMEOUT, state.db().ping()).await {
        Ok(Ok(())) => health(StatusCode::OK, r#"{"status":"pass"}"#),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            health(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"fail"}"#)
        }
        Err(_) => {
            tracing::warn!(timeout_ms = 2000, "readiness: database check timed out");
            health(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"fail"}"#)
        }
    }
}
