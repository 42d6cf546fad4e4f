//! A real axum server on loopback with the health router and a graceful shutdown that drains first.
#![cfg(feature = "axum")]

use std::time::Duration;

use health_kit::Health;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 GET over a fresh connection; returns the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?;
    let code = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_turns_ready_to_503_before_the_server_stops() {
    let health = Health::builder().build().unwrap();
    health.mark_started();
    let app: axum::Router = axum::Router::new()
        .route("/work", axum::routing::get(|| async { "done" }))
        .merge(health_kit::axum::router(&health));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let period = Duration::from_secs(2);
    let shutdown = health.drain_after(
        async move {
            let _ = signal_rx.await;
        },
        period,
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });

    assert_eq!(get(addr, "/health/ready").await.unwrap().0, 200);
    signal_tx.send(()).unwrap();
    let signalled = tokio::time::Instant::now();

    // The first answer after the signal already says 503, while the server still serves other routes.
    let (code, body) = loop {
        let (code, body) = get(addr, "/health/ready").await.unwrap();
        if code == 503 || signalled.elapsed() > period {
            break (code, body);
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert!(
        signalled.elapsed() < period,
        "503 must come before the drain period is over"
    );
    assert_eq!(get(addr, "/health/live").await.unwrap().0, 200);
    assert_eq!(get(addr, "/work").await.unwrap(), (200, "done".to_owned()));
    assert!(!server.is_finished());

    server.await.unwrap().unwrap();
    assert!(
        signalled.elapsed() >= period,
        "the server stopped only after the drain period"
    );
    assert!(
        get(addr, "/health/live").await.is_err(),
        "the listener is closed"
    );
}
