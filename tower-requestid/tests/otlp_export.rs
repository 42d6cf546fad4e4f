//! The OTLP exporter set-up: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a local receiver, the request
//! span reaches it as an OTLP/HTTP protobuf POST to `/v1/traces`; without the variable nothing is exported.
//!
//! One test in its own binary: it sets process environment variables, which no other thread may read at the
//! same time.
#![cfg(feature = "opentelemetry")]
#![allow(unsafe_code)] // std::env::set_var/remove_var are unsafe in edition 2024; this binary has one thread
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response};
use tower::{Service, ServiceBuilder, service_fn};
use tower_requestid::RequestIdLayer;
use tracing_subscriber::layer::SubscriberExt as _;

/// One request the receiver got: method, path, content type, body.
type Received = (String, String, String, Vec<u8>);

/// A minimal HTTP/1.1 receiver on 127.0.0.1 that answers 200 to everything and records what it got.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || serve_connection(stream, &sink));
        }
    });
    (endpoint, got)
}

fn serve_connection(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => value.trim().clone_into(&mut content_type),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        sink.lock()
            .unwrap()
            .push((method, path, content_type, body));
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

async fn handler(_req: Request<()>) -> Result<Response<()>, std::convert::Infallible> {
    tracing::info!("inside the handler");
    Ok(Response::new(()))
}

/// One request through the layer with a subscriber exporting to `provider`, then a flush.
fn one_request(provider: &opentelemetry_sdk::trace::SdkTracerProvider, id: &'static str) {
    let subscriber = tracing_subscriber::registry().with(tower_requestid::otel::layer(provider));
    tracing::subscriber::with_default(subscriber, || {
        let mut svc = ServiceBuilder::new()
            .layer(RequestIdLayer::new())
            .service(service_fn(handler));
        let mut req = Request::new(());
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_static(id));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = rt.block_on(svc.call(req)).unwrap();
        assert_eq!(response.headers()["x-request-id"], id);
    });
    provider.force_flush().unwrap();
}

#[test]
fn spans_reach_the_endpoint_from_the_environment() {
    // SAFETY (both blocks): this test binary runs this one test; no other thread reads the environment now.
    unsafe {
        std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
        std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    }
    assert!(
        tower_requestid::otel::provider_from_env()
            .unwrap()
            .is_none(),
        "no endpoint, no exporter"
    );

    let (endpoint, got) = receiver();
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    }
    let provider = tower_requestid::otel::provider_from_env()
        .unwrap()
        .expect("an exporter when the endpoint is set");
    one_request(&provider, "otlp-export-test-id");
    provider.shutdown().unwrap();

    let got = got.lock().unwrap();
    let traces: Vec<_> = got
        .iter()
        .filter(|(method, path, ..)| method == "POST" && path == "/v1/traces")
        .collect();
    assert!(
        !traces.is_empty(),
        "one OTLP/HTTP POST to /v1/traces at least; got {:?}",
        got.iter().map(|r| (&r.0, &r.1)).collect::<Vec<_>>()
    );
    let (_, _, content_type, body) = traces[0];
    assert_eq!(content_type, "application/x-protobuf");
    // The protobuf carries strings verbatim: the span name and its request_id attribute.
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"request"), "the request span is exported");
    assert!(
        contains(b"otlp-export-test-id"),
        "with its request_id attribute"
    );
}
