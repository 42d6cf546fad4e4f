//! Liveness, readiness, startup and status probes that answer from a cache of concurrently run checks.
//!
//! Register named checks (a [`Check`] implementation, an async closure through [`check_fn`], or a snapshot
//! reader through [`snapshot_fn`]), each critical or not, with its own timeout and interval. The registry runs
//! them concurrently in the background ([`Health::spawn_refresher`]), cuts each at its timeout, caches the
//! results and prebuilds every endpoint's `application/health+json` body (draft-inadarei-api-health-check-06),
//! so a probe is answered from memory in well under a microsecond and a burst of probes never reaches the
//! database.
//!
//! | path | answers from | 503 when |
//! |---|---|---|
//! | `/health/live` | the process alone, no check | never while the runtime answers |
//! | `/health/ready` | the checks, from the cache; never details | a critical check fails, not started, marked not ready, draining |
//! | `/health/startup` | the start-up flag | [`Health::mark_started`] not called yet |
//! | `/health/status` | every check, details per the [`DetailPolicy`] | a critical check fails |
//!
//! A non-critical check failing, or any check slower than its `slow_after`, makes the answer `warn` (200).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use health_kit::{CheckOptions, Health, Observation, check_fn};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let health = Health::builder()
//!     .check(
//!         "ledger",
//!         check_fn(|| async { Observation::fail("connection refused") }),
//!         CheckOptions::critical().timeout(Duration::from_millis(500)).interval(Duration::from_secs(5)),
//!     )
//!     .build()?;
//! let _refresher = health.spawn_refresher(); // runs the checks now and every interval
//! health.refresh().await; // (or wait for the first run)
//! health.mark_started();
//!
//! let ready = health.service().oneshot(Request::get("/health/ready").body(())?).await?;
//! assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(ready.headers()["content-type"], "application/health+json");
//!
//! let live = health.service().oneshot(Request::get("/health/live").body(())?).await?;
//! assert_eq!(live.status(), StatusCode::OK); // liveness never depends on the database
//! # Ok(())
//! # }
//! ```
//!
//! In front of any HTTP service, without a router, [`HealthLayer`] answers the four paths and passes the rest on:
//!
//! ```
//! use std::convert::Infallible;
//! use health_kit::{Health, HealthLayer};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let health = Health::builder().build()?;
//! let app = ServiceBuilder::new().layer(HealthLayer::new(health.clone())).service(tower::service_fn(
//!     |_req: Request<()>| async { Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from("app")))) },
//! ));
//!
//! let startup = app.clone().oneshot(Request::get("/health/startup").body(())?).await?;
//! assert_eq!(startup.status(), StatusCode::SERVICE_UNAVAILABLE); // not started yet
//! health.mark_started();
//! let startup = app.clone().oneshot(Request::get("/health/startup").body(())?).await?;
//! assert_eq!(startup.status(), StatusCode::OK);
//! let other = app.oneshot(Request::get("/api/invoices").body(())?).await?;
//! assert_eq!(other.status(), StatusCode::OK); // the application answered
//! # Ok(())
//! # }
//! ```
//!
//! On shutdown, pass [`Health::drain_after`] to the server's graceful shutdown: on the signal, readiness turns
//! 503 at once, the server keeps serving for the drain period while load balancers notice, then stops.
//!
//! # Feature flags
//!
//! | feature | gives |
//! |---|---|
//! | (none) | the registry, the tower services, [`check_fn`] and [`snapshot_fn`] |
//! | `axum` | `axum::router` |
//! | `sqlx`, `sqlx-postgres`, `sqlx-sqlite` | `checks::SqlxPoolCheck`: round trip, connections in use and idle |
//! | `redis` | `checks::RedisCheck`: `PING` round trip |
//! | `disk` | `checks::DiskSpaceCheck`: space left on a file system (statvfs through `fs4`) |
//! | `tower-circuitbreaker` | `checks::BreakerRegistryCheck`: every breaker's state; open or half-open `warn` (open `fail` on request) |
//! | `query-cache` | `checks::QueryCacheCheck`: hit rate over the last interval, per tier, and the Redis tier's state |
//!
//! For a gRPC server, [`Health::grpc_serving_status`] gives the grpc.health.v1 answer for a service name and
//! [`Health::subscribe`] the changes a `Watch` streams.
//!
//! Circuit breaker states and query cache hit rates reach `/health/status` through the typed checks of the
//! `tower-circuitbreaker` and `query-cache` features, which read those crates' public snapshots only (optional
//! dependencies); [`snapshot_fn`] does the same for any other in-memory state.
//!
//! # Pitfalls
//!
//! - Call [`Health::spawn_refresher`] (inside a tokio runtime) or nothing ever runs: until a check has a result,
//!   a critical one counts as failing and `/health/ready` answers 503.
//! - A result older than two intervals plus the timeout (the refresher stopped, or its runtime is starved)
//!   no longer counts: the check is shown `fail` with `stale: ...` in `output`, so a cache never says `pass`
//!   for a process that has stopped looking.
//! - Call [`Health::mark_started`] when start-up is over: by default `/health/ready` answers 503 before.
//! - A check must not block its thread: a timeout cannot cut a blocking call. Use `spawn_blocking` inside it.
//! - Keep liveness free of dependencies (this crate's `/health/live` reads nothing): a liveness probe that
//!   checks the database restarts every pod when the database goes down.
//! - Mount the health routes outside authentication and rate limiting; probes carry no token.
//! - The default [`DetailPolicy`] is `Never`: details name dependencies and their errors.
//! - Timeouts and intervals run on tokio's clock (`tokio::time::pause` in tests); the `time` field comes from
//!   the injected [`WallClock`].
//! - Events: each change of a check's status logs one `tracing` event, WARN when it gets worse, INFO when it
//!   recovers; the start of a drain logs INFO.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod check;
mod clock;
mod error;
mod grpc;
mod layer;
mod observation;
mod policy;
mod registry;
mod report;
mod response;
mod service;
mod status;

#[cfg(feature = "axum")]
pub mod axum;
pub mod checks;

pub use check::{Check, CheckFn, CheckFuture, SnapshotFn, check_fn, snapshot_fn};
pub use clock::WallClock;
pub use error::ConfigError;
pub use grpc::ServingStatus;
pub use layer::{HealthBody, HealthLayer, ResponseFuture, WithHealth};
pub use observation::{Measurement, Observation};
pub use policy::DetailPolicy;
pub use registry::{CheckOptions, Health, HealthBuilder, Refresher};
pub use response::{Endpoint, HEALTH_JSON, HealthResponse};
pub use service::{EndpointService, HealthService};
pub use status::{ComponentType, Status, aggregate};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
