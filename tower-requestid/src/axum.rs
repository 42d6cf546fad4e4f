//! axum extractors (feature `axum`): [`RequestId`], [`TraceContext`] and [`RequestContext`].

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::context::RequestContext;
use crate::id::RequestId;
use crate::trace::TraceContext;

/// The rejection when [`RequestIdLayer`](crate::RequestIdLayer) is not in front of the handler: a 500, since
/// that is a wiring mistake of the server, not of the client. ([`TraceContext`] and [`RequestContext`] are
/// also missing when the request was handed to another task without
/// [`RequestIdLayer::trace_context_extension`](crate::RequestIdLayer::trace_context_extension).)
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request id layer missing: add RequestIdLayer in front of this route")]
#[non_exhaustive]
pub struct MissingRequestId;

impl IntoResponse for MissingRequestId {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "request id layer missing",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingRequestId)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// From the extensions when the layer put it there, else from the request being served
/// ([`RequestContext::current`]).
impl<S: Send + Sync> FromRequestParts<S> for TraceContext {
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        RequestContext::trace_in(&parts.extensions).ok_or(MissingRequestId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or(MissingRequestId)?;
        let trace = RequestContext::trace_in(&parts.extensions).ok_or(MissingRequestId)?;
        Ok(Self { id, trace })
    }
}
