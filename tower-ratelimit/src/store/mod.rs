//! Where limit state lives: in this process ([`memory`]) or in Redis (`redis`, feature `redis`).

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
