//! Who may read the details of `/health/status`.

use std::sync::Arc;

use http::request::Parts;

/// Whether `/health/status` shows `checks` (and the top-level `output`) to a caller. `/health/ready`,
/// `/health/live` and `/health/startup` never show details, whatever the policy.
///
/// Details name the service's dependencies and their errors, which the draft (section 6) says not to expose
/// without authentication; the default is therefore [`DetailPolicy::Never`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum DetailPolicy {
    /// Everyone gets the details (for a port only operators reach).
    Always,
    /// Nobody does: `/health/status` answers the status alone.
    #[default]
    Never,
    /// Callers for whom the predicate holds. It sees the request's head: headers, and the extensions where an
    /// authentication layer put its claims.
    When(Arc<dyn Fn(&Parts) -> bool + Send + Sync>),
}

impl DetailPolicy {
    /// Details for callers the predicate accepts.
    #[must_use]
    pub fn when<F>(predicate: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        Self::When(Arc::new(predicate))
    }

    /// Details for callers that send `Authorization: Bearer <token>`, compared in constant time.
    #[must_use]
    pub fn bearer_token(token: impl Into<String>) -> Self {
        let token: Arc<[u8]> = token.into().into_bytes().into();
        Self::when(move |parts| bearer_matches(parts, &token))
    }

    /// Details for callers either policy admits, such as a status token or an admin's access token:
    /// `DetailPolicy::bearer_token(token).or(DetailPolicy::when(is_admin))`.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        Self::when(move |parts| self.allows(parts) || other.allows(parts))
    }

    /// Whether the caller with this request head may see details.
    #[must_use]
    pub fn allows(&self, parts: &Parts) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::When(predicate) => predicate(parts),
        }
    }

    pub(crate) fn needs_request(&self) -> bool {
        matches!(self, Self::When(_))
    }

    /// The answer of `Always` and `Never`, which look at no request.
    pub(crate) fn allows_without_request(&self) -> bool {
        matches!(self, Self::Always)
    }
}

impl std::fmt::Debug for DetailPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("Always"),
            Self::Never => f.write_str("Never"),
            Self::When(_) => f.write_str("When(..)"),
        }
    }
}

fn bearer_matches(parts: &Parts, token: &[u8]) -> bool {
    if token.is_empty() {
        return false;
    }
    parts
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|value| {
            let bytes = value.as_bytes();
            // RFC 9110 11.1: the scheme is case-insensitive.
            bytes.len() > 7
                && bytes[..7].eq_ignore_ascii_case(b"bearer ")
                && constant_time_eq(&bytes[7..], token)
        })
}

/// Compares without stopping at the first difference, so the time taken does not tell how much of a guess
/// was right. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(auth: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().uri("/health/status");
        if let Some(auth) = auth {
            builder = builder.header(http::header::AUTHORIZATION, auth);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_token_needs_the_exact_token() {
        let policy = DetailPolicy::bearer_token("s3cret");
        assert!(policy.allows(&head(Some("Bearer s3cret"))));
        assert!(policy.allows(&head(Some("bearer s3cret"))));
        assert!(!policy.allows(&head(Some("Bearer s3cre"))));
        assert!(!policy.allows(&head(Some("Bearer s3cretx"))));
        assert!(!policy.allows(&head(Some("Basic s3cret"))));
        assert!(!policy.allows(&head(None)));
    }

    #[test]
    fn either_policy_admits_with_or() {
        let policy = DetailPolicy::bearer_token("t")
            .or(DetailPolicy::when(|p| p.headers.contains_key("x-admin")));
        assert!(policy.allows(&head(Some("Bearer t"))));
        let mut admin = head(None);
        admin
            .headers
            .insert("x-admin", http::HeaderValue::from_static("1"));
        assert!(policy.allows(&admin));
        assert!(!policy.allows(&head(Some("Bearer u"))));
        assert!(
            DetailPolicy::Never
                .or(DetailPolicy::Always)
                .allows(&head(None))
        );
    }

    #[test]
    fn empty_token_admits_nobody() {
        let policy = DetailPolicy::bearer_token("");
        assert!(!policy.allows(&head(Some("Bearer "))));
    }

    #[test]
    fn never_is_the_default() {
        assert!(!DetailPolicy::default().allows(&head(Some("Bearer x"))));
        assert!(DetailPolicy::Always.allows(&head(None)));
    }
}
