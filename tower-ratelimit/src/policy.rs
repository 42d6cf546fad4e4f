//! Policies: which limits apply to a request (its tier's and its route category's), keyed by what, and whether
//! the layer charges them.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Extensions, HeaderMap, Method, Uri};

use crate::error::ConfigError;
use crate::gcra::{Limit, MAX_LIMITS_PER_DECISION, Quota, validate_name};
use crate::ip::AllowList;

/// What a limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client address (see [`ClientIpConfig`](crate::ClientIpConfig)).
    ClientIp,
    /// The user id, or the client address for requests without one.
    User,
}

/// Who charges a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChargeMode {
    /// The layer charges it for every admitted request.
    Request,
    /// The layer only checks that the request fits; the handler charges it through
    /// [`RateLimiter`](crate::RateLimiter) (a login route charging failed attempts only).
    Handler,
}

/// One limit of a policy with its key and charge mode, and its counters.
#[derive(Debug, Clone)]
pub struct PolicyLimit {
    limit: Limit,
    key_by: KeyBy,
    charge: ChargeMode,
    stats: Arc<LimitStats>,
}

#[derive(Debug, Default)]
pub(crate) struct LimitStats {
    pub(crate) allowed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) shadow_rejected: AtomicU64,
}

impl PolicyLimit {
    /// A limit keyed and charged as given.
    #[must_use]
    pub fn new(limit: Limit, key_by: KeyBy, charge: ChargeMode) -> Self {
        Self {
            limit,
            key_by,
            charge,
            stats: Arc::default(),
        }
    }

    /// The limit.
    #[must_use]
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// What it is counted per.
    #[must_use]
    pub fn key_by(&self) -> KeyBy {
        self.key_by
    }

    /// Who charges it.
    #[must_use]
    pub fn charge_mode(&self) -> ChargeMode {
        self.charge
    }

    pub(crate) fn stats(&self) -> &LimitStats {
        &self.stats
    }
}

/// Counters of one policy limit, as the layer counted its decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCounters {
    /// The limit's name.
    pub name: String,
    /// Requests it admitted (as part of an admitted set).
    pub allowed: u64,
    /// Requests it refused.
    pub rejected: u64,
    /// Requests it would have refused in shadow mode.
    pub shadow_rejected: u64,
}

#[derive(Debug, Clone)]
struct Group {
    name: Box<str>,
    limits: Vec<PolicyLimit>,
}

/// The limits of a service: per tier, per route category, and extra named limits handlers use directly.
///
/// Every request is checked against its tier's limits and its category's limits together (all charged or none).
#[derive(Debug, Clone)]
pub struct Policies {
    tiers: Vec<Group>,
    categories: Vec<Group>,
    extra: Vec<PolicyLimit>,
    allow_list: AllowList,
    shadow: bool,
    default_tier: usize,
}

fn limit(name: &str, rate: u64, window_secs: u64) -> Result<Limit, ConfigError> {
    Limit::new(name, Quota::new(rate, Duration::from_secs(window_secs))?)
}

impl Policies {
    /// No limits at all; add them with [`tier`](Self::tier), [`category`](Self::category) and
    /// [`extra`](Self::extra).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            tiers: Vec::new(),
            categories: Vec::new(),
            extra: Vec::new(),
            allow_list: AllowList::new(),
            shadow: false,
            default_tier: 0,
        }
    }

    /// The default table of the finance API (shared/API.md, "Rate limits"):
    ///
    /// | policy | applies to | keyed by | quota |
    /// |---|---|---|---|
    /// | `anonymous_minute`, `anonymous_hour` | tier `anonymous` | client IP | 30/min, 300/h |
    /// | `authenticated_minute`, `authenticated_hour` | tier `authenticated` | user id | 60/min, 1000/h |
    /// | `premium_minute`, `premium_hour` | tier `premium` | user id | 200/min, 5000/h |
    /// | `auth` | category `auth` | client IP | 5 per 15 min, charged by the handler |
    /// | `api_read` / `api_write` | categories of the same names | user id, else IP | 100/min / 30/min |
    /// | `payment` / `upload` | categories of the same names | user id | 5/min / 10/min |
    /// | `auth_account` | extra (handlers) | the account | 5 per 15 min |
    ///
    /// # Panics
    ///
    /// Never: the table is valid (a test builds it).
    #[must_use]
    pub fn finance_defaults() -> Self {
        Self::finance_defaults_with(60, 60).unwrap_or_else(|_| Self::empty())
    }

    /// The default table with the `authenticated` tier's per-minute quota and burst set (`RATE_LIMIT_PER_MINUTE`,
    /// `RATE_LIMIT_BURST`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidQuota`] when `per_minute` or `burst` is 0.
    pub fn finance_defaults_with(per_minute: u64, burst: u64) -> Result<Self, ConfigError> {
        use ChargeMode::{Handler, Request};
        use KeyBy::{ClientIp, User};
        let authenticated_minute = Limit::new(
            "authenticated_minute",
            Quota::per_minute(per_minute)?.with_burst(burst)?,
        )?;
        Self::empty()
            .tier(
                "anonymous",
                [
                    PolicyLimit::new(limit("anonymous_minute", 30, 60)?, ClientIp, Request),
                    PolicyLimit::new(limit("anonymous_hour", 300, 3600)?, ClientIp, Request),
                ],
            )?
            .tier(
                "authenticated",
                [
                    PolicyLimit::new(authenticated_minute, User, Request),
                    PolicyLimit::new(limit("authenticated_hour", 1000, 3600)?, User, Request),
                ],
            )?
            .tier(
                "premium",
                [
                    PolicyLimit::new(limit("premium_minute", 200, 60)?, User, Request),
                    PolicyLimit::new(limit("premium_hour", 5000, 3600)?, User, Request),
                ],
            )?
            .category(
                "auth",
                [PolicyLimit::new(limit("auth", 5, 900)?, ClientIp, Handler)],
            )?
            .category(
                "api_read",
                [PolicyLimit::new(limit("api_read", 100, 60)?, User, Request)],
            )?
            .category(
                "api_write",
                [PolicyLimit::new(limit("api_write", 30, 60)?, User, Request)],
            )?
            .category(
                "payment",
                [PolicyLimit::new(limit("payment", 5, 60)?, User, Request)],
            )?
            .category(
                "upload",
                [PolicyLimit::new(limit("upload", 10, 60)?, User, Request)],
            )?
            .extra(PolicyLimit::new(
                limit("auth_account", 5, 900)?,
                User,
                Handler,
            ))
            .default_tier("anonymous")
    }

    /// Adds (or replaces) a tier.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidName`] for a bad name; [`ConfigError::InvalidPolicy`] when a tier and a category
    /// together could exceed [`MAX_LIMITS_PER_DECISION`].
    pub fn tier(
        mut self,
        name: &str,
        limits: impl IntoIterator<Item = PolicyLimit>,
    ) -> Result<Self, ConfigError> {
        validate_name(name)?;
        let group = Group {
            name: name.into(),
            limits: limits.into_iter().collect(),
        };
        match self.tiers.iter_mut().find(|g| *g.name == *name) {
            Some(g) => *g = group,
            None => self.tiers.push(group),
        }
        self.check_sizes()?;
        Ok(self)
    }

    /// Adds (or replaces) a route category.
    ///
    /// # Errors
    ///
    /// As [`tier`](Self::tier).
    pub fn category(
        mut self,
        name: &str,
        limits: impl IntoIterator<Item = PolicyLimit>,
    ) -> Result<Self, ConfigError> {
        validate_name(name)?;
        let group = Group {
            name: name.into(),
            limits: limits.into_iter().collect(),
        };
        match self.categories.iter_mut().find(|g| *g.name == *name) {
            Some(g) => *g = group,
            None => self.categories.push(group),
        }
        self.check_sizes()?;
        Ok(self)
    }

    /// Adds a limit the layer never applies, for handlers to use by name ([`limit`](Self::limit)).
    #[must_use]
    pub fn extra(mut self, limit: PolicyLimit) -> Self {
        self.extra.retain(|l| l.limit.name() != limit.limit.name());
        self.extra.push(limit);
        self
    }

    /// The tier used when the classifier names one that is not defined (default: the first tier added).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidPolicy`] when no such tier exists.
    pub fn default_tier(mut self, name: &str) -> Result<Self, ConfigError> {
        self.default_tier = self
            .tiers
            .iter()
            .position(|g| *g.name == *name)
            .ok_or_else(|| ConfigError::InvalidPolicy(format!("no tier named {name:?}")))?;
        Ok(self)
    }

    /// Keys and networks that skip the limits keyed by them.
    #[must_use]
    pub fn allow_list(mut self, allow_list: AllowList) -> Self {
        self.allow_list = allow_list;
        self
    }

    /// Shadow (dry-run) mode: refusals are counted and logged but every request passes, without headers.
    #[must_use]
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Whether shadow mode is on.
    #[must_use]
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// The allow-list.
    #[must_use]
    pub fn allow_listed(&self) -> &AllowList {
        &self.allow_list
    }

    /// The limit of that name, from any tier, category or the extras.
    #[must_use]
    pub fn limit(&self, name: &str) -> Option<&Limit> {
        self.all_limits()
            .find(|l| l.limit.name() == name)
            .map(PolicyLimit::limit)
    }

    /// Every policy limit, tiers first, then categories, then extras.
    pub fn all_limits(&self) -> impl Iterator<Item = &PolicyLimit> {
        self.tiers
            .iter()
            .chain(&self.categories)
            .flat_map(|g| g.limits.iter())
            .chain(self.extra.iter())
    }

    /// The counters of every limit.
    #[must_use]
    pub fn counters(&self) -> Vec<LimitCounters> {
        self.all_limits()
            .map(|l| LimitCounters {
                name: l.limit.name().to_owned(),
                allowed: l.stats.allowed.load(Ordering::Relaxed),
                rejected: l.stats.rejected.load(Ordering::Relaxed),
                shadow_rejected: l.stats.shadow_rejected.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The group indexes of a tier (the default tier when `name` is not defined) and of a category (none when
    /// `None` or not defined).
    pub(crate) fn group_indexes(
        &self,
        tier: &str,
        category: Option<&str>,
    ) -> (usize, Option<usize>) {
        let tier = self
            .tiers
            .iter()
            .position(|g| *g.name == *tier)
            .unwrap_or(self.default_tier);
        let category = category.and_then(|c| self.categories.iter().position(|g| *g.name == *c));
        (tier, category)
    }

    /// The limits of a tier group and a category group, tier first.
    pub(crate) fn plan_limits(
        &self,
        tier: usize,
        category: Option<usize>,
    ) -> impl Iterator<Item = &PolicyLimit> {
        let tier = self.tiers.get(tier).map_or(&[][..], |g| &g.limits[..]);
        let category = category
            .and_then(|c| self.categories.get(c))
            .map_or(&[][..], |g| &g.limits[..]);
        tier.iter().chain(category)
    }

    fn check_sizes(&self) -> Result<(), ConfigError> {
        let max_tier = self.tiers.iter().map(|g| g.limits.len()).max().unwrap_or(0);
        let max_cat = self
            .categories
            .iter()
            .map(|g| g.limits.len())
            .max()
            .unwrap_or(0);
        if max_tier + max_cat > MAX_LIMITS_PER_DECISION {
            return Err(ConfigError::InvalidPolicy(format!(
                "a tier ({max_tier} limits) and a category ({max_cat}) exceed {MAX_LIMITS_PER_DECISION} limits"
            )));
        }
        Ok(())
    }
}

/// What a classifier sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (where authentication put its claims).
    pub extensions: &'a Extensions,
}

/// Who is asking: the user id (if any) and the tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id, for limits keyed by user.
    pub user: Option<Arc<str>>,
    /// The tier name.
    pub tier: Cow<'static, str>,
}

/// A user id that authentication put into request extensions, read by [`DefaultTierClassifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(pub Arc<str>);

/// A tier name that authentication put into request extensions, read by [`DefaultTierClassifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierName(pub Cow<'static, str>);

/// Finds the user and tier of a request.
pub trait ClassifyTier: Send + Sync + 'static {
    /// The identity of the request.
    fn classify(&self, request: &RequestInfo<'_>) -> Identity;
}

impl<F> ClassifyTier for F
where
    F: Fn(&RequestInfo<'_>) -> Identity + Send + Sync + 'static,
{
    fn classify(&self, request: &RequestInfo<'_>) -> Identity {
        self(request)
    }
}

/// Finds the route category of a request.
pub trait ClassifyCategory: Send + Sync + 'static {
    /// The category name, or `None` for no category limits.
    fn classify(&self, request: &RequestInfo<'_>) -> Option<Cow<'static, str>>;
}

impl<F> ClassifyCategory for F
where
    F: Fn(&RequestInfo<'_>) -> Option<Cow<'static, str>> + Send + Sync + 'static,
{
    fn classify(&self, request: &RequestInfo<'_>) -> Option<Cow<'static, str>> {
        self(request)
    }
}

/// Reads [`UserId`] and [`TierName`] from the extensions: no user is `anonymous`, a user without a tier is
/// `authenticated`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultTierClassifier;

impl ClassifyTier for DefaultTierClassifier {
    fn classify(&self, request: &RequestInfo<'_>) -> Identity {
        let user = request.extensions.get::<UserId>().map(|u| u.0.clone());
        let tier = match (&user, request.extensions.get::<TierName>()) {
            (_, Some(TierName(t))) => t.clone(),
            (Some(_), None) => Cow::Borrowed("authenticated"),
            (None, None) => Cow::Borrowed("anonymous"),
        };
        Identity { user, tier }
    }
}

/// `auth` for paths under `/api/v1/auth/`, `api_read` for GET and HEAD, `api_write` otherwise. Servers with
/// payment and upload routes classify those themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultCategoryClassifier;

impl ClassifyCategory for DefaultCategoryClassifier {
    fn classify(&self, request: &RequestInfo<'_>) -> Option<Cow<'static, str>> {
        if request.uri.path().starts_with("/api/v1/auth/") {
            return Some(Cow::Borrowed("auth"));
        }
        Some(Cow::Borrowed(
            if matches!(*request.method, Method::GET | Method::HEAD) {
                "api_read"
            } else {
                "api_write"
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finance_defaults_hold_the_api_table() {
        let p = Policies::finance_defaults();
        let names: Vec<_> = p
            .all_limits()
            .map(|l| l.limit().name().to_owned())
            .collect();
        assert_eq!(names.len(), 12, "{names:?}");
        assert_eq!(
            p.limit("auth").unwrap().quota().window(),
            Duration::from_secs(900)
        );
        let (tier, cat) = p.group_indexes("nonexistent", Some("payment"));
        let names: Vec<_> = p.plan_limits(tier, cat).map(|l| l.limit().name()).collect();
        assert_eq!(names, ["anonymous_minute", "anonymous_hour", "payment"]);
    }
}
