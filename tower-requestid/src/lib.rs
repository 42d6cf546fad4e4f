//! Request ids and W3C trace context for tower services, with correlated JSON logs.
//!
//! This crate will hold: a layer that keeps a valid incoming `X-Request-ID` or makes a time-ordered one,
//! records it on a span around the whole request and echoes it; an exact W3C `traceparent`/`tracestate`
//! parser; an outbound layer that forwards both to upstream calls; and a one-call JSON logging set-up with
//! `request_id` and `trace_id` as top-level fields, plus optional OpenTelemetry and Sentry wiring.
//!
//! Status: planned (issue 5). No API is published yet.
#![forbid(unsafe_code)]
