//! The response futures of the layers: named types, no boxing, no allocation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::classify::Classify;
use crate::error::CircuitOpen;
use crate::state::{StripeRef, Ticket};
use crate::{BoxError, Outcome};

/// A call in flight: records its outcome once; dropped before that, it records [`Outcome::Ignored`].
#[derive(Debug)]
pub(crate) struct Guard {
    core: Arc<StripeRef>,
    ticket: Ticket,
}

impl Guard {
    pub(crate) fn new(core: Arc<StripeRef>, ticket: Ticket) -> Self {
        Self { core, ticket }
    }

    #[inline]
    fn record(&mut self, outcome: Outcome) {
        if let Some(t) = self.ticket.take() {
            self.core.0.record(t, outcome);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.record(Outcome::Ignored);
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, R> {
        Called { #[pin] future: F, guard: Guard },
        Rejected { refusal: Option<R> },
    }
}

pin_project! {
    /// The future of [`CircuitBreaker`](crate::CircuitBreaker).
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, CircuitOpen>,
        classifier: C,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(future: F, guard: Guard, classifier: C) -> Self {
        Self {
            kind: Kind::Called { future, guard },
            classifier,
        }
    }

    pub(crate) fn rejected(refusal: CircuitOpen, classifier: C) -> Self {
        Self {
            kind: Kind::Rejected {
                refusal: Some(refusal),
            },
            classifier,
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future, guard } => {
                let result = ready!(future.poll(cx));
                guard.record(this.classifier.classify(&result));
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { refusal } => Poll::Ready(Err(match refusal.take() {
                Some(r) => Box::new(r),
                None => "circuit breaker future polled after completion".into(),
            })),
        }
    }
}

pin_project! {
    /// The future of [`HttpCircuitBreaker`](crate::HttpCircuitBreaker).
    pub struct HttpResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, Response<Bytes>>,
        classifier: C,
    }
}

impl<F, C> HttpResponseFuture<F, C> {
    pub(crate) fn called(future: F, guard: Guard, classifier: C) -> Self {
        Self {
            kind: Kind::Called { future, guard },
            classifier,
        }
    }

    pub(crate) fn rejected(fallback: Response<Bytes>, classifier: C) -> Self {
        Self {
            kind: Kind::Rejected {
                refusal: Some(fallback),
            },
            classifier,
        }
    }
}

impl<F, C> std::fmt::Debug for HttpResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C, B, E> Future for HttpResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: Classify<Response<B>, E>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future, guard } => {
                let result = ready!(future.poll(cx));
                guard.record(this.classifier.classify(&result));
                Poll::Ready(result.map(|r| r.map(ResponseBody::inner)))
            }
            KindProj::Rejected { refusal } => {
                let res = refusal.take().unwrap_or_else(|| {
                    let mut r = Response::new(Bytes::new());
                    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    r
                });
                Poll::Ready(Ok(res.map(ResponseBody::fallback)))
            }
        }
    }
}
