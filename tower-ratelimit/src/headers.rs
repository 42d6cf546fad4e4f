//! The IETF `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-11) and the
//! quota-exceeded problem body.

use bytes::Bytes;
use http::HeaderValue;

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
