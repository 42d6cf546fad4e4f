//! The domain: rules and queries, no HTTP types.

pub mod identity;
