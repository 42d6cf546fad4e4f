//! Property: for any sequence of gets, loads, invalidations and clock advances, the cache never returns a value
//! older than its TTL (plus the stale window when enabled), never returns a value loaded before an
//! invalidation of its key, its tags or its tenant, and never loads while it holds a value it may serve.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use query_cache::{CacheKey, Clock, ManualClock, QueryCache, Tier};

const TTL_MS: u64 = 60_000;
const STALE_MS: u64 = 20_000;
const KEYS: u8 = 6;
const TAGS: [&str; 2] = ["invoices", "bank"];

#[derive(Debug, Clone)]
enum Op {
    GetOrLoad(u8),
    Get(u8),
    InvalidateKey(u8),
    InvalidateTag(u8, usize),
    InvalidateTenant(u8),
    ClearLocal,
    Advance(u64),
    /// Lets background refreshes run.
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS).prop_map(Op::GetOrLoad),
        2 => (0..KEYS).prop_map(Op::Get),
        1 => (0..KEYS).prop_map(Op::InvalidateKey),
        1 => (0..2u8, 0..TAGS.len()).prop_map(|(t, g)| Op::InvalidateTag(t, g)),
        1 => (0..2u8).prop_map(Op::InvalidateTenant),
        1 => Just(Op::ClearLocal),
        3 => (0..90_000u64).prop_map(Op::Advance),
        1 => Just(Op::Yield),
    ]
}

/// Key `i` belongs to tenant `i % 2` and has tag 0 when `i % 3 != 1`, tag 1 when `i % 2 == 0`.
fn key_of(i: u8) -> CacheKey {
    let tags: Vec<&str> = TAGS
        .iter()
        .enumerate()
        .filter(|(t, _)| {
            if *t == 0 {
                i % 3 != 1
            } else {
                i.is_multiple_of(2)
            }
        })
        .map(|(_, tag)| *tag)
        .collect();
    CacheKey::new(&(i % 2).to_string(), "q", &i)
        .expect("test setup")
        .tagged(tags)
        .expect("test setup")
}

fn has_tag(i: u8, tag: usize) -> bool {
    if tag == 0 {
        i % 3 != 1
    } else {
        i.is_multiple_of(2)
    }
}

/// What the model knows of each version a loader produced.
#[derive(Debug, Clone, Copy)]
struct Version {
    key: u8,
    /// Clock time of the load.
    at: u64,
    /// Sequence number of the load (ordered with invalidations).
    seq: u64,
}

#[derive(Debug, Default)]
struct Model {
    seq: u64,
    versions: Vec<Version>,
    /// (seq, which keys it hit)
    invalidations: Vec<(u64, Vec<u8>)>,
}

impl Model {
    fn invalidated_after(&self, v: &Version) -> bool {
        self.invalidations
            .iter()
            .any(|(seq, keys)| *seq > v.seq && keys.contains(&v.key))
    }
}

fn run(ops: &[Op], stale: bool) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test setup");
    runtime.block_on(async {
        let (clock, hand): (Clock, ManualClock) = Clock::manual();
        let mut builder = QueryCache::<u64>::builder()
            .clock(clock)
            .tier_ttl(Tier::Short, Duration::from_millis(TTL_MS));
        if stale {
            builder = builder.stale_while_revalidate(Duration::from_millis(STALE_MS));
        }
        let cache = builder.build().expect("test setup");
        let model = Arc::new(Mutex::new(Model::default()));
        let window = TTL_MS + if stale { STALE_MS } else { 0 };
        for op in ops {
            match op {
                Op::GetOrLoad(i) | Op::Get(i) => {
                    let i = *i;
                    let returned = if matches!(op, Op::Get(_)) {
                        cache.get(&key_of(i))
                    } else {
                        let model = Arc::clone(&model);
                        let hand = hand.clone();
                        let loader = move || async move {
                            // The clock when the load runs (a background refresh may run well after it was asked).
                            let now = hand.now_ms();
                            let mut m = model.lock().expect("test setup");
                            m.seq += 1;
                            let seq = m.seq;
                            m.versions.push(Version {
                                key: i,
                                at: now,
                                seq,
                            });
                            Ok::<u64, std::convert::Infallible>(
                                u64::try_from(m.versions.len() - 1).expect("test setup"),
                            )
                        };
                        Some(
                            cache
                                .get_or_load(&key_of(i), Tier::Short, loader)
                                .await
                                .expect("test setup"),
                        )
                    };
                    if let Some(v) = returned {
                        let m = model.lock().expect("test setup");
                        let version = m.versions[usize::try_from(v).expect("test setup")];
                        let now = hand.now_ms();
                        prop_assert_eq!(version.key, i, "value of another key");
                        prop_assert!(
                            now < version.at + window,
                            "value loaded at {} served at {}",
                            version.at,
                            now
                        );
                        if matches!(op, Op::Get(_)) {
                            prop_assert!(now < version.at + TTL_MS, "get served a stale value");
                        }
                        prop_assert!(
                            !m.invalidated_after(&version),
                            "value loaded before an invalidation served"
                        );
                    }
                }
                Op::InvalidateKey(i) => {
                    let seq = next(&model);
                    model
                        .lock()
                        .expect("test setup")
                        .invalidations
                        .push((seq, vec![*i]));
                    cache.invalidate(&key_of(*i)).await.expect("test setup");
                }
                Op::InvalidateTag(tenant, tag) => {
                    let keys = (0..KEYS)
                        .filter(|k| k % 2 == *tenant && has_tag(*k, *tag))
                        .collect();
                    let seq = next(&model);
                    model
                        .lock()
                        .expect("test setup")
                        .invalidations
                        .push((seq, keys));
                    cache
                        .invalidate_tag(&tenant.to_string(), TAGS[*tag])
                        .await
                        .expect("test setup");
                }
                Op::InvalidateTenant(tenant) => {
                    let keys = (0..KEYS).filter(|k| k % 2 == *tenant).collect();
                    let seq = next(&model);
                    model
                        .lock()
                        .expect("test setup")
                        .invalidations
                        .push((seq, keys));
                    cache
                        .invalidate_tenant(&tenant.to_string())
                        .await
                        .expect("test setup");
                }
                Op::ClearLocal => {
                    let seq = next(&model);
                    model
                        .lock()
                        .expect("test setup")
                        .invalidations
                        .push((seq, (0..KEYS).collect()));
                    cache.clear_local();
                }
                Op::Advance(ms) => hand.advance(Duration::from_millis(*ms)),
                Op::Yield => {
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
        Ok(())
    })
}

fn next(model: &Arc<Mutex<Model>>) -> u64 {
    let mut m = model.lock().expect("test setup");
    m.seq += 1;
    m.seq
}

/// Without background refreshes in flight (no stale window), a fresh, never-invalidated value is always a hit.
fn run_hits_when_fresh(ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test setup");
    runtime.block_on(async {
        let (clock, hand) = Clock::manual();
        let cache = QueryCache::<u64>::builder()
            .clock(clock)
            .tier_ttl(Tier::Short, Duration::from_millis(TTL_MS))
            .build()
            .expect("test setup");
        // Per key: (time loaded) of the value the model expects to be cached.
        let mut cached: [Option<(u64, u64)>; KEYS as usize] = [None; KEYS as usize];
        let mut loads = 0u64;
        for op in ops {
            let now = hand.now_ms();
            match op {
                Op::GetOrLoad(i) => {
                    let slot = &mut cached[usize::from(*i)];
                    let expect_hit = slot.is_some_and(|(at, _)| now < at + TTL_MS);
                    let next_value = loads;
                    let got = cache
                        .get_or_load(&key_of(*i), Tier::Short, move || async move {
                            Ok::<u64, std::convert::Infallible>(next_value)
                        })
                        .await
                        .expect("test setup");
                    if expect_hit {
                        prop_assert_eq!(
                            Some(got),
                            slot.map(|(_, v)| v),
                            "a fresh value was not served"
                        );
                    } else {
                        prop_assert_eq!(
                            got,
                            next_value,
                            "an expired or invalidated value was served"
                        );
                        loads += 1;
                        *slot = Some((now, got));
                    }
                }
                Op::Get(i) => {
                    let expected = cached[usize::from(*i)]
                        .filter(|(at, _)| now < at + TTL_MS)
                        .map(|(_, v)| v);
                    prop_assert_eq!(cache.get(&key_of(*i)), expected);
                }
                Op::InvalidateKey(i) => {
                    cached[usize::from(*i)] = None;
                    cache.invalidate(&key_of(*i)).await.expect("test setup");
                }
                Op::InvalidateTag(tenant, tag) => {
                    for k in (0..KEYS).filter(|k| k % 2 == *tenant && has_tag(*k, *tag)) {
                        cached[usize::from(k)] = None;
                    }
                    cache
                        .invalidate_tag(&tenant.to_string(), TAGS[*tag])
                        .await
                        .expect("test setup");
                }
                Op::InvalidateTenant(tenant) => {
                    for k in (0..KEYS).filter(|k| k % 2 == *tenant) {
                        cached[usize::from(k)] = None;
                    }
                    cache
                        .invalidate_tenant(&tenant.to_string())
                        .await
                        .expect("test setup");
                }
                Op::ClearLocal => {
                    cached = [None; KEYS as usize];
                    cache.clear_local();
                }
                Op::Advance(ms) => hand.advance(Duration::from_millis(*ms)),
                Op::Yield => tokio::task::yield_now().await,
            }
        }
        Ok(())
    })
}

proptest! {
    #[test]
    fn never_serves_expired_or_invalidated_values(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops, false)?;
    }

    #[test]
    fn never_serves_past_the_stale_window_or_after_invalidation(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops, true)?;
    }

    #[test]
    fn behaves_exactly_like_the_model_without_a_stale_window(ops in prop::collection::vec(op(), 1..80)) {
        run_hits_when_fresh(&ops)?;
    }
}
