//! `StreamingBodyLayer`: response bodies polled inside the request's span and context.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::context::{self, RequestContext};

/// Polls response bodies inside the request's span, with [`RequestContext::current`] in place, so that log
/// lines and outbound calls made while a body streams (an export, server-sent events, a proxied upstream
/// body) carry the request's id too.
///
/// A body is polled after the response has left [`RequestIdLayer`](crate::RequestIdLayer), outside its span.
/// Put this layer inside it (next in a `ServiceBuilder`, just before it in axum's `Router::layer` chain):
/// when called, it takes the current span and context, which `RequestIdLayer` sets around the inner call,
/// and hands them to the body. Outside `RequestIdLayer` it has no request to carry: the body then streams
/// in whatever span was current and without a context.
///
/// It costs 39 to 77 ns a request here (`ours-streaming-body` against `ours` in the `requestid` bench,
/// eight runs), up to a quarter of the id layer. Built into `RequestIdLayer`, wrapping every body cost 35 to 40 ns on every
/// request; as a layer of its own it costs more where it is used, and nothing where bodies are ready at
/// once.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamingBodyLayer;

impl StreamingBodyLayer {
    /// The layer.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for StreamingBodyLayer {
    type Service = StreamingBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StreamingBodyService { inner }
    }
}

/// The service made by [`StreamingBodyLayer`].
#[derive(Clone, Debug)]
pub struct StreamingBodyService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StreamingBodyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<StreamingBody<ResBody>>;
    type Error = S::Error;
    type Future = StreamingBodyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        StreamingBodyFuture {
            inner: self.inner.call(req),
            span: Span::current(),
            context: RequestContext::current(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`StreamingBodyService`]: hands the span and context to the body.
    #[derive(Debug)]
    pub struct StreamingBodyFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        context: Option<RequestContext>,
    }
}

impl<F, B, E> Future for StreamingBodyFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<StreamingBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let span = std::mem::replace(this.span, Span::none());
        let context = this.context.take();
        Poll::Ready(Ok(response.map(|inner| StreamingBody {
            inner,
            span,
            context,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body polled inside the request's span and context; see [`StreamingBodyLayer`].
    #[derive(Debug)]
    pub struct StreamingBody<B> {
        #[pin]
        inner: B,
        span: Span,
        context: Option<RequestContext>,
    }
}

impl<B> StreamingBody<B> {
    /// The handler's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The handler's body, by value (the span and context are dropped).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for StreamingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let inner = this.inner;
        context::in_request(this.span, this.context.as_ref(), || inner.poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
