//! The probe endpoints through the tower service, with checks made of closures and tokio's paused clock.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use health_kit::{
    CheckOptions, ComponentType, DetailPolicy, Endpoint, Health, HealthService, Measurement,
    Observation, Status, check_fn, snapshot_fn,
};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use proptest::prelude::*;
use serde_json::Value;
use support::{call, get, get_with_auth, validate_health_json};
use tower::ServiceExt;

/// A check that counts its runs and answers what the switch says.
fn switchable(runs: &Arc<AtomicU64>, healthy: &Arc<AtomicBool>) -> impl health_kit::Check {
    let (runs, healthy) = (Arc::clone(runs), Arc::clone(healthy));
    check_fn(move || {
        runs.fetch_add(1, Ordering::SeqCst);
        let ok = healthy.load(Ordering::SeqCst);
        async move {
            if ok {
                Observation::pass()
            } else {
                Observation::fail("connection refused")
            }
        }
    })
}

fn pinned_clock() -> health_kit::WallClock {
    Arc::new(|| UNIX_EPOCH + Duration::from_secs(1_795_000_000))
}

#[tokio::test(start_paused = true)]
async fn hanging_check_is_cut_at_its_timeout_and_reported_fail_with_the_timeout_in_output() {
    let health = Health::builder()
        .check(
            "upstream",
            check_fn(|| async { std::future::pending::<Observation>().await }),
            CheckOptions::critical().timeout(Duration::from_millis(750)),
        )
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    let before = tokio::time::Instant::now();
    health.refresh().await;
    assert_eq!(
        before.elapsed(),
        Duration::from_millis(750),
        "the run is cut exactly at its timeout"
    );

    assert_eq!(health.check_status("upstream"), Some(Status::Fail));
    let (status, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let entry = &body["checks"]["upstream:responseTime"][0];
    assert_eq!(entry["status"], "fail");
    assert_eq!(entry["output"], "timed out after 750ms");
    assert_eq!(entry["observedValue"], 750.0);
    assert_eq!(entry["observedUnit"], "ms");
    validate_health_json(&body).unwrap();
}

#[tokio::test(start_paused = true)]
async fn checks_run_concurrently_each_cut_at_its_own_timeout() {
    let sleeper = |ms: u64| {
        check_fn(move || async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Observation::pass()
        })
    };
    let hanging = || check_fn(|| async { std::future::pending::<Observation>().await });
    let build = || {
        Health::builder()
            .check(
                "a",
                hanging(),
                CheckOptions::critical().timeout(Duration::from_millis(300)),
            )
            .check(
                "b",
                hanging(),
                CheckOptions::non_critical().timeout(Duration::from_millis(800)),
            )
            .check(
                "c",
                sleeper(500),
                CheckOptions::critical().timeout(Duration::from_secs(1)),
            )
            .build()
            .unwrap()
    };

    // One refresh takes as long as the slowest check (800 ms), not the sum (1 600 ms).
    let health = build();
    let before = tokio::time::Instant::now();
    health.refresh().await;
    assert_eq!(before.elapsed(), Duration::from_millis(800));
    let output = |name: &str| {
        health
            .check_observation(name)
            .unwrap()
            .output_text()
            .map(str::to_owned)
    };
    assert_eq!(output("a").as_deref(), Some("timed out after 300ms"));
    assert_eq!(output("b").as_deref(), Some("timed out after 800ms"));
    assert_eq!(health.check_status("c"), Some(Status::Pass));

    // In the background, a hanging check holds no other back: each has a result as soon as its own run ends.
    let health = build();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(301)).await;
    assert_eq!(health.check_status("a"), Some(Status::Fail));
    assert_eq!(health.check_status("b"), None);
    assert_eq!(health.check_status("c"), None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health.check_status("c"), Some(Status::Pass));
    assert_eq!(health.check_status("b"), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health.check_status("b"), Some(Status::Fail));
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn panicking_check_is_reported_fail_and_keeps_being_run() {
    let runs = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&runs);
    let health = Health::builder()
        .check(
            "buggy",
            check_fn(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n > 0, "first run panics");
                    Observation::pass()
                }
            }),
            CheckOptions::critical().interval(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        health.check_observation("buggy").unwrap().output_text(),
        Some("check panicked")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(health.check_status("buggy"), Some(Status::Pass));
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_probes_trigger_one_execution_of_each_check() {
    let (db_runs, cache_runs) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let up = Arc::new(AtomicBool::new(true));
    let slow_db = {
        let runs = Arc::clone(&db_runs);
        check_fn(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(40)).await;
                Observation::pass()
            }
        })
    };
    let health = Health::builder()
        .check("db", slow_db, CheckOptions::critical())
        .check(
            "cache",
            switchable(&cache_runs, &up),
            CheckOptions::non_critical(),
        )
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();

    // 1 000 probes and, for good measure, 1 000 explicit refreshes, all at once while the first runs are in
    // flight: single flight and the minimum interval keep it to one run of each check.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let service = health.service();
        tasks.spawn(async move {
            service
                .oneshot(get("/health/ready"))
                .await
                .unwrap()
                .status()
        });
        let h = health.clone();
        tasks.spawn(async move {
            h.refresh().await;
            StatusCode::OK
        });
    }
    while let Some(result) = tasks.join_next().await {
        let status = result.unwrap();
        assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(db_runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache_runs.load(Ordering::SeqCst), 1);
    assert_eq!(health.executions("db"), Some(1));
    assert_eq!(health.executions("cache"), Some(1));
    let (status, _, _) = call(health.service(), get("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_probes_per_second_cause_at_most_one_execution_per_interval() {
    let runs = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let interval = Duration::from_secs(1);
    let health = Health::builder()
        .check(
            "postgres",
            switchable(&runs, &up),
            CheckOptions::critical().interval(interval),
        )
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    let start = tokio::time::Instant::now();
    let mut service = health.service();
    let seconds = 5;
    for _ in 0..seconds {
        // 10 000 probes spread over one second of virtual time: 10 per millisecond.
        for _ in 0..1000 {
            for _ in 0..10 {
                let response = tower::Service::call(&mut service, get("/health/ready"))
                    .await
                    .unwrap();
                assert!(response.status().is_success() || runs.load(Ordering::SeqCst) == 0);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let elapsed = start.elapsed();
    let intervals = elapsed.as_secs() / interval.as_secs();
    let executions = runs.load(Ordering::SeqCst);
    assert!(
        executions <= intervals + 1,
        "{executions} runs in {elapsed:?} ({intervals} intervals)"
    );
    assert!(
        executions >= intervals,
        "the refresher kept running: {executions} runs in {elapsed:?}"
    );
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn critical_failure_makes_ready_503_while_live_stays_200() {
    let runs = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(false));
    let health = Health::builder()
        .check("postgres", switchable(&runs, &up), CheckOptions::critical())
        .build()
        .unwrap();
    health.mark_started();
    health.refresh().await;

    let (status, headers, body) = call(health.service(), get("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[CONTENT_TYPE], "application/health+json");
    assert_eq!(headers[CACHE_CONTROL], "max-age=1");
    assert_eq!(
        body,
        serde_json::json!({"status": "fail"}),
        "ready never shows details"
    );

    let (status, _, body) = call(health.service(), get("/health/live")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "pass");

    let (status, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        serde_json::json!({"status": "fail"}),
        "the default policy shows no details"
    );
}

#[tokio::test(start_paused = true)]
async fn non_critical_failure_gives_warn_and_200() {
    let runs = Arc::new(AtomicU64::new(0));
    let (db_up, disk_up) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(false)),
    );
    let health = Health::builder()
        .check(
            "postgres",
            switchable(&runs, &db_up),
            CheckOptions::critical(),
        )
        .check(
            "search",
            switchable(&runs, &disk_up),
            CheckOptions::non_critical(),
        )
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    health.refresh().await;
    for path in ["/health/ready", "/health/status"] {
        let (status, _, body) = call(health.service(), get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["status"], "warn", "{path}");
        validate_health_json(&body).unwrap();
    }
    let (_, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(body["checks"]["search:responseTime"][0]["status"], "fail");
    assert_eq!(
        body["checks"]["search:responseTime"][0]["output"],
        "connection refused"
    );
    assert_eq!(body["checks"]["search:responseTime"][0]["critical"], false);
    assert_eq!(body["output"], "search fail (non-critical)");
}

#[tokio::test(start_paused = true)]
async fn slow_check_gives_warn_and_200() {
    let health = Health::builder()
        .check(
            "ledger",
            check_fn(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Observation::pass()
            }),
            CheckOptions::critical().slow_after(Duration::from_millis(200)),
        )
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    health.refresh().await;
    let (status, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "warn");
    assert_eq!(
        body["checks"]["ledger:responseTime"][0]["output"],
        "slow: took 300ms (over 200ms)"
    );
    validate_health_json(&body).unwrap();
}

#[tokio::test(start_paused = true)]
async fn failing_check_recovers_within_one_interval() {
    let runs = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let interval = Duration::from_secs(2);
    let health = Health::builder()
        .check(
            "redis",
            switchable(&runs, &up),
            CheckOptions::critical().interval(interval),
        )
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(health.ready().status_code(), StatusCode::OK);

    up.store(false, Ordering::SeqCst);
    tokio::time::sleep(interval).await;
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(health.live().status_code(), StatusCode::OK);

    up.store(true, Ordering::SeqCst);
    tokio::time::sleep(interval).await;
    assert_eq!(health.ready().status_code(), StatusCode::OK);
    refresher.stop();
}

#[tokio::test(start_paused = true)]
async fn startup_is_503_until_marked_started_and_ready_waits_for_it() {
    let health = Health::builder().build().unwrap();
    let (status, _, body) = call(health.service(), get("/health/startup")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        serde_json::json!({"status": "fail", "output": "starting"})
    );
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(health.live().status_code(), StatusCode::OK);

    health.mark_started();
    assert_eq!(health.startup().status_code(), StatusCode::OK);
    assert_eq!(health.ready().status_code(), StatusCode::OK);

    let lenient = Health::builder()
        .ready_requires_startup(false)
        .build()
        .unwrap();
    assert_eq!(lenient.ready().status_code(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn critical_check_without_a_result_yet_counts_as_failing() {
    let runs = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let health = Health::builder()
        .check("postgres", switchable(&runs, &up), CheckOptions::critical())
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    let (status, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["checks"]["postgres:responseTime"][0]["output"],
        "no result yet"
    );
    validate_health_json(&body).unwrap();
}

#[tokio::test(start_paused = true)]
async fn mark_not_ready_overrides_the_checks_until_mark_ready() {
    let health = Health::builder().build().unwrap();
    health.mark_started();
    health.mark_not_ready();
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    health.mark_ready();
    assert_eq!(health.ready().status_code(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn drain_turns_ready_503_then_waits_the_period_before_letting_the_server_stop() {
    let health = Health::builder().build().unwrap();
    health.mark_started();
    assert_eq!(health.ready().status_code(), StatusCode::OK);

    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let period = Duration::from_secs(5);
    let drained = tokio::spawn(health.drain_after(
        async move {
            let _ = signal_rx.await;
        },
        period,
    ));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        health.ready().status_code(),
        StatusCode::OK,
        "nothing happens before the signal"
    );

    signal_tx.send(()).unwrap();
    let signalled = tokio::time::Instant::now();
    tokio::task::yield_now().await;
    assert!(health.is_draining());
    let (status, _, body) = call(health.service(), get("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["output"], "draining");
    assert_eq!(
        health.live().status_code(),
        StatusCode::OK,
        "a draining process is alive"
    );
    assert!(
        !drained.is_finished(),
        "the server keeps serving during the drain period"
    );

    drained.await.unwrap();
    assert_eq!(signalled.elapsed(), period);
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn status_details_follow_the_policy_and_ready_never_shows_them() {
    let health = Health::builder()
        .check(
            "breakers",
            snapshot_fn(|| {
                Observation::warn("payments breaker half-open").measurement(
                    Measurement::new("open")
                        .value(0)
                        .unit("breakers")
                        .field("halfOpen", 1),
                )
            }),
            CheckOptions::non_critical(),
        )
        .release_id("0.3.1")
        .version("1")
        .detail_policy(DetailPolicy::bearer_token("operator-token"))
        .wall_clock(pinned_clock())
        .build()
        .unwrap();
    health.mark_started();
    health.refresh().await;

    let (status, _, anonymous) = call(health.service(), get("/health/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        anonymous,
        serde_json::json!({"status": "warn", "version": "1", "releaseId": "0.3.1"})
    );

    let (_, _, wrong) = call(
        health.service(),
        get_with_auth("/health/status", "Bearer nope"),
    )
    .await;
    assert_eq!(wrong, anonymous);

    let (_, _, operator) = call(
        health.service(),
        get_with_auth("/health/status", "Bearer operator-token"),
    )
    .await;
    validate_health_json(&operator).unwrap();
    assert_eq!(
        operator["checks"]["breakers:open"][0],
        serde_json::json!({
            "componentType": "component", "observedValue": 0, "observedUnit": "breakers", "status": "warn",
            "time": "2026-11-18T11:06:40Z", "output": "payments breaker half-open", "critical": false,
            "halfOpen": 1,
        })
    );

    let (_, _, ready) = call(
        health.service(),
        get_with_auth("/health/ready", "Bearer operator-token"),
    )
    .await;
    assert_eq!(ready, serde_json::json!({"status": "warn"}));
}

#[tokio::test(start_paused = true)]
async fn predicate_policy_sees_request_extensions() {
    #[derive(Clone)]
    struct Role(&'static str);
    let health = Health::builder()
        .detail_policy(DetailPolicy::when(|parts| {
            parts
                .extensions
                .get::<Role>()
                .is_some_and(|r| r.0 == "admin")
        }))
        .build()
        .unwrap();
    let mut request = get("/health/status");
    request.extensions_mut().insert(Role("admin"));
    let (_, _, body) = call(health.service(), request).await;
    assert_eq!(body, serde_json::json!({"status": "pass", "checks": {}}));
    let (_, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(body, serde_json::json!({"status": "pass"}));
}

#[tokio::test(start_paused = true)]
async fn other_paths_are_404_other_methods_405_and_head_has_no_body() {
    let health = Health::builder().build().unwrap();
    let (status, _, _) = call(health.service(), get("/health")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let post = http::Request::post("/health/live")
        .body(http_body_util::Full::default())
        .unwrap();
    let (status, headers, _) = call(health.service(), post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[http::header::ALLOW], "GET, HEAD");
    let head = http::Request::head("/health/live")
        .body(http_body_util::Full::default())
        .unwrap();
    let (status, headers, body) = call(health.service(), head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/health+json");
    assert_eq!(body, Value::Null);
    let (status, _, _) = call(health.endpoint(Endpoint::Live), get("/anywhere")).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn public_types_are_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Health>();
    assert_traits::<HealthService>();
    assert_traits::<health_kit::EndpointService>();
    assert_traits::<DetailPolicy>();
    assert_traits::<health_kit::HealthResponse>();
    assert_traits::<CheckOptions>();
}

fn status_strategy() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Pass), Just(Status::Warn), Just(Status::Fail)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Whatever the checks report, every endpoint's body validates against the draft, the status code follows
    // the body's status, and ready fails exactly when a critical check fails.
    #[test]
    fn every_answer_validates_and_its_code_matches_its_status(
        checks in proptest::collection::vec((any::<bool>(), status_strategy(), any::<bool>()), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let mut builder = Health::builder().detail_policy(DetailPolicy::Always).service_id("svc").description("d");
            for (i, &(critical, status, with_value)) in checks.iter().enumerate() {
                let check = snapshot_fn(move || {
                    let o = match status {
                        Status::Pass => Observation::pass(),
                        Status::Warn => Observation::warn("w"),
                        Status::Fail => Observation::fail("f"),
                    };
                    if with_value { o.measurement(Measurement::new("connections").value(3).unit("connections")) } else { o }
                });
                let options = if critical { CheckOptions::critical() } else { CheckOptions::non_critical() }
                    .component_type(if i % 2 == 0 { ComponentType::Datastore } else { ComponentType::System });
                builder = builder.check(format!("c{i}"), check, options);
            }
            let health = builder.build().unwrap();
            health.mark_started();
            health.refresh().await;
            let critical_fail = checks.iter().any(|&(c, s, _)| c && s == Status::Fail);
            for endpoint in Endpoint::ALL {
                let (code, headers, body) = call(health.service(), get(endpoint.path())).await;
                prop_assert!(validate_health_json(&body).is_ok(), "{:?}: {:?}", endpoint, validate_health_json(&body));
                prop_assert_eq!(headers[CONTENT_TYPE].to_str().unwrap(), "application/health+json");
                let status = body["status"].as_str().unwrap();
                prop_assert_eq!(code == StatusCode::SERVICE_UNAVAILABLE, status == "fail");
                if matches!(endpoint, Endpoint::Ready | Endpoint::Status) {
                    prop_assert_eq!(status == "fail", critical_fail);
                }
                if endpoint == Endpoint::Status {
                    let keys = body["checks"].as_object().unwrap().len();
                    prop_assert_eq!(keys, checks.len());
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test(start_paused = true)]
async fn results_turn_stale_and_count_as_failing_when_the_refresher_stops() {
    let runs = Arc::new(AtomicU64::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let (interval, timeout) = (Duration::from_secs(2), Duration::from_secs(1));
    let health = Health::builder()
        .check(
            "postgres",
            switchable(&runs, &up),
            CheckOptions::critical().interval(interval).timeout(timeout),
        )
        .detail_policy(DetailPolicy::Always)
        .build()
        .unwrap();
    health.mark_started();
    let refresher = health.spawn_refresher();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        health.ready().status_code(),
        StatusCode::OK,
        "fresh results while the refresher runs"
    );

    refresher.stop();
    // The last run started at most one interval ago (t = 8 s or 10 s); it stays good for two intervals plus
    // the timeout after its start (until t = 13 s or 15 s).
    tokio::time::sleep(timeout).await;
    assert_eq!(health.ready().status_code(), StatusCode::OK);
    tokio::time::sleep(interval * 2 + timeout).await;
    assert_eq!(
        health.ready().status_code(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, _, body) = call(health.service(), get("/health/status")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let output = body["checks"]["postgres:responseTime"][0]["output"]
        .as_str()
        .unwrap();
    assert!(output.starts_with("stale: the last result is "), "{output}");
    validate_health_json(&body).unwrap();

    // A new result makes it fresh again.
    health.refresh().await;
    assert_eq!(health.ready().status_code(), StatusCode::OK);
}

#[derive(Debug, Clone)]
enum Op {
    Probes(u16),
    Refresh,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u16..500).prop_map(Op::Probes),
        Just(Op::Refresh),
        (0u64..3_000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // However probes, explicit refreshes and the passing of time interleave, with or without the background
    // refresher, two runs of a check never start less than one interval apart.
    #[test]
    fn runs_of_a_check_start_at_least_one_interval_apart(
        ops in proptest::collection::vec(op(), 1..40),
        interval_ms in 50u64..2_000,
        with_refresher in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let starts = runtime.block_on(async {
            let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
            let recorded = Arc::clone(&starts);
            let check = check_fn(move || {
                recorded.lock().unwrap().push(tokio::time::Instant::now());
                async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Observation::pass()
                }
            });
            let interval = Duration::from_millis(interval_ms);
            let health =
                Health::builder().check("db", check, CheckOptions::critical().interval(interval)).build().unwrap();
            health.mark_started();
            let refresher = with_refresher.then(|| health.spawn_refresher());
            let mut refreshes = tokio::task::JoinSet::new();
            let mut service = health.service();
            for op in &ops {
                match *op {
                    Op::Probes(n) => {
                        for _ in 0..n {
                            let _ = tower::Service::call(&mut service, get("/health/ready")).await;
                        }
                    }
                    Op::Refresh => {
                        let h = health.clone();
                        refreshes.spawn(async move { h.refresh().await });
                    }
                    Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
            }
            while refreshes.join_next().await.is_some() {}
            if let Some(refresher) = refresher {
                refresher.stop();
            }
            let starts = starts.lock().unwrap().clone();
            (starts, interval)
        });
        let (starts, interval) = starts;
        for pair in starts.windows(2) {
            prop_assert!(pair[1] - pair[0] >= interval, "runs {:?} apart, interval {:?}", pair[1] - pair[0], interval);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn layer_answers_health_paths_and_passes_the_rest_with_its_errors() {
    use http_body_util::BodyExt;
    let health = Health::builder().build().unwrap();
    health.mark_started();
    let inner = tower::service_fn(|req: http::Request<()>| async move {
        if req.uri().path() == "/boom" {
            return Err("inner failed");
        }
        Ok(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"app"),
        )))
    });
    let app = tower::ServiceBuilder::new()
        .layer(health_kit::HealthLayer::new(health.clone()))
        .service(inner);

    let ready = app
        .clone()
        .oneshot(http::Request::get("/health/ready").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.headers()[CONTENT_TYPE], "application/health+json");
    let body = ready.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"status":"pass"}"#);

    let other = app
        .clone()
        .oneshot(http::Request::get("/api").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(other.into_body().collect().await.unwrap().to_bytes(), "app");

    let err = app
        .oneshot(http::Request::get("/boom").body(()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, "inner failed");
}
