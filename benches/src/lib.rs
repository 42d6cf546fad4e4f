//! Benchmarks of this workspace's crates next to their peers.
//!
//! Each concern has one criterion bench target in `benches/` (`cargo bench -p benches --bench <area>`), with
//! groups named `area/case` and function ids `ours` and the peer's crate name, so both run in one group of one
//! run and the ratio between them is what the crate READMEs report.
#![forbid(unsafe_code)]
