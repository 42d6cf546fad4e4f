//! Circuit breakers for calls from a tower service to other systems: stop calling a failing upstream, answer
//! at once, probe carefully, and show the state to health checks and metrics.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_circuitbreaker::{Breaker, BreakerConfig, HttpCircuitBreakerLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = Breaker::new("bank-api", BreakerConfig::default()).unwrap();
//! let upstream = service_fn(|_req: Request<String>| async {
//!     let mut res = Response::new(String::from("down"));
//!     *res.status_mut() = StatusCode::BAD_GATEWAY;
//!     Ok::<_, Infallible>(res)
//! });
//! let svc = ServiceBuilder::new().layer(HttpCircuitBreakerLayer::new(breaker.clone())).service(upstream);
//!
//! // Five 502s in a row open the circuit (the default) ...
//! for _ in 0..5 {
//!     let res = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
//!     assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
//! }
//! // ... and the next call is answered at once, without calling the upstream.
//! let res = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(res.headers()["retry-after"], "60");
//! assert_eq!(res.headers()["content-type"], "application/problem+json");
//! assert_eq!(breaker.snapshot().rejected, 1);
//! # }
//! ```
//!
//! # What it does
//!
//! - States: [`BreakerState::Closed`], `Open`, `HalfOpen`, and the manual `ForcedOpen`, `Disabled` and
//!   `MetricsOnly` ([`Breaker::force_open`], [`Breaker::disable`], [`Breaker::metrics_only`],
//!   [`Breaker::reset`]).
//! - Trips on N consecutive failures *or* a failure rate (or slow-call rate) over a count- or time-based
//!   sliding [`Window`] once it holds a minimum number of calls ([`BreakerConfig`]).
//! - Half-open admits a configured number of probes at once; all must succeed to close, the first failure
//!   reopens with an exponentially backed-off, capped, optionally jittered open duration ([`Backoff`]); a
//!   probe that hangs past the maximum wait reopens the circuit.
//! - Outcomes are success, failure or ignored ([`Outcome`]); a failure carrying `Retry-After` keeps the
//!   circuit open at least that long.
//! - Every call carries the generation it started in: a result from an earlier state decides nothing.
//! - [`Breaker::snapshot`] and [`Breaker::subscribe`] (transition events) feed health checks and metrics;
//!   [`BreakerRegistry`] keeps named breakers and retires idle ones.
//! - The closed path reads and updates atomics only (per-thread stripes of counters, no mutex, no
//!   allocation); the layers' futures are named types.
//!
//! # Layers
//!
//! | layer | refusal | classification |
//! |---|---|---|
//! | [`CircuitBreakerLayer`] (any request type) | `Err(BoxError)` holding [`CircuitOpen`] | `Ok` success, `Err` failure, or any [`Classify`] |
//! | [`HttpCircuitBreakerLayer`] (`http::Request`; one breaker, or [`per_host`](HttpCircuitBreakerLayer::per_host) from a registry) | 503 problem+json with `Retry-After`, or your fallback; `S::Error` kept | [`HttpClassifier`]: 5xx, 429, errors fail; other 4xx ignored |
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `serde` | no | `Serialize` for [`Snapshot`], [`Transition`] and [`BreakerState`] (durations as whole ms) |
//!
//! Without features the crate needs only `tokio` (`sync`, `time`), `http`, `http-body`, `httpdate`, `tracing`, the
//! tower traits and, on Linux, `rustix` (`time`) for the coarse clock.
//!
//! # Logging
//!
//! One `tracing` event per transition, never per call: WARN `circuit breaker opened` when a breaker starts
//! refusing calls (open, forced open), INFO `circuit breaker changed state` otherwise; fields `breaker`,
//! `from`, `to`, `generation` and, when opening, `open_for_ms`.
//!
//! # Pitfalls
//!
//! - Put the breaker *outside* a timeout layer on the upstream call, so a timeout reaches it as a failure.
//! - The default clock is the system's monotonic clock ([`MonotonicClock`]); the closed path reads its coarse
//!   reading (the kernel tick, a few ns to read on Linux) for the time window. Under tokio's paused time
//!   (`start_paused`), build breakers with [`TokioClock`] so they follow `tokio::time::advance`. Any other
//!   clock must be monotonic ([`Clock`]).
//! - Clones of a breaker, a layer or a service share one state. Breakers stay per process (as in
//!   resilience4j); each instance of a service decides on its own calls.
//! - An open circuit reads `Open` until a call arrives after its open time: the move to half-open is made by
//!   that call. [`Snapshot::next_probe_in`] tells how long is left.
//! - Registry names should come from configuration, not from request data: each name keeps a breaker until
//!   retired.
#![forbid(unsafe_code)]

mod body;
mod classify;
mod clock;
mod config;
mod error;
mod future;
mod http_layer;
mod layer;
mod registry;
mod state;
mod tagged;
mod window;

/// The atomics `tagged` uses (loom's in `tests/loom.rs`).
mod sync {
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
}

pub use crate::body::ResponseBody;
pub use crate::classify::{
    Classify, DefaultClassifier, HttpClassifier, classify_status, retry_after,
};
pub use crate::clock::{Clock, ManualClock, MonotonicClock, TokioClock};
pub use crate::config::{Backoff, BreakerConfig, Window};
pub use crate::error::{CircuitOpen, ConfigError};
pub use crate::future::{HttpResponseFuture, ResponseFuture};
pub use crate::http_layer::{
    FallbackFn, HttpCircuitBreaker, HttpCircuitBreakerLayer, problem_response,
};
pub use crate::layer::{CircuitBreaker, CircuitBreakerLayer};
pub use crate::registry::{BreakerRegistry, DEFAULT_MAX_BREAKERS, OVERFLOW_BREAKER};
pub use crate::state::{
    Breaker, BreakerState, Outcome, Permit, Snapshot, Transition, is_legal_transition,
};

/// The error type of the generic layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
