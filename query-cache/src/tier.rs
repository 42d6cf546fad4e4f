//! Named freshness tiers.

use std::time::Duration;

/// How long a result stays fresh: one of four named tiers, or a TTL chosen by the call.
///
/// | tier | default TTL |
/// |---|---|
/// | [`Tier::Short`] | 60 s |
/// | [`Tier::Medium`] | 300 s |
/// | [`Tier::Long`] | 3 600 s |
/// | [`Tier::VeryLong`] | 86 400 s |
///
/// The named TTLs are set with [`QueryCacheBuilder::tier_ttl`](crate::QueryCacheBuilder::tier_ttl). Statistics
/// are kept per tier; every [`Tier::Ttl`] call counts under one bucket, `custom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// Changes often, read constantly (default 60 s).
    Short,
    /// Default 300 s.
    Medium,
    /// Default 3 600 s.
    Long,
    /// Reference data (default 86 400 s).
    VeryLong,
    /// A TTL chosen by the caller.
    Ttl(Duration),
}

impl Tier {
    /// The four named tiers, in order.
    pub const NAMED: [Tier; 4] = [Tier::Short, Tier::Medium, Tier::Long, Tier::VeryLong];

    /// The bucket its statistics are kept in: 0 to 3 for the named tiers, 4 for [`Tier::Ttl`].
    pub(crate) fn index(self) -> usize {
        match self {
            Tier::Short => 0,
            Tier::Medium => 1,
            Tier::Long => 2,
            Tier::VeryLong => 3,
            Tier::Ttl(_) => 4,
        }
    }

    /// The label used in statistics: `short`, `medium`, `long`, `very_long`, `custom`.
    #[must_use]
    pub fn label(self) -> &'static str {
        TIER_LABELS[self.index()]
    }
}

/// Labels of the statistics buckets, by [`Tier::index`].
pub(crate) const TIER_LABELS: [&str; 5] = ["short", "medium", "long", "very_long", "custom"];

/// The TTLs of the named tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TierTtls(pub(crate) [Duration; 4]);

impl Default for TierTtls {
    fn default() -> Self {
        Self([
            Duration::from_secs(60),
            Duration::from_secs(300),
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
        ])
    }
}

impl TierTtls {
    pub(crate) fn ttl(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Ttl(ttl) => ttl,
            named => self.0[named.index()],
        }
    }
}
