//! With OpenTelemetry: the caller's `traceparent` makes the exported server span a child of the caller's
//! span, and the logs, the export and the outbound `traceparent` agree on the ids.
#![cfg(feature = "opentelemetry")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::logging::JsonLayer;
use tower_requestid::{RequestContext, RequestIdLayer, TraceContext};
use tracing_subscriber::layer::SubscriberExt as _;

use support::{Captured, PARENT_ID, TRACE_ID, TRACEPARENT};

#[derive(Clone, Debug, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        async { Ok(()) }
    }
}

async fn serve(req: Request<()>) -> (TraceContext, SpanData, Vec<serde_json::Value>) {
    let spans = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(tower_requestid::otel::layer(&provider))
        .with(JsonLayer::new(logs.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async move {
            tracing::info!("inside");
            Ok::<_, Infallible>(Response::new(RequestContext::current().unwrap().trace))
        }));
    let ctx = svc.oneshot(req).await.unwrap().into_body();
    provider.force_flush().unwrap();
    let span = spans
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.name == "request")
        .cloned()
        .expect("request span exported");
    (ctx, span, logs.lines())
}

#[tokio::test(flavor = "current_thread")]
async fn caller_traceparent_makes_the_exported_span_a_child() {
    let req = Request::builder()
        .header("traceparent", TRACEPARENT)
        .body(())
        .unwrap();
    let (ctx, span, logs) = serve(req).await;
    assert_eq!(span.span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(span.parent_span_id.to_string(), PARENT_ID);
    assert!(span.parent_span_is_remote);
    assert_eq!(ctx.trace_id().to_string(), TRACE_ID);
    assert_eq!(
        ctx.span_id().to_string(),
        span.span_context.span_id().to_string(),
        "upstream calls get our span"
    );
    let inside = logs.iter().find(|l| l["message"] == "inside").unwrap();
    assert_eq!(inside["trace_id"], TRACE_ID);
}

#[tokio::test(flavor = "current_thread")]
async fn without_traceparent_the_logs_carry_the_exported_trace_id() {
    let (ctx, span, logs) = serve(Request::new(())).await;
    let exported = span.span_context.trace_id().to_string();
    assert_eq!(ctx.trace_id().to_string(), exported);
    assert_eq!(
        span.parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "a root span"
    );
    let inside = logs.iter().find(|l| l["message"] == "inside").unwrap();
    assert_eq!(inside["trace_id"], exported.as_str());
}
