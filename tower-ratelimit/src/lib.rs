//! Tiered, keyed rate limiting for tower services with the generic cell rate algorithm (GCRA).
#![forbid(unsafe_code)]

pub mod clock;
mod decision;
pub mod error;
mod gcra;
mod key;
mod limiter;
pub mod store;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use decision::{Decision, DecisionSource};
pub use error::{ConfigError, StoreError};
pub use gcra::{Limit, LimitOutcome, MAX_LIMITS_PER_DECISION, Quota};
pub use key::Key;
pub use limiter::{Check, Decide, PendingDecision, RateLimiter, RateLimiterBuilder, StoreHealth};
pub use store::memory::{MemoryConfig, MemoryStore};
mod body;
mod future;
pub mod headers;
mod ip;
mod layer;
mod policy;
#[cfg(feature = "toml")]
pub mod policy_file;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use ip::{AllowList, ClientIpConfig, PeerAddr};
pub use layer::{RateLimitLayer, RateLimitLayerBuilder, RateLimitSnapshot};
pub use policy::{
    ChargeMode, ClassifyCategory, ClassifyTier, DefaultCategoryClassifier, DefaultTierClassifier,
    Identity, KeyBy, LimitCounters, Policies, PolicyLimit, RequestInfo, TierName, UserId,
};
pub use service::RateLimit;
#[cfg(feature = "redis")]
pub use store::redis::{FailurePolicy, RedisConfig, RedisStore};
