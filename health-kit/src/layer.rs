//! A layer that answers the four health paths in front of any HTTP service and passes everything else on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::registry::Health;
use crate::response::Endpoint;
use crate::service::answer;

/// Answers `/health/live`, `/health/ready`, `/health/startup` and `/health/status` from a [`Health`] and
/// passes every other request to the inner service, for servers without a router (hyper, plain tower).
///
/// Put it outermost, before authentication, rate limiting and timeouts: probes carry no token and must not be
/// refused or counted. The inner service's errors are kept.
#[derive(Debug, Clone)]
pub struct HealthLayer {
    health: Health,
}

impl HealthLayer {
    /// A layer answering from `health`.
    #[must_use]
    pub fn new(health: Health) -> Self {
        Self { health }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = WithHealth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithHealth {
            inner,
            health: self.health.clone(),
        }
    }
}

/// The service made by [`HealthLayer`]. Clones share the registry.
#[derive(Debug, Clone)]
pub struct WithHealth<S> {
    inner: S,
    health: Health,
}

impl<S> WithHealth<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this, giving back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WithHealth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<HealthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match Endpoint::from_path(request.uri().path()) {
            Some(endpoint) => ResponseFuture::health(answer(&self.health, endpoint, request)),
            None => ResponseFuture::inner(self.inner.call(request)),
        }
    }
}

pin_project! {
    /// The future of [`WithHealth`]: a health answer ready at once, or the inner service's future.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: FutureKind<F>,
    }
}

pin_project! {
    #[derive(Debug)]
    #[project = FutureKindProj]
    enum FutureKind<F> {
        Health { response: Option<Response<Full<Bytes>>> },
        Inner { #[pin] future: F },
    }
}

impl<F> ResponseFuture<F> {
    fn health(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: FutureKind::Health {
                response: Some(response),
            },
        }
    }

    fn inner(future: F) -> Self {
        Self {
            kind: FutureKind::Inner { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<HealthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::Health { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response.map(HealthBody::health))),
                // Polled again after completion: a contract breach by the caller; stay pending, never panic.
                None => Poll::Pending,
            },
            FutureKindProj::Inner { future } => {
                future.poll(cx).map_ok(|r| r.map(HealthBody::inner))
            }
        }
    }
}

pin_project! {
    /// The body of [`WithHealth`]'s responses: a health answer or the inner service's body.
    #[derive(Debug)]
    pub struct HealthBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[derive(Debug)]
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Health { #[pin] body: Full<Bytes> },
        Inner { #[pin] body: B },
    }
}

impl<B> HealthBody<B> {
    fn health(body: Full<Bytes>) -> Self {
        Self {
            kind: BodyKind::Health { body },
        }
    }

    fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }
}

impl<B> Body for HealthBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::Health { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            BodyKindProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Health { body } => body.is_end_stream(),
            BodyKind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Health { body } => body.size_hint(),
            BodyKind::Inner { body } => body.size_hint(),
        }
    }
}
