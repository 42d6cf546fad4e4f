//! The response future of [`RequestIdService`](crate::RequestIdService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, Response};
use tracing::Span;

use crate::context::{self, RequestContext};
use crate::layer::X_REQUEST_ID;

pin_project_lite::pin_project! {
    /// Polls the inner future inside the request span with the request context in place, then echoes the id.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // Pointed at by a thread-local slot around each poll of `inner`; its id is echoed at the end.
        context: Option<RequestContext>,
        header: HeaderName,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        span: Span,
        context: Option<RequestContext>,
        header: HeaderName,
    ) -> Self {
        Self {
            inner,
            span,
            context,
            header,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let mut response = ready!(context::in_request(
            this.span,
            this.context.as_ref(),
            || { inner.poll(cx) }
        ))?;
        if let Some(context) = this.context.take() {
            // Moved out, not cloned: the future is done with it.
            let header = std::mem::replace(this.header, X_REQUEST_ID);
            response
                .headers_mut()
                .insert(header, context.id.into_header_value());
        }
        Poll::Ready(Ok(response))
    }
}
