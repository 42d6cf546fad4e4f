//! Request ids and W3C trace context for tower services, with JSON logs that carry both on every line.
//!
//! [`RequestIdLayer`] keeps a valid incoming `X-Request-ID` or makes a UUIDv7, joins the caller's trace from
//! `traceparent`, runs the request inside a span that records `request_id` and `trace_id`, and echoes the
//! id. [`OutboundLayer`] forwards both on calls to upstream APIs. [`logging::init`] installs JSON logs with
//! `request_id` and `trace_id` as top-level fields of every line.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_requestid::{RequestId, RequestIdLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), std::convert::Infallible> {
//! let service = ServiceBuilder::new().layer(RequestIdLayer::new()).service(service_fn(
//!     |req: Request<()>| async move {
//!         let id = req.extensions().get::<RequestId>().cloned();
//!         tracing::info!("handling"); // carries request_id and trace_id
//!         Ok::<_, std::convert::Infallible>(Response::new(id.map(|id| id.to_string())))
//!     },
//! ));
//!
//! // A valid incoming id is kept and echoed.
//! let req = Request::builder().header("x-request-id", "pay-sync-42").body(()).unwrap();
//! let res = service.clone().oneshot(req).await?;
//! assert_eq!(res.headers()["x-request-id"], "pay-sync-42");
//! assert_eq!(res.body().as_deref(), Some("pay-sync-42"));
//!
//! // An invalid one is replaced by a UUIDv7, never echoed.
//! let req = Request::builder().header("x-request-id", "a b").body(()).unwrap();
//! let res = service.oneshot(req).await?;
//! assert_eq!(res.headers()["x-request-id"].len(), 36);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `logging` | yes | [`logging::init`] and [`logging::JsonLayer`] (tracing-subscriber, serde_json) |
//! | `axum` | no | [`RequestId`], [`TraceContext`] and [`RequestContext`] as axum extractors |
//! | `opentelemetry` | no | the request span joins the caller's trace in OpenTelemetry; OTLP export from `OTEL_EXPORTER_OTLP_ENDPOINT` ([`otel`]) |
//! | `reqwest` | no | [`OutboundLayer`] also wraps `reqwest::Client` (a `tower::Service<reqwest::Request>`) |
//! | `sentry` | no | a Sentry hub per request with the request id as a tag on every event ([`sentry`]) |
//!
//! # Pitfalls
//!
//! - **Order.** Put [`RequestIdLayer`] outermost (first in a `ServiceBuilder`, last in axum's
//!   `Router::layer` chain), so that every other layer's logs run inside its span and carry the id.
//! - **Trust.** Incoming ids are kept when they pass the rule, but they come from the client: use them to
//!   correlate, never to authorize. At the edge, [`RequestIdLayer::ignore_incoming`] makes every id ours.
//! - **Spawned tasks.** The request span and [`RequestContext::current`] follow the request's own future.
//!   Work moved to `tokio::spawn` needs `.instrument(Span::current())` and [`RequestContext::scope`].
//! - **Streaming bodies.** A response body is polled after the response has left the layer, outside its
//!   span. When bodies stream (exports, server-sent events, proxied bodies), add [`StreamingBodyLayer`]
//!   right inside [`RequestIdLayer`], so their log lines and outbound calls carry the id too.
//! - **Requests handed to another task.** A request passed to a queue worker or moved into `tokio::spawn`,
//!   and a layer's `call` on the worker of a `tower::buffer::Buffer` (its future still runs in ours), run
//!   outside the span and outside the slot that [`RequestContext::current`], the axum extractors of the
//!   trace context and [`OutboundLayer`] read; only the extensions travel there. Turn on
//!   [`RequestIdLayer::trace_context_extension`] so they carry the [`TraceContext`] next to the
//!   [`RequestId`], and run outbound calls inside [`RequestContext::scope`] with the two (for an
//!   `http::Request` client, putting them into the outbound request's extensions works too).
//! - **Logged events.** One WARN event per refused incoming id (`rejected`, escaped and cut to 64 bytes,
//!   `rejected_len`, `suppressed`), at most one per second per layer; nothing else is logged per request.
//! - **Span level.** The span is INFO by default; a filter above INFO drops it and the ids with it.
//! - **Read the id from extensions** (or the axum extractor), not from the request header: by default the
//!   layer only removes an invalid header and does not write a generated id into it (see
//!   [`RequestIdLayer::set_request_header`]).
// Two `unsafe` blocks, each allowed where it is (`RequestId::from_generated`, `RequestContext::current`),
// rather than `#![allow(unsafe_code)]` for the whole crate; the workspace lint denies it everywhere else.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
mod axum;
mod body;
mod context;
mod future;
mod id;
mod layer;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "opentelemetry")]
pub mod otel;
mod outbound;
mod rng;
#[cfg(feature = "sentry")]
pub mod sentry;
mod service;
pub mod trace;

#[cfg(feature = "axum")]
pub use crate::axum::MissingRequestId;
pub use crate::body::{
    StreamingBody, StreamingBodyFuture, StreamingBodyLayer, StreamingBodyService,
};
pub use crate::context::{RequestContext, Scoped};
pub use crate::future::ResponseFuture;
pub use crate::id::{InvalidRequestId, MAX_LEN, MakeRequestId, RequestId, Ulid, UuidV4, UuidV7};
pub use crate::layer::{RequestIdLayer, X_REQUEST_ID};
pub use crate::outbound::{Outbound, OutboundLayer, OutboundRequest, inject_headers};
pub use crate::service::RequestIdService;
pub use crate::trace::{SpanId, TraceContext, TraceFlags, TraceId, TraceParent};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
