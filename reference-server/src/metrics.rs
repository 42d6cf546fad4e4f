//! Prometheus metrics at `/metrics`, through the `metrics` facade: requests by method, route template and
//! status with their durations; read at scrape time, the rate limiter's decisions per policy, its store's
//! health, the dashboard cache's counters, and the upstream breakers' states.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_circuitbreaker::BreakerState;

use crate::AppState;

/// Latency buckets in seconds: a finance API answers in milliseconds; the tail up to the 30 s timeout.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder (a process has one `metrics` recorder; every app built in it shares it).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    BUCKETS,
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// Where the route middleware leaves the matched route's template for [`track`], which runs outside routing.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<MatchedPath>>);

/// Outermost but for the request id: one count and one duration per request, every answer included (the
/// body limit's 413, the timeout's 503, the router's 404 and 405), labelled by the route template that
/// [`route`] found (never the raw path, which would mint a series per id), or `unmatched` when the request
/// was answered before or without a route, and by the method among the standard ones, else `other` (a
/// client inventing methods must not mint series either).
pub(crate) async fn track(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let route = slot
        .0
        .get()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: one of the nine standard methods, or `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Route middleware: tells [`track`] the matched route's template.
pub(crate) async fn route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.clone());
    }
    next.run(request).await
}

/// `GET /metrics`: the Prometheus text format. The recorder's series (requests, durations) are the process's;
/// the values read at scrape time (the dashboard cache, the rate limiter, the breakers) are this state's,
/// written straight into the answer rather than through the process-wide recorder, so two states in one
/// process (tests, or an embedding) never show each other's.
pub(crate) async fn render(State(state): State<AppState>) -> Response {
    let mut gauges = Gauges::default();
    if let Some(cache) = state.dashboards() {
        let stats = cache.stats();
        gauges.set("query_cache_hits", &[("cache", "dashboard")], stats.hits());
        gauges.set(
            "query_cache_misses",
            &[("cache", "dashboard")],
            stats.misses(),
        );
    }
    if let Some(limits) = state.limits() {
        // The policies' counters are shared by every clone of the layer, so this is the process's total.
        for c in limits.policies.counters() {
            for (outcome, value) in [
                ("allowed", c.allowed),
                ("rejected", c.rejected),
                ("shadow_rejected", c.shadow_rejected),
            ] {
                gauges.set(
                    "ratelimit_decisions",
                    &[("policy", &c.name), ("outcome", outcome)],
                    value,
                );
            }
        }
        let degraded = matches!(
            limits.limiter.store_health(),
            tower_ratelimit::StoreHealth::RedisDegraded
        );
        gauges.set("ratelimit_store_degraded", &[], u64::from(degraded));
    }
    // Breaker states as resilience4j exports them: one series per state, 1 for the current one.
    for b in state.breakers().snapshots() {
        let name = b.name.to_string();
        for candidate in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::ForcedOpen,
            BreakerState::Disabled,
            BreakerState::MetricsOnly,
        ] {
            gauges.set(
                "circuit_breaker_state",
                &[("breaker", &name), ("state", candidate.as_str())],
                u64::from(b.state == candidate),
            );
        }
        for (outcome, value) in [
            ("success", b.successes),
            ("failure", b.failures),
            ("rejected", b.rejected),
        ] {
            gauges.set(
                "circuit_breaker_calls",
                &[("breaker", &name), ("outcome", outcome)],
                value,
            );
        }
    }
    let mut body = handle().map(PrometheusHandle::render).unwrap_or_default();
    gauges.write_to(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Gauges of one scrape, by metric name, in the Prometheus text format.
#[derive(Default)]
struct Gauges(std::collections::BTreeMap<&'static str, Vec<String>>);

impl Gauges {
    fn set(&mut self, name: &'static str, labels: &[(&str, &str)], value: u64) {
        let mut line = String::from(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                // Label values escape backslash, quote and newline (Prometheus text format).
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(line, "{key}=\"{escaped}\"");
            }
            line.push('}');
        }
        let _ = write!(line, " {value}");
        self.0.entry(name).or_default().push(line);
    }

    fn write_to(&self, out: &mut String) {
        for (name, lines) in &self.0 {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            out.push('\n');
        }
    }
}
