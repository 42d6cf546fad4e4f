//! `RateLimitLayer`: the policies, classifiers and limiter shared by every service it makes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;

use crate::body::ResponseBody;
use crate::decision::Decision;
use crate::gcra::{Limit, MAX_LIMITS_PER_DECISION};
use crate::headers::{RATELIMIT, RATELIMIT_POLICY, policy_value, problem_body, ratelimit_value};
use crate::ip::{ClientIpConfig, peer_addr};
use crate::key::Key;
use crate::limiter::{Check, Decide, RateLimiter, StoreHealth};
use crate::policy::{
    ChargeMode, ClassifyCategory, ClassifyTier, DefaultCategoryClassifier, DefaultTierClassifier,
    KeyBy, LimitCounters, Policies, PolicyLimit, RequestInfo,
};
use crate::service::RateLimit;

/// Applies [`Policies`] to every request: its tier's limits and its category's, charged together or not at all.
///
/// Admitted requests reach the inner service and get `RateLimit-Policy` and `RateLimit` fields (merged with the
/// fields of limits the inner service applied itself, see `headers::fields`); refused ones are answered `429`
/// with `Retry-After`, both fields and an `application/problem+json` body, and never reach it.
/// Clones of the layer and of its services share one limiter and one set of counters.
pub struct RateLimitLayer<T = DefaultTierClassifier, C = DefaultCategoryClassifier> {
    pub(crate) shared: Arc<Shared<T, C>>,
}

impl<T, C> Clone for RateLimitLayer<T, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, C> fmt::Debug for RateLimitLayer<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .field("client_ip", &self.shared.client_ip)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared<T, C> {
    pub(crate) limiter: RateLimiter,
    pub(crate) policies: Policies,
    pub(crate) client_ip: ClientIpConfig,
    pub(crate) tier: T,
    pub(crate) category: C,
}

impl RateLimitLayer {
    /// A layer applying `policies` with `limiter`, the default classifiers and no trusted proxies.
    #[must_use]
    pub fn new(limiter: RateLimiter, policies: Policies) -> Self {
        Self::builder(limiter, policies).build()
    }

    /// A builder for the optional parts.
    #[must_use]
    pub fn builder(limiter: RateLimiter, policies: Policies) -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            limiter,
            policies,
            client_ip: ClientIpConfig::default(),
            tier: DefaultTierClassifier,
            category: DefaultCategoryClassifier,
        }
    }
}

/// Builds a [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimitLayerBuilder<T = DefaultTierClassifier, C = DefaultCategoryClassifier> {
    limiter: RateLimiter,
    policies: Policies,
    client_ip: ClientIpConfig,
    tier: T,
    category: C,
}

impl<T: ClassifyTier, C: ClassifyCategory> RateLimitLayerBuilder<T, C> {
    /// How the client address is found (trusted proxies, IPv6 prefix).
    #[must_use]
    pub fn client_ip(mut self, config: ClientIpConfig) -> Self {
        self.client_ip = config;
        self
    }

    /// The classifier of user and tier.
    #[must_use]
    pub fn tier_classifier<T2: ClassifyTier>(self, tier: T2) -> RateLimitLayerBuilder<T2, C> {
        RateLimitLayerBuilder {
            limiter: self.limiter,
            policies: self.policies,
            client_ip: self.client_ip,
            tier,
            category: self.category,
        }
    }

    /// The classifier of route categories.
    #[must_use]
    pub fn category_classifier<C2: ClassifyCategory>(
        self,
        category: C2,
    ) -> RateLimitLayerBuilder<T, C2> {
        RateLimitLayerBuilder {
            limiter: self.limiter,
            policies: self.policies,
            client_ip: self.client_ip,
            tier: self.tier,
            category,
        }
    }

    /// The layer.
    #[must_use]
    pub fn build(self) -> RateLimitLayer<T, C> {
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter: self.limiter,
                policies: self.policies,
                client_ip: self.client_ip,
                tier: self.tier,
                category: self.category,
            }),
        }
    }
}

impl<T, C> RateLimitLayer<T, C> {
    /// The limiter, for handlers that add limits of their own (a login route charging failed attempts).
    #[must_use]
    pub fn limiter(&self) -> &RateLimiter {
        &self.shared.limiter
    }

    /// The policies.
    #[must_use]
    pub fn policies(&self) -> &Policies {
        &self.shared.policies
    }

    /// Keys held, store health and counters, for health checks and `/metrics`.
    #[must_use]
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let memory = self.shared.limiter.memory();
        RateLimitSnapshot {
            keys_held: memory.len(),
            max_keys: memory.max_keys(),
            table_bytes: memory.table_bytes(),
            store: self.shared.limiter.store_health(),
            shadow: self.shared.policies.is_shadow(),
            limits: self.shared.policies.counters(),
        }
    }
}

/// What [`RateLimitLayer::snapshot`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitSnapshot {
    /// Cells held by the in-memory store (exact at the moment of reading; idle ones go at the next sweep).
    pub keys_held: usize,
    /// The in-memory store's cap.
    pub max_keys: usize,
    /// Bytes allocated for the in-memory cells.
    pub table_bytes: usize,
    /// The store's health.
    pub store: StoreHealth,
    /// Whether shadow mode is on.
    pub shadow: bool,
    /// Per-limit counters of the layer's decisions.
    pub limits: Vec<LimitCounters>,
}

impl<S, T, C> Layer<S> for RateLimitLayer<T, C> {
    type Service = RateLimit<S, T, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.clone())
    }
}

/// Which limits a request was checked against: a tier group, a category group and those skipped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    tier: usize,
    category: Option<usize>,
    /// Bit `i` set: limit `i` (tier limits first, then category limits) was checked.
    checked: u16,
}

/// What to do with a request once decided.
pub(crate) enum Verdict {
    Pass(Option<(HeaderValue, HeaderValue)>),
    Refuse(Response<bytes::Bytes>),
}

impl<T: ClassifyTier, C: ClassifyCategory> Shared<T, C> {
    /// Classifies the request and starts its decision.
    pub(crate) fn start<B>(&self, request: &Request<B>) -> (Plan, Decide) {
        let info = RequestInfo {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        let identity = self.tier.classify(&info);
        let category = self.category.classify(&info);
        // No peer address at all (a server that does not record it): every such request shares one key, which
        // can only over-limit.
        let peer = peer_addr(request.extensions()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let ip = self.client_ip.client_ip(peer, request.headers());
        let (tier, category) = self
            .policies
            .group_indexes(&identity.tier, category.as_deref());
        let allow = self.policies.allow_listed();
        let ip_allowed = !allow.is_empty() && allow.contains_ip(ip);
        let user_allowed = identity
            .user
            .as_deref()
            .is_some_and(|u| !allow.is_empty() && allow.contains_key(u));
        let mut checks: Vec<Check<'_>> = Vec::with_capacity(MAX_LIMITS_PER_DECISION);
        let mut checked = 0u16;
        for (i, pl) in self.policies.plan_limits(tier, category).enumerate() {
            let key = match (pl.key_by(), identity.user.as_deref()) {
                (KeyBy::User, Some(user)) if !user_allowed => Key::Str(user),
                (KeyBy::User, Some(_)) => continue,
                (KeyBy::ClientIp | KeyBy::User, _) if ip_allowed => continue,
                _ => Key::Ip(ip),
            };
            if checks.len() < MAX_LIMITS_PER_DECISION {
                checks.push(Check {
                    limit: pl.limit(),
                    key,
                    charge: pl.charge_mode() == ChargeMode::Request,
                });
                checked |= 1 << i;
            }
        }
        let decide = self.limiter.decide(&checks, 1);
        (
            Plan {
                tier,
                category,
                checked,
            },
            decide,
        )
    }

    /// Applies a decision: counters, headers, or the 429.
    pub(crate) fn conclude(&self, plan: Plan, decision: &Decision) -> Verdict {
        let applied: Vec<&PolicyLimit> = self
            .policies
            .plan_limits(plan.tier, plan.category)
            .enumerate()
            .filter(|(i, _)| plan.checked & (1 << i) != 0)
            .map(|(_, pl)| pl)
            .collect();
        let shadow = self.policies.is_shadow();
        if decision.is_allowed() || applied.is_empty() {
            for pl in &applied {
                pl.stats().allowed.fetch_add(1, Ordering::Relaxed);
            }
            if shadow || applied.is_empty() {
                return Verdict::Pass(None);
            }
            let headers = decision.binding().and_then(|b| {
                let policy = policy_value(applied.iter().map(|pl| pl.limit()))?;
                let rate = ratelimit_value(applied.get(b)?.limit(), decision.outcomes().get(b)?)?;
                Some((policy, rate))
            });
            return Verdict::Pass(headers);
        }
        let violated: Vec<&Limit> = decision
            .violated()
            .filter_map(|i| applied.get(i))
            .map(|pl| pl.limit())
            .collect();
        for i in decision.violated() {
            if let Some(pl) = applied.get(i) {
                let counter = if shadow {
                    &pl.stats().shadow_rejected
                } else {
                    &pl.stats().rejected
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        tracing::debug!(
            policies = ?violated.iter().map(|l| l.name()).collect::<Vec<_>>(),
            shadow,
            "rate limit refused a request"
        );
        if shadow {
            return Verdict::Pass(None);
        }
        let retry = decision.retry_after_secs().unwrap_or(1);
        let mut response = Response::new(problem_body(violated.iter().copied(), retry));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry));
        // RFC 6585 section 4: a 429 must not be stored by a cache.
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if let Some(policy) = policy_value(applied.iter().map(|pl| pl.limit())) {
            headers.insert(RATELIMIT_POLICY, policy);
        }
        if let Some(b) = decision.binding()
            && let (Some(pl), Some(outcome)) = (applied.get(b), decision.outcomes().get(b))
            && let Some(value) = ratelimit_value(pl.limit(), outcome)
        {
            headers.insert(RATELIMIT, value);
        }
        Verdict::Refuse(response)
    }
}

/// Adds the rate-limit fields to an admitted response, merged with any the service behind set for limits of
/// its own (a handler's per-account sign-in limit, `headers::fields`): `RateLimit-Policy` lists the inner
/// policies, then the layer's; `RateLimit` stays the inner one when there is one, since the inner service
/// answered with that limit in mind (its 429 names the limit that refused it).
pub(crate) fn add_headers<B>(
    response: &mut Response<B>,
    headers: Option<(HeaderValue, HeaderValue)>,
) {
    if let Some((policy, rate)) = headers {
        let map = response.headers_mut();
        let policy = match map.get(RATELIMIT_POLICY) {
            Some(inner) => {
                HeaderValue::from_bytes(&[inner.as_bytes(), b", ", policy.as_bytes()].concat())
                    .unwrap_or(policy)
            }
            None => policy,
        };
        map.insert(RATELIMIT_POLICY, policy);
        if !map.contains_key(RATELIMIT) {
            map.insert(RATELIMIT, rate);
        }
    }
}

pub(crate) fn refusal<B>(response: Response<bytes::Bytes>) -> Response<ResponseBody<B>> {
    response.map(ResponseBody::problem)
}
