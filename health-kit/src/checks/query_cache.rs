//! The hit rate and statistics of a query-cache, read from its public `stats()` snapshot.

use std::sync::{Mutex, PoisonError};

use query_cache::{QueryCache, StatsSnapshot};
use serde_json::Value;

use crate::check::{Check, CheckFuture};
use crate::observation::{Measurement, Observation};

/// Counters of the previous run, to compute the hit rate over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sample {
    hits: u64,
    misses: u64,
}

impl Sample {
    fn of(stats: &StatsSnapshot) -> Self {
        Self {
            hits: stats.hits(),
            misses: stats.misses(),
        }
    }
}

/// Reports a [`QueryCache`]'s `hitRate` (percent, to 0.1 %) over the time since the previous run, with the
/// lifetime rate, hits, misses, loads, load errors, stale values served, entries and weight beside it; a
/// `hitRate.<tier>` measurement per tier that has seen lookups (over the cache's lifetime); and, with a Redis tier, a `redis` measurement
/// (`up` or `down`).
///
/// | what it sees | status |
/// |---|---|
/// | the Redis tier down (reads fall back to the loader) | `warn` |
/// | a hit rate below [`QueryCacheCheck::warn_below`] over at least [`QueryCacheCheck::min_lookups`] lookups | `warn` |
/// | otherwise | `pass` |
///
/// A cache never makes the service unavailable (a miss runs the query), so this check never reports `fail`:
/// register it non-critical, `ComponentType::Datastore`. With no lookup since the previous run, `hitRate` has
/// no `observedValue` (nothing to divide) and the lifetime rate stays beside it.
///
/// Counts come from [`QueryCache::stats`]: a lookup through `get_or_load` is a hit or a miss, but a plain
/// `get` that finds nothing is not counted as a miss, so a cache read only with `get` shows 100 %.
///
/// ```
/// use health_kit::{CheckOptions, ComponentType, Health, checks::QueryCacheCheck};
/// use query_cache::QueryCache;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache: QueryCache<String> = QueryCache::builder().build()?;
/// let health = Health::builder()
///     .check(
///         "dashboard-cache",
///         QueryCacheCheck::new(&cache).warn_below(50),
///         CheckOptions::non_critical().component_type(ComponentType::Datastore),
///     )
///     .build()?;
/// # let _ = health;
/// # Ok(())
/// # }
/// ```
pub struct QueryCacheCheck<V> {
    cache: QueryCache<V>,
    warn_below: Option<u8>,
    min_lookups: u64,
    previous: Mutex<Sample>,
}

impl<V> std::fmt::Debug for QueryCacheCheck<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCacheCheck")
            .field("warn_below", &self.warn_below)
            .field("min_lookups", &self.min_lookups)
            .finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> QueryCacheCheck<V> {
    /// Default for [`QueryCacheCheck::min_lookups`]: 100 lookups in an interval before a low rate counts.
    pub const DEFAULT_MIN_LOOKUPS: u64 = 100;

    /// A check of `cache` (a clone: caches are handles). The first run's interval starts when the cache was
    /// built.
    #[must_use]
    pub fn new(cache: &QueryCache<V>) -> Self {
        Self {
            cache: cache.clone(),
            warn_below: None,
            min_lookups: Self::DEFAULT_MIN_LOOKUPS,
            previous: Mutex::new(Sample::default()),
        }
    }

    /// `warn` when the hit rate since the previous run is below `percent` (default: never).
    #[must_use]
    pub fn warn_below(mut self, percent: u8) -> Self {
        self.warn_below = Some(percent.min(100));
        self
    }

    /// How many lookups an interval needs before its hit rate can make the check `warn` (a rate over three
    /// lookups says nothing).
    #[must_use]
    pub fn min_lookups(mut self, lookups: u64) -> Self {
        self.min_lookups = lookups;
        self
    }

    fn observe(&self) -> Observation {
        let stats = self.cache.stats();
        let now = Sample::of(&stats);
        let before = {
            let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *previous, now)
        };
        let hits = now.hits.saturating_sub(before.hits);
        let misses = now.misses.saturating_sub(before.misses);
        let lookups = hits.saturating_add(misses);

        let mut hit_rate = Measurement::new("hitRate").unit("percent");
        if let Some(rate) = percent(hits, lookups) {
            hit_rate = hit_rate.value(rate);
        }
        let lifetime = percent(now.hits, now.hits.saturating_add(now.misses));
        hit_rate = hit_rate
            .field("lifetimeHitRate", lifetime.unwrap_or(Value::Null))
            .field("hits", hits)
            .field("misses", misses)
            .field("totalHits", now.hits)
            .field("totalMisses", now.misses)
            .field("loads", stats.loads())
            .field(
                "loadErrors",
                stats.tiers.iter().map(|t| t.load_errors).sum::<u64>(),
            )
            .field("staleServed", stats.stale_served())
            .field("entries", stats.entries)
            .field("weight", stats.weight);

        let mut concerns: Vec<String> = Vec::new();
        if let Some(floor) = self.warn_below
            && lookups >= self.min_lookups.max(1)
            && hits.saturating_mul(100) < u64::from(floor).saturating_mul(lookups)
        {
            concerns.push(format!(
                "hit rate {}% over {lookups} lookups, below {floor}%",
                percent(hits, lookups).map_or_else(String::new, |v| v.to_string())
            ));
        }
        let redis = stats.redis.map(|r| {
            if !r.up {
                concerns.push(format!(
                    "redis tier down ({} consecutive failures); reads fall back to the loader",
                    r.consecutive_failures
                ));
            }
            Measurement::new("redis")
                .value(if r.up { "up" } else { "down" })
                .unit("state")
                .field("subscribed", r.subscribed)
                .field("consecutiveFailures", r.consecutive_failures)
                .field("l2Hits", stats.l2_hits)
                .field("l2Misses", stats.l2_misses)
                .field("l2Errors", stats.l2_errors)
        });

        let mut observation = if concerns.is_empty() {
            Observation::pass()
        } else {
            Observation::warn(concerns.join("; "))
        }
        .measurement(hit_rate);
        for tier in &stats.tiers {
            let tier_lookups = tier.hits.saturating_add(tier.misses);
            if tier_lookups > 0 {
                let mut m = Measurement::new(format!("hitRate.{}", tier.tier))
                    .unit("percent")
                    .field("hits", tier.hits)
                    .field("misses", tier.misses)
                    .field("loads", tier.loads)
                    .field("evictions", tier.evictions);
                if let Some(rate) = percent(tier.hits, tier_lookups) {
                    m = m.value(rate);
                }
                observation = observation.measurement(m);
            }
        }
        if let Some(redis) = redis {
            observation = observation.measurement(redis);
        }
        observation
    }
}

/// `part / whole` as a percentage with one decimal (exact, from integers), or `None` when `whole` is 0.
fn percent(part: u64, whole: u64) -> Option<Value> {
    if whole == 0 {
        return None;
    }
    let per_mille =
        u64::try_from(u128::from(part.min(whole)) * 1000 / u128::from(whole)).unwrap_or(1000);
    let text = format!("{}.{}", per_mille / 10, per_mille % 10);
    Some(
        text.parse::<serde_json::Number>()
            .map_or(Value::from(per_mille / 10), Value::Number),
    )
}

impl<V: Clone + Send + Sync + 'static> Check for QueryCacheCheck<V> {
    fn run(&self) -> CheckFuture<'_> {
        let observation = self.observe();
        Box::pin(std::future::ready(observation))
    }
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_keep_one_decimal_and_never_divide_by_zero() {
        assert_eq!(percent(1, 3).unwrap().to_string(), "33.3");
        assert_eq!(percent(2, 3).unwrap().to_string(), "66.6");
        assert_eq!(percent(5, 5).unwrap().to_string(), "100.0");
        assert_eq!(percent(0, 5).unwrap().to_string(), "0.0");
        assert_eq!(percent(u64::MAX, u64::MAX).unwrap().to_string(), "100.0");
        assert_eq!(percent(0, 0), None);
    }
}
