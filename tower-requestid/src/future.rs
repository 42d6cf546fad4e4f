//! The response future and body of [`RequestIdService`](crate::RequestIdService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, Response};
use http_body::{Body, Frame, SizeHint};
use tracing::Span;

use crate::context::{self, RequestContext};

pin_project_lite::pin_project! {
    /// Polls the inner future inside the request span with the request context in place, then echoes the id
    /// and hands span and context on to the [`ResponseBody`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Moved into the body when the response is ready.
        span: Span,
        // Pointed at by a thread-local slot around each poll of `inner`, then moved into the body.
        context: Option<RequestContext>,
        header: HeaderName,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, span: Span, context: RequestContext, header: HeaderName) -> Self {
        Self {
            inner,
            span,
            context: Some(context),
            header,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = {
            let _enter = this.span.enter();
            ready!(context::enter(this.context.as_ref(), || inner.poll(cx)))
        };
        let mut response = polled?;
        let context = this.context.take();
        if let Some(context) = &context {
            response
                .headers_mut()
                .insert(this.header.clone(), context.id.header_value().clone());
        }
        let span = std::mem::replace(this.span, Span::none());
        Poll::Ready(Ok(response.map(|inner| ResponseBody {
            inner,
            span,
            context,
        })))
    }
}

pin_project_lite::pin_project! {
    /// The response body of [`RequestIdService`](crate::RequestIdService): the handler's body, polled inside
    /// the request span with the request context in place, so that log lines and outbound calls made while
    /// a body streams (an export, server-sent events, a proxied upstream body) carry the request's id too.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        span: Span,
        context: Option<RequestContext>,
    }
}

impl<B> ResponseBody<B> {
    /// The handler's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The handler's body, by value (the span and context are dropped).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _enter = this.span.enter();
        let inner = this.inner;
        context::enter(this.context.as_ref(), || inner.poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
