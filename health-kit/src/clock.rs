//! Wall-clock time for the `time` field, injectable so tests can pin it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the registry reads the wall-clock time it writes into each check's `time` field.
///
/// Durations (timeouts, intervals, `responseTime`) come from tokio's monotonic clock instead, so they follow
/// `tokio::time::pause` in tests and never run backwards.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub(crate) fn system_wall_clock() -> WallClock {
    Arc::new(SystemTime::now)
}

/// Formats a time as RFC 3339 in UTC with whole seconds, such as `2026-11-22T08:00:00Z` (draft section 4.7,
/// local rule: UTC). Times before 1970 are written as the epoch.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    proptest! {
        // httpdate formats the same instant as an IMF-fixdate; both must name the same calendar fields.
        #[test]
        fn agrees_with_httpdate(secs in 0u64..253_402_300_799) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let ours = rfc3339(t);
            let theirs = httpdate::fmt_http_date(t); // "Tue, 14 Nov 2023 22:13:20 GMT"
            let parts: Vec<&str> = theirs.split(' ').collect();
            let months = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
            let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
            let expected = format!("{}-{month:02}-{}T{}Z", parts[3], parts[1], parts[4]);
            prop_assert_eq!(ours, expected);
        }
    }
}
