//! Sentry wiring (feature `sentry`): a hub per request, tagged with the request id and trace id.
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(RequestIdLayer::new())                  // outermost: makes the id
//!     .layer(tower_requestid::sentry::layer())       // a hub per request, tags request_id and trace_id
//!     .layer(sentry::integrations::tower::SentryHttpLayer::new()) // request details on events
//! ```
//!
//! Every event captured while the request runs (a panic, `sentry::capture_error`, an ERROR event through
//! `sentry-tracing`) then carries the tag `request_id`, so a Sentry issue leads straight to the log lines.

use std::sync::Arc;

use http::Request;
use sentry::Hub;
use sentry_tower::{HubProvider, SentryLayer};

use crate::context::RequestContext;
use crate::id::RequestId;

pub use sentry::ClientInitGuard;

/// Makes a new hub per request from the current one and tags its scope with the request's id (from the
/// extensions) and trace id (from the extensions when
/// [`trace_context_extension`](crate::RequestIdLayer::trace_context_extension) put it there, else from
/// [`RequestContext::current`](crate::RequestContext::current), which the layer sets while it calls the
/// layers inside it).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdHub;

impl<B> HubProvider<Arc<Hub>, Request<B>> for RequestIdHub {
    fn hub(&self, request: &Request<B>) -> Arc<Hub> {
        let hub = Arc::new(Hub::new_from_top(Hub::current()));
        let id = request.extensions().get::<RequestId>();
        let trace = RequestContext::trace_in(request.extensions());
        hub.configure_scope(|scope| {
            if let Some(id) = id {
                scope.set_tag("request_id", id.as_str());
            }
            if let Some(trace) = trace {
                scope.set_tag("trace_id", trace.trace_id());
            }
        });
        hub
    }
}

/// The sentry-tower layer with [`RequestIdHub`]: place it inside [`RequestIdLayer`](crate::RequestIdLayer).
#[must_use]
pub fn layer<B>() -> SentryLayer<RequestIdHub, Arc<Hub>, Request<B>> {
    SentryLayer::new(RequestIdHub)
}

/// Starts the Sentry client from `SENTRY_DSN` (unset or empty: `Ok(None)` and Sentry stays off),
/// `SENTRY_TRACES_SAMPLE_RATE` (default 0.1) and `ENVIRONMENT`. Keep the guard alive in `main`; dropping it
/// flushes pending events.
///
/// # Errors
///
/// [`InvalidDsn`] when `SENTRY_DSN` is set but is not a DSN (checked here so that `sentry::init` never
/// panics on it).
pub fn init_from_env() -> Result<Option<ClientInitGuard>, InvalidDsn> {
    let Some(dsn) = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let dsn = dsn
        .trim()
        .parse::<sentry::types::Dsn>()
        .map_err(|_| InvalidDsn)?;
    let rate = std::env::var("SENTRY_TRACES_SAMPLE_RATE")
        .ok()
        .and_then(|v| v.trim().parse::<f32>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
        .unwrap_or(0.1);
    let environment = std::env::var("ENVIRONMENT")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut options = sentry::ClientOptions::new().traces_sample_rate(rate);
    if let Some(environment) = environment {
        options = options.environment(environment);
    }
    options.dsn = Some(dsn);
    Ok(Some(sentry::init(options)))
}

/// `SENTRY_DSN` is not a valid DSN.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("SENTRY_DSN is not a valid DSN")]
#[non_exhaustive]
pub struct InvalidDsn;
