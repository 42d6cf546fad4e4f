//! Memory stays bounded: idle keys are swept, and a flood of distinct keys stops at the cap.
//!
//! In release this floods 10 000 000 keys: `cargo test -p tower-ratelimit --release --test flood` (its own CI
//! step); a debug build floods a smaller number so the ordinary test run stays short.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower_ratelimit::{Key, Limit, ManualClock, MemoryConfig, Quota, RateLimiter};

#[cfg(debug_assertions)]
const FLOOD: u64 = 300_000;
#[cfg(not(debug_assertions))]
const FLOOD: u64 = 10_000_000;

#[cfg(debug_assertions)]
const IDLE_KEYS: u64 = 100_000;
#[cfg(not(debug_assertions))]
const IDLE_KEYS: u64 = 1_000_000;

#[test]
fn a_flood_of_distinct_keys_stays_under_the_cap_and_stays_limited() {
    let cap = usize::try_from(FLOOD / 10).unwrap();
    let shards = 128;
    let clock = ManualClock::starting_at(1);
    let limiter = RateLimiter::builder()
        .clock(clock.clone())
        .memory(MemoryConfig::default().max_keys(cap).shards(shards))
        .build();
    let limit = Limit::new("flood", Quota::per_hour(1).unwrap()).unwrap();
    let mut admitted = 0u64;
    for k in 0..FLOOD {
        admitted += u64::from(limiter.check_now(Key::Id(k), &limit, 1).is_allowed());
        if k % 1_000_000 == 0 {
            clock.advance(Duration::from_millis(1));
        }
    }
    let held = limiter.memory().len();
    // The cap, plus one overflow cell per shard for this limit.
    assert!(held <= cap + shards, "{held} cells held, cap {cap}");
    // Past the cap, new keys share one budget per shard: a flood cannot buy more than that.
    assert!(admitted <= (cap + shards) as u64, "{admitted} admitted");
    let bytes = limiter.memory().table_bytes();
    assert!(bytes / cap < 64, "{bytes} bytes for a cap of {cap}");
    // Known keys keep their own state.
    assert!(!limiter.check_now(Key::Id(0), &limit, 1).is_allowed());
}

#[test]
fn idle_keys_cost_under_64_bytes_each_and_lapsed_ones_are_swept() {
    let clock = ManualClock::starting_at(1);
    let limiter = RateLimiter::builder()
        .clock(clock.clone())
        .memory(MemoryConfig::default().max_keys(usize::try_from(IDLE_KEYS * 2).unwrap()))
        .build();
    let limit = Limit::new("idle", Quota::per_minute(10).unwrap()).unwrap();
    for k in 0..IDLE_KEYS {
        assert!(limiter.check_now(Key::Id(k), &limit, 1).is_allowed());
    }
    let held = limiter.memory().len();
    assert_eq!(held as u64, IDLE_KEYS);
    let per_key = limiter.memory().table_bytes() as f64 / held as f64;
    assert!(per_key < 64.0, "{per_key:.1} bytes per idle key");

    // Once their state has lapsed (one emission interval later), new keys make the shards sweep them.
    clock.advance(Duration::from_secs(7));
    for k in IDLE_KEYS..IDLE_KEYS + IDLE_KEYS / 2 {
        assert!(limiter.check_now(Key::Id(k), &limit, 1).is_allowed());
    }
    let after = limiter.memory().len() as u64;
    assert!(
        after < IDLE_KEYS,
        "{after} cells after the new keys; lapsed ones should have gone"
    );
    limiter.memory().sweep(limiter.now_micros());
    assert_eq!(limiter.memory().len() as u64, IDLE_KEYS / 2);
}
