//! Query cache: the cost of a hit next to moka and quick_cache (one thread and two), a stampede of 1 000
//! concurrent misses on one key, and the Redis store's get/set next to raw `GET`/`SET` through the same client.
//!
//! Run: `cargo bench -p benches --bench querycache`
//!
//! Hits follow shared/notes/peer-benchmarks.md section 4: 10 000 `String` keys (our `CacheKey`s are built from
//! the same strings) mapping to `Arc<Vec<u8>>` of 256 B, all hits, read round robin; moka::sync::Cache and
//! quick_cache::sync::Cache with capacity 100 000; synchronous `get` in `b.iter` for all three.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use query_cache::{CacheKey, QueryCache, RedisStore, Tier};

const KEYS: usize = 10_000;
type Value = Arc<Vec<u8>>;

struct Data {
    strings: Vec<String>,
    ours_keys: Vec<CacheKey>,
    ours: QueryCache<Value>,
    moka: moka::sync::Cache<String, Value>,
    quick: quick_cache::sync::Cache<String, Value>,
}

fn data() -> Data {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let strings: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    let ours_keys: Vec<CacheKey> = strings
        .iter()
        .map(|s| CacheKey::new("bench", "q", s.as_str()).expect("valid key"))
        .collect();
    let ours: QueryCache<Value> = QueryCache::builder()
        .max_weight(100_000)
        .build()
        .expect("config");
    let moka = moka::sync::Cache::new(100_000);
    let quick = quick_cache::sync::Cache::new(100_000);
    for (s, k) in strings.iter().zip(&ours_keys) {
        let v: Value = Arc::new(vec![7u8; 256]);
        rt.block_on(ours.insert(k, Tier::Long, Arc::clone(&v)));
        moka.insert(s.clone(), Arc::clone(&v));
        quick.insert(s.clone(), v);
    }
    // Every key must hit in all three.
    assert!(ours_keys.iter().all(|k| ours.get(k).is_some()));
    assert!(
        strings
            .iter()
            .all(|s| moka.get(s).is_some() && quick.get(s).is_some())
    );
    Data {
        strings,
        ours_keys,
        ours,
        moka,
        quick,
    }
}

fn hit(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("querycache/hit");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let mut i = 0usize;
    g.bench_function("ours", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(d.ours.get(&d.ours_keys[i]))
        });
    });
    g.bench_function("moka", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(d.moka.get(&d.strings[i]))
        });
    });
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(d.quick.get(&d.strings[i]))
        });
    });
    g.finish();

    // Two threads: one iteration is one get on each thread (time per iteration = wall time / iters), so the
    // ratio of these figures is the ratio of total throughputs.
    let mut g = c.benchmark_group("querycache/hit_2threads");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.bench_function("ours", |b| {
        b.iter_custom(|iters| two_threads(iters, |i| d.ours.get(&d.ours_keys[i]).is_some()))
    });
    g.bench_function("moka", |b| {
        b.iter_custom(|iters| two_threads(iters, |i| d.moka.get(&d.strings[i]).is_some()))
    });
    g.bench_function("quick_cache", |b| {
        b.iter_custom(|iters| two_threads(iters, |i| d.quick.get(&d.strings[i]).is_some()));
    });
    g.finish();
}

fn two_threads(iters: u64, get: impl Fn(usize) -> bool + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(2);
    let start = std::thread::scope(|s| {
        let worker = |offset: usize| {
            let get = &get;
            let barrier = &barrier;
            move || {
                barrier.wait();
                let mut i = offset;
                for _ in 0..iters {
                    i = (i + 1) % KEYS;
                    black_box(get(i));
                }
            }
        };
        let start = Instant::now();
        s.spawn(worker(0));
        s.spawn(worker(KEYS / 2));
        start
    });
    start.elapsed()
}

fn stampede(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("querycache/stampede");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    let ours: QueryCache<Value> = QueryCache::builder().build().expect("config");
    let moka: moka::future::Cache<String, Value> = moka::future::Cache::new(100_000);
    let round = AtomicU64::new(0);
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let ours = ours.clone();
            let round = round.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut total = Duration::ZERO;
                for it in 0..iters {
                    let key = CacheKey::new("bench", "stampede", &(round, it)).expect("key");
                    let loads = Arc::new(AtomicU64::new(0));
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..1000)
                        .map(|_| {
                            let (ours, key, loads) =
                                (ours.clone(), key.clone(), Arc::clone(&loads));
                            tokio::spawn(async move {
                                ours.get_or_load(&key, Tier::Short, move || async move {
                                    loads.fetch_add(1, Ordering::SeqCst);
                                    tokio::task::yield_now().await;
                                    Ok::<_, std::convert::Infallible>(Arc::new(vec![1u8; 256]))
                                })
                                .await
                                .expect("loaded")
                            })
                        })
                        .collect();
                    for t in tasks {
                        black_box(t.await.expect("task"));
                    }
                    total += start.elapsed();
                    assert_eq!(
                        loads.load(Ordering::SeqCst),
                        1,
                        "the loader ran more than once"
                    );
                }
                total
            }
        });
    });
    g.bench_function("moka", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let moka = moka.clone();
            let round = round.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut total = Duration::ZERO;
                for it in 0..iters {
                    let key = format!("stampede-{round}-{it}");
                    let loads = Arc::new(AtomicU64::new(0));
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..1000)
                        .map(|_| {
                            let (moka, key, loads) =
                                (moka.clone(), key.clone(), Arc::clone(&loads));
                            tokio::spawn(async move {
                                moka.get_with(key, async move {
                                    loads.fetch_add(1, Ordering::SeqCst);
                                    tokio::task::yield_now().await;
                                    Arc::new(vec![1u8; 256])
                                })
                                .await
                            })
                        })
                        .collect();
                    for t in tasks {
                        black_box(t.await.expect("task"));
                    }
                    total += start.elapsed();
                    assert_eq!(
                        loads.load(Ordering::SeqCst),
                        1,
                        "the loader ran more than once"
                    );
                }
                total
            }
        });
    });
    g.finish();
}

const CALLERS: u64 = 32;

/// Runs `iters` operations spread over 32 tasks; returns the wall time.
async fn callers<F, Fut>(iters: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let per = iters.div_ceil(CALLERS);
    let tasks: Vec<_> = (0..CALLERS)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for n in 0..per {
                    op((t + n * CALLERS) % KEYS as u64).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

fn redis_store(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = redis::Client::open(url.as_str()).expect("url");
    let Ok(conn) = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(2),
            redis::aio::ConnectionManager::new(client),
        )
        .await
    }) else {
        eprintln!("skipped querycache/redis_*: Redis is not answering at {url}");
        return;
    };
    let Ok(conn) = conn else {
        eprintln!("skipped querycache/redis_*: Redis is not answering at {url}");
        return;
    };
    let store = {
        let _runtime = rt.enter();
        RedisStore::builder(url.as_str())
            .prefix("bench:")
            .build()
            .expect("store")
    };
    let ours: QueryCache<Vec<u8>> = QueryCache::builder()
        .redis_only(&store)
        .build()
        .expect("config");
    let keys: Arc<Vec<CacheKey>> = Arc::new(
        (0..KEYS)
            .map(|i| CacheKey::new("bench", "redis", &i).expect("key"))
            .collect(),
    );
    let raw_keys: Arc<Vec<String>> = Arc::new(
        (0..KEYS)
            .map(|i| format!("bench:raw:{{bench}}:{i}"))
            .collect(),
    );
    let payload = Arc::new(vec![7u8; 256]);
    // Redis values go through serde: plain `Vec<u8>` (postcard) rather than the `Arc` of the in-process groups.
    rt.block_on(async {
        for (k, raw) in keys.iter().zip(raw_keys.iter()) {
            ours.insert(k, Tier::Short, payload.to_vec()).await;
            let mut conn = conn.clone();
            let _: () = redis::cmd("SET")
                .arg(raw)
                .arg(payload.as_slice())
                .arg("PX")
                .arg(60_000)
                .query_async(&mut conn)
                .await
                .expect("SET");
        }
    });

    let mut g = c.benchmark_group("querycache/redis_get");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (ours, keys) = (ours.clone(), Arc::clone(&keys));
            callers(iters, move |i| {
                let (ours, keys) = (ours.clone(), Arc::clone(&keys));
                async move {
                    let key = &keys[usize::try_from(i).unwrap_or(0)];
                    let v = ours
                        .get_or_load(key, Tier::Short, || async {
                            Ok::<_, std::convert::Infallible>(Vec::new())
                        })
                        .await
                        .expect("value");
                    black_box(v);
                }
            })
        });
    });
    g.bench_function("redis", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (conn, raw_keys) = (conn.clone(), Arc::clone(&raw_keys));
            callers(iters, move |i| {
                let (mut conn, raw_keys) = (conn.clone(), Arc::clone(&raw_keys));
                async move {
                    let key = &raw_keys[usize::try_from(i).unwrap_or(0)];
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    black_box(v);
                }
            })
        });
    });
    g.finish();

    let mut g = c.benchmark_group("querycache/redis_set");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (ours, keys, payload) = (ours.clone(), Arc::clone(&keys), Arc::clone(&payload));
            callers(iters, move |i| {
                let (ours, keys, payload) = (ours.clone(), Arc::clone(&keys), Arc::clone(&payload));
                async move {
                    ours.insert(
                        &keys[usize::try_from(i).unwrap_or(0)],
                        Tier::Short,
                        payload.to_vec(),
                    )
                    .await;
                }
            })
        });
    });
    g.bench_function("redis", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (conn, raw_keys, payload) =
                (conn.clone(), Arc::clone(&raw_keys), Arc::clone(&payload));
            callers(iters, move |i| {
                let (mut conn, raw_keys, payload) =
                    (conn.clone(), Arc::clone(&raw_keys), Arc::clone(&payload));
                async move {
                    let key = &raw_keys[usize::try_from(i).unwrap_or(0)];
                    let _: () = redis::cmd("SET")
                        .arg(key)
                        .arg(payload.as_slice())
                        .arg("PX")
                        .arg(60_000)
                        .query_async(&mut conn)
                        .await
                        .expect("SET");
                }
            })
        });
    });
    g.finish();
}

criterion_group!(benches, hit, stampede, redis_store);
criterion_main!(benches);
