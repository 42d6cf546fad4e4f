//! OpenTelemetry wiring (feature `opentelemetry`): the request span joins the caller's trace, and an OTLP
//! exporter is built from the standard environment variables.
//!
//! With a [`tracing_opentelemetry`] layer installed, the request span of
//! [`RequestIdLayer`](crate::RequestIdLayer) becomes an OpenTelemetry span whose parent is the caller's span
//! from `traceparent`; the request's [`TraceContext`] then carries OpenTelemetry's own trace and span ids, so
//! the `trace_id` in the logs, the exported trace and the `traceparent` sent upstream all agree. Without such
//! a layer (or with no subscriber at all) nothing here runs.

use opentelemetry::trace::{
    SpanContext, TraceContextExt as _, TraceFlags as OtelFlags, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, trace};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::registry::LookupSpan;

use crate::logging::LogError;
use crate::trace::{SpanId, TraceContext, TraceFlags, TraceId};

/// The caller's span as an OpenTelemetry remote parent context.
fn remote_parent(trace: &TraceContext) -> Option<Context> {
    let parent = trace.parent_id()?;
    let state = trace
        .tracestate()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceState>().ok())
        .unwrap_or_default();
    let span_context = SpanContext::new(
        trace::TraceId::from_bytes(trace.trace_id().to_bytes()),
        trace::SpanId::from_bytes(parent.to_bytes()),
        OtelFlags::new(trace.flags().bits()),
        true,
        state,
    );
    Some(Context::new().with_remote_span_context(span_context))
}

/// Makes the request span a child of the caller's span and copies OpenTelemetry's ids back into `trace`.
pub(crate) fn attach(span: &Span, trace: &mut TraceContext, joined: bool) {
    if span.is_disabled() {
        return;
    }
    if joined && let Some(parent) = remote_parent(trace) {
        // Fails only when no OpenTelemetry layer is installed; then there is nothing to join.
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    if !span_context.is_valid() {
        return;
    }
    let (Some(trace_id), Some(span_id)) = (
        TraceId::from_bytes(span_context.trace_id().to_bytes()),
        SpanId::from_bytes(span_context.span_id().to_bytes()),
    ) else {
        return;
    };
    let random = if joined {
        trace.flags().bits() & TraceFlags::RANDOM.bits()
    } else {
        TraceFlags::RANDOM.bits()
    };
    trace.set_ids(
        trace_id,
        span_id,
        TraceFlags::new(span_context.trace_flags().to_u8() | random),
    );
    span.record("trace_id", tracing::field::display(trace_id));
}

/// A tracer provider exporting over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, `None` otherwise. The service name comes from
/// `OTEL_SERVICE_NAME` (the SDK reads it), else the crate name of the caller is up to the resource defaults.
///
/// Spans are exported in batches from a background thread, so the request path never waits on the collector.
///
/// # Errors
///
/// [`LogError::Exporter`] when the exporter cannot be built (an unparsable endpoint).
pub fn provider_from_env() -> Result<Option<SdkTracerProvider>, LogError> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| LogError::Exporter(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().build())
        .build();
    Ok(Some(provider))
}

/// The tracing layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("tower-requestid"))
}
