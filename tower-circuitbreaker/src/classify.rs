//! Deciding how a call ended: success, failure, or neither.

use std::time::Duration;

use http::{HeaderMap, Response, StatusCode, header::RETRY_AFTER};

use crate::Outcome;

/// Decides the [`Outcome`] of a call from its result.
///
/// Any `Fn(&Result<T, E>) -> Outcome` is a classifier.
pub trait Classify<T, E> {
    /// The outcome of `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<F, T, E> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// `Ok` is a success, `Err` a failure: the classifier of [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<T, E> Classify<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// The classifier of [`HttpCircuitBreakerLayer`](crate::HttpCircuitBreakerLayer):
///
/// | result | outcome |
/// |---|---|
/// | `Err` (transport error, timeout) | failure |
/// | 5xx, 429 | failure; with `Retry-After` on a 429 or 503, [`Outcome::FailureRetryAfter`] |
/// | other 4xx (the caller's fault) | ignored |
/// | 1xx, 2xx, 3xx | success |
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpClassifier;

impl<B, E> Classify<Response<B>, E> for HttpClassifier {
    fn classify(&self, result: &Result<Response<B>, E>) -> Outcome {
        match result {
            Err(_) => Outcome::Failure,
            Ok(res) => classify_status(res.status(), res.headers()),
        }
    }
}

/// The [`HttpClassifier`] rule for one status and its headers.
#[must_use]
pub fn classify_status(status: StatusCode, headers: &HeaderMap) -> Outcome {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let wants_pause = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        match retry_after(headers) {
            Some(d) if wants_pause => Outcome::FailureRetryAfter(d),
            _ => Outcome::Failure,
        }
    } else if status.is_client_error() {
        Outcome::Ignored
    } else {
        Outcome::Success
    }
}

/// `Retry-After` (RFC 9110 10.2.3) as a wait: delta-seconds, or an HTTP-date taken relative to the system's
/// wall clock (a date in the past gives zero); anything unreadable gives `None`.
#[must_use]
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

fn retry_after_at(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // A value too large for u64 seconds still means "a long time": the breaker caps it anyway.
        return Some(v.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn statuses_are_classified() {
        let h = HeaderMap::new();
        assert_eq!(classify_status(StatusCode::OK, &h), Outcome::Success);
        assert_eq!(classify_status(StatusCode::NOT_FOUND, &h), Outcome::Ignored);
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, &h),
            Outcome::Failure
        );
        assert_eq!(
            classify_status(StatusCode::BAD_GATEWAY, &h),
            Outcome::Failure
        );
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, &h),
            Outcome::FailureRetryAfter(Duration::from_secs(120))
        );
        assert_eq!(
            classify_status(StatusCode::INTERNAL_SERVER_ERROR, &h),
            Outcome::Failure
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, &h),
            Outcome::Failure
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h), None);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("99999999999999999999999"),
        );
        assert_eq!(retry_after(&h), Some(Duration::MAX));
    }

    #[test]
    fn retry_after_reads_http_dates_against_the_wall_clock() {
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let at = httpdate::parse_http_date("Wed, 21 Oct 2015 07:27:00 GMT").unwrap();
        assert_eq!(retry_after_at(&h, at), Some(Duration::from_secs(60)));
        let later = httpdate::parse_http_date("Wed, 21 Oct 2015 08:00:00 GMT").unwrap();
        assert_eq!(retry_after_at(&h, later), Some(Duration::ZERO));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "2015 is in the past");
    }
}
