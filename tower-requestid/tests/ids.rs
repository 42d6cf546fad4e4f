//! Incoming ids: kept when valid, replaced (never echoed) otherwise.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod support;

use std::convert::Infallible;

use http::{HeaderValue, Request, Response, StatusCode};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::{RequestContext, RequestId, RequestIdLayer, TraceContext, Ulid, UuidV4};

use support::is_uuid_v7;

/// Answers with the id found in the extensions and the id header the handler saw.
async fn echo(req: Request<()>) -> Result<Response<String>, Infallible> {
    let id = req
        .extensions()
        .get::<RequestId>()
        .expect("layer puts the id in extensions")
        .to_string();
    let seen = req
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let current = RequestContext::current().expect("the handler runs with the request's context");
    assert_eq!(current.id.to_string(), id);
    assert!(
        req.extensions().get::<TraceContext>().is_none(),
        "the trace context is in the extensions only when asked for"
    );
    assert!(
        seen.is_empty() || seen == id,
        "the request header holds the id or nothing: {seen}"
    );
    Ok(Response::new(id))
}

async fn send(
    layer: RequestIdLayer<impl tower_requestid::MakeRequestId + Send + 'static>,
    value: Option<HeaderValue>,
) -> Response<String> {
    let mut req = Request::new(());
    if let Some(value) = value {
        req.headers_mut().insert("x-request-id", value);
    }
    ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(echo))
        .oneshot(req)
        .await
        .unwrap()
}

#[tokio::test]
async fn valid_incoming_id_is_kept_and_echoed() {
    for id in [
        "pay-sync-42",
        "a",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "trace:1.2_3-x",
        &"z".repeat(128),
    ] {
        let res = send(
            RequestIdLayer::new(),
            Some(HeaderValue::from_str(id).unwrap()),
        )
        .await;
        assert_eq!(res.headers()["x-request-id"], id);
        assert_eq!(res.body(), id);
    }
}

#[tokio::test]
async fn the_context_is_current_in_the_inner_call_and_no_longer_after() {
    // A layer inside reads it in `call`, before any future is polled (a Sentry hub per request does).
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| {
            let in_call = RequestContext::current().map(|c| c.id.to_string());
            async move { Ok::<_, Infallible>(Response::new(in_call.unwrap_or_default())) }
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.body().as_str(), res.headers()["x-request-id"]);
    assert_eq!(RequestContext::current(), None);
}

#[tokio::test]
async fn trace_context_goes_into_the_extensions_when_asked() {
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new().trace_context_extension(true))
        .service(service_fn(|req: Request<()>| async move {
            let current = RequestContext::current().unwrap();
            assert_eq!(req.extensions().get::<TraceContext>(), Some(&current.trace));
            assert_eq!(req.extensions().get::<RequestId>(), Some(&current.id));
            Ok::<_, Infallible>(Response::new(()))
        }));
    svc.oneshot(Request::new(())).await.unwrap();
}

#[tokio::test]
async fn missing_id_gets_a_uuid_v7() {
    let res = send(RequestIdLayer::new(), None).await;
    let echoed = res.headers()["x-request-id"].to_str().unwrap();
    assert!(is_uuid_v7(echoed), "{echoed}");
    assert_eq!(res.body(), echoed);
}

#[tokio::test]
async fn invalid_incoming_ids_are_replaced_never_echoed() {
    let cases: Vec<(&str, HeaderValue)> = vec![
        ("empty", HeaderValue::from_static("")),
        (
            "129 chars",
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        ),
        (
            "control character (tab)",
            HeaderValue::from_static("abc\tdef"),
        ),
        ("space", HeaderValue::from_static("abc def")),
        (
            "non-UTF-8 bytes",
            HeaderValue::from_bytes(&[b'a', 0xff, 0xfe, b'b']).unwrap(),
        ),
        (
            "UTF-8 non-ASCII",
            HeaderValue::from_bytes("café".as_bytes()).unwrap(),
        ),
        (
            "encoded CRLF injection",
            HeaderValue::from_static("abc%0D%0ASet-Cookie:%20session=evil"),
        ),
        (
            "header splitting with quotes",
            HeaderValue::from_static("abc\"; Set-Cookie: x=1"),
        ),
    ];
    for (name, value) in cases {
        let res = send(RequestIdLayer::new(), Some(value.clone())).await;
        let echoed = res.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(res.headers()["x-request-id"], value, "{name}: echoed");
        assert!(is_uuid_v7(echoed), "{name}: {echoed}");
        assert!(res.headers().get("set-cookie").is_none(), "{name}");
    }
}

#[tokio::test]
async fn two_id_lines_are_ambiguous_and_replaced() {
    let mut req = Request::new(());
    req.headers_mut()
        .append("x-request-id", HeaderValue::from_static("first"));
    req.headers_mut()
        .append("x-request-id", HeaderValue::from_static("second"));
    let res = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(echo))
        .oneshot(req)
        .await
        .unwrap();
    assert!(is_uuid_v7(res.headers()["x-request-id"].to_str().unwrap()));
}

#[tokio::test]
async fn header_name_rule_and_generator_are_configurable() {
    let layer = RequestIdLayer::new()
        .header_name(http::HeaderName::from_static("x-correlation-id"))
        .incoming_rule(|b| b.len() == 4 && b.iter().all(u8::is_ascii_digit))
        .make_request_id(Ulid);
    let svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(Response::new(
                    req.extensions().get::<RequestId>().unwrap().to_string(),
                ))
            }));

    let req = Request::builder()
        .header("x-correlation-id", "1234")
        .body(())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-correlation-id"], "1234");
    assert!(res.headers().get("x-request-id").is_none());

    let req = Request::builder()
        .header("x-correlation-id", "pay-sync-42")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(
        res.body().len(),
        26,
        "a ULID replaces an id the custom rule refuses"
    );

    let res = send(RequestIdLayer::new().make_request_id(UuidV4), None).await;
    let v4 = uuid::Uuid::parse_str(res.body()).unwrap();
    assert_eq!(v4.get_version_num(), 4);
}

#[tokio::test]
async fn set_request_header_writes_the_generated_id_into_the_request() {
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new().set_request_header(true))
        .service(service_fn(|req: Request<()>| async move {
            let header = req.headers()["x-request-id"].clone();
            assert_eq!(req.headers().get_all("x-request-id").iter().count(), 1);
            Ok::<_, Infallible>(Response::new(header))
        }));
    let req = Request::builder()
        .header("x-request-id", "bad id")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], res.body());
    assert!(is_uuid_v7(res.body().to_str().unwrap()));
}

#[tokio::test]
async fn an_invalid_header_is_removed_from_the_request() {
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.headers().get("x-request-id").is_none()))
        }));
    let req = Request::builder()
        .header("x-request-id", "bad id")
        .body(())
        .unwrap();
    assert!(svc.oneshot(req).await.unwrap().into_body());
}

#[tokio::test]
async fn ignore_incoming_replaces_even_valid_ids() {
    let res = send(
        RequestIdLayer::new().ignore_incoming(),
        Some(HeaderValue::from_static("pay-sync-42")),
    )
    .await;
    assert!(is_uuid_v7(res.body()));
}

#[tokio::test]
async fn id_replaces_one_the_handler_set_and_errors_pass_through() {
    let mut svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            let mut res = Response::new(());
            res.headers_mut()
                .insert("x-request-id", HeaderValue::from_static("from-handler"));
            *res.status_mut() = StatusCode::ACCEPTED;
            Ok::<_, Infallible>(res)
        }));
    let req = Request::builder()
        .header("x-request-id", "from-client")
        .body(())
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "from-client");
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    let failing = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            Err::<Response<()>, _>("upstream down")
        }));
    assert_eq!(
        failing.oneshot(Request::new(())).await.unwrap_err(),
        "upstream down"
    );
}

#[test]
fn public_types_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<RequestIdLayer>();
    check::<RequestId>();
    check::<TraceContext>();
    check::<tower_requestid::OutboundLayer>();
    check::<
        tower_requestid::RequestIdService<
            tower::util::BoxCloneSyncService<Request<()>, Response<()>, Infallible>,
            tower_requestid::UuidV7,
        >,
    >();
}
