//! Caching of expensive query results with named TTL tiers, single flight and tag invalidation.
//!
//! This crate will hold: stable keys from a query name and its parameters, namespaced per tenant;
//! `get_or_load` with single flight, stale-while-revalidate and early probabilistic refresh; invalidation by key
//! and by tag through generation counters; in-process, Redis and two-level stores kept coherent over Redis
//! pub/sub; statistics per tier; and an optional tower layer caching GET responses with `Cache-Status`.
//!
//! Status: planned (issue 7). No API is published yet.
#![forbid(unsafe_code)]
