//! For any incoming header value, the id is kept exactly when it is 1 to 128 characters of
//! `[A-Za-z0-9._:-]`; otherwise the echoed id is a fresh UUIDv7 (the rejected value is never echoed).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod support;

use std::convert::Infallible;

use http::{HeaderValue, Request, Response};
use proptest::prelude::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::RequestIdLayer;

fn model(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len())
        && bytes.iter().all(|b| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-".contains(b)
        })
}

fn echoed(value: HeaderValue) -> HeaderValue {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let mut req = Request::new(());
    req.headers_mut().insert("x-request-id", value);
    rt.block_on(svc.oneshot(req)).unwrap().headers()["x-request-id"].clone()
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Mostly id characters, with a few others mixed in, around the length limit.
        proptest::collection::vec(
            prop_oneof![
                8 => proptest::sample::select(b"abcXYZ019._:-".to_vec()),
                1 => proptest::sample::select(b" \t/\"'%;,=@\x7f\x80\xff".to_vec()),
            ],
            0..140,
        ),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #[test]
    fn kept_exactly_when_the_rule_allows(bytes in header_bytes()) {
        // Only what can be a header value at all reaches a server (no CR, LF, NUL or other controls).
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()) };
        let out = echoed(value);
        if model(&bytes) {
            prop_assert_eq!(out.as_bytes(), &bytes[..]);
        } else {
            prop_assert_ne!(out.as_bytes(), &bytes[..]);
            prop_assert!(support::is_uuid_v7(out.to_str().unwrap()));
        }
    }
}
