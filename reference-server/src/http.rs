//! The HTTP stack around the routes (shared/ARCHITECTURE.md, the middleware stack of the server): request id
//! and trace span, panic catcher, timeout, body limit, security headers and CORS, with every error answered
//! as problem+json.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Response, StatusCode, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::error::problem;

/// Headers every answer carries unless a handler set its own (an API that serves no HTML needs no more).
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// Wraps the routes in the stack, innermost first.
pub(crate) fn stack(router: Router, config: &Config) -> Router {
    let mut router = router;
    if !config.cors_allowed_origins.is_empty() {
        let origins: Vec<HeaderValue> = config
            .cors_allowed_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("idempotency-key"),
                ]),
        );
    }
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    router
        .layer(axum::middleware::map_response(plain_errors_as_problems))
        .layer(RequestBodyLimitLayer::new(config.max_body_size))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(axum::middleware::map_response(plain_errors_as_problems))
        // Counts every answer, the ones of the layers above included.
        .layer(axum::middleware::from_fn(crate::metrics::track))
        // Outermost: every later layer's log lines run inside the request's span and carry its id.
        .layer(tower_requestid::RequestIdLayer::new())
}

/// The answer to a handler that panicked: a plain 500 problem; the panic's message goes to the log only.
#[allow(clippy::needless_pass_by_value)] // the signature tower-http's `ResponseForPanic` takes
fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "/problems/internal",
        "Internal error",
        None,
        &[],
    )
}

/// Turns the plain-text errors of the layers (413 from the body limit, 503 from the timeout, 404 and 405 from
/// the router) into problem+json like every other error.
async fn plain_errors_as_problems(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    // Only the layers' own plain-text (or empty) answers: a handler's JSON, health+json or problem stays.
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (kind, title) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("/problems/too-large", "The request body is too large"),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            ("/problems/timeout", "The request took too long")
        }
        StatusCode::NOT_FOUND => ("/problems/not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("/problems/method-not-allowed", "Method not allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("/problems/validation", "Unsupported media type"),
        _ if status.is_server_error() => ("/problems/internal", "Internal error"),
        _ => ("/problems/bad-request", "Bad request"),
    };
    let mut answer = problem(status, kind, title, None, &[]);
    // Keep what the layer said beyond the body (Allow on a 405, for one).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer.into_response()
}
