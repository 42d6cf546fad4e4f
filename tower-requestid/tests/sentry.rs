//! With Sentry: a hub per request, and every event captured inside carries the request id as a tag.
#![cfg(feature = "sentry")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use sentry::{ClientOptions, Envelope, Hub, Scope, SentryFutureExt as _, Transport};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::RequestIdLayer;

#[derive(Default)]
struct Capture(Mutex<Vec<Envelope>>);

impl Transport for Capture {
    fn send_envelope(&self, envelope: Envelope) {
        self.0.lock().unwrap().push(envelope);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn events_inside_a_request_carry_its_request_id() {
    let transport = Arc::new(Capture::default());
    let mut options = ClientOptions::new().transport(transport.clone());
    options.dsn = Some("https://public@sentry.invalid/1".parse().unwrap());
    let hub = Arc::new(Hub::new(
        Some(Arc::new(sentry::Client::from(options))),
        Arc::new(Scope::default()),
    ));

    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(tower_requestid::sentry::layer::<()>())
        .service(service_fn(|_req: Request<()>| async {
            sentry::capture_message("payment sync failed", sentry::Level::Error);
            Ok::<_, Infallible>(Response::new(()))
        }));
    for id in ["pay-sync-42", "pay-sync-43"] {
        let req = Request::builder()
            .header("x-request-id", id)
            .body(())
            .unwrap();
        svc.clone()
            .oneshot(req)
            .bind_hub(hub.clone())
            .await
            .unwrap();
    }
    hub.client().unwrap().flush(None);
    Hub::run(hub.clone(), || {
        sentry::capture_message("outside", sentry::Level::Info)
    });

    let envelopes = transport.0.lock().unwrap();
    let tags: Vec<Option<String>> = envelopes
        .iter()
        .filter_map(Envelope::event)
        .map(|e| e.tags.get("request_id").cloned())
        .collect();
    assert_eq!(
        tags,
        [
            Some("pay-sync-42".to_owned()),
            Some("pay-sync-43".to_owned()),
            None
        ],
        "one hub per request; the outer hub's scope is never tagged"
    );
    let trace_tag = envelopes
        .iter()
        .filter_map(Envelope::event)
        .next()
        .unwrap()
        .tags
        .get("trace_id")
        .cloned();
    assert_eq!(trace_tag.map(|t| t.len()), Some(32));
}
