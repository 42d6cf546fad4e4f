//! Request ids in JSON logs and propagated to an upstream call.
//!
//! Starts a stand-in "bank API" on 127.0.0.1, then a payments server (axum) whose `/sync` handler calls the
//! bank through an `OutboundLayer` client. The program sends one request with `X-Request-ID: pay-sync-42`
//! and a `traceparent`, and one without, then exits. Every JSON line written while serving a request,
//! the bank's included, carries the same `request_id` and `trace_id`.
//!
//! Run: `cargo run -p examples --example requestid` (`LOG_FORMAT=pretty` for people, `LOG_LEVEL=debug`).
//! Keep the server up for curl: `cargo run -p examples --example requestid -- --serve`, then
//! `curl -si -H 'x-request-id: my-id-1' http://127.0.0.1:<port>/sync`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt as _};
use tower_requestid::logging::{self, LogConfig};
use tower_requestid::{Outbound, OutboundLayer, RequestId, RequestIdLayer};

type BankClient = Outbound<Client<HttpConnector, Empty<Bytes>>>;

#[derive(Clone)]
struct AppState {
    bank: BankClient,
    bank_url: String,
}

/// The payments handler: logs, calls the bank (the id and trace go along), logs again.
async fn sync(State(state): State<AppState>, id: RequestId) -> Result<String, StatusCode> {
    tracing::info!("payment sync started");
    let mut bank = state.bank.clone();
    let req = Request::get(&state.bank_url)
        .body(Empty::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let res = bank
        .ready()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .call(req)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "bank unreachable");
            StatusCode::BAD_GATEWAY
        })?;
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .to_bytes();
    tracing::info!(balance = %String::from_utf8_lossy(&body), "payment sync done");
    Ok(format!("synced (request {id})\n"))
}

/// The stand-in bank: its own RequestIdLayer keeps the id the payments server sent, so its log lines carry it
/// too.
async fn bank(headers: HeaderMap) -> &'static str {
    tracing::info!(traceparent = ?headers.get("traceparent"), "bank: balance asked");
    "1200.00"
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = logging::init(&LogConfig::from_env()?)?;

    let bank_addr = serve(
        Router::new()
            .route("/balance", get(bank))
            .layer(RequestIdLayer::new()),
    )
    .await?;
    let state = AppState {
        bank: ServiceBuilder::new()
            .layer(OutboundLayer::new())
            .service(Client::builder(TokioExecutor::new()).build_http()),
        bank_url: format!("http://{bank_addr}/balance"),
    };
    // RequestIdLayer outermost: every later layer and the handler log inside its span.
    let app = Router::new()
        .route("/sync", get(sync))
        .with_state(state)
        .layer(RequestIdLayer::new());
    let addr = serve(app).await?;
    tracing::info!(%addr, "payments server listening");

    if std::env::args().any(|a| a == "--serve") {
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }

    // Two requests from a client: one with an id and a trace from its caller, one with neither.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let with_ids = Request::get(format!("http://{addr}/sync"))
        .header("x-request-id", "pay-sync-42")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Empty::new())?;
    let without = Request::get(format!("http://{addr}/sync")).body(Empty::new())?;
    for req in [with_ids, without] {
        let res = client.request(req).await?;
        let echoed = res.headers().get("x-request-id").cloned();
        let body = res.into_body().collect().await?.to_bytes();
        tracing::info!(echoed = ?echoed, body = %String::from_utf8_lossy(&body).trim(), "client got an answer");
    }
    Ok(())
}
