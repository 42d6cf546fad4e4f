//! The tower layer end to end: headers, 429 problem answers, keys, shadow mode, allow-list, counters.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_ratelimit::{
    AllowList, ChargeMode, ClientIpConfig, Identity, KeyBy, Limit, ManualClock, PeerAddr, Policies,
    PolicyLimit, Quota, RateLimitLayer, RateLimiter, RequestInfo, UserId,
};

type Body = Full<bytes::Bytes>;

fn ok_service() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone
{
    service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Full::from("ok"))) })
}

fn policies(per_minute: u64) -> Policies {
    Policies::empty()
        .tier(
            "anonymous",
            [PolicyLimit::new(
                Limit::new("anonymous_minute", Quota::per_minute(per_minute).unwrap()).unwrap(),
                KeyBy::ClientIp,
                ChargeMode::Request,
            )],
        )
        .unwrap()
        .tier(
            "authenticated",
            [PolicyLimit::new(
                Limit::new("authenticated_minute", Quota::per_minute(60).unwrap()).unwrap(),
                KeyBy::User,
                ChargeMode::Request,
            )],
        )
        .unwrap()
        .category(
            "api_read",
            [PolicyLimit::new(
                Limit::new("api_read", Quota::per_minute(100).unwrap()).unwrap(),
                KeyBy::User,
                ChargeMode::Request,
            )],
        )
        .unwrap()
        .default_tier("anonymous")
        .unwrap()
}

fn layer(policies: Policies, client_ip: ClientIpConfig) -> RateLimitLayer {
    let limiter = RateLimiter::builder()
        .clock(ManualClock::starting_at(1))
        .build();
    RateLimitLayer::builder(limiter, policies)
        .client_ip(client_ip)
        .build()
}

fn request(peer: &str, headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut req = Request::get("/api/v1/invoices")
        .body(Full::from(""))
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    req
}

fn parse_list(headers: &HeaderMap, name: &str) -> sfv::List {
    let joined: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    sfv::Parser::new(&joined.join(", ")).parse().unwrap()
}

fn param(list: &sfv::List, member: usize, key: &str) -> i64 {
    let sfv::ListEntry::Item(item) = &list[member] else {
        panic!("inner list")
    };
    let value = item.params.get(key).unwrap_or_else(|| panic!("no {key}"));
    i64::from(value.as_integer().unwrap())
}

fn name(list: &sfv::List, member: usize) -> String {
    let sfv::ListEntry::Item(item) = &list[member] else {
        panic!("inner list")
    };
    item.bare_item.as_string().unwrap().as_str().to_owned()
}

#[tokio::test]
async fn admitted_responses_carry_both_fields_in_draft_11_syntax() {
    let layer = layer(policies(30), ClientIpConfig::new());
    let svc = layer.layer(ok_service());
    let resp = svc
        .oneshot(request("198.51.100.1:4000", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let policy = parse_list(resp.headers(), "ratelimit-policy");
    assert_eq!(policy.len(), 2);
    assert_eq!(name(&policy, 0), "anonymous_minute");
    assert_eq!((param(&policy, 0, "q"), param(&policy, 0, "w")), (30, 60));
    assert_eq!(name(&policy, 1), "api_read");
    let rate = parse_list(resp.headers(), "ratelimit");
    assert_eq!(rate.len(), 1);
    assert_eq!(name(&rate, 0), "anonymous_minute");
    assert_eq!(param(&rate, 0, "r"), 29);
    assert_eq!(param(&rate, 0, "t"), 2);
}

#[tokio::test]
async fn fields_a_handler_set_for_its_own_limit_are_merged_with_the_layers() {
    // A handler that refuses with a limit of its own (per account, say) describes that limit; the layer
    // admitted the request: its policies join the list, and the handler's `RateLimit` stays, since that
    // limit is the one that refused.
    let handler = service_fn(|_req: Request<Body>| async {
        let mut resp: Response<Body> = Response::new(Full::from("slow down"));
        *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = resp.headers_mut();
        headers.insert(
            "ratelimit-policy",
            HeaderValue::from_static("\"auth_account\";q=5;w=900"),
        );
        headers.insert(
            "ratelimit",
            HeaderValue::from_static("\"auth_account\";r=0;t=120"),
        );
        Ok::<_, Infallible>(resp)
    });
    let svc = layer(policies(30), ClientIpConfig::new()).layer(handler);
    let resp = svc
        .oneshot(request("198.51.100.1:4000", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let policy = parse_list(resp.headers(), "ratelimit-policy");
    let names: Vec<String> = (0..policy.len()).map(|i| name(&policy, i)).collect();
    assert_eq!(names, ["auth_account", "anonymous_minute", "api_read"]);
    assert_eq!(resp.headers()["ratelimit"], "\"auth_account\";r=0;t=120");
    assert_eq!(resp.headers().get_all("ratelimit").iter().count(), 1);
    assert_eq!(resp.headers().get_all("ratelimit-policy").iter().count(), 1);
}

#[tokio::test]
async fn refusals_are_429_problems_with_retry_after_equal_to_t() {
    let layer = layer(policies(2), ClientIpConfig::new());
    let mut svc = layer.layer(ok_service());
    for _ in 0..2 {
        let resp = svc
            .ready()
            .await
            .unwrap()
            .call(request("198.51.100.1:4000", &[]))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(request("198.51.100.1:4000", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let retry: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 30);
    let rate = parse_list(resp.headers(), "ratelimit");
    assert_eq!(name(&rate, 0), "anonymous_minute");
    assert_eq!(param(&rate, 0, "r"), 0);
    assert_eq!(param(&rate, 0, "t"), retry);
    let policy = parse_list(resp.headers(), "ratelimit-policy");
    assert_eq!(policy.len(), 2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(json["status"], 429);
    assert_eq!(
        json["violated-policies"],
        serde_json::json!(["anonymous_minute"])
    );
    let counters = layer.snapshot().limits;
    let minute = counters
        .iter()
        .find(|c| c.name == "anonymous_minute")
        .unwrap();
    assert_eq!((minute.allowed, minute.rejected), (2, 1));
}

#[tokio::test]
async fn clones_of_the_service_share_one_budget() {
    let layer = layer(policies(3), ClientIpConfig::new());
    let svc = layer.layer(ok_service());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            svc.clone()
                .oneshot(request("198.51.100.1:1", &[]))
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 3);
}

#[tokio::test]
async fn spoofed_forwarded_for_from_untrusted_peer_is_ignored() {
    let layer = layer(
        policies(2),
        ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap(),
    );
    let svc = layer.layer(ok_service());
    let mut ok = 0;
    for i in 0..10 {
        let spoof = format!("203.0.113.{i}");
        let resp = svc
            .clone()
            .oneshot(request(
                "198.51.100.7:1",
                &[
                    ("x-forwarded-for", spoof.as_bytes()),
                    ("forwarded", format!("for={spoof}").as_bytes()),
                ],
            ))
            .await
            .unwrap();
        ok += usize::from(resp.status() == StatusCode::OK);
    }
    assert_eq!(ok, 2, "every request counted against the peer");
}

#[tokio::test]
async fn trusted_proxy_hops_are_walked_right_to_left() {
    let layer = layer(
        policies(1),
        ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap(),
    );
    let svc = layer.layer(ok_service());
    // Two clients behind the proxy each get their own budget; the spoofed left-most entry does not matter.
    for client in ["198.51.100.1", "198.51.100.2"] {
        let xff = format!("1.1.1.1, {client}, 10.0.0.5");
        let resp = svc
            .clone()
            .oneshot(request(
                "10.0.0.1:1",
                &[("x-forwarded-for", xff.as_bytes())],
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let xff = "9.9.9.9, 198.51.100.1, 10.0.0.5";
    let resp = svc
        .oneshot(request(
            "10.0.0.1:1",
            &[("x-forwarded-for", xff.as_bytes())],
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn malformed_forwarding_headers_never_panic_nor_bypass_the_limit() {
    let layer = layer(
        policies(3),
        ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap(),
    );
    let svc = layer.layer(ok_service());
    let huge = "1.2.3.4, ".repeat(1200); // about 10 kB
    let many_trusted = "10.0.0.9,".repeat(1500);
    let cases: Vec<Vec<(&str, Vec<u8>)>> = vec![
        vec![("x-forwarded-for", b"not-an-ip".to_vec())],
        vec![("x-forwarded-for", b"\xff\xfe\xfd".to_vec())],
        vec![("x-forwarded-for", huge.into_bytes())],
        vec![("x-forwarded-for", many_trusted.into_bytes())],
        vec![("forwarded", b"for=\"[::1\";by=x, for=unknown".to_vec())],
        vec![("forwarded", b";;;,,,===".to_vec())],
        vec![("x-forwarded-for", b"999.1.1.1, 300.2.2.2".to_vec())],
        vec![("x-forwarded-for", b",,,".to_vec())],
    ];
    let mut ok = 0;
    for round in 0..3 {
        for case in &cases {
            let headers: Vec<(&str, &[u8])> =
                case.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let resp = svc
                .clone()
                .oneshot(request("10.0.0.1:1", &headers))
                .await
                .unwrap();
            ok += usize::from(resp.status() == StatusCode::OK);
            let _ = round;
        }
    }
    // Every malformed header falls back to a trusted hop of the proxy: no request gets a fresh key. The huge
    // header's right-most untrusted hop is one client (1.2.3.4) that gets its own 3.
    assert!(ok <= 3 + 3 + 3, "{ok} admitted");
}

#[tokio::test]
async fn users_are_keyed_by_id_with_their_tier() {
    let layer = RateLimitLayer::builder(
        RateLimiter::builder()
            .clock(ManualClock::starting_at(1))
            .build(),
        policies(1),
    )
    .tier_classifier(|req: &RequestInfo<'_>| {
        let user = req.extensions.get::<UserId>().map(|u| u.0.clone());
        let tier = if user.is_some() {
            "authenticated"
        } else {
            "anonymous"
        };
        Identity {
            user,
            tier: Cow::Borrowed(tier),
        }
    })
    .build();
    let svc = layer.layer(ok_service());
    for _ in 0..5 {
        let mut req = request("198.51.100.1:1", &[]);
        req.extensions_mut().insert(UserId(Arc::from("user-1")));
        let resp = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "authenticated tier allows 60/min"
        );
        let policy = parse_list(resp.headers(), "ratelimit-policy");
        assert_eq!(name(&policy, 0), "authenticated_minute");
    }
}

#[tokio::test]
async fn shadow_mode_only_reports() {
    let layer = layer(policies(1).shadow(true), ClientIpConfig::new());
    let svc = layer.layer(ok_service());
    for _ in 0..3 {
        let resp = svc
            .clone()
            .oneshot(request("198.51.100.1:1", &[]))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("ratelimit").is_none());
    }
    let snapshot = layer.snapshot();
    assert!(snapshot.shadow);
    let minute = snapshot
        .limits
        .iter()
        .find(|c| c.name == "anonymous_minute")
        .unwrap();
    assert_eq!((minute.rejected, minute.shadow_rejected), (0, 2));
}

#[tokio::test]
async fn allow_listed_networks_skip_per_ip_limits() {
    let allow = AllowList::new().networks(["198.51.100.0/24"]).unwrap();
    let layer = layer(policies(1).allow_list(allow), ClientIpConfig::new());
    let svc = layer.layer(ok_service());
    for _ in 0..5 {
        let resp = svc
            .clone()
            .oneshot(request("198.51.100.1:1", &[]))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = svc
        .clone()
        .oneshot(request("192.0.2.1:1", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = svc.oneshot(request("192.0.2.1:1", &[])).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn handler_charged_limits_are_checked_but_not_charged_by_the_layer() {
    let auth = Limit::new(
        "auth",
        Quota::new(2, std::time::Duration::from_secs(900)).unwrap(),
    )
    .unwrap();
    let policies = policies(100)
        .category(
            "auth",
            [PolicyLimit::new(
                auth.clone(),
                KeyBy::ClientIp,
                ChargeMode::Handler,
            )],
        )
        .unwrap();
    let layer = layer(policies, ClientIpConfig::new());
    let limiter = layer.limiter().clone();
    let svc = layer.layer(ok_service());
    let login = || {
        let mut req = Request::post("/api/v1/auth/login")
            .body(Full::from(""))
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr("198.51.100.1:1".parse().unwrap()));
        req
    };
    for _ in 0..5 {
        assert_eq!(
            svc.clone().oneshot(login()).await.unwrap().status(),
            StatusCode::OK
        );
    }
    // Two failed attempts charged by the handler exhaust it.
    let ip: std::net::IpAddr = "198.51.100.1".parse().unwrap();
    assert!(limiter.check(ip, &auth, 1).await.is_allowed());
    assert!(limiter.check(ip, &auth, 1).await.is_allowed());
    let resp = svc.oneshot(login()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn public_types_are_send_sync_and_clone() {
    fn assert_all<T: Send + Sync + Clone>() {}
    assert_all::<RateLimiter>();
    assert_all::<RateLimitLayer>();
    assert_all::<Policies>();
    assert_all::<Limit>();
    assert_all::<tower_ratelimit::MemoryStore>();
}
