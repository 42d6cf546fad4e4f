//! Cache keys: a tenant, a query name and its parameters, plus the tags the result depends on.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;

use crate::error::KeyError;

/// Longest tenant, query name or tag accepted, in bytes.
pub const MAX_PART_LEN: usize = 256;

/// The key of one cached query result.
///
/// Made from a tenant (the namespace: one organization's keys never meet another's), a query name and the
/// query's parameters, which are serialized with postcard (a stable, documented wire format) and written as
/// lowercase hex, so the same query gives the same key in every process and every version of the program
/// whose parameter types serialize the same way. The key also carries the tags the result depends on
/// (`invoices`, `transactions`); tags are scoped to the tenant, so invalidating tag `invoices` of tenant `42`
/// touches nothing of tenant `43`.
///
/// Cloning is cheap (one `Arc`). Equality and hashing look at tenant, name and parameters, not at tags.
///
/// ```
/// use query_cache::CacheKey;
/// let key = CacheKey::new("42", "dashboard.totals", &("2026-11", "AUD"))?.tagged(["invoices", "payments"])?;
/// assert_eq!(key.tenant(), "42");
/// assert_eq!(key.as_str(), "42:dashboard.totals:07323032362d313103415544");
/// # Ok::<(), query_cache::KeyError>(())
/// ```
#[derive(Clone)]
pub struct CacheKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    /// `tenant:name:hex(params)`.
    full: Box<str>,
    tenant_len: usize,
    hash: u64,
    tags: Box<[Box<str>]>,
}

impl CacheKey {
    /// Builds a key from a tenant, a query name and the query's parameters.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the tenant is empty, longer than [`MAX_PART_LEN`] or contains `:`, `{`, `}`, whitespace
    /// or control characters; when the name is empty, too long or contains `:`, whitespace or control
    /// characters; or when the parameters cannot be serialized.
    pub fn new<P: Serialize + ?Sized>(
        tenant: &str,
        name: &str,
        params: &P,
    ) -> Result<Self, KeyError> {
        check_part("tenant", tenant, |c| c == ':' || c == '{' || c == '}')?;
        check_part("query name", name, |c| c == ':')?;
        let bytes = postcard::to_allocvec(params).map_err(|e| KeyError::Params(e.to_string()))?;
        let mut full = String::with_capacity(tenant.len() + name.len() + 2 + bytes.len() * 2);
        full.push_str(tenant);
        full.push(':');
        full.push_str(name);
        full.push(':');
        for b in &bytes {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            full.push(char::from(HEX[usize::from(b >> 4)]));
            full.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Ok(Self::from_parts(
            full.into_boxed_str(),
            tenant.len(),
            Box::new([]),
        ))
    }

    /// Rebuilds a key from [`CacheKey::as_str`] (without tags), as invalidation messages carry it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn from_full(full: &str) -> Option<Self> {
        let tenant_len = full.find(':')?;
        Some(Self::from_parts(full.into(), tenant_len, Box::new([])))
    }

    fn from_parts(full: Box<str>, tenant_len: usize, tags: Box<[Box<str>]>) -> Self {
        let hash = fx_hash(full.as_bytes());
        Self {
            inner: Arc::new(KeyInner {
                full,
                tenant_len,
                hash,
                tags,
            }),
        }
    }

    /// The same key with these tags (replacing any it had).
    ///
    /// # Errors
    ///
    /// [`KeyError`] when a tag is empty, longer than [`MAX_PART_LEN`] or contains whitespace or control
    /// characters.
    pub fn tagged<I, T>(self, tags: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut list: Vec<Box<str>> = Vec::new();
        for tag in tags {
            let tag = tag.as_ref();
            check_part("tag", tag, |_| false)?;
            if !list.iter().any(|t| &**t == tag) {
                list.push(tag.into());
            }
        }
        Ok(Self {
            inner: Arc::new(KeyInner {
                full: self.inner.full.clone(),
                tenant_len: self.inner.tenant_len,
                hash: self.inner.hash,
                tags: list.into_boxed_slice(),
            }),
        })
    }

    /// The tenant this key belongs to.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.inner.full[..self.inner.tenant_len]
    }

    /// The whole key, `tenant:name:hex(params)`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.inner.full
    }

    /// The tags the cached result depends on.
    #[must_use]
    pub fn tags(&self) -> &[Box<str>] {
        &self.inner.tags
    }

    /// A hash computed once when the key was built (not stable across processes; used by in-process maps).
    #[inline]
    pub(crate) fn precomputed_hash(&self) -> u64 {
        self.inner.hash
    }
}

/// A tenant name checked the way [`CacheKey::new`] checks it.
pub(crate) fn check_tenant(tenant: &str) -> Result<(), KeyError> {
    check_part("tenant", tenant, |c| c == ':' || c == '{' || c == '}')
}

/// A tag checked the way [`CacheKey::tagged`] checks it.
pub(crate) fn check_tag(tag: &str) -> Result<(), KeyError> {
    check_part("tag", tag, |_| false)
}

fn check_part(
    what: &'static str,
    value: &str,
    forbidden: impl Fn(char) -> bool,
) -> Result<(), KeyError> {
    if value.is_empty() || value.len() > MAX_PART_LEN {
        return Err(KeyError::Length {
            what,
            len: value.len(),
        });
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || forbidden(c))
    {
        return Err(KeyError::Character { what, character: c });
    }
    Ok(())
}

/// FxHash over 8-byte words: fast, and good enough for a map that also compares the whole key.
fn fx_hash(bytes: &[u8]) -> u64 {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(SEED);
    }
    // Finalizer (murmur3 fmix64) so the low bits used for shard selection are well mixed.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.hash == other.inner.hash && self.inner.full == other.inner.full)
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.inner.hash);
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("key", &self.as_str())
            .field("tags", &self.tags())
            .finish()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hasher that passes through the precomputed `u64` a [`CacheKey`] writes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for CacheKey; mix anything else in so the hasher stays correct for other types.
        self.0 = fx_hash(bytes) ^ self.0.rotate_left(7);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`PrehashedHasher`]s.
pub(crate) type PrehashedState = std::hash::BuildHasherDefault<PrehashedHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_query_gives_the_same_key_and_other_params_another() {
        let a = CacheKey::new("7", "totals", &(2026_u32, "AUD")).unwrap();
        let b = CacheKey::new("7", "totals", &(2026_u32, "AUD")).unwrap();
        let c = CacheKey::new("7", "totals", &(2025_u32, "AUD")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.precomputed_hash(), b.precomputed_hash());
    }

    #[test]
    fn key_text_is_stable() {
        // The postcard encoding is a documented format: this literal must never change.
        let key = CacheKey::new("org-1", "cashflow", &(3_u8, "x")).unwrap();
        assert_eq!(key.as_str(), "org-1:cashflow:030178");
    }

    #[test]
    fn tenants_are_separate_namespaces() {
        let a = CacheKey::new("1", "q", &()).unwrap();
        let b = CacheKey::new("2", "q", &()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_parts_are_refused() {
        assert!(CacheKey::new("", "q", &()).is_err());
        assert!(CacheKey::new("a:b", "q", &()).is_err());
        assert!(CacheKey::new("a{b", "q", &()).is_err());
        assert!(CacheKey::new("a", "q:r", &()).is_err());
        assert!(CacheKey::new("a", "q r", &()).is_err());
        assert!(CacheKey::new("a", &"x".repeat(300), &()).is_err());
        assert!(
            CacheKey::new("a", "q", &())
                .unwrap()
                .tagged(["ok", "not ok"])
                .is_err()
        );
    }

    #[test]
    fn tags_do_not_change_identity_and_are_deduplicated() {
        let a = CacheKey::new("1", "q", &()).unwrap();
        let b = a.clone().tagged(["x", "x", "y"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.tags().len(), 2);
    }
}
