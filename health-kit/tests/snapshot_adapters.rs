//! The typed adapters over real tower-circuitbreaker registries and real query caches, read through
//! `/health/status` and `/health/ready` under tokio's paused clock (the breakers on a manual clock).
#![cfg(all(feature = "tower-circuitbreaker", feature = "query-cache"))]

mod support;

use std::num::NonZeroU32;
use std::time::Duration;

use health_kit::checks::{BreakerRegistryCheck, QueryCacheCheck};
use health_kit::{CheckOptions, DetailPolicy, Health, Status};
use http::StatusCode;
use query_cache::{CacheKey, QueryCache, Tier};
use serde_json::Value;
use support::{call, get, validate_health_json};
use tower_circuitbreaker::{BreakerConfig, BreakerRegistry, ManualClock};

const INTERVAL: Duration = Duration::from_secs(2);

async fn status_body(health: &Health) -> Value {
    let (code, _, body) = call(health.service(), get("/health/status")).await;
    if let Err(e) = validate_health_json(&body) {
        panic!("{e}: {body}");
    }
    assert_eq!(
        code,
        health.status().http_status(),
        "the code follows the status"
    );
    body
}

/// Waits one interval, so the refresher has run every check once more.
async fn next_run() {
    tokio::time::sleep(INTERVAL).await;
}

fn breaker_registry() -> (BreakerRegistry, ManualClock) {
    let clock = ManualClock::new();
    let config = BreakerConfig::default()
        .consecutive_failures(NonZeroU32::new(2))
        .failure_rate(None)
        .open_duration(Duration::from_secs(30));
    let registry =
        BreakerRegistry::with_clock(config, clock.clone()).expect("a valid configuration");
    (registry, clock)
}

fn trip(registry: &BreakerRegistry, name: &str) {
    let breaker = registry.get(name);
    for _ in 0..2 {
        breaker.try_acquire().expect("closed").failure();
    }
    assert_eq!(breaker.state(), tower_circuitbreaker::BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn breaker_states_reach_status_open_and_half_open_warn_with_the_next_probe() {
    let (registry, clock) = breaker_registry();
    let health = Health::builder()
        .check(
            "upstreams",
            BreakerRegistryCheck::new(&registry),
            CheckOptions::non_critical().interval(INTERVAL),
        )
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(1)).await;

    // No breaker yet: pass, and the count says so.
    let body = status_body(&health).await;
    assert_eq!(body["status"], "pass");
    assert_eq!(body["checks"]["upstreams:breakers"][0]["observedValue"], 0);

    // A closed breaker that has seen calls: pass, its state and counts shown.
    let stripe = registry.get("api.stripe.com:443");
    stripe.try_acquire().unwrap().success();
    next_run().await;
    let body = status_body(&health).await;
    assert_eq!(body["status"], "pass");
    let entry = &body["checks"]["upstreams:breaker.api.stripe.com_443"][0];
    assert_eq!(entry["observedValue"], "closed");
    assert_eq!(entry["successes"], 1);

    // Two failures open it: warn (non-critical, 200), with the time until the next probe.
    trip(&registry, "api.stripe.com:443");
    clock.advance(Duration::from_secs(10));
    next_run().await;
    assert_eq!(health.check_status("upstreams"), Some(Status::Warn));
    assert_eq!(health.ready().status_code(), StatusCode::OK);
    let body = status_body(&health).await;
    assert_eq!(body["status"], "warn");
    let entry = &body["checks"]["upstreams:breaker.api.stripe.com_443"][0];
    assert_eq!(entry["observedValue"], "open");
    assert_eq!(entry["nextProbeInMs"].as_f64(), Some(20_000.0));
    assert_eq!(entry["rejected"], 0);
    assert_eq!(
        entry["output"],
        "api.stripe.com:443 open, next probe in 20s"
    );
    assert_eq!(body["checks"]["upstreams:breakers"][0]["open"], 1);

    // Its time is up but no call has probed it yet: still open, the probe comes with the next call.
    clock.advance(Duration::from_secs(20));
    next_run().await;
    let observation = health.check_observation("upstreams").unwrap();
    assert_eq!(
        observation.output_text(),
        Some("api.stripe.com:443 open, next probe on the next call")
    );

    // A call takes the probe: half-open, warn.
    let probe = stripe.try_acquire().unwrap();
    next_run().await;
    let body = status_body(&health).await;
    assert_eq!(body["status"], "warn");
    let entry = &body["checks"]["upstreams:breaker.api.stripe.com_443"][0];
    assert_eq!(entry["observedValue"], "half_open");
    assert_eq!(entry["output"], "api.stripe.com:443 half_open, probing");
    assert_eq!(body["checks"]["upstreams:breakers"][0]["halfOpen"], 1);

    // The probe succeeds: closed, pass again.
    probe.success();
    next_run().await;
    assert_eq!(health.check_status("upstreams"), Some(Status::Pass));

    // Forced open by an operator: reported until reset, with no probe time.
    stripe.force_open();
    next_run().await;
    let observation = health.check_observation("upstreams").unwrap();
    assert_eq!(observation.status(), Status::Warn);
    assert_eq!(
        observation.output_text(),
        Some("api.stripe.com:443 forced_open until reset")
    );
    stripe.reset();
    next_run().await;
    // The forced opening was seen while it lasted; closed since, nothing new: pass.
    assert_eq!(health.check_status("upstreams"), Some(Status::Pass));
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn a_breaker_that_opened_and_closed_between_two_runs_is_still_reported_once() {
    let (registry, _clock) = breaker_registry();
    let health = Health::builder()
        .check(
            "upstreams",
            BreakerRegistryCheck::new(&registry),
            CheckOptions::non_critical().interval(INTERVAL),
        )
        .build()
        .unwrap();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(health.check_status("upstreams"), Some(Status::Pass));

    trip(&registry, "ledger");
    registry.get("ledger").reset();
    next_run().await;
    let observation = health.check_observation("upstreams").unwrap();
    assert_eq!(observation.status(), Status::Warn);
    assert_eq!(
        observation.output_text(),
        Some("ledger opened 1 time(s) since the last check, now closed")
    );
    let ledger = observation
        .measurements()
        .iter()
        .find(|m| m.name() == "breaker.ledger")
        .unwrap();
    assert_eq!(ledger.fields()["openedSinceLastCheck"], 1);

    next_run().await;
    assert_eq!(health.check_status("upstreams"), Some(Status::Pass));
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn fail_when_open_on_a_critical_check_makes_ready_503_and_live_stays_200() {
    let (registry, clock) = breaker_registry();
    let health = Health::builder()
        .check(
            "ledger-api",
            BreakerRegistryCheck::new(&registry).fail_when_open(true),
            CheckOptions::critical().interval(INTERVAL),
        )
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(health.ready().status_code(), StatusCode::OK);

    trip(&registry, "ledger");
    next_run().await;
    assert_eq!(health.check_status("ledger-api"), Some(Status::Fail));
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(health.live().status_code(), StatusCode::OK);

    // Half-open is a warn even with fail_when_open: calls go through again.
    clock.advance(Duration::from_secs(30));
    let ledger = registry.get("ledger");
    let probe = ledger.try_acquire().unwrap();
    next_run().await;
    assert_eq!(health.check_status("ledger-api"), Some(Status::Warn));
    assert_eq!(health.ready().status_code(), StatusCode::OK);
    probe.success();
    next_run().await;
    assert_eq!(health.check_status("ledger-api"), Some(Status::Pass));
    refresher.stop();
}

#[tokio::test]
async fn a_large_registry_lists_breakers_at_fault_first_within_the_cap() {
    let (registry, _clock) = breaker_registry();
    let check = BreakerRegistryCheck::new(&registry).max_listed(15);
    for n in 0..30 {
        let name = format!("host-{n:02}");
        registry.get(&name).try_acquire().unwrap().success();
        if n % 5 == 4 || n >= 22 {
            trip(&registry, &name); // 4, 9, 14, 19 and 22..=29: twelve open
        }
    }
    let _ = health_kit::Check::run(&check).await; // takes in the openings
    let observation = health_kit::Check::run(&check).await;
    assert_eq!(observation.status(), Status::Warn);
    let m = observation.measurements();
    assert_eq!(m[0].name(), "breakers");
    assert_eq!(m[0].observed_value(), Some(&Value::from(30)));
    assert_eq!(m[0].fields()["open"], 12);
    assert_eq!(m[0].fields()["listed"], 15);
    assert_eq!(m.len(), 16);
    let listed: Vec<_> = m[1..]
        .iter()
        .map(|m| m.observed_value().unwrap().clone())
        .collect();
    assert!(listed[..12].iter().all(|v| v == "open"), "{listed:?}");
    assert!(listed[12..].iter().all(|v| v == "closed"), "{listed:?}");
    let output = observation.output_text().unwrap();
    assert!(
        output.starts_with("host-04 open, next probe in 30s; host-09 open"),
        "{output}"
    );
    assert!(output.ends_with("; and 2 more"), "{output}");
    assert_eq!(output.matches(" open, ").count(), 10);
}

async fn load(cache: &QueryCache<u64>, query: &str) -> u64 {
    let key = CacheKey::new("org-1", query, &()).expect("a valid key");
    cache
        .get_or_load(&key, Tier::Short, || async { Ok::<_, std::io::Error>(7) })
        .await
        .expect("the loader cannot fail")
}

#[tokio::test(start_paused = true)]
async fn query_cache_hit_rate_per_interval_reaches_status_and_warns_below_the_floor() {
    let cache: QueryCache<u64> = QueryCache::builder().build().unwrap();
    let health = Health::builder()
        .check(
            "dashboard-cache",
            QueryCacheCheck::new(&cache).warn_below(80).min_lookups(10),
            CheckOptions::non_critical().interval(INTERVAL),
        )
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(1)).await;

    // Nothing looked up yet: no rate to show, pass.
    let body = status_body(&health).await;
    let entry = &body["checks"]["dashboard-cache:hitRate"][0];
    assert_eq!(body["status"], "pass");
    assert!(entry.get("observedValue").is_none(), "{entry}");
    assert_eq!(entry["observedUnit"], "percent");

    // One miss (a load) and nine hits: 90 % over the interval.
    for _ in 0..10 {
        assert_eq!(load(&cache, "total").await, 7);
    }
    next_run().await;
    let body = status_body(&health).await;
    assert_eq!(body["status"], "pass");
    let entry = &body["checks"]["dashboard-cache:hitRate"][0];
    assert_eq!(entry["observedValue"].as_f64(), Some(90.0));
    assert_eq!(
        (entry["hits"].as_u64(), entry["misses"].as_u64()),
        (Some(9), Some(1))
    );
    assert_eq!(entry["loads"], 1);
    assert_eq!(entry["entries"], 1);
    let tier = &body["checks"]["dashboard-cache:hitRate.short"][0];
    assert_eq!(tier["observedValue"].as_f64(), Some(90.0));

    // Next interval: ten new queries, each a miss, and two hits: 2 of 12 is 16.6 %, below 80 %: warn, 200.
    for i in 0..10 {
        load(&cache, &format!("q{i}")).await;
    }
    load(&cache, "total").await;
    load(&cache, "total").await;
    next_run().await;
    let observation = health.check_observation("dashboard-cache").unwrap();
    assert_eq!(observation.status(), Status::Warn);
    assert_eq!(
        observation.output_text(),
        Some("hit rate 16.6% over 12 lookups, below 80%")
    );
    assert_eq!(health.ready().status_code(), StatusCode::OK);
    let body = status_body(&health).await;
    let entry = &body["checks"]["dashboard-cache:hitRate"][0];
    assert_eq!(entry["observedValue"].as_f64(), Some(16.6));
    // The lifetime rate covers both intervals: 11 hits of 22 lookups.
    assert_eq!(entry["lifetimeHitRate"].as_f64(), Some(50.0));

    // A quiet interval: no rate, nothing to warn about.
    next_run().await;
    let observation = health.check_observation("dashboard-cache").unwrap();
    assert_eq!(observation.status(), Status::Pass);
    assert!(observation.measurements()[0].observed_value().is_none());

    // Too few lookups for the floor to count: three misses are not a verdict.
    for i in 0..3 {
        load(&cache, &format!("r{i}")).await;
    }
    next_run().await;
    assert_eq!(health.check_status("dashboard-cache"), Some(Status::Pass));
    refresher.stop();
}

#[derive(Debug, Clone)]
enum BreakerOp {
    Fail(usize),
    Succeed(usize),
    Advance(u64),
    ForceOpen(usize),
    Reset(usize),
    /// Takes a permit and keeps it: a call in flight, or a half-open probe not yet ended.
    Hold(usize),
    /// Ends the oldest held call, with success or failure.
    Release(bool),
}

fn breaker_op() -> impl proptest::strategy::Strategy<Value = BreakerOp> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..3usize).prop_map(BreakerOp::Fail),
        3 => (0..3usize).prop_map(BreakerOp::Succeed),
        2 => (1..40u64).prop_map(BreakerOp::Advance),
        1 => (0..3usize).prop_map(BreakerOp::ForceOpen),
        1 => (0..3usize).prop_map(BreakerOp::Reset),
        2 => (0..3usize).prop_map(BreakerOp::Hold),
        2 => proptest::bool::ANY.prop_map(BreakerOp::Release),
    ]
}

/// What the current states alone call for.
fn expected(registry: &BreakerRegistry, fail_when_open: bool) -> Status {
    use tower_circuitbreaker::BreakerState as S;
    registry
        .snapshots()
        .iter()
        .map(|s| match s.state {
            S::Open | S::ForcedOpen if fail_when_open => Status::Fail,
            S::Open | S::ForcedOpen | S::HalfOpen => Status::Warn,
            _ => Status::Pass,
        })
        .max()
        .unwrap_or(Status::Pass)
}

proptest::proptest! {
    /// Whatever real breakers go through, the check is never better than their current states call for, is
    /// exactly that once no transition happened since the previous run, and shows every breaker.
    #[test]
    fn breaker_check_follows_the_states_of_real_breakers(
        ops in proptest::collection::vec(breaker_op(), 1..60),
        fail_when_open in proptest::bool::ANY,
    ) {
        let (registry, clock) = breaker_registry();
        let check = BreakerRegistryCheck::new(&registry).fail_when_open(fail_when_open);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let breakers: Vec<_> = ["a", "b", "c"].iter().map(|n| registry.get(n)).collect();
        let mut held = std::collections::VecDeque::new();
        for op in ops {
            match op {
                BreakerOp::Fail(i) => {
                    if let Ok(p) = breakers[i].try_acquire() {
                        p.failure();
                    }
                }
                BreakerOp::Succeed(i) => {
                    if let Ok(p) = breakers[i].try_acquire() {
                        p.success();
                    }
                }
                BreakerOp::Advance(s) => clock.advance(Duration::from_secs(s)),
                BreakerOp::ForceOpen(i) => breakers[i].force_open(),
                BreakerOp::Reset(i) => breakers[i].reset(),
                BreakerOp::Hold(i) => {
                    if let Ok(p) = breakers[i].try_acquire() {
                        held.push_back(p);
                    }
                }
                BreakerOp::Release(ok) => {
                    if let Some(p) = held.pop_front() {
                        if ok { p.success() } else { p.failure() }
                    }
                }
            }
            let want = expected(&registry, fail_when_open);
            let first = rt.block_on(health_kit::Check::run(&check));
            proptest::prop_assert!(first.status() >= want, "{first:?} below {want:?}");
            proptest::prop_assert!(first.status() <= want.max(Status::Warn));
            let again = rt.block_on(health_kit::Check::run(&check));
            proptest::prop_assert_eq!(again.status(), want, "{:?}", again);
            proptest::prop_assert_eq!(again.measurements().len(), registry.len() + 1);
            proptest::prop_assert_eq!(again.status() == Status::Pass, again.output_text().is_none());
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Over any sequence of intervals of lookups on a real cache, `hitRate` is the interval's hits over its
    /// lookups (to 0.1 %, rounded down), absent for an interval without lookups, and the check warns exactly
    /// when that rate is below the floor over enough lookups.
    #[test]
    fn query_cache_hit_rate_is_the_intervals_own(
        intervals in proptest::collection::vec(proptest::collection::vec(0..12u32, 0..40), 1..6),
        floor in 0..=100u8,
        min_lookups in 1..20u64,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let cache: QueryCache<u64> = QueryCache::builder().build().unwrap();
        let check = QueryCacheCheck::new(&cache).warn_below(floor).min_lookups(min_lookups);
        let mut seen = std::collections::HashSet::new();
        for lookups in intervals {
            let (mut hits, mut misses) = (0u64, 0u64);
            for q in lookups {
                if seen.insert(q) { misses += 1 } else { hits += 1 }
                rt.block_on(load(&cache, &format!("q{q}")));
            }
            let observation = rt.block_on(health_kit::Check::run(&check));
            let rate = &observation.measurements()[0];
            proptest::prop_assert_eq!(rate.name(), "hitRate");
            let total = hits + misses;
            match (hits * 1000).checked_div(total) {
                None => proptest::prop_assert!(rate.observed_value().is_none()),
                Some(per_mille) => {
                    #[allow(clippy::cast_precision_loss)]
                    let want = per_mille as f64 / 10.0;
                    proptest::prop_assert_eq!(rate.observed_value().and_then(Value::as_f64), Some(want));
                }
            }
            let low = total >= min_lookups && hits * 100 < u64::from(floor) * total;
            let want = if low { Status::Warn } else { Status::Pass };
            proptest::prop_assert_eq!(observation.status(), want, "{:?}", observation);
        }
    }
}
