//! The IETF `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-11) and the
//! quota-exceeded problem body.

use bytes::Bytes;
use http::HeaderValue;

use crate::decision::Decision;
use crate::gcra::{Limit, LimitOutcome};

/// The `RateLimit-Policy` field name.
pub const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` field name.
pub const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");
/// The problem type of a refusal (draft-11 section 5).
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

fn sf_int(n: u64) -> sfv::Integer {
    sfv::Integer::try_from(n.min(SF_INTEGER_MAX)).unwrap_or(sfv::integer(0))
}

/// `RateLimit-Policy`: one member per limit, from each limit's precomputed item.
pub(crate) fn policy_value<'a>(limits: impl Iterator<Item = &'a Limit>) -> Option<HeaderValue> {
    let mut out = String::new();
    for limit in limits {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(limit.policy_item());
    }
    if out.is_empty() {
        None
    } else {
        HeaderValue::from_str(&out).ok()
    }
}

/// `RateLimit: "name";r=R;t=T` for one limit.
pub(crate) fn ratelimit_value(limit: &Limit, outcome: &LimitOutcome) -> Option<HeaderValue> {
    let mut ser = sfv::ListSerializer::new();
    let name = sfv::StringRef::from_str(limit.name()).ok()?;
    ser.bare_item(name)
        .parameter(sfv::key_ref("r"), sf_int(outcome.remaining()))
        .parameter(sfv::key_ref("t"), sf_int(outcome.reset_secs()));
    HeaderValue::from_str(&ser.finish()?).ok()
}

/// The `RateLimit-Policy` and `RateLimit` fields of a decision made outside the layer, with
/// [`RateLimiter::decide`](crate::RateLimiter::decide): `limits` are the limits of its checks, in their
/// order. The policy field lists every limit; `RateLimit` describes the binding one (the refusing limit with
/// the longest wait, or the one with the fewest units left). For a 429 that a handler sends itself, such as
/// a per-account sign-in limit, so it carries the same fields as the layer's.
#[must_use]
pub fn fields(limits: &[&Limit], decision: &Decision) -> Option<(HeaderValue, HeaderValue)> {
    let policy = policy_value(limits.iter().copied())?;
    let binding = decision.binding()?;
    let rate = ratelimit_value(limits.get(binding)?, decision.outcomes().get(binding)?)?;
    Some((policy, rate))
}

/// The RFC 9457 body of a 429.
pub(crate) fn problem_body<'a>(
    violated: impl Iterator<Item = &'a Limit>,
    retry_secs: u64,
) -> Bytes {
    let mut names = String::new();
    for limit in violated {
        if !names.is_empty() {
            names.push(',');
        }
        // Limit names are a-z0-9_-. only, so they need no escaping.
        names.push('"');
        names.push_str(limit.name());
        names.push('"');
    }
    Bytes::from(format!(
        "{{\"type\":\"{QUOTA_EXCEEDED_TYPE}\",\"title\":\"Quota Exceeded\",\"status\":429,\
         \"detail\":\"Too many requests; retry in {retry_secs} s\",\"violated-policies\":[{names}]}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Check, Key, ManualClock, Quota, RateLimiter};

    #[test]
    fn fields_of_a_decision_describe_the_binding_limit() {
        let limiter = RateLimiter::builder()
            .clock(ManualClock::starting_at(1))
            .build();
        let account = Limit::new("auth_account", Quota::per_hour(5).unwrap()).unwrap();
        let client = Limit::new("auth", Quota::per_minute(20).unwrap()).unwrap();
        let decide = |cost| {
            limiter
                .decide(
                    &[
                        Check::charge(&account, Key::Str("olive")),
                        Check::charge(&client, Key::Id(7)),
                    ],
                    cost,
                )
                .into_ready()
                .unwrap()
        };
        let admitted = decide(2);
        let (policy, rate) = fields(&[&account, &client], &admitted).unwrap();
        assert_eq!(policy, "\"auth_account\";q=5;w=3600, \"auth\";q=20;w=60");
        assert!(
            rate.to_str()
                .unwrap()
                .starts_with("\"auth_account\";r=3;t="),
            "fewest left: the account, {rate:?}"
        );

        let refused = decide(4);
        assert!(!refused.is_allowed());
        let (_, rate) = fields(&[&account, &client], &refused).unwrap();
        assert!(
            rate.to_str()
                .unwrap()
                .starts_with("\"auth_account\";r=3;t="),
            "{rate:?}"
        );
        assert_eq!(fields(&[], &refused), None);
    }
}
