//! The in-process cache through its public API: hits, expiry, single flight, stale-while-revalidate, early
//! refresh, invalidation by key, tag and tenant, negative caching, errors, statistics and memory bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use query_cache::{CacheKey, Clock, LoadError, ManualClock, QueryCache, Tier};

fn key(tenant: &str, n: u32) -> CacheKey {
    CacheKey::new(tenant, "totals", &n)
        .expect("valid key")
        .tagged(["invoices"])
        .expect("valid key")
}

fn manual_cache() -> (QueryCache<u64>, ManualClock) {
    let (clock, hand) = Clock::manual();
    (
        QueryCache::builder()
            .clock(clock)
            .build()
            .expect("valid config"),
        hand,
    )
}

/// A loader that counts its calls and returns the call number.
fn counting(
    calls: &Arc<AtomicU64>,
) -> impl FnOnce() -> std::future::Ready<Result<u64, std::convert::Infallible>> + use<> {
    let calls = Arc::clone(calls);
    move || std::future::ready(Ok(calls.fetch_add(1, Ordering::SeqCst) + 1))
}

#[tokio::test]
async fn second_read_is_a_hit_and_does_not_load() {
    let (cache, _) = manual_cache();
    let calls = Arc::new(AtomicU64::new(0));
    let k = key("1", 1);
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        1
    );
    assert_eq!(cache.get(&k), Some(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    let short = stats.tier(Tier::Short).unwrap();
    assert_eq!((short.hits, short.misses, short.loads), (2, 1, 1));
}

#[tokio::test]
async fn value_expires_after_its_tier_ttl() {
    let (cache, hand) = manual_cache();
    let calls = Arc::new(AtomicU64::new(0));
    let k = key("1", 1);
    cache
        .get_or_load(&k, Tier::Short, counting(&calls))
        .await
        .unwrap();
    hand.advance(Duration::from_millis(59_999));
    assert_eq!(cache.get(&k), Some(1));
    hand.advance(Duration::from_millis(1));
    assert_eq!(cache.get(&k), None);
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn configured_tier_and_per_call_ttl_are_honoured() {
    let (clock, hand) = Clock::manual();
    let cache: QueryCache<u64> = QueryCache::builder()
        .clock(clock)
        .tier_ttl(Tier::Long, Duration::from_secs(10))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    cache
        .get_or_load(&key("1", 1), Tier::Long, counting(&calls))
        .await
        .unwrap();
    cache
        .get_or_load(
            &key("1", 2),
            Tier::Ttl(Duration::from_secs(2)),
            counting(&calls),
        )
        .await
        .unwrap();
    hand.advance(Duration::from_secs(2));
    assert!(cache.get(&key("1", 1)).is_some());
    assert!(cache.get(&key("1", 2)).is_none());
    hand.advance(Duration::from_secs(8));
    assert!(cache.get(&key("1", 1)).is_none());
    assert_eq!(
        cache.stats().tier(Tier::Ttl(Duration::ZERO)).unwrap().tier,
        "custom"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_run_the_loader_once() {
    let cache: QueryCache<u64> = QueryCache::builder().build().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = key("1", 7);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let cache = cache.clone();
        let k = k.clone();
        let calls = Arc::clone(&calls);
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load(&k, Tier::Short, move || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::convert::Infallible>(calls.fetch_add(1, Ordering::SeqCst) + 100)
                })
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 100);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_caller_does_not_stall_the_others() {
    let (cache, _) = manual_cache();
    let k = key("1", 1);
    let first = {
        let cache = cache.clone();
        let k = k.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(&k, Tier::Short, || async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok::<_, std::convert::Infallible>(42)
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    first.abort();
    let never = || async { Ok::<u64, std::convert::Infallible>(0) };
    // Joins the load the aborted caller started; it still completes.
    assert_eq!(cache.get_or_load(&k, Tier::Short, never).await.unwrap(), 42);
}

#[tokio::test]
async fn loader_error_reaches_the_caller_and_is_not_cached() {
    let (cache, _) = manual_cache();
    let k = key("1", 1);
    let err = cache
        .get_or_load(&k, Tier::Short, || async {
            Err::<u64, _>(std::io::Error::other("upstream 503"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.loader_error().unwrap().to_string(), "upstream 503");
    let calls = Arc::new(AtomicU64::new(0));
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        1
    );
    assert_eq!(cache.stats().tier(Tier::Short).unwrap().load_errors, 1);
}

#[tokio::test]
async fn panicking_loader_is_reported_and_the_key_stays_loadable() {
    let (cache, _) = manual_cache();
    let k = key("1", 1);
    let err = cache
        .get_or_load(&k, Tier::Short, || async {
            if k_is_poisoned() {
                panic!("loader bug");
            }
            Ok::<u64, std::convert::Infallible>(1)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Aborted));
    let calls = Arc::new(AtomicU64::new(0));
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        1
    );
}

fn k_is_poisoned() -> bool {
    true
}

#[tokio::test]
async fn tag_invalidation_drops_tagged_keys_of_that_tenant_only() {
    let (cache, _) = manual_cache();
    let calls = Arc::new(AtomicU64::new(0));
    let invoices = CacheKey::new("1", "a", &())
        .unwrap()
        .tagged(["invoices"])
        .unwrap();
    let bank = CacheKey::new("1", "b", &())
        .unwrap()
        .tagged(["bank"])
        .unwrap();
    let other_tenant = CacheKey::new("2", "a", &())
        .unwrap()
        .tagged(["invoices"])
        .unwrap();
    for k in [&invoices, &bank, &other_tenant] {
        cache
            .get_or_load(k, Tier::Medium, counting(&calls))
            .await
            .unwrap();
    }
    cache.invalidate_tag("1", "invoices").await.unwrap();
    assert!(cache.get(&invoices).is_none());
    assert!(cache.get(&bank).is_some());
    assert!(cache.get(&other_tenant).is_some());
    cache.invalidate_tenant("2").await.unwrap();
    assert!(cache.get(&other_tenant).is_none());
    assert!(cache.get(&bank).is_some());
    cache.invalidate(&bank).await.unwrap();
    assert!(cache.get(&bank).is_none());
    assert!(cache.invalidate_tag("1", "bad tag").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_load_running_during_an_invalidation_is_not_stored() {
    for by_tag in [false, true] {
        let (cache, _) = manual_cache();
        let k = key("1", 1);
        let slow = {
            let cache = cache.clone();
            let k = k.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load(&k, Tier::Short, || async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok::<_, std::convert::Infallible>(1)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        if by_tag {
            cache.invalidate_tag("1", "invoices").await.unwrap();
        } else {
            cache.invalidate(&k).await.unwrap();
        }
        // The caller who asked before the write still gets an answer...
        assert_eq!(slow.await.unwrap().unwrap(), 1);
        // ...but the value read before the write is not kept.
        assert_eq!(cache.get(&k), None, "by_tag = {by_tag}");
    }
}

#[tokio::test]
async fn stale_value_is_served_while_one_refresh_runs() {
    let (clock, hand) = Clock::manual();
    let cache: QueryCache<u64> = QueryCache::builder()
        .clock(clock)
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = key("1", 1);
    cache
        .get_or_load(&k, Tier::Short, counting(&calls))
        .await
        .unwrap();
    hand.advance(Duration::from_secs(61));
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        1,
        "stale value at once"
    );
    // Let the background refresh run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cache.get(&k), Some(2));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let stats = cache.stats();
    assert_eq!(stats.stale_served(), 1);
    assert_eq!(stats.tier(Tier::Short).unwrap().refreshes, 1);
    // Past the stale window: a plain miss.
    hand.advance(Duration::from_secs(91));
    assert_eq!(
        cache
            .get_or_load(&k, Tier::Short, counting(&calls))
            .await
            .unwrap(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn early_refresh_reloads_a_hot_value_before_it_expires() {
    let (clock, hand) = Clock::manual();
    let cache: QueryCache<u64> = QueryCache::builder()
        .clock(clock)
        .early_refresh(true)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = key("1", 1);
    let slow = |calls: &Arc<AtomicU64>| {
        let calls = Arc::clone(calls);
        move || async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::convert::Infallible>(calls.fetch_add(1, Ordering::SeqCst) + 1)
        }
    };
    cache
        .get_or_load(&k, Tier::Short, slow(&calls))
        .await
        .unwrap();
    // Far from expiry (60 s left, 1 s loads): refreshed early with probability e^-60 per hit.
    for _ in 0..100 {
        cache
            .get_or_load(&k, Tier::Short, slow(&calls))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // One millisecond before expiry with a 1 s load: refreshed (each hit skips it with probability 1e-3).
    hand.advance(Duration::from_millis(59_999));
    for _ in 0..5 {
        assert_eq!(
            cache
                .get_or_load(&k, Tier::Short, slow(&calls))
                .await
                .unwrap(),
            1
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.get(&k), Some(2));
}

#[tokio::test]
async fn absences_are_cached_only_with_a_negative_ttl() {
    let (clock, hand) = Clock::manual();
    let cache: QueryCache<u64> = QueryCache::builder()
        .clock(clock)
        .negative_ttl(Duration::from_secs(5))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = key("1", 1);
    let absent = |calls: &Arc<AtomicU64>| {
        let calls = Arc::clone(calls);
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<u64>, std::convert::Infallible>(None)
        }
    };
    assert_eq!(
        cache
            .get_or_load_optional(&k, Tier::Short, absent(&calls))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        cache
            .get_or_load_optional(&k, Tier::Short, absent(&calls))
            .await
            .unwrap(),
        None
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().tier(Tier::Short).unwrap().negative_hits, 1);
    hand.advance(Duration::from_secs(5));
    cache
        .get_or_load_optional(&k, Tier::Short, absent(&calls))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (cache, _) = manual_cache();
    cache
        .get_or_load_optional(&k, Tier::Short, absent(&calls))
        .await
        .unwrap();
    cache
        .get_or_load_optional(&k, Tier::Short, absent(&calls))
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "without a negative TTL absences are not cached"
    );
}

#[tokio::test]
async fn a_flood_of_keys_stays_within_the_weight_bound() {
    let cache: QueryCache<Vec<u8>> = QueryCache::builder()
        .max_weight(64 * 1024)
        .estimated_entries(256)
        .weigher(|v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    for n in 0..20_000u32 {
        cache
            .insert(&key("flood", n), Tier::Long, vec![0u8; 256])
            .await;
    }
    let stats = cache.stats();
    assert!(
        stats.weight <= 64 * 1024,
        "weight {} over the bound",
        stats.weight
    );
    assert!(stats.entries <= 256, "{} entries", stats.entries);
    assert!(stats.tier(Tier::Long).unwrap().evictions > 19_000);
}

#[tokio::test]
async fn clear_local_and_matching_invalidation_drop_entries() {
    let (cache, _) = manual_cache();
    for n in 0..10 {
        cache.insert(&key("1", n), Tier::Short, u64::from(n)).await;
    }
    cache.invalidate_local_matching(|k| k.as_str().ends_with("05"));
    assert!(cache.get(&key("1", 5)).is_none());
    assert!(cache.get(&key("1", 4)).is_some());
    cache.clear_local();
    assert!((0..10).all(|n| cache.get(&key("1", n)).is_none()));
}

#[test]
fn public_types_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<QueryCache<Vec<u8>>>();
    check::<CacheKey>();
    check::<Clock>();
    check::<LoadError<std::io::Error>>();
    check::<query_cache::StatsSnapshot>();
}

#[test]
fn zero_ttl_or_capacity_is_refused_when_built() {
    assert!(
        QueryCache::<u64>::builder()
            .tier_ttl(Tier::Short, Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(QueryCache::<u64>::builder().max_weight(0).build().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_arriving_as_a_fast_load_finishes_do_not_load_again() {
    let cache: QueryCache<u64> = QueryCache::builder().build().unwrap();
    for round in 0..50u32 {
        let k = key("1", round);
        let calls = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (cache, k, calls) = (cache.clone(), k.clone(), Arc::clone(&calls));
                tokio::spawn(async move {
                    cache
                        .get_or_load(&k, Tier::Short, move || async move {
                            tokio::task::yield_now().await;
                            Ok::<_, std::convert::Infallible>(calls.fetch_add(1, Ordering::SeqCst))
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 0);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "round {round}");
    }
}

#[tokio::test]
async fn invalidations_are_counted_in_the_tier_of_the_entry_they_removed() {
    let (cache, _) = manual_cache();
    let invalidations = |tier: Tier| cache.stats().tier(tier).unwrap().invalidations;
    let short = key("1", 1);
    let long = key("1", 2);
    let medium = key("2", 3);
    cache.insert(&short, Tier::Short, 1).await;
    cache.insert(&long, Tier::Long, 2).await;
    cache.insert(&medium, Tier::Medium, 3).await;

    // By key: at once, in the tier the entry was stored with; a key with no entry removes nothing.
    cache.invalidate(&long).await.unwrap();
    assert_eq!(invalidations(Tier::Long), 1);
    cache.invalidate(&long).await.unwrap();
    assert_eq!(invalidations(Tier::Long), 1);
    assert_eq!(cache.stats().invalidated_keys, 2);

    // By tag: nothing is scanned, so the entry counts when a lookup finds it obsolete, once.
    cache.invalidate_tag("1", "invoices").await.unwrap();
    assert_eq!(invalidations(Tier::Short), 0);
    assert_eq!(cache.get(&short), None);
    assert_eq!(invalidations(Tier::Short), 1);
    assert_eq!(cache.get(&short), None);
    assert_eq!(invalidations(Tier::Short), 1);
    assert_eq!(cache.stats().invalidated_tags, 1);

    // By pattern: every removed entry, in its tier.
    cache.invalidate_local_matching(|k| k.tenant() == "2");
    assert_eq!(invalidations(Tier::Medium), 1);

    // A flush is counted as one, not per tier.
    cache.insert(&short, Tier::Short, 4).await;
    cache.clear_local();
    assert_eq!(cache.get(&short), None);
    let stats = cache.stats();
    assert_eq!(stats.invalidated_all, 1);
    assert_eq!(stats.invalidations(), 3);
    assert_eq!(stats.tier(Tier::VeryLong).unwrap().invalidations, 0);
}
