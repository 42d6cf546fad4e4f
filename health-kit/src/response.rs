//! An endpoint's answer, ready to send.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::status::Status;

/// The media type of every answer (draft-inadarei-api-health-check-06, section 7).
pub const HEALTH_JSON: &str = "application/health+json";

/// One of the four probe endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/health/live`: the process answers; no external check.
    Live,
    /// `/health/ready`: critical checks and the lifecycle, never details.
    Ready,
    /// `/health/startup`: the start-up flag.
    Startup,
    /// `/health/status`: every check, details per the detail policy.
    Status,
}

impl Endpoint {
    /// Every endpoint, in the order above.
    pub const ALL: [Self; 4] = [Self::Live, Self::Ready, Self::Startup, Self::Status];

    /// The default path: `/health/live`, `/health/ready`, `/health/startup`, `/health/status`.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Live => "/health/live",
            Self::Ready => "/health/ready",
            Self::Startup => "/health/startup",
            Self::Status => "/health/status",
        }
    }

    /// The endpoint at a default path.
    #[must_use]
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }
}

/// What an endpoint answers: a status code, a prebuilt `application/health+json` body and `Cache-Control`.
#[derive(Debug, Clone)]
pub struct HealthResponse {
    health: Status,
    body: Bytes,
    cache_control: HeaderValue,
}

impl HealthResponse {
    pub(crate) fn new(health: Status, body: Bytes, cache_control: HeaderValue) -> Self {
        Self {
            health,
            body,
            cache_control,
        }
    }

    /// The health the body reports.
    #[must_use]
    pub fn health(&self) -> Status {
        self.health
    }

    /// 200 for `pass` and `warn`, 503 for `fail`.
    #[must_use]
    pub fn status_code(&self) -> StatusCode {
        self.health.http_status()
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `Cache-Control` value (`max-age=N`).
    #[must_use]
    pub fn cache_control(&self) -> &HeaderValue {
        &self.cache_control
    }

    /// An HTTP response with `Content-Type: application/health+json` and `Cache-Control`.
    #[must_use]
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status_code();
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
        headers.insert(CACHE_CONTROL, self.cache_control);
        response
    }
}
