//! The HTTP layer: classifies responses by status and answers a refused call itself with 503 problem+json.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::CircuitOpen;
use crate::body::ResponseBody;
use crate::classify::{Classify, HttpClassifier};
use crate::future::{Guard, HttpResponseFuture};
use crate::registry::BreakerRegistry;
use crate::state::Breaker;

/// Where the layer's breaker comes from.
#[derive(Debug, Clone)]
enum Source {
    /// One breaker for every request.
    One(Breaker),
    /// The registry's breaker for the request URI's authority (`host[:port]`).
    PerHost(BreakerRegistry),
}

/// Builds the answer to a refused call.
pub type FallbackFn = Arc<dyn Fn(&CircuitOpen) -> Response<Bytes> + Send + Sync>;

/// Puts a [`Breaker`] in front of an HTTP service: 5xx, 429 and errors count as failures (see
/// [`HttpClassifier`]), and a refused call is answered with the fallback, by default
/// [`problem_response`] (503 problem+json with `Retry-After`), keeping the inner service's error type.
#[derive(Clone)]
pub struct HttpCircuitBreakerLayer<C = HttpClassifier> {
    source: Source,
    classifier: C,
    fallback: FallbackFn,
}

impl<C: fmt::Debug> fmt::Debug for HttpCircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCircuitBreakerLayer")
            .field("source", &self.source)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl HttpCircuitBreakerLayer {
    /// A layer that picks, for each request, the registry's breaker for the authority (`host[:port]`) of
    /// the request URI (absolute URIs, as an HTTP client sends them; `"unknown"` when there is none). For an
    /// outbound client calling several upstreams: each host trips on its own. A lookup takes the registry's
    /// read lock; a layer over one breaker ([`HttpCircuitBreakerLayer::new`]) takes none.
    #[must_use]
    pub fn per_host(registry: BreakerRegistry) -> Self {
        Self {
            source: Source::PerHost(registry),
            classifier: HttpClassifier,
            fallback: Arc::new(problem_response),
        }
    }

    /// A layer over `breaker` with the default classifier and fallback.
    #[must_use]
    pub fn new(breaker: Breaker) -> Self {
        Self {
            source: Source::One(breaker),
            classifier: HttpClassifier,
            fallback: Arc::new(problem_response),
        }
    }
}

impl<C> HttpCircuitBreakerLayer<C> {
    /// Classifies responses with `classifier` instead.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> HttpCircuitBreakerLayer<C2> {
        HttpCircuitBreakerLayer {
            source: self.source,
            classifier,
            fallback: self.fallback,
        }
    }

    /// Answers refused calls with `fallback` instead (a cached copy, a default value, another 503).
    #[must_use]
    pub fn fallback(
        mut self,
        fallback: impl Fn(&CircuitOpen) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Arc::new(fallback);
        self
    }

    /// The breaker, when the layer has one (`None` for [`HttpCircuitBreakerLayer::per_host`]).
    #[must_use]
    pub fn breaker(&self) -> Option<&Breaker> {
        match &self.source {
            Source::One(b) => Some(b),
            Source::PerHost(_) => None,
        }
    }
}

impl<S, C: Clone> Layer<S> for HttpCircuitBreakerLayer<C> {
    type Service = HttpCircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpCircuitBreaker {
            inner,
            source: self.source.clone(),
            classifier: self.classifier.clone(),
            fallback: Arc::clone(&self.fallback),
        }
    }
}

/// An HTTP service behind a [`Breaker`]; see [`HttpCircuitBreakerLayer`].
#[derive(Clone)]
pub struct HttpCircuitBreaker<S, C = HttpClassifier> {
    inner: S,
    source: Source,
    classifier: C,
    fallback: FallbackFn,
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for HttpCircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCircuitBreaker")
            .field("inner", &self.inner)
            .field("source", &self.source)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl<S, C> HttpCircuitBreaker<S, C> {
    /// The breaker, when the service has one (`None` for [`HttpCircuitBreakerLayer::per_host`]).
    #[must_use]
    pub fn breaker(&self) -> Option<&Breaker> {
        match &self.source {
            Source::One(b) => Some(b),
            Source::PerHost(_) => None,
        }
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

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for HttpCircuitBreaker<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Classify<Response<ResBody>, S::Error> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let per_host;
        let breaker = match &self.source {
            Source::One(b) => b,
            Source::PerHost(registry) => {
                per_host = registry.for_uri(req.uri());
                &per_host
            }
        };
        let core = breaker.core();
        if let Some(ticket) = core.fast_ticket() {
            let guard = Guard::new(breaker.local(), ticket);
            return HttpResponseFuture::called(
                self.inner.call(req),
                guard,
                self.classifier.clone(),
            );
        }
        match core.acquire() {
            Ok(ticket) => {
                let guard = Guard::new(breaker.local(), ticket);
                HttpResponseFuture::called(self.inner.call(req), guard, self.classifier.clone())
            }
            Err(refusal) => {
                let refusal = breaker.refusal(refusal);
                HttpResponseFuture::rejected((self.fallback)(&refusal), self.classifier.clone())
            }
        }
    }
}

/// The default fallback: `503 Service Unavailable`, `Retry-After` = whole seconds until the next probe
/// (rounded up, at least 1), and an RFC 9457 body of type `/problems/circuit-open`.
#[must_use]
pub fn problem_response(refusal: &CircuitOpen) -> Response<Bytes> {
    let secs = refusal.retry_after_secs();
    let mut name = String::with_capacity(refusal.name().len());
    for c in refusal.name().chars() {
        match c {
            '"' => name.push_str("\\\""),
            '\\' => name.push_str("\\\\"),
            c if c.is_control() => name.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => name.push(c),
        }
    }
    let body = format!(
        "{{\"type\":\"/problems/circuit-open\",\"title\":\"An upstream service is unavailable\",\
         \"status\":503,\"detail\":\"circuit {name} is open; retry after {secs} s\",\"upstream\":\"{name}\"}}"
    );
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}
