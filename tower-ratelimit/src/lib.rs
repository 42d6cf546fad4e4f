//! Tiered, keyed rate limiting for tower services with the generic cell rate algorithm (GCRA), in memory or
//! shared through Redis, answering with the IETF `RateLimit` header fields.
//!
//! Every request is checked against all limits that match it (its tier's and its route category's), which are
//! charged together or not at all. Admitted responses carry `RateLimit-Policy` and `RateLimit`; refused requests
//! get `429` with `Retry-After` and an `application/problem+json` body of the draft's `quota-exceeded` type.
//! Handlers can call the same [`RateLimiter`] directly for keys only they know (the account named in a login).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{Layer, ServiceExt, service_fn};
//! use tower_ratelimit::{PeerAddr, Policies, RateLimitLayer, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = RateLimitLayer::new(RateLimiter::in_memory(), Policies::finance_defaults());
//! let service = layer.layer(service_fn(|_req: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("hello")))
//! }));
//!
//! let mut request = Request::get("/api/v1/invoices").body(String::new()).unwrap();
//! // The server records the peer address (axum's `ConnectInfo` works too, with the feature `axum`).
//! request.extensions_mut().insert(PeerAddr("192.0.2.10:50000".parse().unwrap()));
//! let response = service.oneshot(request).await.unwrap();
//!
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["ratelimit"], r#""anonymous_minute";r=29;t=2"#);
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `redis` | no | `RedisStore`: one shared state for every instance, with a `FailurePolicy` |
//! | `toml` | no | `Policies::from_toml_file` and the policy file format of the module `policy_file` |
//! | `axum` | no | the client address from axum's `ConnectInfo<SocketAddr>` |
//!
//! # Pitfalls
//!
//! - **Layer order.** Put the layer after authentication (which puts [`UserId`]/[`TierName`], or whatever a
//!   custom classifier reads, into the extensions) so authenticated requests are keyed by user.
//! - **Proxies.** `X-Forwarded-For` and `Forwarded` are believed only from [`ClientIpConfig::trust`]ed peers, read
//!   right to left; a server behind a proxy that is not configured sees every client as the proxy.
//! - **Memory.** The memory store holds at most [`MemoryConfig::max_keys`] cells (rounded down to a multiple of
//!   the shard count), plus one overflow cell per shard and limit: past the cap, new keys share their shard's
//!   overflow budget (stricter, never looser). Lapsed keys are swept as shards grow.
//! - **Clocks.** Time comes from a [`Clock`]: by default [`TscClock`] (the TSC, only where the kernel uses it
//!   as its own clocksource, clamped per thread so it never runs backwards; `Instant` elsewhere; exact),
//!   [`MonotonicClock`] (std `Instant`, exact), [`ManualClock`] in tests, [`CoarseClock`] (opt-in; its lag
//!   loosens the window bound by at most `tick / T` units). A decision reads the clock once for all its limits. The Redis store uses Redis' own `TIME` unless the clock is a
//!   test clock. Clones of the limiter and of the layer share one budget.
//! - **Redis Cluster.** All keys of a decision (and, with batching, of a batch) must share a hash tag: put one in
//!   the prefix (`{rl}:`), or turn batching off and keep a decision's keys on one slot.
//! - **Counters** in [`RateLimitSnapshot`] count the layer's decisions only, not direct calls.
//! - **Logging.** A refusal logs one `DEBUG` event with the policy names (never the key); Redis failing and
//!   recovering log one `WARN` and one `INFO` event per transition.
#![forbid(unsafe_code)]

mod body;
pub mod clock;
mod decision;
pub mod error;
mod future;
mod gcra;
pub mod headers;
mod ip;
mod key;
mod layer;
mod limiter;
mod policy;
#[cfg(feature = "toml")]
pub mod policy_file;
mod service;
pub mod store;

pub use body::ResponseBody;
pub use clock::{Clock, CoarseClock, ManualClock, MonotonicClock, TscClock};
pub use decision::{Decision, DecisionSource};
pub use error::{ConfigError, StoreError};
pub use future::ResponseFuture;
pub use gcra::{Limit, LimitOutcome, MAX_LIMITS_PER_DECISION, Quota};
pub use ip::{AllowList, ClientIpConfig, PeerAddr};
pub use key::Key;
pub use layer::{RateLimitLayer, RateLimitLayerBuilder, RateLimitSnapshot};
pub use limiter::{Check, Decide, PendingDecision, RateLimiter, RateLimiterBuilder, StoreHealth};
pub use policy::{
    ChargeMode, ClassifyCategory, ClassifyTier, DefaultCategoryClassifier, DefaultTierClassifier,
    Identity, KeyBy, LimitCounters, Policies, PolicyLimit, RequestInfo, TierName, UserId,
};
pub use service::RateLimit;
pub use store::memory::{MemoryConfig, MemoryStore};
#[cfg(feature = "redis")]
pub use store::redis::{FailurePolicy, RedisConfig, RedisStore};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
