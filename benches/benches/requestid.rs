//! `requestid/overhead`: one request through `tower-requestid` against tower-http's
//! `SetRequestId` + `PropagateRequestId` (UUID ids), around the same `service_fn`, as
//! shared/notes/peer-benchmarks.md section 3 sets the peer up. No tracing subscriber is installed.
//!
//! `ours-streaming-body` adds `StreamingBodyLayer`, which polls response bodies inside the request's span.
//!
//! Each group also times `http-floor`: only what any request-id layer must do with `http`'s types, with an
//! id made once up front: one value into the request's extensions, one header into the response, one
//! response future around the inner one. No id layer can cost less; read the other two against it.
//!
//! Run: `cargo bench -p benches --bench requestid`

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_requestid::{
    MakeRequestId, RequestIdLayer, StreamingBodyLayer, TraceContext, UuidV7, X_REQUEST_ID,
};

use benches::requestid::{handler, no_id, with_id};

/// Times `iters` requests through `svc`, each built by `make_request`, on one current-thread runtime.
fn run<S, B>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    id: &str,
    make_request: fn() -> Request<()>,
    svc: &S,
) where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone,
{
    c.bench_function(id, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut svc = svc.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let res = svc
                        .ready()
                        .await
                        .unwrap_or_else(|e| match e {})
                        .call(make_request())
                        .await;
                    black_box(res.unwrap_or_else(|e| match e {}));
                }
                start.elapsed()
            }
        });
    });
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ours = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(handler));
    let ours_streaming = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(StreamingBodyLayer::new())
        .service(service_fn(handler));
    let peer = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(service_fn(handler));
    let id = UuidV7.make_request_id();
    let echoed = id.header_value().clone();
    let floor = ServiceBuilder::new()
        .map_response(move |mut res: Response<()>| {
            res.headers_mut().insert(X_REQUEST_ID, echoed.clone());
            res
        })
        .map_request(move |mut req: Request<()>| {
            req.extensions_mut().insert(id.clone());
            req
        })
        .service(service_fn(handler));

    for (group, make_request) in [
        ("requestid/overhead", no_id as fn() -> Request<()>),
        ("requestid/incoming_id", with_id),
    ] {
        let mut g = c.benchmark_group(group);
        common::settings(&mut g);
        run(&mut g, &rt, "ours", make_request, &ours);
        run(&mut g, &rt, "tower-http", make_request, &peer);
        run(&mut g, &rt, "http-floor", make_request, &floor);
        run(
            &mut g,
            &rt,
            "ours-streaming-body",
            make_request,
            &ours_streaming,
        );
        g.finish();
    }

    // What the harness and the inner service cost alone, to read the two groups above against.
    let mut g = c.benchmark_group("requestid/baseline");
    common::settings(&mut g);
    run(&mut g, &rt, "service_fn", no_id, &service_fn(handler));
    g.finish();
}

/// The steps one request's cost is made of, each alone, to read the groups above with (the README's table).
fn steps(c: &mut Criterion) {
    let id = UuidV7.make_request_id();
    let trace = TraceContext::new_root();
    let mut g = c.benchmark_group("requestid/steps");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    g.bench_function("request_new_and_drop", |b| {
        b.iter(|| black_box(Request::new(())));
    });
    g.bench_function("extensions_one_value", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(id.clone());
            black_box(req)
        });
    });
    g.bench_function("extensions_two_values", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(id.clone());
            req.extensions_mut().insert(trace.clone());
            black_box(req)
        });
    });
    g.bench_function("response_first_header", |b| {
        b.iter(|| {
            let mut res = Response::new(());
            res.headers_mut()
                .insert(X_REQUEST_ID, id.header_value().clone());
            black_box(res)
        });
    });
    g.bench_function("uuid_v7", |b| {
        b.iter(|| black_box(UuidV7.make_request_id()))
    });
    g.bench_function("system_time_now", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    g.bench_function("disabled_span", |b| {
        b.iter(|| black_box(tracing::info_span!("request", request_id = %id)));
    });
    g.finish();
}

criterion_group!(benches, overhead, steps);
criterion_main!(benches);
