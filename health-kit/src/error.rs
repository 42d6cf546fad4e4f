//! Configuration errors, refused once when the registry is built.

use std::time::Duration;

/// A registry that cannot be built as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Two checks have the same name; their keys in `checks` would collide.
    #[error("two checks are named {0:?}")]
    DuplicateName(String),
    /// A check name is empty or contains `:`, which separates component and measurement in the draft's keys.
    #[error("check name {0:?} must be non-empty and contain no ':'")]
    InvalidName(String),
    /// A timeout or interval of zero would run a check without end or cut it at once.
    #[error("check {name:?}: {what} must be greater than zero, got {value:?}")]
    ZeroDuration {
        /// The check.
        name: String,
        /// `timeout` or `interval`.
        what: &'static str,
        /// The value given.
        value: Duration,
    },
}
