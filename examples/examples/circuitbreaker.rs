//! An axum handler that calls a flaky upstream (a bank API) through a circuit breaker, with a fallback:
//! while the circuit is open the handler answers at once with the last balance it saw (marked stale), or
//! 503 problem+json with `Retry-After` when it has none; `/breakers` shows the breaker's snapshot.
//!
//! The program starts the flaky upstream and the app on loopback ports, drives a few requests through the
//! failure, the open circuit, the probe and the recovery, prints what happened, and exits.
//!
//! Run: `cargo run -p examples --example circuitbreaker`

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_circuitbreaker::{
    Breaker, BreakerConfig, BreakerRegistry, CircuitOpen, HttpCircuitBreaker,
    HttpCircuitBreakerLayer, problem_response,
};

type Upstream = HttpCircuitBreaker<Client<HttpConnector, Empty<Bytes>>>;

#[derive(Clone)]
struct App {
    upstream: Upstream,
    upstream_url: String,
    /// The last good answer, served while the circuit is open.
    last_good: Arc<Mutex<Option<Bytes>>>,
    registry: BreakerRegistry,
}

/// GET /balance: ask the bank through the breaker.
async fn balance(State(app): State<App>) -> Response<Body> {
    let req = Request::get(&app.upstream_url)
        .body(Empty::new())
        .unwrap_or_default();
    match app.upstream.clone().oneshot(req).await {
        Ok(res) => {
            let fallback = res.body().is_fallback();
            let (parts, body) = res.into_parts();
            let Ok(collected) = body.collect().await else {
                return status(StatusCode::BAD_GATEWAY);
            };
            let bytes = collected.to_bytes();
            if parts.status.is_success() && !fallback {
                *app.last_good.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes.clone());
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        // Transport errors (connection refused, reset) reach the breaker as failures, and the client as 502.
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

/// GET /breakers: the state of every breaker, for a health page or metrics.
async fn breakers(State(app): State<App>) -> String {
    let mut out = String::from("[");
    for (i, s) in app.registry.snapshots().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"name\":\"{}\",\"state\":\"{}\",\"successes\":{},\"failures\":{},\"rejected\":{},\"next_probe_in_ms\":{}}}",
            s.name,
            s.state,
            s.successes,
            s.failures,
            s.rejected,
            s.next_probe_in.map_or(0, |d| d.as_millis())
        ));
    }
    out.push(']');
    out
}

fn status(code: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = code;
    res
}

/// The fallback: the last good balance marked stale, else the default 503 problem+json.
fn fallback(
    last_good: Arc<Mutex<Option<Bytes>>>,
) -> impl Fn(&CircuitOpen) -> Response<Bytes> + Send + Sync {
    move |open| match last_good
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        Some(bytes) => {
            let mut res = Response::new(bytes);
            res.headers_mut()
                .insert("x-served-from", HeaderValue::from_static("cache"));
            res.headers_mut()
                .insert("retry-after", HeaderValue::from(open.retry_after_secs()));
            res
        }
        None => problem_response(open),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The flaky upstream: fails with 503 while `failing` is set.
    let failing = Arc::new(AtomicBool::new(false));
    let bank = Router::new().route(
        "/balance",
        get({
            let failing = failing.clone();
            move || async move {
                if failing.load(Ordering::SeqCst) {
                    (StatusCode::SERVICE_UNAVAILABLE, "bank is down")
                } else {
                    (
                        StatusCode::OK,
                        "{\"balance\":{\"amount\":\"1210.00\",\"currency\":\"AUD\"}}",
                    )
                }
            }
        }),
    );
    let bank_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bank_addr = bank_listener.local_addr()?;
    tokio::spawn(async move { axum::serve(bank_listener, bank).await });

    // One breaker per upstream host, from a registry the health page reads. Open for 2 s so the demo is short.
    let registry =
        BreakerRegistry::new(BreakerConfig::default().open_duration(Duration::from_secs(2)))?;
    let breaker: Breaker = registry.get(&bank_addr.to_string());
    let last_good = Arc::new(Mutex::new(None));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let upstream = HttpCircuitBreakerLayer::new(breaker.clone())
        .fallback(fallback(last_good.clone()))
        .layer(client);
    let app = App {
        upstream,
        upstream_url: format!("http://{bank_addr}/balance"),
        last_good,
        registry,
    };
    let router = Router::new()
        .route("/balance", get(balance))
        .route("/breakers", get(breakers))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Drive it.
    let mut events = breaker.subscribe();
    let driver = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut out = std::io::stdout().lock();
    let mut get_it = async |path: &str, note: &str| -> Result<(), Box<dyn std::error::Error>> {
        let res = driver.get(format!("http://{addr}{path}").parse()?).await?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await?.to_bytes();
        let from = parts
            .headers
            .get("x-served-from")
            .map_or("", |_| " (served from cache)");
        writeln!(
            out,
            "{note:<28} {path:<10} -> {} {}{from}   [breaker {}]",
            parts.status.as_u16(),
            String::from_utf8_lossy(&body),
            breaker.state()
        )?;
        Ok(())
    };
    get_it("/balance", "upstream healthy").await?;
    failing.store(true, Ordering::SeqCst);
    for i in 1..=5 {
        get_it("/balance", &format!("upstream failing ({i}/5)")).await?;
    }
    get_it("/balance", "circuit open: no call").await?;
    get_it("/breakers", "health page").await?;
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    get_it("/balance", "after 2 s: one probe").await?;
    get_it("/breakers", "health page").await?;
    while let Ok(t) = events.try_recv() {
        writeln!(
            std::io::stdout(),
            "transition: {} -> {} (generation {})",
            t.from,
            t.to,
            t.generation
        )?;
    }
    Ok(())
}
