//! Circuit breakers for calls from a tower service to other systems (accounting, bank and payment APIs).
//!
//! This crate will hold: a breaker state machine (closed, open, half-open, forced-open, disabled,
//! metrics-only) that trips on consecutive failures or a failure rate over a sliding window; half-open probes;
//! exponential back-off of the open duration; generations so that late results cannot decide the current state;
//! a registry of named breakers with snapshots and transition events; and a tower layer whose closed path
//! touches atomics only.
//!
//! Status: planned (issue 4). No API is published yet.
#![forbid(unsafe_code)]
