//! The GET cache layer: `Cache-Status` members for hits, misses, bypasses and refusals; keys by route, query and
//! caller; invalidation by the tenant's `http` tag.
#![cfg(feature = "http-layer")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use query_cache::layer::{CACHE_STATUS, CachedResponse, GetCacheLayer, HTTP_TAG};
use query_cache::{Clock, QueryCache, Tier};
use tower::{Layer, ServiceExt, service_fn};

fn cache() -> QueryCache<CachedResponse> {
    let (clock, _) = Clock::manual();
    QueryCache::builder()
        .clock(clock)
        .build()
        .expect("valid config")
}

/// Tenant and caller from `x-org` and `x-user` (a real server reads verified token claims instead).
fn caller(parts: &http::request::Parts) -> Option<(String, String)> {
    let org = parts.headers.get("x-org")?.to_str().ok()?.to_owned();
    let user = parts.headers.get("x-user")?.to_str().ok()?.to_owned();
    Some((org, user))
}

type Svc = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<Full<Bytes>>,
    query_cache::layer::BoxError,
>;

fn app(cache: &QueryCache<CachedResponse>, calls: &Arc<AtomicU64>, status: StatusCode) -> Svc {
    let calls = Arc::clone(calls);
    let upstream = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let mut response = Response::new(Full::new(Bytes::from(format!("answer {n}"))));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    });
    tower::util::BoxCloneService::new(
        GetCacheLayer::new(cache.clone(), Tier::Short, "reference-server", caller).layer(upstream),
    )
}

async fn send(
    svc: &Svc,
    method: &str,
    uri: &str,
    user: Option<&str>,
    extra: Option<(&str, &str)>,
) -> (String, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(user) = user {
        request = request.header("x-org", "42").header("x-user", user);
    }
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    let response = svc
        .clone()
        .oneshot(request.body(Full::new(Bytes::new())).expect("test request"))
        .await
        .expect("test request");
    let status = response
        .headers()
        .get(CACHE_STATUS)
        .map(|v| v.to_str().expect("test request").to_owned())
        .unwrap_or_default();
    let body = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("test request")
            .to_bytes()
            .to_vec(),
    )
    .expect("test request");
    (status, body)
}

#[tokio::test]
async fn second_get_is_a_hit_with_its_remaining_ttl() {
    let cache = cache();
    let calls = Arc::new(AtomicU64::new(0));
    let svc = app(&cache, &calls, StatusCode::OK);
    assert_eq!(
        send(&svc, "GET", "/dashboard?month=11", Some("u1"), None).await,
        (
            "reference-server; fwd=miss; stored".to_owned(),
            "answer 1".to_owned()
        )
    );
    assert_eq!(
        send(&svc, "GET", "/dashboard?month=11", Some("u1"), None).await,
        (
            "reference-server; hit; ttl=60".to_owned(),
            "answer 1".to_owned()
        )
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn query_and_caller_are_part_of_the_key() {
    let cache = cache();
    let calls = Arc::new(AtomicU64::new(0));
    let svc = app(&cache, &calls, StatusCode::OK);
    send(&svc, "GET", "/dashboard?month=11", Some("u1"), None).await;
    assert_eq!(
        send(&svc, "GET", "/dashboard?month=10", Some("u1"), None)
            .await
            .1,
        "answer 2"
    );
    assert_eq!(
        send(&svc, "GET", "/dashboard?month=11", Some("u2"), None)
            .await
            .1,
        "answer 3"
    );
}

#[tokio::test]
async fn requests_without_a_caller_or_refusing_caches_go_forward() {
    let cache = cache();
    let calls = Arc::new(AtomicU64::new(0));
    let svc = app(&cache, &calls, StatusCode::OK);
    assert_eq!(
        send(&svc, "GET", "/d", None, None).await.0,
        "reference-server; fwd=bypass"
    );
    send(&svc, "GET", "/d", Some("u1"), None).await;
    let (status, body) = send(
        &svc,
        "GET",
        "/d",
        Some("u1"),
        Some(("cache-control", "no-cache")),
    )
    .await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("reference-server; fwd=request", "answer 3")
    );
    assert_eq!(
        send(&svc, "POST", "/d", Some("u1"), None).await,
        (String::new(), "answer 4".to_owned())
    );
}

#[tokio::test]
async fn errors_are_not_stored() {
    let cache = cache();
    let calls = Arc::new(AtomicU64::new(0));
    let svc = app(&cache, &calls, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        send(&svc, "GET", "/d", Some("u1"), None).await.0,
        "reference-server; fwd=miss"
    );
    assert_eq!(
        send(&svc, "GET", "/d", Some("u1"), None).await.1,
        "answer 2"
    );
}

#[tokio::test]
async fn invalidating_the_tenants_http_tag_drops_its_responses() {
    let cache = cache();
    let calls = Arc::new(AtomicU64::new(0));
    let svc = app(&cache, &calls, StatusCode::OK);
    send(&svc, "GET", "/d", Some("u1"), None).await;
    cache.invalidate_tag("42", HTTP_TAG).await.unwrap();
    assert_eq!(
        send(&svc, "GET", "/d", Some("u1"), None).await.0,
        "reference-server; fwd=miss; stored"
    );
}

#[tokio::test]
async fn an_upstream_cache_status_member_is_kept() {
    let cache = cache();
    let upstream = service_fn(|_req: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(b"x")));
        response.headers_mut().insert(
            CACHE_STATUS,
            http::HeaderValue::from_static("OriginCache; hit"),
        );
        Ok::<_, Infallible>(response)
    });
    let svc = GetCacheLayer::new(cache, Tier::Short, "reference-server", caller).layer(upstream);
    let request = Request::get("/d")
        .header("x-org", "1")
        .header("x-user", "u")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()[CACHE_STATUS],
        "OriginCache; hit, reference-server; fwd=miss; stored"
    );
    let request = Request::get("/d")
        .header("x-org", "1")
        .header("x-user", "u")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()[CACHE_STATUS],
        "OriginCache; hit, reference-server; hit; ttl=60"
    );
}
