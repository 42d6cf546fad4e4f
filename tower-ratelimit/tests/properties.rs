//! Property tests of the GCRA core through the public API: the window bound, and agreement with a model.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use tower_ratelimit::{Check, Limit, ManualClock, MemoryConfig, Quota, RateLimiter};

#[derive(Debug, Clone)]
struct Arrival {
    dt_micros: u64,
    key: u8,
    cost: u64,
    /// Which limits of the two the request is checked against: 1 = minute only, 2 = hour only, 3 = both.
    limits: u8,
}

fn arrivals() -> impl Strategy<Value = Vec<Arrival>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..2_000_000, 0u64..120_000_000],
            0u8..3,
            1u64..4,
            1u8..4,
        )
            .prop_map(|(dt_micros, key, cost, limits)| Arrival {
                dt_micros,
                key,
                cost,
                limits,
            }),
        1..200,
    )
}

fn quotas() -> impl Strategy<Value = (Quota, Quota)> {
    (1u64..20, 1u64..120, 1u64..30, 1u64..5).prop_map(|(rate, window_s, burst, factor)| {
        let minute = Quota::new(rate, Duration::from_secs(window_s))
            .unwrap()
            .with_burst(burst)
            .unwrap();
        let hour = Quota::new(rate * factor, Duration::from_secs(window_s * factor * 3)).unwrap();
        (minute, hour)
    })
}

/// Every admitted request's (time, cost), per key and limit, must satisfy the GCRA bound: in any window from the
/// first to the last of a run of admissions, at most burst + elapsed / T units.
fn assert_window_bound(admitted: &[(u64, u64)], quota: &Quota) -> Result<(), TestCaseError> {
    let t = quota.emission_interval_micros();
    for a in 0..admitted.len() {
        let mut sum = 0;
        for b in a..admitted.len() {
            sum += admitted[b].1;
            let elapsed = admitted[b].0 - admitted[a].0;
            prop_assert!(
                sum <= quota.burst() + elapsed / t,
                "{sum} units admitted within {elapsed} us (burst {}, T {t})",
                quota.burst()
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn no_window_admits_more_than_burst_plus_rate_times_length((minute, hour) in quotas(), seq in arrivals()) {
        let clock = ManualClock::starting_at(1);
        let limiter = RateLimiter::builder().clock(clock.clone()).build();
        let minute = Limit::new("minute", minute).unwrap();
        let hour = Limit::new("hour", hour).unwrap();
        let mut admitted: HashMap<(u8, String), Vec<(u64, u64)>> = HashMap::new();
        for arrival in &seq {
            clock.advance_micros(arrival.dt_micros);
            let key = format!("user-{}", arrival.key);
            let mut checks = Vec::new();
            if arrival.limits & 1 != 0 { checks.push(Check::charge(&minute, key.as_str())); }
            if arrival.limits & 2 != 0 { checks.push(Check::charge(&hour, key.as_str())); }
            let decision = limiter.decide(&checks, arrival.cost).into_ready().unwrap();
            if decision.is_allowed() {
                for check in &checks {
                    admitted.entry((arrival.key, check.limit.name().to_owned())).or_default()
                        .push((clock.now_micros_for_test(), arrival.cost));
                }
            }
        }
        for ((_, name), times) in &admitted {
            let quota = if name == "minute" { minute.quota() } else { hour.quota() };
            assert_window_bound(times, quota)?;
        }
    }

    #[test]
    fn memory_store_agrees_with_a_reference_model((minute, hour) in quotas(), seq in arrivals()) {
        let clock = ManualClock::starting_at(1);
        let limiter = RateLimiter::builder().clock(clock.clone()).build();
        let minute = Limit::new("minute", minute).unwrap();
        let hour = Limit::new("hour", hour).unwrap();
        let mut model: HashMap<(u8, u8), u64> = HashMap::new();
        for arrival in &seq {
            clock.advance_micros(arrival.dt_micros);
            let now = clock.now_micros_for_test();
            let key = format!("user-{}", arrival.key);
            let mut checks = Vec::new();
            let mut which = Vec::new();
            if arrival.limits & 1 != 0 { checks.push(Check::charge(&minute, key.as_str())); which.push(0u8); }
            if arrival.limits & 2 != 0 { checks.push(Check::charge(&hour, key.as_str())); which.push(1u8); }
            // The model: GCRA per (key, limit), all charged or none.
            let mut fits = true;
            let mut news = Vec::new();
            for (&w, check) in which.iter().zip(&checks) {
                let q = check.limit.quota();
                let tat = model.get(&(arrival.key, w)).copied().unwrap_or(0);
                let new_tat = tat.max(now) + arrival.cost * q.emission_interval_micros();
                if new_tat - now > q.tolerance_micros() { fits = false; }
                news.push(new_tat);
            }
            let decision = limiter.decide(&checks, arrival.cost).into_ready().unwrap();
            prop_assert_eq!(decision.is_allowed(), fits);
            if fits {
                for (&w, new_tat) in which.iter().zip(news) { model.insert((arrival.key, w), new_tat); }
            }
            for ((&w, check), outcome) in which.iter().zip(&checks).zip(decision.outcomes()) {
                let q = check.limit.quota();
                let tat = model.get(&(arrival.key, w)).copied().unwrap_or(0);
                let expected = (q.tolerance_micros() - tat.saturating_sub(now).min(q.tolerance_micros()))
                    / q.emission_interval_micros();
                prop_assert_eq!(outcome.remaining(), expected);
            }
            if let Some(wait) = decision.retry_after() {
                prop_assert!(!decision.is_allowed());
                prop_assert!(wait > Duration::ZERO);
                prop_assert!(decision.retry_after_secs().unwrap() >= 1);
            }
        }
    }

    #[test]
    fn waiting_the_retry_after_admits_the_request(rate in 1u64..50, cost in 1u64..5, n in 1usize..100) {
        let clock = ManualClock::starting_at(1);
        let limiter = RateLimiter::builder().clock(clock.clone()).build();
        let limit = Limit::new("l", Quota::per_minute(rate).unwrap().with_burst(5).unwrap()).unwrap();
        for _ in 0..n {
            let d = limiter.check_now("k", &limit, cost);
            if let Some(wait) = d.retry_after() {
                prop_assume!(wait != Duration::MAX);
                clock.advance(wait);
                prop_assert!(limiter.check_now("k", &limit, cost).is_allowed());
            }
        }
    }
}

trait NowForTest {
    fn now_micros_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_micros_for_test(&self) -> u64 {
        tower_ratelimit::Clock::now_micros(self)
    }
}

#[test]
fn a_refused_set_charges_nothing() {
    let clock = ManualClock::starting_at(1);
    let limiter = RateLimiter::builder()
        .clock(clock)
        .memory(MemoryConfig::default())
        .build();
    let roomy = Limit::new("roomy", Quota::per_minute(100).unwrap()).unwrap();
    let tight = Limit::new("tight", Quota::per_minute(1).unwrap()).unwrap();
    assert!(limiter.check_now("k", &tight, 1).is_allowed());
    let before = limiter.check_now("k", &roomy, 1).outcomes()[0].remaining();
    let refused = limiter
        .decide(&[Check::charge(&roomy, "k"), Check::charge(&tight, "k")], 1)
        .into_ready()
        .unwrap();
    assert!(!refused.is_allowed());
    assert_eq!(refused.violated().collect::<Vec<_>>(), vec![1]);
    let after = limiter
        .decide(&[Check::peek(&roomy, "k")], 1)
        .into_ready()
        .unwrap()
        .outcomes()[0]
        .remaining();
    assert_eq!(before, after, "the roomy limit was refunded");
}
