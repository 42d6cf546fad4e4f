//! A captured JSON log of one request: every line inside the handler carries the same `request_id`.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt as _;

use http::{HeaderValue, Request, Response};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::logging::JsonLayer;
use tower_requestid::{RequestContext, RequestId, RequestIdLayer, StreamingBodyLayer};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

use support::{Captured, PARENT_ID, TRACE_ID, TRACEPARENT, is_uuid_v7};

async fn handler(req: Request<()>) -> Result<Response<()>, Infallible> {
    tracing::info!(amount = "12.00", "sync started");
    async {
        tracing::debug!(attempt = 1_u64, "calling the bank");
        tokio::task::yield_now().await;
        tracing::warn!(error = "timeout", "bank slow");
    }
    .instrument(tracing::info_span!("bank_call", bank = "acme"))
    .await;
    tracing::info!(
        request_id = "spoofed-by-event",
        "an event field named like a fixed key"
    );
    assert!(req.extensions().get::<RequestId>().is_some());
    Ok(Response::new(()))
}

async fn one_request(req: Request<()>) -> (Response<()>, Vec<serde_json::Value>) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(JsonLayer::new(captured.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(handler));
    let res = svc.oneshot(req).await.unwrap();
    tracing::info!("outside any request");
    (res, captured.lines())
}

#[tokio::test(flavor = "current_thread")]
async fn every_line_inside_the_handler_carries_the_request_id() {
    let (res, lines) = one_request(Request::new(())).await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(is_uuid_v7(&id));

    let (inside, outside) = lines.split_at(lines.len() - 1);
    assert_eq!(inside.len(), 4, "{lines:#?}");
    let trace_id = inside[0]["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(trace_id.len(), 32);
    for line in inside {
        assert_eq!(line["request_id"], id.as_str(), "{line}");
        assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line["target"].as_str().unwrap().starts_with("logs"));
    }
    assert_eq!(inside[0]["message"], "sync started");
    assert_eq!(inside[0]["amount"], "12.00");
    assert_eq!(inside[0]["level"], "INFO");
    assert_eq!(inside[0]["span"], "request");
    assert_eq!(
        inside[1]["span"], "bank_call",
        "a nested span still logs the request's id"
    );
    assert_eq!(inside[1]["attempt"], 1);
    assert_eq!(inside[2]["level"], "WARN");
    assert_eq!(
        inside[3]["fields.request_id"], "spoofed-by-event",
        "an event cannot overwrite the id"
    );

    assert!(outside[0].get("request_id").is_none(), "{}", outside[0]);
    assert_eq!(outside[0]["message"], "outside any request");
}

/// A streamed body (an export, server-sent events): not ready at first each time, then logs a line and
/// notes the current request's id (what an outbound call would send) as it yields a row.
struct Rows {
    left: u8,
    waited: bool,
    seen: Arc<Mutex<Vec<Option<RequestId>>>>,
}

impl http_body::Body for Rows {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if !self.waited {
            // The next row is not there yet: the body is polled again later.
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        self.left -= 1;
        tracing::info!(left = self.left, "row streamed");
        let current = RequestContext::current().map(|c| c.id);
        self.seen.lock().unwrap().push(current);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"row\n")))))
    }
}

/// Sends one request, logs a line once the head is in, then reads the body: the echoed id and the body.
async fn head_then_body<S, B>(svc: S) -> (String, Bytes)
where
    S: tower::Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    tracing::info!("between the head and the body");
    (id, res.into_body().collect().await.unwrap().to_bytes())
}

/// Streams a `Rows` body through `RequestIdLayer` (with `StreamingBodyLayer` inside it when `streaming`):
/// the echoed id, the captured lines (one logged between the head and the body, then one per row), and the
/// id current at each row.
async fn stream_rows(streaming: bool) -> (String, Vec<serde_json::Value>, Vec<Option<RequestId>>) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(JsonLayer::new(captured.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rows = Arc::clone(&seen);
    let handler = service_fn(move |_req: Request<()>| {
        let seen = Arc::clone(&rows);
        async move {
            Ok::<_, Infallible>(Response::new(Rows {
                left: 3,
                waited: false,
                seen,
            }))
        }
    });
    let base = ServiceBuilder::new().layer(RequestIdLayer::new());
    let (id, bytes) = if streaming {
        head_then_body(base.layer(StreamingBodyLayer::new()).service(handler)).await
    } else {
        head_then_body(base.service(handler)).await
    };
    assert_eq!(bytes, "row\nrow\nrow\n");
    let seen = seen.lock().unwrap().clone();
    (id, captured.lines(), seen)
}

#[tokio::test(flavor = "current_thread")]
async fn lines_logged_while_the_body_streams_carry_the_request_id() {
    let (id, lines, seen) = stream_rows(true).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(lines[0]["message"], "between the head and the body");
    assert!(lines[0].get("request_id").is_none(), "{}", lines[0]);
    for line in &lines[1..] {
        assert_eq!(line["message"], "row streamed");
        assert_eq!(line["request_id"], id.as_str(), "{line}");
        assert_eq!(line["span"], "request");
    }
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.as_ref().map(RequestId::as_str) == Some(id.as_str())),
        "the body sees the request's context, as an outbound call from it would: {seen:?}"
    );
    assert_eq!(RequestContext::current(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn without_the_streaming_layer_a_body_streams_outside_the_request() {
    // Why `StreamingBodyLayer` exists: the body is polled after the response has left `RequestIdLayer`.
    let (_id, lines, seen) = stream_rows(false).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(lines[3]["message"], "row streamed");
    assert!(lines.iter().all(|line| line.get("request_id").is_none()));
    assert_eq!(seen, [None, None, None]);
}

#[tokio::test(flavor = "current_thread")]
async fn caller_trace_id_appears_in_the_logs() {
    let req = Request::builder()
        .header("traceparent", TRACEPARENT)
        .header("x-request-id", "pay-sync-42")
        .body(())
        .unwrap();
    let (_res, lines) = one_request(req).await;
    let inside = &lines[..lines.len() - 1];
    assert!(!inside.is_empty());
    for line in inside {
        assert_eq!(line["request_id"], "pay-sync-42");
        assert_eq!(line["trace_id"], TRACE_ID);
    }
    assert!(!lines.iter().any(|l| l.to_string().contains(PARENT_ID)));
}

#[tokio::test(flavor = "current_thread")]
async fn a_rejected_id_is_logged_once_escaped_and_truncated() {
    let mut bad = b"evil\"\\".to_vec();
    bad.extend_from_slice(&[0xff; 100]);
    let req = {
        let mut req = Request::new(());
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_bytes(&bad).unwrap());
        req
    };
    let (res, lines) = one_request(req).await;
    let id = res.headers()["x-request-id"].to_str().unwrap();
    let warning = lines
        .iter()
        .find(|l| l["message"] == "incoming request id refused and replaced")
        .unwrap();
    assert_eq!(warning["level"], "WARN");
    assert_eq!(
        warning["request_id"], id,
        "the warning carries the replacement id"
    );
    assert_eq!(warning["rejected_len"], 106);
    let rejected = warning["rejected"].as_str().unwrap();
    assert!(rejected.starts_with("evil\\\"\\\\\\xff"), "{rejected}");
    assert!(rejected.ends_with("..."), "{rejected}");
    assert!(rejected.is_ascii());
    assert!(rejected.len() < 64 * 4 + 4);
}

#[tokio::test(flavor = "current_thread")]
async fn rejections_are_logged_at_most_once_per_second_per_layer() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(JsonLayer::new(captured.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    for _ in 0..50 {
        let req = Request::builder()
            .header("x-request-id", "bad id")
            .body(())
            .unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    let warnings = captured
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .count();
    // 50 rejections within at most two wall-clock seconds.
    assert!((1..=2).contains(&warnings), "{warnings} warnings");
}
