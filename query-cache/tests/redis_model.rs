//! Property against the real Redis: two instances sharing a Redis store, any sequence of loads and of
//! invalidations of keys, tags and tenants issued on either; every read answers exactly what the model holds
//! (the last value loaded since the last invalidation touching the key), so no value loaded before an
//! invalidation of its key, tag or tenant is ever served, nor one older than its TTL: the two stores share a
//! manual clock that the sequence moves, so freshness in Redis is checked against the model too. 64 cases (a
//! real service).
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use query_cache::{CacheKey, Clock, QueryCache, RedisStore, Tier};

const KEYS: u8 = 4;
const TAGS: [&str; 2] = ["invoices", "bank"];

#[derive(Debug, Clone)]
enum Op {
    Load(bool, u8),
    InvalidateKey(bool, u8),
    InvalidateTag(bool, u8, usize),
    InvalidateTenant(bool, u8),
    /// Moves the shared clock by this many milliseconds.
    Advance(u64),
}

/// `Tier::Short`'s default TTL.
const TTL_MS: u64 = 60_000;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0..KEYS).prop_map(|(b, k)| Op::Load(b, k)),
        1 => (any::<bool>(), 0..KEYS).prop_map(|(b, k)| Op::InvalidateKey(b, k)),
        1 => (any::<bool>(), 0..2u8, 0..TAGS.len()).prop_map(|(b, t, g)| Op::InvalidateTag(b, t, g)),
        1 => (any::<bool>(), 0..2u8).prop_map(|(b, t)| Op::InvalidateTenant(b, t)),
        // Around the TTL often: just before, at and just after expiry.
        1 => prop_oneof![0..TTL_MS + 1_000, (TTL_MS - 2)..(TTL_MS + 2)].prop_map(Op::Advance),
    ]
}

fn has_tag(k: u8, tag: usize) -> bool {
    if tag == 0 {
        k != 1
    } else {
        k.is_multiple_of(2)
    }
}

#[test]
fn two_instances_sharing_redis_answer_exactly_as_the_model() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(redis) = runtime.block_on(test_support::redis()) else {
        return;
    };
    let (clock, hand) = Clock::manual();
    let (a, b): (QueryCache<u64>, QueryCache<u64>) = runtime.block_on(async {
        let store = |prefix: &str| {
            RedisStore::builder(redis.url())
                .prefix(prefix)
                .clock(clock.clone())
                .timeout(Duration::from_secs(2))
                .build()
                .expect("store")
        };
        (
            QueryCache::builder()
                .redis_only(&store(redis.prefix()))
                .build()
                .expect("config"),
            QueryCache::builder()
                .redis_only(&store(redis.prefix()))
                .build()
                .expect("config"),
        )
    });
    let case = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        // Each case gets tenants of its own, so cases never see each other's keys.
        let n = case.fetch_add(1, Ordering::Relaxed);
        let tenant = |t: u8| format!("case{n}-t{t}");
        let key = |k: u8| {
            let tags: Vec<&str> = (0..TAGS.len())
                .filter(|g| has_tag(k, *g))
                .map(|g| TAGS[g])
                .collect();
            CacheKey::new(&tenant(k % 2), "q", &k)
                .expect("key")
                .tagged(tags)
                .expect("tags")
        };
        runtime.block_on(async {
            // The value each key holds and when it was loaded (by the shared clock).
            let mut model: [Option<(u64, u64)>; KEYS as usize] = [None; KEYS as usize];
            let mut next = 0u64;
            for op in &ops {
                match op {
                    Op::Load(on_b, k) => {
                        let cache = if *on_b { &b } else { &a };
                        let fresh = next;
                        let got = cache
                            .get_or_load(&key(*k), Tier::Short, move || async move {
                                Ok::<_, std::convert::Infallible>(fresh)
                            })
                            .await
                            .expect("loaded");
                        let now = hand.now_ms();
                        let slot = &mut model[usize::from(*k)];
                        match *slot {
                            Some((expected, loaded)) if now < loaded + TTL_MS => {
                                prop_assert_eq!(got, expected, "key {} served another value", k)
                            }
                            _ => {
                                prop_assert_eq!(
                                    got,
                                    fresh,
                                    "key {} served an invalidated or expired value",
                                    k
                                );
                                next += 1;
                                *slot = Some((got, now));
                            }
                        }
                    }
                    Op::InvalidateKey(on_b, k) => {
                        let cache = if *on_b { &b } else { &a };
                        cache.invalidate(&key(*k)).await.expect("invalidated");
                        model[usize::from(*k)] = None;
                    }
                    Op::InvalidateTag(on_b, t, g) => {
                        let cache = if *on_b { &b } else { &a };
                        cache
                            .invalidate_tag(&tenant(*t), TAGS[*g])
                            .await
                            .expect("invalidated");
                        for k in (0..KEYS).filter(|k| k % 2 == *t && has_tag(*k, *g)) {
                            model[usize::from(k)] = None;
                        }
                    }
                    Op::InvalidateTenant(on_b, t) => {
                        let cache = if *on_b { &b } else { &a };
                        cache
                            .invalidate_tenant(&tenant(*t))
                            .await
                            .expect("invalidated");
                        for k in (0..KEYS).filter(|k| k % 2 == *t) {
                            model[usize::from(k)] = None;
                        }
                    }
                    Op::Advance(ms) => hand.advance(Duration::from_millis(*ms)),
                }
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
