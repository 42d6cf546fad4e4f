//! Two threads call one breaker with random outcomes (some calls dropped unrecorded, some failures carrying
//! `Retry-After`) while a third moves the clock and flips manual states. Afterwards the totals add up to the
//! calls made, and the breaker still works: it trips, and half-open admits exactly its probes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tower_circuitbreaker::{
    Backoff, Breaker, BreakerConfig, BreakerState, ManualClock, Outcome, Window,
};

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn racing_calls_clock_and_manual_transitions_keep_the_books_and_the_slots() {
    const CALLS: u64 = 200_000;
    let clock = ManualClock::new();
    let config = BreakerConfig::default()
        .consecutive_failures(NonZeroU32::new(3))
        .window(Window::Time(Duration::from_secs(10)))
        .minimum_calls(10)
        .open_duration(Duration::from_millis(5))
        .backoff(Backoff::exponential(2, Duration::from_millis(40)))
        .half_open_permits(NonZeroU32::new(3).unwrap())
        .half_open_max_wait(Duration::from_millis(20))
        .max_retry_after(Duration::from_millis(30));
    let breaker = Breaker::with_clock("chaos", config, clock.clone()).unwrap();
    let done = AtomicBool::new(false);
    let rounds = AtomicU64::new(0);
    let made: Vec<(u64, u64, u64, u64, u64)> = thread::scope(|s| {
        let operator = s.spawn(|| {
            let mut next = rng(7);
            while !done.load(Ordering::Relaxed) {
                match next() % 1000 {
                    0 => breaker.force_open(),
                    1 => breaker.disable(),
                    2 => breaker.metrics_only(),
                    3..=9 => breaker.reset(),
                    _ => clock.advance(Duration::from_micros(next() % 500)),
                }
                rounds.fetch_add(1, Ordering::Relaxed);
                thread::yield_now();
            }
        });
        let callers: Vec<_> = (0..2u64)
            .map(|t| {
                let (breaker, rounds) = (&breaker, &rounds);
                s.spawn(move || {
                    let mut next = rng(100 + t);
                    let (mut ok, mut failed, mut ignored, mut rejected) = (0, 0, 0, 0);
                    // At least CALLS calls, and on until the operator has had 5 000 turns.
                    let mut i = 0;
                    while i < CALLS || rounds.load(Ordering::Relaxed) < 5_000 {
                        i += 1;
                        let Ok(permit) = breaker.try_acquire() else {
                            rejected += 1;
                            continue;
                        };
                        match next() % 10 {
                            0..=3 => {
                                permit.failure();
                                failed += 1;
                            }
                            4 => {
                                permit.record(Outcome::FailureRetryAfter(Duration::from_millis(
                                    next() % 100,
                                )));
                                failed += 1;
                            }
                            5 => {
                                drop(permit);
                                ignored += 1;
                            }
                            _ => {
                                permit.success();
                                ok += 1;
                            }
                        }
                    }
                    (ok, failed, ignored, rejected, i)
                })
            })
            .collect();
        let made = callers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        operator.join().unwrap();
        made
    });
    let s = breaker.snapshot();
    let sum = |f: fn(&(u64, u64, u64, u64, u64)) -> u64| made.iter().map(f).sum::<u64>();
    assert_eq!(s.successes, sum(|m| m.0));
    assert_eq!(s.failures, sum(|m| m.1));
    assert_eq!(s.ignored, sum(|m| m.2));
    assert_eq!(s.rejected, sum(|m| m.3));
    assert_eq!(s.calls(), sum(|m| m.4));
    assert!(
        s.generation > 20,
        "it moved a lot: generation {}",
        s.generation
    );

    // Still works: it trips, and half-open admits exactly its 3 probes.
    breaker.reset();
    for _ in 0..3 {
        breaker.try_acquire().unwrap().failure();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    clock.advance(Duration::from_millis(5));
    let probes: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire().expect("a probe slot"))
        .collect();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.try_acquire().is_err(), "only 3 probes");
    for p in probes {
        p.success();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
}
