//! The spec scenario on tokio's paused clock, through the generic tower layer: 5 consecutive failures open
//! the circuit for 60 s, one probe goes through, a failure reopens it for the backed-off 120 s, a success
//! closes it, and a late result from before the trip changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_circuitbreaker::{
    BoxError, Breaker, BreakerConfig, BreakerState, CircuitBreakerLayer, CircuitOpen, TokioClock,
    is_legal_transition,
};

type Answer = Result<u32, &'static str>;

/// An upstream whose every call waits for the answer its request carries.
fn upstream(
    calls: Arc<AtomicUsize>,
) -> impl Service<oneshot::Receiver<Answer>, Response = u32, Error = BoxError, Future: Send> + Clone
{
    service_fn(move |answer: oneshot::Receiver<Answer>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match answer.await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(BoxError::from(e)),
                Err(_) => Err(BoxError::from("caller went away")),
            }
        }
    })
}

fn ready(answer: Answer) -> oneshot::Receiver<Answer> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(answer);
    rx
}

fn refusal(e: &BoxError) -> &CircuitOpen {
    e.downcast_ref::<CircuitOpen>()
        .expect("a CircuitOpen refusal")
}

#[tokio::test(start_paused = true)]
async fn five_failures_open_for_sixty_seconds_then_one_probe_decides() {
    let breaker =
        Breaker::with_clock("accounting", BreakerConfig::default(), TokioClock::new()).unwrap();
    let mut events = breaker.subscribe();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(calls.clone()));

    // A call that starts while closed and answers only at the very end.
    let (late_tx, late_rx) = oneshot::channel();
    let late = tokio::spawn(svc.clone().oneshot(late_rx));
    tokio::task::yield_now().await;

    for _ in 0..4 {
        assert!(svc.clone().oneshot(ready(Err("502"))).await.is_err());
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert!(svc.clone().oneshot(ready(Err("502"))).await.is_err());
    assert_eq!(breaker.state(), BreakerState::Open);
    let upstream_calls = calls.load(Ordering::SeqCst);

    // Rejected for 60 s, without calling the upstream.
    let e = svc.clone().oneshot(ready(Ok(1))).await.unwrap_err();
    assert_eq!(refusal(&e).retry_after(), Some(Duration::from_secs(60)));
    tokio::time::advance(Duration::from_millis(59_999)).await;
    let e = svc.clone().oneshot(ready(Ok(1))).await.unwrap_err();
    assert_eq!(refusal(&e).retry_after(), Some(Duration::from_millis(1)));
    assert_eq!(refusal(&e).retry_after_secs(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), upstream_calls);

    // At 60 s one probe goes through; a second call meanwhile is refused.
    tokio::time::advance(Duration::from_millis(1)).await;
    let (probe_tx, probe_rx) = oneshot::channel();
    let probe = tokio::spawn(svc.clone().oneshot(probe_rx));
    tokio::task::yield_now().await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(svc.clone().oneshot(ready(Ok(1))).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), upstream_calls + 1);

    // The probe fails: open again, for the backed-off 120 s.
    probe_tx.send(Err("503")).unwrap();
    assert!(probe.await.unwrap().is_err());
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        breaker.snapshot().next_probe_in,
        Some(Duration::from_secs(120))
    );
    tokio::time::advance(Duration::from_secs(119)).await;
    assert!(svc.clone().oneshot(ready(Ok(1))).await.is_err());
    tokio::time::advance(Duration::from_secs(1)).await;

    // The next probe succeeds: closed.
    assert_eq!(svc.clone().oneshot(ready(Ok(7))).await.unwrap(), 7);
    assert_eq!(breaker.state(), BreakerState::Closed);

    // The call from before the trip fails now: it decides nothing.
    late_tx.send(Err("timeout")).unwrap();
    assert!(late.await.unwrap().is_err());
    let snap = breaker.snapshot();
    assert_eq!(snap.state, BreakerState::Closed);
    assert_eq!(snap.consecutive_failures, 0);
    assert_eq!((snap.successes, snap.failures, snap.rejected), (1, 7, 4));

    let mut last = BreakerState::Closed;
    let mut seen = Vec::new();
    while let Ok(t) = events.try_recv() {
        assert_eq!(t.from, last);
        assert!(is_legal_transition(t.from, t.to));
        last = t.to;
        seen.push((t.to, t.open_for));
    }
    assert_eq!(
        seen,
        [
            (BreakerState::Open, Some(Duration::from_secs(60))),
            (BreakerState::HalfOpen, None),
            (BreakerState::Open, Some(Duration::from_secs(120))),
            (BreakerState::HalfOpen, None),
            (BreakerState::Closed, None)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_success_from_before_the_trip_does_not_close_the_circuit() {
    let breaker = Breaker::with_clock("bank", BreakerConfig::default(), TokioClock::new()).unwrap();
    let svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(Arc::default()));
    let (late_tx, late_rx) = oneshot::channel();
    let late = tokio::spawn(svc.clone().oneshot(late_rx));
    tokio::task::yield_now().await;
    for _ in 0..5 {
        let _ = svc.clone().oneshot(ready(Err("500"))).await;
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    // half-open with a probe in flight
    let (_probe_tx, probe_rx) = oneshot::channel();
    let _probe = tokio::spawn(svc.clone().oneshot(probe_rx));
    tokio::task::yield_now().await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    late_tx.send(Ok(1)).unwrap();
    assert_eq!(late.await.unwrap().unwrap(), 1);
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "only the probe decides"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_is_ignored_and_frees_the_slot() {
    let breaker =
        Breaker::with_clock("payments", BreakerConfig::default(), TokioClock::new()).unwrap();
    let svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(Arc::default()));
    for _ in 0..5 {
        let _ = svc.clone().oneshot(ready(Err("500"))).await;
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    let (_tx, rx) = oneshot::channel();
    let probe = tokio::spawn(svc.clone().oneshot(rx));
    tokio::task::yield_now().await;
    probe.abort();
    let _ = probe.await;
    assert_eq!(breaker.snapshot().ignored, 1);
    assert_eq!(svc.clone().oneshot(ready(Ok(2))).await.unwrap(), 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn public_types_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Breaker>();
    check::<CircuitBreakerLayer>();
    check::<tower_circuitbreaker::HttpCircuitBreakerLayer>();
    check::<tower_circuitbreaker::BreakerRegistry>();
    check::<CircuitOpen>();
    check::<tower_circuitbreaker::Snapshot>();
}
