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
pub use limiter::{Check, Decide, RateLimiter, RateLimiterBuilder, StoreHealth};
pub use store::memory::{MemoryConfig, MemoryStore};
