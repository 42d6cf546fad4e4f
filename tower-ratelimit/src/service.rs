//! `RateLimit<S>`: the service a [`RateLimitLayer`](crate::RateLimitLayer) wraps around another.

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::layer::{RateLimitLayer, Verdict};
use crate::policy::{ClassifyCategory, ClassifyTier};

/// A service limited by a [`RateLimitLayer`]. Clones share the layer's limiter.
pub struct RateLimit<S, T, C> {
    inner: S,
    layer: RateLimitLayer<T, C>,
}

impl<S: Clone, T, C> Clone for RateLimit<S, T, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T, C> fmt::Debug for RateLimit<S, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T, C> RateLimit<S, T, C> {
    pub(crate) fn new(inner: S, layer: RateLimitLayer<T, C>) -> Self {
        Self { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, C, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, T, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    T: ClassifyTier,
    C: ClassifyCategory,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, T, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = &self.layer.shared;
        let (plan, decide) = shared.start(&request);
        match decide.into_ready() {
            Ok(decision) => match shared.conclude(plan, &decision) {
                Verdict::Pass(headers) => {
                    ResponseFuture::calling(self.inner.call(request), headers)
                }
                Verdict::Refuse(response) => ResponseFuture::refused(response),
            },
            Err(pending) => {
                // The inner service was made ready by poll_ready: take it, leave a clone for the next call.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::deciding(pending, ready, request, plan, self.layer.clone())
            }
        }
    }
}
