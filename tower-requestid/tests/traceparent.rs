//! The caller's `traceparent` makes the server span a child of the caller's span.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod support;

use std::convert::Infallible;

use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::{RequestContext, RequestIdLayer, TraceContext};

use support::{PARENT_ID, TRACE_ID, TRACEPARENT};

async fn context_of(req: Request<()>) -> TraceContext {
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new().trace_context_extension(true))
        .service(service_fn(|req: Request<()>| async move {
            let trace = req.extensions().get::<TraceContext>().unwrap().clone();
            assert_eq!(
                Some(&trace),
                RequestContext::current().as_ref().map(|c| &c.trace)
            );
            Ok::<_, Infallible>(Response::new(trace))
        }));
    svc.oneshot(req).await.unwrap().into_body()
}

#[tokio::test]
async fn caller_traceparent_makes_the_server_span_its_child() {
    let req = Request::builder()
        .header("traceparent", TRACEPARENT)
        .body(())
        .unwrap();
    let ctx = context_of(req).await;
    assert_eq!(ctx.trace_id().to_string(), TRACE_ID);
    assert_eq!(ctx.parent_id().unwrap().to_string(), PARENT_ID);
    assert_ne!(ctx.span_id().to_string(), PARENT_ID);
    assert!(ctx.flags().is_sampled());
}

#[tokio::test]
async fn invalid_traceparent_starts_a_new_trace_and_drops_tracestate() {
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ] {
        let req = Request::builder()
            .header("traceparent", bad)
            .header("tracestate", "rojo=1")
            .body(())
            .unwrap();
        let ctx = context_of(req).await;
        assert_ne!(ctx.trace_id().to_string(), TRACE_ID, "{bad}");
        assert!(ctx.parent_id().is_none(), "{bad}");
        assert!(ctx.tracestate().is_none(), "{bad}");
    }
}

#[tokio::test]
async fn higher_version_is_joined_and_passed_on_as_00() {
    let req = Request::builder()
        .header(
            "traceparent",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        )
        .body(())
        .unwrap();
    let ctx = context_of(req).await;
    assert_eq!(ctx.trace_id().to_string(), TRACE_ID);
    assert!(
        ctx.outbound_traceparent()
            .to_string()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
}
