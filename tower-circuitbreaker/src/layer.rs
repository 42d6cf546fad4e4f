//! The generic tower layer: refuses with [`CircuitOpen`](crate::CircuitOpen) inside a `BoxError`.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{Classify, DefaultClassifier};
use crate::future::{Guard, ResponseFuture};
use crate::{BoxError, Breaker};

/// Puts a [`Breaker`] in front of a service of any request type. Clones, and the services it builds, share
/// the one breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    breaker: Breaker,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer over `breaker` that counts `Ok` as success and `Err` as failure.
    #[must_use]
    pub fn new(breaker: Breaker) -> Self {
        Self {
            breaker,
            classifier: DefaultClassifier,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Classifies results with `classifier` instead (any `Fn(&Result<T, E>) -> Outcome`).
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service behind a [`Breaker`]: a refused call fails with a boxed [`CircuitOpen`](crate::CircuitOpen),
/// the inner service's errors are boxed too.
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, C = DefaultClassifier> {
    inner: S,
    breaker: Breaker,
    classifier: C,
}

impl<S, C> CircuitBreaker<S, C> {
    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The inner service.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    #[must_use]
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let core = self.breaker.core();
        if let Some(ticket) = core.fast_ticket() {
            let guard = Guard::new(self.breaker.local(), ticket);
            return ResponseFuture::called(self.inner.call(req), guard, self.classifier.clone());
        }
        match core.acquire() {
            Ok(ticket) => {
                let guard = Guard::new(self.breaker.local(), ticket);
                ResponseFuture::called(self.inner.call(req), guard, self.classifier.clone())
            }
            Err(refusal) => {
                ResponseFuture::rejected(self.breaker.refusal(refusal), self.classifier.clone())
            }
        }
    }
}
