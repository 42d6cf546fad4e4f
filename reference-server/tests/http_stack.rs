//! The stack around the routes: body limit (413), security headers, CORS from configuration, and problem+json
//! for the errors the layers and the router answer themselves.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::{Backend, server};
use tower::ServiceExt;

async fn send(
    state: &reference_server::AppState,
    request: Request<Body>,
) -> axum::http::Response<Body> {
    reference_server::app(state.clone())
        .oneshot(request)
        .await
        .unwrap()
}

async fn json(response: axum::http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_problem_json_whether_or_not_it_declares_its_length() {
    let server =
        test_support::require!(server(Backend::Sqlite, &[("MAX_BODY_SIZE", "1KiB")]).await);
    let big = format!(r#"{{"email":"{}","password":"x"}}"#, "a".repeat(4096));
    let declared = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("content-length", big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let response = send(&server.state, declared).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(json(response).await["status"], 413);

    let stream = futures_stream(big);
    let streamed = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(stream)
        .unwrap();
    let response = send(&server.state, streamed).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

/// A body without a declared length, as a chunked upload sends it.
fn futures_stream(text: String) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(c.to_vec()))
        .collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(chunks.into_iter())
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_router_errors_are_problems() {
    let server = test_support::require!(server(Backend::Sqlite, &[]).await);
    for path in ["/health/live", "/no/such/route"] {
        let response = send(
            &server.state,
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'")
        );
        assert!(
            headers["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );
    }
    let missing = send(
        &server.state,
        Request::delete("/no/such/route")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let wrong_method = send(
        &server.state,
        Request::delete("/health/live").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong_method.headers().contains_key("allow"),
        "the Allow header survives the rewrite"
    );
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let server = test_support::require!(
        server(
            Backend::Sqlite,
            &[("CORS_ALLOWED_ORIGINS", "https://app.example")]
        )
        .await
    );
    let preflight = |origin: &'static str| {
        Request::options("/api/v1/auth/login")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = send(&server.state, preflight("https://app.example")).await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = send(&server.state, preflight("https://evil.example")).await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let closed = test_support::require!(support::server(Backend::Sqlite, &[]).await);
    let none = send(&closed.state, preflight("https://app.example")).await;
    assert!(
        !none.headers().contains_key("access-control-allow-origin"),
        "no origins configured: no cross-origin access"
    );
}

/// The Prometheus text of `/metrics` (200 checked).
async fn metrics_text(state: &reference_server::AppState) -> String {
    let response = send(state, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let server = test_support::require!(server(Backend::Sqlite, &[]).await);
    let id = "0190f5f0-0000-7000-8000-00000000abcd";
    let path = format!("/api/v1/invoices/{id}");
    assert_eq!(
        send(
            &server.state,
            Request::get(path.as_str()).body(Body::empty()).unwrap()
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    let text = metrics_text(&server.state).await;
    let line = series(
        &text,
        "http_requests_total",
        &[("route", "/api/v1/invoices/{id}"), ("status", "401")],
    )
    .unwrap_or_else(|| panic!("no counter for the route template in:\n{text}"));
    assert!(line.contains(r#"method="GET""#), "{line}");
    assert!(!text.contains(id), "raw ids never become labels");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "durations are histograms with buckets"
    );
}

/// The line of the series `name` that carries these labels, if any.
fn series<'t>(text: &'t str, name: &str, labels: &[(&str, &str)]) -> Option<&'t str> {
    text.lines().find(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{'))
            && labels
                .iter()
                .all(|(key, value)| l.contains(&format!(r#"{key}="{value}""#)))
    })
}

/// The value of the `http_requests_total` series with these labels (0 when there is none yet).
fn requests_total(text: &str, method: &str, route: &str, status: u16) -> u64 {
    let status = status.to_string();
    series(
        text,
        "http_requests_total",
        &[("method", method), ("route", route), ("status", &status)],
    )
    .and_then(|l| l.rsplit(' ').next())
    .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn answers_given_before_or_without_a_route_are_counted_too() {
    let server =
        test_support::require!(server(Backend::Sqlite, &[("MAX_BODY_SIZE", "1KiB")]).await);
    // The recorder is the process's, shared with the tests running beside this one: read the counters
    // before and after, with methods no other test sends (a made-up one counts as `other`).
    let before = metrics_text(&server.state).await;
    let not_found = send(
        &server.state,
        Request::builder()
            .method("BREW")
            .uri("/no/such/route")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    let big = "a".repeat(4096);
    let too_large = send(
        &server.state,
        Request::put("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("content-length", big.len())
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let after = metrics_text(&server.state).await;
    for (method, status) in [("other", 404), ("PUT", 413)] {
        assert_eq!(
            requests_total(&after, method, "unmatched", status),
            requests_total(&before, method, "unmatched", status) + 1,
            "one {status} counted under route=\"unmatched\":\n{after}"
        );
    }
    assert!(
        !after.contains("/no/such/route"),
        "raw paths never become labels"
    );
    assert!(
        !after.contains("BREW"),
        "made-up methods never become labels"
    );
}

#[tokio::test]
async fn breaker_states_are_on_metrics_and_health_status() {
    let token = "an-operator-status-token";
    let server =
        test_support::require!(server(Backend::Sqlite, &[("HEALTH_STATUS_TOKEN", token)]).await);
    server.state.breakers().get("bank").force_open();
    let text = metrics_text(&server.state).await;
    let value = |breaker: &str, state: &str| {
        series(
            &text,
            "circuit_breaker_state",
            &[("breaker", breaker), ("state", state)],
        )
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {breaker}/{state} series in:\n{text}"))
    };
    assert_eq!(value("bank", "forced_open"), "1");
    assert_eq!(value("bank", "closed"), "0");
    for upstream in reference_server::UPSTREAMS.iter().filter(|u| **u != "bank") {
        assert_eq!(value(upstream, "closed"), "1");
    }
    server.state.health().refresh().await;
    let (_, status) =
        support::call(&server.state, "GET", "/health/status", Some(token), None).await;
    let upstreams: Vec<&String> = status["checks"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("upstreams"))
        .collect();
    assert!(!upstreams.is_empty(), "{status}");
    assert!(status.to_string().contains("bank"), "{status}");
}
