//! Errors of configuration and of stores.

/// A configuration that cannot work, refused when it is built (never at request time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A quota that is zero, too fine or too long.
    #[error("invalid quota: {0}")]
    InvalidQuota(String),
    /// A limit, tier or category name outside `a-z0-9_-.` (1 to 64 characters).
    #[error("invalid name {0:?}: use 1 to 64 characters of a-z, 0-9, '_', '-' and '.'")]
    InvalidName(String),
    /// A CIDR or address that does not parse.
    #[error("invalid network {0:?}")]
    InvalidNetwork(String),
    /// A policy that names something not defined, or defines too many limits for one request.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// A policy file that cannot be read or parsed.
    #[error("policy file: {0}")]
    PolicyFile(String),
}

/// A store that could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within its call timeout.
    #[error("store call timed out")]
    Timeout,
    /// The store answered with an error or the connection failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store's answer did not have the expected shape.
    #[error("unexpected store reply: {0}")]
    BadReply(String),
}
