//! Two threads hammer one breaker with random outcomes while it trips, probes and closes again and again;
//! afterwards the totals in the snapshot add up exactly to the calls each thread made.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::num::NonZeroU32;
use std::thread;
use std::time::Duration;

use tower::{Layer, ServiceExt, service_fn};
use tower_circuitbreaker::{
    Backoff, BoxError, Breaker, BreakerConfig, CircuitBreakerLayer, CircuitOpen, Outcome,
};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    successes: u64,
    failures: u64,
    ignored: u64,
    rejected: u64,
}

impl std::ops::Add for Counts {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            successes: self.successes + o.successes,
            failures: self.failures + o.failures,
            ignored: self.ignored + o.ignored,
            rejected: self.rejected + o.rejected,
        }
    }
}

/// xorshift64*: enough randomness for outcomes, no dependency.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn config() -> BreakerConfig {
    // The default configuration (5 consecutive failures, 50 % over a 60 s window after 20 calls), with short
    // open times so that the breaker keeps cycling through its states during the test.
    BreakerConfig::default()
        .open_duration(Duration::from_micros(200))
        .backoff(Backoff::exponential(2, Duration::from_millis(2)))
        .half_open_permits(NonZeroU32::new(2).unwrap())
        .half_open_max_wait(Duration::from_millis(1))
}

#[test]
fn two_threads_a_million_calls_each_add_up_exactly() {
    const CALLS: u64 = 1_000_000;
    let breaker = Breaker::new("upstream", config()).unwrap();
    let per_thread: Vec<Counts> = thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let breaker = &breaker;
                s.spawn(move || {
                    let mut next = rng(0x9E37_79B9 + t);
                    let mut c = Counts::default();
                    for _ in 0..CALLS {
                        let r = next();
                        match breaker.try_acquire() {
                            Err(_) => c.rejected += 1,
                            Ok(permit) => match r % 100 {
                                0..=29 => {
                                    permit.failure();
                                    c.failures += 1;
                                }
                                30..=34 => {
                                    drop(permit);
                                    c.ignored += 1;
                                }
                                _ => {
                                    permit.success();
                                    c.successes += 1;
                                }
                            },
                        }
                    }
                    c
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let made = per_thread[0] + per_thread[1];
    let s = breaker.snapshot();
    assert_eq!(
        Counts {
            successes: s.successes,
            failures: s.failures,
            ignored: s.ignored,
            rejected: s.rejected
        },
        made
    );
    assert_eq!(s.calls(), 2 * CALLS);
    assert!(
        made.rejected > 0,
        "the breaker opened at some point: {made:?}"
    );
    // It went through its states many times (every transition bumps the generation).
    assert!(s.generation > 10, "generation {}", s.generation);
    assert!(
        made.successes > CALLS / 100,
        "it closed again and again: {made:?}"
    );
}

#[test]
fn two_threads_through_the_tower_layer_add_up_exactly() {
    const CALLS: u64 = 100_000;
    let breaker = Breaker::new("upstream", config()).unwrap();
    let layer =
        CircuitBreakerLayer::new(breaker.clone()).classifier(|r: &Result<u64, BoxError>| match r {
            Ok(v) if v % 100 < 30 => Outcome::Failure,
            Ok(v) if v % 100 < 35 => Outcome::Ignored,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        });
    let per_thread: Vec<Counts> = thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let svc = layer.layer(service_fn(|v: u64| async move { Ok::<_, BoxError>(v) }));
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let mut next = rng(0xDEAD_BEEF + t);
                        let mut c = Counts::default();
                        for _ in 0..CALLS {
                            let v = next();
                            match svc.clone().oneshot(v).await {
                                Err(e) => {
                                    assert!(e.is::<CircuitOpen>());
                                    c.rejected += 1;
                                }
                                Ok(v) if v % 100 < 30 => c.failures += 1,
                                Ok(v) if v % 100 < 35 => c.ignored += 1,
                                Ok(_) => c.successes += 1,
                            }
                        }
                        c
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let made = per_thread[0] + per_thread[1];
    let s = breaker.snapshot();
    assert_eq!(
        Counts {
            successes: s.successes,
            failures: s.failures,
            ignored: s.ignored,
            rejected: s.rejected
        },
        made
    );
}
