//! An outbound call made inside a handler carries the same request id and trace to a real upstream.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::{
    OutboundLayer, RequestContext, RequestId, RequestIdLayer, TraceContext, TraceParent,
};

use support::{PARENT_ID, TRACE_ID, TRACEPARENT};

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// A test upstream on 127.0.0.1:0 that records the headers of every request it gets.
async fn upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/rates",
            get(|State(seen): State<Seen>, headers: HeaderMap| async move {
                seen.lock().unwrap().push(headers);
                "1.0"
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/rates"), seen)
}

/// The service under test: a handler that calls the upstream through `OutboundLayer` and answers with the
/// trace context it was given.
fn server(
    url: String,
) -> impl Service<Request<()>, Response = Response<String>, Error = hyper_util::client::legacy::Error>
+ Clone {
    let client = ServiceBuilder::new()
        .layer(OutboundLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(move |_req: Request<()>| {
            let mut client = client.clone();
            let url = url.clone();
            async move {
                let trace = RequestContext::current().unwrap().trace;
                let upstream_req = Request::get(url).body(Empty::<Bytes>::new()).unwrap();
                let res = client.ready().await?.call(upstream_req).await?;
                assert_eq!(res.status(), StatusCode::OK);
                let _ = res.into_body().collect().await;
                Ok(Response::new(trace.outbound_traceparent().to_string()))
            }
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_call_carries_the_request_id_and_trace() {
    let (url, seen) = upstream().await;
    let req = Request::builder()
        .header("x-request-id", "pay-sync-42")
        .header("traceparent", TRACEPARENT)
        .header("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        .body(())
        .unwrap();
    let res = server(url).oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "pay-sync-42");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0];
    assert_eq!(headers["x-request-id"], "pay-sync-42");
    let sent = TraceParent::parse(headers["traceparent"].as_bytes()).unwrap();
    assert_eq!(sent.trace_id.to_string(), TRACE_ID, "same trace");
    assert_ne!(
        sent.parent_id.to_string(),
        PARENT_ID,
        "our span is the upstream's parent, not the caller's"
    );
    assert_eq!(
        headers["traceparent"],
        res.body().as_str(),
        "the parent is this request's span id"
    );
    assert_eq!(
        headers["tracestate"],
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_ids_still_sends_fresh_ones_upstream() {
    let (url, seen) = upstream().await;
    let res = server(url).oneshot(Request::new(())).await.unwrap();
    let id = res.headers()["x-request-id"].clone();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["x-request-id"], id);
    assert_eq!(seen[0]["traceparent"], res.body().as_str());
    assert!(seen[0].get("tracestate").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_request_nothing_is_added_and_explicit_extensions_win() {
    let (url, seen) = upstream().await;
    let mut client = ServiceBuilder::new()
        .layer(OutboundLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let req = Request::get(&url).body(Empty::<Bytes>::new()).unwrap();
    client.ready().await.unwrap().call(req).await.unwrap();

    // A spawned task outside the request: the context travels with `RequestContext::scope`.
    let ctx = RequestContext {
        id: "job-7".parse::<RequestId>().unwrap(),
        trace: TraceContext::new_root(),
    };
    let expected = ctx.trace.outbound_traceparent().to_string();
    let mut spawned_client = client.clone();
    let url2 = url.clone();
    tokio::spawn(ctx.scope(async move {
        let req = Request::get(&url2).body(Empty::<Bytes>::new()).unwrap();
        spawned_client
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap();
    }))
    .await
    .unwrap();

    let mut req = Request::get(&url).body(Empty::<Bytes>::new()).unwrap();
    req.extensions_mut()
        .insert("explicit-1".parse::<RequestId>().unwrap());
    req.extensions_mut().insert(TraceContext::new_root());
    client.ready().await.unwrap().call(req).await.unwrap();

    let seen = seen.lock().unwrap();
    assert!(seen[0].get("x-request-id").is_none());
    assert!(seen[0].get("traceparent").is_none());
    assert_eq!(seen[1]["x-request-id"], "job-7");
    assert_eq!(seen[1]["traceparent"], expected.as_str());
    assert_eq!(seen[2]["x-request-id"], "explicit-1");
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_client_through_its_tower_service_carries_the_ids() {
    let (url, seen) = upstream().await;
    let client = ServiceBuilder::new()
        .layer(OutboundLayer::new())
        .service(reqwest::Client::new());
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(move |_req: Request<()>| {
            let mut client = client.clone();
            let url = url.clone();
            async move {
                let trace = RequestContext::current().unwrap().trace;
                let upstream_req =
                    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
                let res = client.ready().await?.call(upstream_req).await?;
                assert_eq!(res.status(), StatusCode::OK);
                Ok::<_, reqwest::Error>(Response::new(trace.outbound_traceparent().to_string()))
            }
        }));
    let req = Request::builder()
        .header("x-request-id", "pay-sync-44")
        .header("traceparent", TRACEPARENT)
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["x-request-id"], "pay-sync-44");
    assert_eq!(seen[0]["traceparent"], res.body().as_str());
}
