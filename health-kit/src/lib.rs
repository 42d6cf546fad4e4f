//! Liveness, readiness, startup and status probes that answer from a cache of concurrently run checks.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod check;
mod clock;
mod error;
mod observation;
mod policy;
mod registry;
mod report;
mod response;
mod service;
mod status;

#[cfg(feature = "axum")]
pub mod axum;
pub mod checks;

pub use check::{Check, CheckFn, CheckFuture, SnapshotFn, check_fn, snapshot_fn};
pub use clock::WallClock;
pub use error::ConfigError;
pub use observation::{Measurement, Observation};
pub use policy::DetailPolicy;
pub use registry::{CheckOptions, Health, HealthBuilder, Refresher};
pub use response::{Endpoint, HEALTH_JSON, HealthResponse};
pub use service::{EndpointService, HealthService};
pub use status::{ComponentType, Status, aggregate};
