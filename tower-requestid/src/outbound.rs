//! `OutboundLayer`: forwards the request id and trace context to upstream calls.

use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::context::RequestContext;
use crate::id::RequestId;
use crate::layer::X_REQUEST_ID;
use crate::trace::{TRACEPARENT, TRACESTATE, TraceContext};

/// Sets `x-request-id`, `traceparent` and `tracestate` on outbound requests of any tower HTTP client
/// (hyper-util's `Client`, any `Service<http::Request<B>>`, and reqwest's `Client` with the feature `reqwest`).
///
/// The values come from the outbound request's own extensions when it carries a [`RequestId`] or
/// [`TraceContext`] (an `http::Request`; reqwest keeps its request's extensions private), otherwise from the
/// request being served on this thread ([`RequestContext::current`], which [`RequestContext::scope`] sets
/// for work on other tasks).
/// `traceparent` is written as version `00` with this service's span id as `parent-id`, so the upstream's
/// span becomes a child of ours. A header the caller set itself is left alone. Outside any request, nothing
/// is added.
#[derive(Clone, Debug)]
pub struct OutboundLayer {
    header: HeaderName,
}

impl OutboundLayer {
    /// Forwards the id as `x-request-id`.
    #[must_use]
    pub fn new() -> Self {
        Self {
            header: X_REQUEST_ID,
        }
    }

    /// Forwards the id under another header name.
    #[must_use]
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

impl Default for OutboundLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for OutboundLayer {
    type Service = Outbound<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Outbound {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service made by [`OutboundLayer`].
#[derive(Clone, Debug)]
pub struct Outbound<S> {
    inner: S,
    header: HeaderName,
}

impl<S> Outbound<S> {
    /// The inner client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner client, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Writes the headers that carry `id` and `trace` (`x-request-id` or `header`, `traceparent` with this
/// service's span as parent, `tracestate`) into `headers`, leaving any already set alone. For clients that
/// are not tower services: `inject_headers(req.headers_mut(), &X_REQUEST_ID, Some(&ctx.id), Some(&ctx.trace))`.
pub fn inject_headers(
    headers: &mut HeaderMap,
    header: &HeaderName,
    id: Option<&RequestId>,
    trace: Option<&TraceContext>,
) {
    if let Some(id) = id
        && !headers.contains_key(header)
    {
        headers.insert(header.clone(), id.header_value().clone());
    }
    if let Some(trace) = trace
        && !headers.contains_key(&TRACEPARENT)
    {
        headers.insert(TRACEPARENT, trace.outbound_traceparent().to_header_value());
        // tracestate travels only with the traceparent it belongs to; a stale one is dropped.
        match trace.tracestate() {
            Some(state) => headers.insert(TRACESTATE, HeaderValue::clone(state)),
            None => headers.remove(&TRACESTATE),
        };
    }
}

/// A request type [`Outbound`] can write headers into: `http::Request<B>` (hyper-util, any tower HTTP
/// client) and, with the feature `reqwest`, `reqwest::Request` (reqwest's `Client` is a
/// `tower::Service<reqwest::Request>`).
pub trait OutboundRequest {
    /// The request's headers.
    fn headers_mut(&mut self) -> &mut HeaderMap;

    /// An id and trace context the caller attached to this request itself (they win over the current
    /// request's). The default has none.
    fn attached(&self) -> (Option<RequestId>, Option<TraceContext>) {
        (None, None)
    }
}

impl<B> OutboundRequest for Request<B> {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        Request::headers_mut(self)
    }

    fn attached(&self) -> (Option<RequestId>, Option<TraceContext>) {
        (
            self.extensions().get::<RequestId>().cloned(),
            self.extensions().get::<TraceContext>().cloned(),
        )
    }
}

#[cfg(feature = "reqwest")]
impl OutboundRequest for reqwest::Request {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        reqwest::Request::headers_mut(self)
    }
}

impl<S, R> Service<R> for Outbound<S>
where
    S: Service<R>,
    R: OutboundRequest,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let (id, trace) = req.attached();
        let current = if id.is_some() && trace.is_some() {
            None
        } else {
            RequestContext::current()
        };
        let id = id.or_else(|| current.as_ref().map(|c| c.id.clone()));
        let trace = trace.or_else(|| current.map(|c| c.trace));
        inject_headers(req.headers_mut(), &self.header, id.as_ref(), trace.as_ref());
        self.inner.call(req)
    }
}
