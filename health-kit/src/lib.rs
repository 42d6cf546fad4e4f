//! Liveness, readiness, startup and status probes that answer from a cache of concurrently run checks.
//!
//! This crate will hold: a registry of named checks, each critical or not with its own timeout and interval,
//! run concurrently and refreshed in the background; aggregation into `application/health+json`
//! (draft-inadarei-api-health-check); `/health/live`, `/health/ready`, `/health/startup` and `/health/status`
//! as a tower service and an axum router; a drain helper for graceful shutdown; and built-in checks for sqlx
//! pools, Redis and disk space.
//!
//! Status: planned (issue 6). No API is published yet.
#![forbid(unsafe_code)]
