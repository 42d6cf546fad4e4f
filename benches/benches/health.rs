//! health/ready_cached: a readiness probe answered from the cache, through the tower service.
//!
//! `ours` is health-kit's `HealthService` with two checks whose results are cached (one critical, one not);
//! `baseline_service_fn` is a bare `tower::service_fn` that answers the same static body and headers, so the
//! difference is what health-kit adds per probe. Same harness for both: a current-thread runtime,
//! `to_async(..).iter`, a fresh request per iteration, `ready().await` then `call(..).await` (as
//! notes/peer-benchmarks.md measured the circuit breakers). No crate we know of answers probes from a cache;
//! the usual ones run their checks inline on every probe, which costs at least a database round trip.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use health_kit::{CheckOptions, Health, Observation, check_fn, snapshot_fn};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower::{Service, ServiceExt};

fn ready_cached(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let health = rt.block_on(async {
        let health = Health::builder()
            .check(
                "postgres",
                check_fn(|| async { Observation::pass() }),
                CheckOptions::critical().interval(Duration::from_secs(3600)),
            )
            .check(
                "breakers",
                snapshot_fn(Observation::pass),
                CheckOptions::non_critical(),
            )
            .build()
            .expect("valid configuration");
        health.refresh().await;
        health.mark_started();
        health
    });
    let uri = Uri::from_static("/health/ready");

    let mut group = c.benchmark_group("health/ready_cached");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);

    let ours = health.service();
    group.bench_function("ours", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = ours.clone();
            let mut request = Request::new(());
            *request.uri_mut() = uri.clone();
            async move {
                let response = ServiceExt::<Request<()>>::ready(&mut svc)
                    .await
                    .expect("infallible")
                    .call(request)
                    .await
                    .expect("infallible");
                assert_eq!(response.status(), StatusCode::OK);
                response
            }
        });
    });

    let body = Bytes::from_static(br#"{"status":"pass"}"#);
    let baseline = tower::service_fn(move |_request: Request<()>| {
        let mut response = Response::new(Full::new(body.clone()));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/health+json"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
        std::future::ready(Ok::<_, Infallible>(response))
    });
    group.bench_function("baseline_service_fn", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = baseline.clone();
            let mut request = Request::new(());
            *request.uri_mut() = uri.clone();
            async move {
                let response = ServiceExt::<Request<()>>::ready(&mut svc)
                    .await
                    .expect("infallible")
                    .call(request)
                    .await
                    .expect("infallible");
                assert_eq!(response.status(), StatusCode::OK);
                response
            }
        });
    });
    group.finish();

    // The other half of the issue's figure: the probes above never ran a check.
    assert_eq!(
        health.executions("postgres"),
        Some(1),
        "probes must not run checks"
    );
}

criterion_group!(benches, ready_cached);
criterion_main!(benches);
