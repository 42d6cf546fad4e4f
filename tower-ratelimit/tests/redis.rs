//! The Redis store against the real server: agreement with the memory store, a quota shared by two instances,
//! and outages through a fault proxy (the machine's Redis is never stopped).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tower_ratelimit::{
    Check, DecisionSource, FailurePolicy, Limit, ManualClock, Quota, RateLimiter, RedisConfig,
    RedisStore, StoreHealth,
};

fn limits() -> (Limit, Limit) {
    (
        Limit::new(
            "minute",
            Quota::per_minute(5).unwrap().with_burst(3).unwrap(),
        )
        .unwrap(),
        Limit::new("hour", Quota::per_hour(20).unwrap()).unwrap(),
    )
}

#[test]
fn memory_and_redis_stores_decide_the_same_sequence_the_same_way() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let slice = test_support::require!(rt.block_on(test_support::redis()));
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
        .min(64);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let case = AtomicU64::new(0);
    let strategy = prop::collection::vec((0u64..30_000_000, 0u8..3, 1u64..3, 1u8..4), 1..80);
    runner
        .run(&strategy, |arrivals| {
            let prefix = format!(
                "{}case{}:",
                slice.prefix(),
                case.fetch_add(1, Ordering::Relaxed)
            );
            let prefix_for_cache = prefix.clone();
            rt.block_on(async {
                let clock = ManualClock::starting_at(1_000_000);
                let memory = RateLimiter::builder().clock(clock.clone()).build();
                let store =
                    RedisStore::new(slice.url(), RedisConfig::default().prefix(prefix)).unwrap();
                let redis = RateLimiter::builder()
                    .clock(clock.clone())
                    .redis(store, FailurePolicy::FailClosed)
                    .build();
                let cached_store = RedisStore::new(
                    slice.url(),
                    RedisConfig::default()
                        .prefix(format!("{}cached:", prefix_for_cache))
                        .deny_cache(1000),
                )
                .unwrap();
                let cached = RateLimiter::builder()
                    .clock(clock.clone())
                    .redis(cached_store, FailurePolicy::FailClosed)
                    .build();
                let (minute, hour) = limits();
                for (dt, key, cost, which) in arrivals {
                    clock.advance_micros(dt);
                    let key = format!("k{key}");
                    let mut checks = Vec::new();
                    if which & 1 != 0 {
                        checks.push(Check::charge(&minute, key.as_str()));
                    }
                    if which & 2 != 0 {
                        checks.push(Check::charge(&hour, key.as_str()));
                    }
                    let a = memory.decide(&checks, cost).await;
                    let b = redis.decide(&checks, cost).await;
                    prop_assert_eq!(b.source(), DecisionSource::Redis);
                    prop_assert_eq!(a.is_allowed(), b.is_allowed());
                    prop_assert_eq!(a.outcomes(), b.outcomes());
                    // With the deny cache, refusals may come without a round trip, but never differ.
                    let c = cached.decide(&checks, cost).await;
                    prop_assert_eq!(a.is_allowed(), c.is_allowed());
                }
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_admit_no_more_than_the_quota() {
    let slice = test_support::require!(test_support::redis().await);
    let quota = Limit::new("shared", Quota::per_hour(10).unwrap()).unwrap();
    let instance = |batch: usize| {
        let store = RedisStore::new(
            slice.url(),
            RedisConfig::default()
                .prefix(slice.prefix())
                .max_batch(batch),
        )
        .unwrap();
        RateLimiter::builder()
            .redis(store, FailurePolicy::FailClosed)
            .build()
    };
    let (a, b) = (instance(64), instance(1));
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let quota = quota.clone();
        let admitted = Arc::clone(&admitted);
        tasks.push(tokio::spawn(async move {
            let d = limiter.check("one-client", &quota, 1).await;
            assert!(
                matches!(d.source(), DecisionSource::Redis),
                "{:?}",
                d.source()
            );
            if d.is_allowed() {
                admitted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_within_one_call_timeout_and_recovers_within_a_second() {
    let slice = test_support::require!(test_support::redis().await);
    let (proxy, url) = test_support::FaultProxy::in_front_of(slice.url())
        .await
        .unwrap();
    let timeout = Duration::from_millis(200);
    let store = RedisStore::new(
        &url,
        RedisConfig::default()
            .prefix(slice.prefix())
            .call_timeout(timeout)
            .retry_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let limiter = RateLimiter::builder()
        .redis(store, FailurePolicy::FallbackToMemory)
        .build();
    let limit = Limit::new("outage", Quota::per_second(1000).unwrap()).unwrap();
    assert_eq!(
        limiter.check("k", &limit, 1).await.source(),
        DecisionSource::Redis
    );
    assert_eq!(limiter.store_health(), StoreHealth::RedisUp);

    for cut in [true, false] {
        if cut {
            proxy.cut()
        } else {
            proxy.stall()
        }
        let started = Instant::now();
        let d = limiter.check("k", &limit, 1).await;
        // One call timeout, plus room for a loaded 2-core CI machine to schedule the task.
        assert!(
            started.elapsed() < timeout + Duration::from_millis(400),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(d.source(), DecisionSource::Memory);
        assert!(d.is_allowed());
        assert_eq!(limiter.store_health(), StoreHealth::RedisDegraded);
        // While degraded, every decision is answered without error.
        for _ in 0..20 {
            assert!(limiter.check("k", &limit, 1).await.is_allowed());
        }
        proxy.restore();
        let back = Instant::now();
        loop {
            let d = limiter.check("k", &limit, 1).await;
            if d.source() == DecisionSource::Redis {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(1),
                "Redis not used again within a second"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(limiter.store_health(), StoreHealth::RedisUp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policies_open_and_closed_answer_without_redis() {
    let slice = test_support::require!(test_support::redis().await);
    let (proxy, url) = test_support::FaultProxy::in_front_of(slice.url())
        .await
        .unwrap();
    proxy.cut();
    let limit = Limit::new("policy", Quota::per_second(10).unwrap()).unwrap();
    for (policy, allowed, source) in [
        (FailurePolicy::FailOpen, true, DecisionSource::FailOpen),
        (FailurePolicy::FailClosed, false, DecisionSource::FailClosed),
    ] {
        let config = RedisConfig::default()
            .prefix(slice.prefix())
            .call_timeout(Duration::from_millis(100));
        let limiter = RateLimiter::builder()
            .redis(RedisStore::new(&url, config).unwrap(), policy)
            .build();
        let d = limiter.check("k", &limit, 1).await;
        assert_eq!((d.is_allowed(), d.source()), (allowed, source));
        if !allowed {
            assert_eq!(d.retry_after_secs(), Some(1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_decides_through_redis() {
    use http::{Request, Response, StatusCode};
    use tower::{Layer, ServiceExt, service_fn};
    use tower_ratelimit::{ChargeMode, KeyBy, PeerAddr, Policies, PolicyLimit, RateLimitLayer};

    let slice = test_support::require!(test_support::redis().await);
    let store =
        RedisStore::new(slice.url(), RedisConfig::default().prefix(slice.prefix())).unwrap();
    let limiter = RateLimiter::builder()
        .redis(store, FailurePolicy::FailClosed)
        .build();
    let limit = Limit::new("anonymous_minute", Quota::per_minute(2).unwrap()).unwrap();
    let policies = Policies::empty()
        .tier(
            "anonymous",
            [PolicyLimit::new(
                limit,
                KeyBy::ClientIp,
                ChargeMode::Request,
            )],
        )
        .unwrap();
    let svc =
        RateLimitLayer::new(limiter, policies).layer(service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"ok"),
            )))
        }));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut req = Request::new(String::new());
        req.extensions_mut()
            .insert(PeerAddr("192.0.2.1:1".parse().unwrap()));
        let resp = svc.clone().oneshot(req).await.unwrap();
        assert!(resp.headers().contains_key("ratelimit"));
        statuses.push(resp.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deny_cache_refuses_without_a_round_trip_until_one_unit_fits() {
    let slice = test_support::require!(test_support::redis().await);
    let clock = ManualClock::starting_at(1_000_000);
    let store = RedisStore::new(
        slice.url(),
        RedisConfig::default()
            .prefix(slice.prefix())
            .deny_cache(100),
    )
    .unwrap();
    let limiter = RateLimiter::builder()
        .clock(clock.clone())
        .redis(store, FailurePolicy::FailClosed)
        .build();
    let limit = Limit::new("login", Quota::per_minute(1).unwrap()).unwrap();
    assert_eq!(
        limiter.check("k", &limit, 1).await.source(),
        DecisionSource::Redis
    );
    let refused = limiter.check("k", &limit, 1).await;
    assert_eq!(
        (refused.is_allowed(), refused.source()),
        (false, DecisionSource::Redis)
    );
    clock.advance(Duration::from_secs(30));
    let cached = limiter.check("k", &limit, 1).await;
    assert_eq!(
        (cached.is_allowed(), cached.source()),
        (false, DecisionSource::DenyCache)
    );
    assert_eq!(cached.retry_after(), Some(Duration::from_secs(30)));
    // Another key is not affected.
    assert!(limiter.check("other", &limit, 1).await.is_allowed());
    clock.advance(Duration::from_secs(30));
    let again = limiter.check("k", &limit, 1).await;
    assert_eq!(
        (again.is_allowed(), again.source()),
        (true, DecisionSource::Redis)
    );
}
