//! The HTTP layer: 5xx, 429 and transport errors trip the circuit, other 4xx do not; a refused request gets
//! 503 problem+json with `Retry-After` (or the configured fallback), and an upstream's `Retry-After` holds
//! the circuit open.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_circuitbreaker::{
    Breaker, BreakerConfig, BreakerRegistry, BreakerState, HttpCircuitBreakerLayer, ResponseBody,
    TokioClock,
};

/// An upstream answering with the status in `status` (and `Retry-After: 90` on 429 and 503).
fn upstream(
    status: Arc<AtomicU16>,
) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<()>| {
        let status = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
        async move {
            let mut res = Response::new(format!("{status}"));
            *res.status_mut() = status;
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, "90".parse().unwrap());
            }
            Ok(res)
        }
    })
}

async fn body(res: Response<ResponseBody<String>>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_ignored_and_server_errors_trip() {
    let breaker =
        Breaker::with_clock("ledger", BreakerConfig::default(), TokioClock::new()).unwrap();
    let status = Arc::new(AtomicU16::new(404));
    let svc = HttpCircuitBreakerLayer::new(breaker.clone()).layer(upstream(status.clone()));
    for _ in 0..10 {
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().ignored, 10);

    status.store(500, Ordering::SeqCst);
    for _ in 0..5 {
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(res).await, "500 Internal Server Error");
    }
    assert_eq!(breaker.state(), BreakerState::Open);

    tokio::time::advance(Duration::from_millis(20_500)).await;
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(
        res.headers()[header::RETRY_AFTER],
        "40",
        "39.5 s rounded up"
    );
    let text = body(res).await;
    assert!(
        text.contains("\"type\":\"/problems/circuit-open\""),
        "{text}"
    );
    assert!(text.contains("\"status\":503"), "{text}");
    assert!(text.contains("ledger"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn upstream_retry_after_holds_the_circuit_open() {
    let breaker = Breaker::with_clock("bank", BreakerConfig::default(), TokioClock::new()).unwrap();
    let status = Arc::new(AtomicU16::new(429));
    let svc = HttpCircuitBreakerLayer::new(breaker.clone()).layer(upstream(status.clone()));
    for _ in 0..5 {
        assert_eq!(
            svc.clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(
        breaker.snapshot().next_probe_in,
        Some(Duration::from_secs(90))
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "30");
    status.store(200, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_custom_fallback_answers_instead() {
    let breaker =
        Breaker::with_clock("fx-rates", BreakerConfig::default(), TokioClock::new()).unwrap();
    breaker.force_open();
    let svc = HttpCircuitBreakerLayer::new(breaker.clone())
        .fallback(|_open| Response::new(Bytes::from_static(b"{\"rate\":\"cached\"}")))
        .layer(upstream(Arc::new(AtomicU16::new(200))));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().is_fallback());
    assert_eq!(body(res).await, "{\"rate\":\"cached\"}");
    assert_eq!(breaker.snapshot().rejected, 1);
}

#[tokio::test]
async fn transport_errors_count_as_failures_and_keep_the_error_type() {
    let breaker =
        Breaker::with_clock("payments", BreakerConfig::default(), TokioClock::new()).unwrap();
    let svc = HttpCircuitBreakerLayer::new(breaker.clone()).layer(service_fn(
        |_req: Request<()>| async { Err::<Response<String>, _>("connection reset") },
    ));
    for _ in 0..5 {
        let e: &str = svc.clone().oneshot(Request::new(())).await.unwrap_err();
        assert_eq!(e, "connection reset");
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn registry_gives_one_breaker_per_host() {
    let registry = BreakerRegistry::new(BreakerConfig::default()).unwrap();
    let a = registry.for_uri(&"https://bank.example/v1/payments".parse().unwrap());
    let b = registry.for_uri(&"https://bank.example/v1/accounts".parse().unwrap());
    a.force_open();
    assert_eq!(b.state(), BreakerState::ForcedOpen);
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.snapshots()[0].name.as_ref(), "bank.example");
}

#[tokio::test]
async fn per_host_breakers_trip_one_upstream_only() {
    let registry = BreakerRegistry::new(BreakerConfig::default()).unwrap();
    let svc = HttpCircuitBreakerLayer::per_host(registry.clone()).layer(service_fn(
        |req: Request<()>| async move {
            let mut res = Response::new(String::new());
            if req.uri().host() == Some("bank.example") {
                *res.status_mut() = StatusCode::BAD_GATEWAY;
            }
            Ok::<_, Infallible>(res)
        },
    ));
    let get = |uri: &'static str| Request::get(uri).body(()).unwrap();
    for _ in 0..5 {
        let res = svc
            .clone()
            .oneshot(get("https://bank.example/v1/balance"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
    let res = svc
        .clone()
        .oneshot(get("https://bank.example/v1/balance"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(body(res).await.contains("bank.example"));
    let res = svc
        .clone()
        .oneshot(get("https://ledger.example/v1/entries"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let states: Vec<_> = registry
        .snapshots()
        .iter()
        .map(|s| (s.name.to_string(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("bank.example".to_owned(), BreakerState::Open),
            ("ledger.example".to_owned(), BreakerState::Closed)
        ]
    );
    assert!(svc.breaker().is_none());
}
