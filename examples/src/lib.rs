//! Runnable programs, one per crate at least, in `examples/examples/`.
//!
//! Each program starts with a comment saying what it shows and the command that runs it, for example
//! `cargo run -p examples --example circuitbreaker`.
#![forbid(unsafe_code)]
