//! The tower shell: one service for the four paths, and one per endpoint for routers.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::registry::Health;
use crate::response::Endpoint;

/// Answers `/health/live`, `/health/ready`, `/health/startup` and `/health/status`; 404 for any other path,
/// 405 for methods other than GET and HEAD.
///
/// Every answer comes from memory: no check runs on a request, no allocation happens for the body, and the
/// future is `std::future::Ready`.
#[derive(Debug, Clone)]
pub struct HealthService {
    health: Health,
}

impl HealthService {
    /// A service answering from `health`.
    #[must_use]
    pub fn new(health: Health) -> Self {
        Self { health }
    }

    /// The registry it answers from.
    #[must_use]
    pub fn health(&self) -> &Health {
        &self.health
    }
}

impl<B> Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = match Endpoint::from_path(request.uri().path()) {
            Some(endpoint) => answer(&self.health, endpoint, request),
            None => empty(StatusCode::NOT_FOUND),
        };
        ready(Ok(response))
    }
}

/// Answers one endpoint at whatever path a router mounts it on.
#[derive(Debug, Clone)]
pub struct EndpointService {
    health: Health,
    endpoint: Endpoint,
}

impl EndpointService {
    /// A service answering `endpoint` from `health`.
    #[must_use]
    pub fn new(health: Health, endpoint: Endpoint) -> Self {
        Self { health, endpoint }
    }
}

impl<B> Service<Request<B>> for EndpointService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(answer(&self.health, self.endpoint, request)))
    }
}

impl Health {
    /// A tower service answering the four default paths.
    #[must_use]
    pub fn service(&self) -> HealthService {
        HealthService::new(self.clone())
    }

    /// A tower service answering one endpoint, for mounting at a path of your own.
    #[must_use]
    pub fn endpoint(&self, endpoint: Endpoint) -> EndpointService {
        EndpointService::new(self.clone(), endpoint)
    }
}

pub(crate) fn answer<B>(
    health: &Health,
    endpoint: Endpoint,
    request: Request<B>,
) -> Response<Full<Bytes>> {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let head = method == Method::HEAD;
    let answer = match endpoint {
        Endpoint::Live => health.live(),
        Endpoint::Ready => health.ready(),
        Endpoint::Startup => health.startup(),
        Endpoint::Status if health.detail_policy().needs_request() => {
            let (parts, _body) = request.into_parts();
            health.status_for(&parts)
        }
        Endpoint::Status => health.status_report(health.detail_policy().allows_without_request()),
    };
    let mut response = answer.into_response();
    if head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
