//! The axum extractors read what the layer put into the request.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use tower_requestid::{RequestContext, RequestId, RequestIdLayer, TraceContext};

async fn body_of(res: axum::response::Response) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn app() -> Router {
    Router::new()
        .route("/id", get(|id: RequestId| async move { id.to_string() }))
        .route(
            "/trace",
            get(|trace: TraceContext| async move { trace.trace_id().to_string() }),
        )
        .route(
            "/ctx",
            get(
                |ctx: RequestContext| async move { format!("{} {}", ctx.id, ctx.trace.trace_id()) },
            ),
        )
        .route(
            "/maybe",
            get(|id: Option<RequestId>| async move { format!("{}", id.is_some()) }),
        )
}

#[tokio::test]
async fn extractors_read_the_id_and_trace_the_layer_made() {
    let app = app().layer(RequestIdLayer::new());
    let req = Request::get("/id")
        .header("x-request-id", "pay-sync-42")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        body_of(app.clone().oneshot(req).await.unwrap()).await,
        "pay-sync-42"
    );

    let req = Request::get("/trace")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        body_of(app.clone().oneshot(req).await.unwrap()).await,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    let res = app
        .clone()
        .oneshot(Request::get("/ctx").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(body_of(res).await.starts_with(&format!("{echoed} ")));

    let res = app
        .oneshot(Request::get("/maybe").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(body_of(res).await, "true");
}

#[tokio::test]
async fn without_the_layer_the_extractor_answers_500_and_the_option_is_none() {
    let res = app()
        .oneshot(Request::get("/id").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let res = app()
        .oneshot(Request::get("/maybe").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(body_of(res).await, "false");
}
