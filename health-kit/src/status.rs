//! Health status values and component types (draft-inadarei-api-health-check-06, sections 3 and 4).

use http::StatusCode;
use serde::Serialize;

/// The health of a check, an endpoint or the whole service.
///
/// Ordered from best to worst, so the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy.
    Pass,
    /// Healthy, with concerns (a non-critical check failing, a slow check). Answers 200.
    Warn,
    /// Unhealthy. Answers 503.
    Fail,
}

impl Status {
    /// The wire name: `pass`, `warn` or `fail`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }

    /// The HTTP status this health answers with: 200 for `pass` and `warn`, 503 for `fail` (draft section 3.1).
    #[must_use]
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::Pass | Self::Warn => StatusCode::OK,
            Self::Fail => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Reads a status, accepting the draft's aliases (`ok`, `up`, `error`, `down`) in any case.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "pass" | "ok" | "up" => Some(Self::Pass),
            "warn" => Some(Self::Warn),
            "fail" | "error" | "down" => Some(Self::Fail),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of component a check looks at (`componentType`, draft section 4.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComponentType {
    /// A component of the service itself, or a dependency that is neither a datastore nor the system.
    Component,
    /// A database, cache or queue.
    Datastore,
    /// The machine: disk, memory, CPU.
    System,
    /// A URI naming another kind.
    Uri(String),
}

impl ComponentType {
    /// The wire value.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Component => "component",
            Self::Datastore => "datastore",
            Self::System => "system",
            Self::Uri(uri) => uri,
        }
    }
}

impl Serialize for ComponentType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How the statuses of checks combine into the status of an endpoint.
///
/// A critical check that fails makes the whole `fail`; a non-critical one that fails, or any check that warns,
/// makes it `warn`; otherwise `pass`. A check with no result yet counts as failing.
#[must_use]
pub fn aggregate<I>(checks: I) -> Status
where
    I: IntoIterator<Item = (bool, Status)>,
{
    checks
        .into_iter()
        .fold(Status::Pass, |worst, (critical, status)| {
            let effective = match status {
                Status::Fail if !critical => Status::Warn,
                other => other,
            };
            worst.max(effective)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![Just(Status::Pass), Just(Status::Warn), Just(Status::Fail)]
    }

    proptest! {
        // The rule, written as a reference model: any critical fail -> fail; else any fail or warn ->
        // warn; else pass. And fail answers 503, the others 200.
        #[test]
        fn aggregate_matches_the_rule(checks in proptest::collection::vec((any::<bool>(), status()), 0..12)) {
            let got = aggregate(checks.iter().copied());
            let critical_fail = checks.iter().any(|&(c, s)| c && s == Status::Fail);
            let any_concern = checks.iter().any(|&(_, s)| s != Status::Pass);
            let expected = if critical_fail {
                Status::Fail
            } else if any_concern {
                Status::Warn
            } else {
                Status::Pass
            };
            prop_assert_eq!(got, expected);
            prop_assert_eq!(got.http_status() == StatusCode::SERVICE_UNAVAILABLE, critical_fail);
        }

        #[test]
        fn adding_a_passing_check_never_changes_the_result(
            checks in proptest::collection::vec((any::<bool>(), status()), 0..12),
            critical in any::<bool>(),
        ) {
            let before = aggregate(checks.iter().copied());
            let after = aggregate(checks.iter().copied().chain([(critical, Status::Pass)]));
            prop_assert_eq!(before, after);
        }
    }

    #[test]
    fn aliases_parse() {
        assert_eq!(Status::parse("UP"), Some(Status::Pass));
        assert_eq!(Status::parse("ok"), Some(Status::Pass));
        assert_eq!(Status::parse("Down"), Some(Status::Fail));
        assert_eq!(Status::parse("error"), Some(Status::Fail));
        assert_eq!(Status::parse("warn"), Some(Status::Warn));
        assert_eq!(Status::parse("maybe"), None);
    }
}
