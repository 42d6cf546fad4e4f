//! Free space of the file system that holds a path.

use std::path::PathBuf;
use std::sync::Arc;

use crate::check::{Check, CheckFuture};
use crate::observation::{Measurement, Observation};

/// Reports the file system's `utilization` (percent used, to 0.1 %) with `availableBytes` and `totalBytes`
/// beside it; `warn` below one threshold of available bytes and `fail` below another.
///
/// `statvfs` runs on tokio's blocking pool, since a network file system can make it block. Register it with
/// `ComponentType::System`, usually non-critical: a full disk is for an operator, not a reason to take the
/// instance out of the load balancer.
#[derive(Debug, Clone)]
pub struct DiskSpaceCheck {
    path: Arc<PathBuf>,
    warn_below: u64,
    fail_below: u64,
}

impl DiskSpaceCheck {
    /// Default `warn` threshold: 1 GiB available.
    pub const DEFAULT_WARN_BELOW: u64 = 1 << 30;
    /// Default `fail` threshold: 100 MiB available.
    pub const DEFAULT_FAIL_BELOW: u64 = 100 << 20;

    /// A check of the file system holding `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Arc::new(path.into()),
            warn_below: Self::DEFAULT_WARN_BELOW,
            fail_below: Self::DEFAULT_FAIL_BELOW,
        }
    }

    /// `warn` when fewer bytes than this are available to the service.
    #[must_use]
    pub fn warn_below(mut self, bytes: u64) -> Self {
        self.warn_below = bytes;
        self
    }

    /// `fail` when fewer bytes than this are available to the service.
    #[must_use]
    pub fn fail_below(mut self, bytes: u64) -> Self {
        self.fail_below = bytes;
        self
    }

    /// The observation for given figures (separate from the system call, so it can be tested directly).
    #[must_use]
    pub fn judge(&self, available: u64, total: u64) -> Observation {
        let used = total.saturating_sub(available);
        // Per mille in integers, shown as a percentage with one decimal.
        let per_mille = if total == 0 {
            0
        } else {
            u64::try_from(u128::from(used) * 1000 / u128::from(total)).unwrap_or(1000)
        };
        let percent = format!("{}.{}", per_mille / 10, per_mille % 10)
            .parse::<serde_json::Number>()
            .map_or(
                serde_json::Value::from(per_mille / 10),
                serde_json::Value::Number,
            );
        let measurement = Measurement::new("utilization")
            .value(percent)
            .unit("percent")
            .field("availableBytes", available)
            .field("totalBytes", total)
            .field("path", self.path.display().to_string());
        let observation = if available < self.fail_below {
            Observation::fail(format!(
                "{available} bytes available, below {}",
                self.fail_below
            ))
        } else if available < self.warn_below {
            Observation::warn(format!(
                "{available} bytes available, below {}",
                self.warn_below
            ))
        } else {
            Observation::pass()
        };
        observation.measurement(measurement)
    }
}

impl Check for DiskSpaceCheck {
    fn run(&self) -> CheckFuture<'_> {
        let path = Arc::clone(&self.path);
        Box::pin(async move {
            let stats = tokio::task::spawn_blocking(move || fs4::statvfs(path.as_path())).await;
            match stats {
                Ok(Ok(stats)) => self.judge(stats.available_space(), stats.total_space()),
                Ok(Err(e)) => Observation::fail(format!("statvfs {}: {e}", self.path.display())),
                Err(_) => Observation::fail("statvfs task failed"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    #[test]
    fn thresholds_pick_the_status() {
        let check = DiskSpaceCheck::new("/").warn_below(100).fail_below(10);
        assert_eq!(check.judge(500, 1000).status(), Status::Pass);
        assert_eq!(check.judge(50, 1000).status(), Status::Warn);
        assert_eq!(check.judge(5, 1000).status(), Status::Fail);
        let observation = check.judge(250, 1000);
        let m = &observation.measurements()[0];
        assert_eq!(m.observed_value().unwrap().to_string(), "75.0");
        assert_eq!(check.judge(0, 0).status(), Status::Fail);
    }

    #[tokio::test]
    async fn reads_the_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let observation = DiskSpaceCheck::new(dir.path())
            .warn_below(0)
            .fail_below(0)
            .run()
            .await;
        assert_eq!(observation.status(), Status::Pass, "{observation:?}");
        let m = &observation.measurements()[0];
        assert!(m.fields()["totalBytes"].as_u64().unwrap() > 0);
        let missing = DiskSpaceCheck::new(dir.path().join("missing/deeper"))
            .run()
            .await;
        assert_eq!(missing.status(), Status::Fail);
    }
}
