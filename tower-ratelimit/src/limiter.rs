//! The limiter a layer or a handler calls: one clock, a memory store and, optionally, Redis.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::clock::{Clock, TscClock};
use crate::decision::Decision;
use crate::gcra::{Limit, MAX_LIMITS_PER_DECISION};
use crate::key::Key;
use crate::store::memory::{MemoryConfig, MemoryStore};

/// One limit to check for one key in a decision.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The limit.
    pub limit: &'a Limit,
    /// What it is counted per.
    pub key: Key<'a>,
    /// Whether to charge it when the decision admits the request (`false`: only check that it fits, so a
    /// handler can charge later, e.g. only for failed logins).
    pub charge: bool,
}

impl<'a> Check<'a> {
    /// A check that charges `limit` for `key` when the decision admits the request.
    pub fn charge(limit: &'a Limit, key: impl Into<Key<'a>>) -> Self {
        Self {
            limit,
            key: key.into(),
            charge: true,
        }
    }

    /// A check that only looks: the request must fit, nothing is charged.
    pub fn peek(limit: &'a Limit, key: impl Into<Key<'a>>) -> Self {
        Self {
            limit,
            key: key.into(),
            charge: false,
        }
    }
}

pub(crate) enum Backend {
    Memory,
    #[cfg(feature = "redis")]
    Redis(crate::store::redis::RedisBackend),
}

pub(crate) struct LimiterInner {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) memory: MemoryStore,
    pub(crate) backend: Backend,
}

/// A keyed GCRA rate limiter. Cheap to clone; clones share one state (one budget per key, whichever clone or
/// layer asks).
///
/// ```
/// use tower_ratelimit::{Limit, Quota, RateLimiter};
///
/// let limiter = RateLimiter::in_memory();
/// let login = Limit::new("auth_account", Quota::new(5, std::time::Duration::from_secs(900)).unwrap()).unwrap();
/// for _ in 0..5 {
///     assert!(limiter.check_now("alice@example.com", &login, 1).is_allowed());
/// }
/// let refused = limiter.check_now("alice@example.com", &login, 1);
/// assert!(!refused.is_allowed());
/// assert_eq!(refused.retry_after_secs(), Some(180));
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    pub(crate) inner: Arc<LimiterInner>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match &self.inner.backend {
            Backend::Memory => "memory",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("RateLimiter")
            .field("store", &store)
            .field("memory", &self.inner.memory)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter with the default in-memory store and the default clock ([`TscClock`]).
    #[must_use]
    pub fn in_memory() -> Self {
        Self::builder().build()
    }

    /// Starts a builder.
    #[must_use]
    pub fn builder() -> RateLimiterBuilder {
        RateLimiterBuilder::default()
    }

    /// The in-memory store (the store itself, or the fallback of a Redis store).
    #[must_use]
    pub fn memory(&self) -> &MemoryStore {
        &self.inner.memory
    }

    /// The clock's time now, in microseconds.
    #[must_use]
    pub fn now_micros(&self) -> u64 {
        self.inner.clock.now_micros()
    }

    /// Checks and charges one limit for one key, and waits for the store.
    pub async fn check<'a>(
        &self,
        key: impl Into<Key<'a>>,
        limit: &'a Limit,
        cost: u64,
    ) -> Decision {
        self.decide(&[Check::charge(limit, key)], cost).await
    }

    /// Checks one limit for one key without charging it.
    pub async fn peek<'a>(&self, key: impl Into<Key<'a>>, limit: &'a Limit, cost: u64) -> Decision {
        self.decide(&[Check::peek(limit, key)], cost).await
    }

    /// Checks and charges one limit in the memory store, without waiting: the right call when the limiter has
    /// no Redis store (with Redis it decides in memory all the same, which is only the fallback's view).
    #[must_use]
    pub fn check_now<'a>(&self, key: impl Into<Key<'a>>, limit: &'a Limit, cost: u64) -> Decision {
        let memory = &self.inner.memory;
        // Hash the key first: it was just written by the caller, and is read in place.
        let located = memory.locate_single(&key.into(), limit);
        let now = self.inner.clock.now_micros();
        memory.decide_located(located, limit, true, cost, now)
    }

    /// Decides a set of checks: every charged check is charged when all fit, none otherwise. At most
    /// [`MAX_LIMITS_PER_DECISION`] checks are looked at; more are ignored.
    ///
    /// With the memory store the returned future is ready at once ([`Decide::into_ready`]); with Redis it owns
    /// what it needs and borrows nothing.
    #[inline]
    pub fn decide(&self, checks: &[Check<'_>], cost: u64) -> Decide {
        let checks = &checks[..checks.len().min(MAX_LIMITS_PER_DECISION)];
        match &self.inner.backend {
            Backend::Memory => {
                let now = self.inner.clock.now_micros();
                Decide {
                    state: DecideState::Ready(Some(self.inner.memory.decide(checks, cost, now))),
                }
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => {
                redis.decide(&self.inner.clock, &self.inner.memory, checks, cost)
            }
        }
    }

    /// The health of the configured store.
    #[must_use]
    pub fn store_health(&self) -> StoreHealth {
        match &self.inner.backend {
            Backend::Memory => StoreHealth::Memory,
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.health(),
        }
    }
}

/// The state of the store a limiter decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreHealth {
    /// Only the in-memory store is configured.
    Memory,
    /// Redis answers.
    RedisUp,
    /// Redis failed recently; decisions follow the failure policy until it answers again.
    RedisDegraded,
}

/// A decision on its way: ready at once for the memory store, a Redis round trip otherwise.
#[must_use = "futures do nothing unless polled"]
pub struct Decide {
    pub(crate) state: DecideState,
}

// The ready variant is the hot path of the memory store: boxing it would allocate per decision.
#[allow(clippy::large_enum_variant)]
pub(crate) enum DecideState {
    Ready(Option<Decision>),
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Pending(Pin<Box<dyn Future<Output = Decision> + Send>>),
}

impl fmt::Debug for Decide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            DecideState::Ready(d) => f.debug_tuple("Decide::Ready").field(d).finish(),
            DecideState::Pending(_) => f.write_str("Decide::Pending"),
        }
    }
}

impl Decide {
    /// The decision when it was made without waiting, or the future to wait for.
    ///
    /// # Errors
    ///
    /// Gives the pending round trip back when the decision needs the store.
    #[inline]
    pub fn into_ready(self) -> Result<Decision, PendingDecision> {
        match self.state {
            DecideState::Ready(Some(d)) => Ok(d),
            DecideState::Ready(None) => Err(PendingDecision {
                future: Box::pin(std::future::pending()),
            }),
            DecideState::Pending(future) => Err(PendingDecision { future }),
        }
    }
}

/// A decision waiting for a store round trip.
#[must_use = "futures do nothing unless polled"]
pub struct PendingDecision {
    future: Pin<Box<dyn Future<Output = Decision> + Send>>,
}

impl fmt::Debug for PendingDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingDecision")
    }
}

impl Future for PendingDecision {
    type Output = Decision;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Decision> {
        self.get_mut().future.as_mut().poll(cx)
    }
}

impl Future for Decide {
    type Output = Decision;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Decision> {
        let this = self.get_mut();
        match &mut this.state {
            DecideState::Ready(d) => match d.take() {
                Some(d) => Poll::Ready(d),
                // Polled after completion: never completes again, like a fused future.
                None => Poll::Pending,
            },
            DecideState::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// Builds a [`RateLimiter`].
#[derive(Default)]
pub struct RateLimiterBuilder {
    clock: Option<Arc<dyn Clock>>,
    memory: MemoryConfig,
    #[cfg(feature = "redis")]
    redis: Option<(
        crate::store::redis::RedisStore,
        crate::store::redis::FailurePolicy,
    )>,
}

impl fmt::Debug for RateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl RateLimiterBuilder {
    /// The clock (default [`TscClock`]: the TSC clamped never to run backwards, or `Instant`).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Settings of the in-memory store (also the Redis fallback).
    #[must_use]
    pub fn memory(mut self, config: MemoryConfig) -> Self {
        self.memory = config;
        self
    }

    /// Keeps the limits in Redis, following `on_failure` while Redis is unreachable.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(
        mut self,
        store: crate::store::redis::RedisStore,
        on_failure: crate::store::redis::FailurePolicy,
    ) -> Self {
        self.redis = Some((store, on_failure));
        self
    }

    /// The limiter.
    #[must_use]
    pub fn build(self) -> RateLimiter {
        let clock = self.clock.unwrap_or_else(|| Arc::new(TscClock::new()));
        #[cfg(feature = "redis")]
        let backend = match self.redis {
            Some((store, policy)) => {
                Backend::Redis(crate::store::redis::RedisBackend::new(store, policy))
            }
            None => Backend::Memory,
        };
        #[cfg(not(feature = "redis"))]
        let backend = Backend::Memory;
        RateLimiter {
            inner: Arc::new(LimiterInner {
                clock,
                memory: MemoryStore::new(self.memory),
                backend,
            }),
        }
    }
}
