//! `OutboundLayer`: forwards the request id and trace context to upstream calls.

use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::context::RequestContext;
use crate::id::RequestId;
use crate::layer::X_REQUEST_ID;
use crate::trace::{TRACEPARENT, TRACESTATE, TraceContext};

/// Sets `x-request-id`, `traceparent` and `tracestate` on outbound requests of any tower HTTP client
/// (hyper-util's `Client`, reqwest through its tower support, any `Service<http::Request<B>>`).
///
/// The values come from the outbound request's own extensions when it carries a [`RequestId`] or
/// [`TraceContext`], otherwise from the request being served on this thread ([`RequestContext::current`]).
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

/// Writes the headers that carry `id` and `trace` onto `request`, leaving any already set alone.
pub fn inject<B>(
    request: &mut Request<B>,
    header: &HeaderName,
    id: Option<&RequestId>,
    trace: Option<&TraceContext>,
) {
    let headers = request.headers_mut();
    if let Some(id) = id
        && !headers.contains_key(header)
    {
        headers.insert(header.clone(), id.header_value().clone());
    }
    if let Some(trace) = trace
        && !headers.contains_key(&TRACEPARENT)
    {
        headers.insert(TRACEPARENT, trace.outbound_traceparent().to_header_value());
        // A tracestate without our traceparent would belong to another trace (W3C 3.3.1).
        match trace.tracestate() {
            Some(state) => headers.insert(TRACESTATE, HeaderValue::clone(state)),
            None => headers.remove(&TRACESTATE),
        };
    }
}

impl<S, B> Service<Request<B>> for Outbound<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        let trace = req.extensions().get::<TraceContext>().cloned();
        if id.is_some() && trace.is_some() {
            inject(&mut req, &self.header, id.as_ref(), trace.as_ref());
        } else if let Some(current) = RequestContext::current() {
            inject(
                &mut req,
                &self.header,
                Some(id.as_ref().unwrap_or(&current.id)),
                Some(trace.as_ref().unwrap_or(&current.trace)),
            );
        } else {
            inject(&mut req, &self.header, id.as_ref(), trace.as_ref());
        }
        self.inner.call(req)
    }
}
