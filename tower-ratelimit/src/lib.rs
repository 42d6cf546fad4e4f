//! Tiered, keyed rate limiting for tower services with the generic cell rate algorithm (GCRA).
//!
//! This crate will hold: a GCRA core keeping each key's theoretical arrival time in one atomic word; policies
//! that charge every matching limit of a request (tier limits and route categories) atomically as a set; an
//! in-memory store that is sharded, bounded and evicts idle keys, and a Redis store that decides in one round
//! trip with a server-side script on Redis' own clock; client keys from trusted proxies only; and a tower layer
//! that answers `429` with `Retry-After` and the IETF `RateLimit`/`RateLimit-Policy` header fields.
//!
//! Status: planned (issue 3). No API is published yet.
#![forbid(unsafe_code)]
