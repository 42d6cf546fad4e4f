//! The answers of the gRPC health protocol (grpc.health.v1), for a tonic server's health service.

use crate::registry::Health;
use crate::status::Status;

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`, with the protocol's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServingStatus {
    /// `UNKNOWN` (0).
    Unknown,
    /// `SERVING` (1).
    Serving,
    /// `NOT_SERVING` (2).
    NotServing,
    /// `SERVICE_UNKNOWN` (3): a `Watch` on a service name no check has. A `Check` call answers `NOT_FOUND`
    /// instead, per the protocol.
    ServiceUnknown,
}

impl ServingStatus {
    /// The enum's number on the wire.
    #[must_use]
    pub fn as_i32(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::Serving => 1,
            Self::NotServing => 2,
            Self::ServiceUnknown => 3,
        }
    }
}

impl Health {
    /// What the gRPC health service answers for `service`: the empty name is the whole server and follows
    /// readiness (`NOT_SERVING` while starting, draining, marked not ready or when a critical check fails;
    /// `warn` is still `SERVING`); a check's name follows that check alone (`NOT_SERVING` when it fails or has
    /// no fresh result); any other name is `SERVICE_UNKNOWN`.
    #[must_use]
    pub fn grpc_serving_status(&self, service: &str) -> ServingStatus {
        let serving = |status: Status| {
            if status == Status::Fail {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            }
        };
        if service.is_empty() {
            return serving(self.ready().health());
        }
        if !self.has_check(service) {
            return ServingStatus::ServiceUnknown;
        }
        self.check_status(service)
            .map_or(ServingStatus::NotServing, serving)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOptions, Observation, snapshot_fn};

    #[tokio::test(start_paused = true)]
    async fn serving_status_follows_readiness_and_each_check() {
        let health = Health::builder()
            .check(
                "db",
                snapshot_fn(Observation::pass),
                CheckOptions::critical(),
            )
            .check(
                "search",
                snapshot_fn(|| Observation::fail("down")),
                CheckOptions::non_critical(),
            )
            .build()
            .unwrap();
        assert_eq!(
            health.grpc_serving_status(""),
            ServingStatus::NotServing,
            "not started yet"
        );
        assert_eq!(
            health.grpc_serving_status("db"),
            ServingStatus::NotServing,
            "no result yet"
        );
        health.mark_started();
        health.refresh().await;
        assert_eq!(
            health.grpc_serving_status(""),
            ServingStatus::Serving,
            "a non-critical failure is a warn"
        );
        assert_eq!(health.grpc_serving_status("db"), ServingStatus::Serving);
        assert_eq!(
            health.grpc_serving_status("search"),
            ServingStatus::NotServing
        );
        assert_eq!(
            health.grpc_serving_status("nope"),
            ServingStatus::ServiceUnknown
        );
        health.start_draining();
        assert_eq!(health.grpc_serving_status("").as_i32(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn subscribers_see_each_change_of_status() {
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = std::sync::Arc::clone(&healthy);
        let health = Health::builder()
            .check(
                "db",
                snapshot_fn(move || {
                    if flag.load(std::sync::atomic::Ordering::SeqCst) {
                        Observation::pass()
                    } else {
                        Observation::fail("down")
                    }
                }),
                CheckOptions::critical().interval(std::time::Duration::from_secs(1)),
            )
            .build()
            .unwrap();
        let mut rx = health.subscribe();
        assert_eq!(*rx.borrow_and_update(), Status::Fail, "no result yet");
        let refresher = health.spawn_refresher();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), Status::Pass);
        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), Status::Fail);
        refresher.stop();
    }
}
