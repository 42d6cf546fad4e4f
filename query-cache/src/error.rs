//! Errors.

use std::sync::Arc;

/// A key, tenant or tag that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Empty, or longer than [`MAX_PART_LEN`](crate::key::MAX_PART_LEN) bytes.
    #[error("{what} must be 1 to 256 bytes long, not {len}")]
    Length {
        /// Which part: `tenant`, `query name` or `tag`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A character that would make keys ambiguous or unreadable.
    #[error("{what} must not contain {character:?}")]
    Character {
        /// Which part: `tenant`, `query name` or `tag`.
        what: &'static str,
        /// The first offending character.
        character: char,
    },
    /// The parameters could not be serialized.
    #[error("query parameters cannot be serialized: {0}")]
    Params(String),
}

/// Why [`QueryCache::get_or_load`](crate::QueryCache::get_or_load) returned no value.
///
/// A failed load reaches every caller that waited on it as the same `Arc<E>`. Cache failures (Redis down)
/// never appear here: the cache falls back to the loader instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader returned this error.
    #[error("loader failed: {0}")]
    Loader(Arc<E>),
    /// The loader's task panicked or was aborted before it gave a result.
    #[error("loader task ended without a result")]
    Aborted,
    /// The key holds a cached absence written by
    /// [`get_or_load_optional`](crate::QueryCache::get_or_load_optional); use one of the two methods per key.
    #[error("the key holds a cached absence")]
    Absent,
}

impl<E> LoadError<E> {
    /// The loader's error, when the loader failed.
    #[must_use]
    pub fn loader_error(&self) -> Option<&E> {
        match self {
            LoadError::Loader(e) => Some(e),
            LoadError::Aborted | LoadError::Absent => None,
        }
    }
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Loader(e) => LoadError::Loader(Arc::clone(e)),
            LoadError::Aborted => LoadError::Aborted,
            LoadError::Absent => LoadError::Absent,
        }
    }
}

/// A configuration that cannot work, refused when the cache is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A tier with a zero TTL.
    #[error("tier {0} has a zero TTL")]
    ZeroTtl(&'static str),
    /// A zero capacity.
    #[error("the in-process tier needs a capacity of at least 1")]
    ZeroCapacity,
}

/// A failure of the Redis tier (reported in statistics and logs; never returned to a reader).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis did not answer within the configured timeout.
    #[error("redis timed out")]
    Timeout,
    /// Redis answered with an error, or the connection failed.
    #[error("redis failed: {0}")]
    Redis(String),
    /// The tier is marked down after a recent failure and is skipped until it is probed again.
    #[error("redis is marked down")]
    Down,
    /// The Redis store was built outside a tokio runtime (it needs one for its connection).
    #[error("the redis store must be built inside a tokio runtime")]
    NoRuntime,
    /// A stored value could not be decoded.
    #[error("stored value cannot be decoded: {0}")]
    Decode(String),
}
