//! Rate limits (shared/API.md, Rate limits): tower-ratelimit with the tier from the verified token and the
//! category from the method and route; `RATE_LIMIT_POLICY` replaces the default table; with `REDIS_URL` the
//! limits are shared by every instance (falling back to this process's memory while Redis is away).
//!
//! Login and PIN routes add what only the handler knows: `auth` (per client IP) and `auth_account` (per
//! account named in the body) are charged for failed attempts only.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use tower_ratelimit::{
    Check, ClassifyCategory, ClassifyTier, ClientIpConfig, ConfigError, Identity, Key, Policies,
    RateLimitLayer, RateLimiter, RequestInfo,
};

use crate::auth::Principal;
use crate::config::Config;

/// A sign-in refused by the per-account limit.
#[derive(Debug, Clone)]
pub struct AccountRefused {
    /// Whole seconds until an attempt fits.
    pub retry_after: u64,
    /// `RateLimit-Policy` and `RateLimit`.
    pub fields: Option<(axum::http::HeaderValue, axum::http::HeaderValue)>,
}

/// The limiter, its policies and how client addresses are read: what the layer and the handlers share.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The limiter (memory, or Redis with a memory fallback).
    pub limiter: RateLimiter,
    /// The policies.
    pub policies: Policies,
    /// Trusted proxies and the IPv6 prefix.
    pub client_ip: ClientIpConfig,
}

/// Why the limits could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The policy file or a setting is invalid.
    #[error("RATE_LIMIT_POLICY: {0}")]
    Policy(#[from] ConfigError),
    /// Redis could not be used.
    #[error("REDIS_URL: {0}")]
    Redis(#[from] tower_ratelimit::StoreError),
}

impl Limits {
    /// From the configuration. Must run inside a tokio runtime when `REDIS_URL` is set.
    ///
    /// # Errors
    ///
    /// An unreadable policy file, an invalid quota, or a Redis URL the client refuses.
    pub fn from_config(config: &Config) -> Result<Self, LimitsError> {
        let policies = match &config.rate_limit_policy {
            Some(path) => Policies::from_toml_file(path)?,
            None => Policies::finance_defaults_with(
                u64::from(config.rate_limit_per_minute),
                u64::from(config.rate_limit_burst),
            )?,
        };
        let mut builder = RateLimiter::builder();
        if let Some(url) = &config.redis_url {
            let url = String::from_utf8_lossy(url.expose()).into_owned();
            let store = tower_ratelimit::RedisStore::new(
                &url,
                tower_ratelimit::RedisConfig::default()
                    .prefix(format!("{}{{rl}}:", config.redis_key_prefix)),
            )?;
            builder = builder.redis(store, tower_ratelimit::FailurePolicy::FallbackToMemory);
        }
        let client_ip =
            ClientIpConfig::new().trust(config.trusted_proxies.iter().map(String::as_str))?;
        Ok(Self {
            limiter: builder.build(),
            policies,
            client_ip,
        })
    }

    /// The layer for the API routes.
    #[must_use]
    pub fn layer(&self) -> RateLimitLayer<TierFromToken, CategoryFromRoute> {
        RateLimitLayer::builder(self.limiter.clone(), self.policies.clone())
            .client_ip(self.client_ip.clone())
            .tier_classifier(TierFromToken)
            .category_classifier(CategoryFromRoute)
            .build()
    }

    /// The client address of a request, as the layer reads it.
    #[must_use]
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        self.client_ip.client_ip(peer, headers)
    }

    /// Whether a sign-in for `account` may be tried now (`auth_account` has room). Charges nothing.
    ///
    /// # Errors
    ///
    /// The refusal, when no attempt fits now: the whole seconds until one does, and the `RateLimit-Policy`
    /// and `RateLimit` fields the layer's own 429s carry.
    pub async fn account_may_try(&self, account: &str) -> Result<(), AccountRefused> {
        let Some(limit) = self.policies.limit("auth_account") else {
            return Ok(());
        };
        let decision = self
            .limiter
            .decide(&[Check::peek(limit, Key::Str(account))], 1)
            .await;
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(AccountRefused {
                retry_after: decision.retry_after_secs().unwrap_or(1),
                fields: tower_ratelimit::headers::fields(&[limit], &decision),
            })
        }
    }

    /// Charges a failed sign-in to the client address (`auth`) and the account (`auth_account`).
    pub async fn charge_failure(&self, client: IpAddr, account: &str) {
        let mut checks = Vec::with_capacity(2);
        if let Some(limit) = self.policies.limit("auth") {
            checks.push(Check::charge(limit, Key::Ip(client)));
        }
        if let Some(limit) = self.policies.limit("auth_account") {
            checks.push(Check::charge(limit, Key::Str(account)));
        }
        // Charged one by one: a failure must count against each even when the other is already full.
        for check in checks {
            let _ = self.limiter.decide(&[check], 1).await;
        }
    }
}

/// The tier and user from the [`Principal`] that authentication verified; anonymous without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct TierFromToken;

impl ClassifyTier for TierFromToken {
    fn classify(&self, request: &RequestInfo<'_>) -> Identity {
        match request.extensions.get::<Principal>() {
            Some(p) => Identity {
                user: Some(Arc::from(p.user_id.to_string())),
                tier: Cow::Owned(p.tier.clone()),
            },
            None => Identity {
                user: None,
                tier: Cow::Borrowed("anonymous"),
            },
        }
    }
}

/// `auth` under `/api/v1/auth/`, `payment` for recording payments, `api_read` for GET and HEAD, `api_write`
/// for the other methods.
#[derive(Debug, Clone, Copy, Default)]
pub struct CategoryFromRoute;

impl ClassifyCategory for CategoryFromRoute {
    fn classify(&self, request: &RequestInfo<'_>) -> Option<Cow<'static, str>> {
        let path = request.uri.path();
        let name = if path.starts_with("/api/v1/auth/") {
            "auth"
        } else if path.ends_with("/payments") && request.method == Method::POST {
            "payment"
        } else if matches!(*request.method, Method::GET | Method::HEAD) {
            "api_read"
        } else {
            "api_write"
        };
        Some(Cow::Borrowed(name))
    }
}
