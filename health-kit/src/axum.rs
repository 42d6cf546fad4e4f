//! An axum router for the four endpoints (feature `axum`).

use crate::registry::Health;
use crate::response::Endpoint;

/// A router answering `/health/live`, `/health/ready`, `/health/startup` and `/health/status` from `health`;
/// merge it into the application's router (outside authentication and rate limiting: probes carry no token).
///
/// ```
/// # async fn demo() -> Result<(), health_kit::ConfigError> {
/// let health = health_kit::Health::builder().build()?;
/// let app: axum::Router = axum::Router::new().merge(health_kit::axum::router(&health));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub fn router<S>(health: &Health) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Endpoint::ALL
        .into_iter()
        .fold(axum::Router::new(), |router, endpoint| {
            router.route_service(endpoint.path(), health.endpoint(endpoint))
        })
}

impl Health {
    /// The same as [`router`]: `Router::new().merge(health.router())`.
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router(self)
    }
}
