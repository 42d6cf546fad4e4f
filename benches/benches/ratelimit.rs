//! tower-ratelimit next to governor (in memory) and next to a plain GCRA script via EVALSHA (Redis).
//!
//! `cargo bench -p benches --bench ratelimit`. The Redis groups need Redis at `REDIS_URL` (default
//! 127.0.0.1:6379) and are skipped with a note when it does not answer. Memory per key is counted with a
//! counting allocator and printed after the groups.
#![allow(unsafe_code)] // the counting allocator below
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tower_ratelimit::{
    Check, FailurePolicy, Key, Limit, Quota, RateLimiter, RedisConfig, RedisStore,
};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the same layout; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEYS: u64 = 10_000;

fn governor_keyed() -> governor::DefaultKeyedRateLimiter<u64> {
    governor::RateLimiter::keyed(governor::Quota::per_second(
        NonZeroU32::new(1_000_000).unwrap(),
    ))
}

fn ours_minute() -> Limit {
    Limit::new("per_second", Quota::per_second(1_000_000).unwrap()).unwrap()
}

/// Two limits on one key, a minute and an hour, roomy enough never to refuse during a run.
fn minute_and_hour() -> (Limit, Limit) {
    (
        Limit::new("minute", Quota::per_minute(60_000_000).unwrap()).unwrap(),
        Limit::new("hour", Quota::per_hour(3_600_000_000).unwrap()).unwrap(),
    )
}

/// The hot-key limit: as governor's direct limiter (1 ns period, burst 1 000 000) every check must be
/// allowed; ours has a 1 us resolution, so the same effect takes a burst large enough for the whole run.
fn hot_limit() -> Limit {
    Limit::new(
        "hot",
        Quota::per_second(1_000_000)
            .unwrap()
            .with_burst(1 << 40)
            .unwrap(),
    )
    .unwrap()
}

/// governor's direct (unkeyed) limiter that never refuses during a run.
fn governor_direct() -> governor::DefaultDirectRateLimiter {
    governor::RateLimiter::direct(
        governor::Quota::with_period(Duration::from_nanos(1))
            .unwrap()
            .allow_burst(NonZeroU32::new(1_000_000).unwrap()),
    )
}

/// Ours on std `Instant` (`MonotonicClock`), the default clock before `TscClock`.
fn std_clock_limiter() -> RateLimiter {
    RateLimiter::builder()
        .clock(tower_ratelimit::MonotonicClock::new())
        .build()
}

/// Runs `check` over the keys in turn (1, 2, ... KEYS - 1, 0, 1, ...), one per iteration.
fn over_keys<R>(b: &mut criterion::Bencher<'_>, mut check: impl FnMut(u64) -> R) {
    let mut k = 0u64;
    b.iter(|| {
        k = (k + 1) % KEYS;
        black_box(check(k))
    });
}

fn keyed_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/keyed_check");
    common::settings(&mut group);
    let ours = RateLimiter::in_memory();
    let limit = ours_minute();
    group.bench_function("ours", |b| {
        over_keys(b, |k| ours.check_now(Key::Id(k), &limit, 1).is_allowed())
    });
    let governor = governor_keyed();
    group.bench_function("governor", |b| {
        over_keys(b, |k| governor.check_key(&k).is_ok())
    });
    group.finish();

    // The same with ours on an opt-in coarse clock (one atomic load instead of reading `Instant`), to show
    // what the clock costs: governor reads the TSC through quanta.
    let mut group = c.benchmark_group("ratelimit/keyed_check_coarse_clock");
    common::settings(&mut group);
    let coarse = RateLimiter::builder()
        .clock(tower_ratelimit::CoarseClock::new(Duration::from_millis(1)).unwrap())
        .build();
    group.bench_function("ours", |b| {
        over_keys(b, |k| coarse.check_now(Key::Id(k), &limit, 1).is_allowed())
    });
    group.bench_function("governor", |b| {
        over_keys(b, |k| governor.check_key(&k).is_ok())
    });
    group.finish();

    // Both on the same kind of clock, std `Instant`: ours with `MonotonicClock` (the default before the TSC
    // clock), governor with its `MonotonicClock` instead of quanta.
    let mut group = c.benchmark_group("ratelimit/keyed_check_std_clock");
    common::settings(&mut group);
    let ours_std = std_clock_limiter();
    group.bench_function("ours", |b| {
        over_keys(b, |k| {
            ours_std.check_now(Key::Id(k), &limit, 1).is_allowed()
        })
    });
    let governor_std = governor::RateLimiter::dashmap_with_clock(
        governor::Quota::per_second(NonZeroU32::new(1_000_000).unwrap()),
        governor::clock::MonotonicClock,
    );
    group.bench_function("governor", |b| {
        over_keys(b, |k| governor_std.check_key(&k).is_ok())
    });
    group.finish();

    // Two limits per request (minute and hour, all-or-none) for ours, one for governor.
    let mut group = c.benchmark_group("ratelimit/keyed_check_two_limits");
    common::settings(&mut group);
    let (minute, hour) = minute_and_hour();
    // Both limits of one key, charged together or not at all.
    let both = |limiter: &RateLimiter, k: u64| {
        let checks = [
            Check::charge(&minute, Key::Id(k)),
            Check::charge(&hour, Key::Id(k)),
        ];
        limiter
            .decide(&checks, 1)
            .into_ready()
            .is_ok_and(|d| d.is_allowed())
    };
    group.bench_function("ours", |b| over_keys(b, |k| both(&ours, k)));
    group.bench_function("ours_std_clock", |b| over_keys(b, |k| both(&ours_std, k)));
    group.bench_function("governor", |b| {
        over_keys(b, |k| governor.check_key(&k).is_ok())
    });
    group.finish();

    // One hot key: ours keyed with one key vs governor's direct (unkeyed) limiter.
    let mut group = c.benchmark_group("ratelimit/hot_key");
    common::settings(&mut group);
    let hot = hot_limit();
    group.bench_function("ours", |b| {
        b.iter(|| {
            let d = ours.check_now(Key::Id(7), &hot, 1);
            debug_assert!(d.is_allowed());
            black_box(d.is_allowed())
        });
    });
    let direct = governor_direct();
    group.bench_function("governor", |b| b.iter(|| black_box(direct.check().is_ok())));
    group.finish();
}

/// Two threads deciding over the same 10 000 keys, starting at different offsets: time per decision of the pair.
fn two_threads(c: &mut Criterion) {
    two_threads_with(
        c,
        "ratelimit/keyed_check_two_threads",
        &RateLimiter::in_memory(),
    );
    two_threads_with(
        c,
        "ratelimit/keyed_check_two_threads_std_clock",
        &std_clock_limiter(),
    );
    let coarse = RateLimiter::builder()
        .clock(tower_ratelimit::CoarseClock::new(Duration::from_millis(1)).unwrap())
        .build();
    two_threads_with(c, "ratelimit/keyed_check_two_threads_coarse_clock", &coarse);
}

fn two_threads_with(c: &mut Criterion, name: &str, ours: &RateLimiter) {
    let mut group = c.benchmark_group(name);
    common::settings(&mut group);
    let limit = ours_minute();
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let limit = &limit;
                    s.spawn(move || {
                        let mut k = t * KEYS / 2;
                        for _ in 0..iters.div_ceil(2) {
                            k = (k + 1) % KEYS;
                            black_box(ours.check_now(Key::Id(k), limit, 1).is_allowed());
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    let governor = governor_keyed();
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let governor = &governor;
                    s.spawn(move || {
                        let mut k = t * KEYS / 2;
                        for _ in 0..iters.div_ceil(2) {
                            k = (k + 1) % KEYS;
                            black_box(governor.check_key(&k).is_ok());
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    group.finish();
}

/// The plain GCRA script of notes/peer-benchmarks.md: TIME, GET, SET, PEXPIRE, one key per call.
const PLAIN_GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local allow_at = new_tat - tonumber(ARGV[2])
if allow_at > now then return {0, allow_at - now} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

const CALLERS: u64 = 32;

async fn run_callers<F, Fut>(iters: u64, call: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CALLERS {
        let call = call.clone();
        let n = iters / CALLERS + u64::from(t < iters % CALLERS);
        tasks.push(tokio::spawn(async move {
            let mut k = t;
            for _ in 0..n {
                call(k % KEYS).await;
                k += CALLERS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn redis_decisions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let Ok(client) = redis::Client::open(url.as_str()) else {
        return;
    };
    let conn = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        .ok()?
        .ok()
    });
    let Some(conn) = conn else {
        println!("ratelimit/redis_32_callers: skipped, Redis does not answer at {url}");
        return;
    };
    let mut group = c.benchmark_group("ratelimit/redis_32_callers");
    common::settings(&mut group);
    let limit = Limit::new("gcra", Quota::per_second(1000).unwrap()).unwrap();
    for (id, max_batch) in [("ours", 64), ("ours_unbatched", 1)] {
        let limiter = rt.block_on(async {
            let store = RedisStore::new(
                &url,
                RedisConfig::default()
                    .prefix("bench:ours:")
                    .max_batch(max_batch),
            )
            .unwrap();
            RateLimiter::builder()
                .redis(store, FailurePolicy::FailClosed)
                .build()
        });
        let limit = limit.clone();
        group.bench_function(id, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (limiter, limit) = (limiter.clone(), limit.clone());
                run_callers(iters, move |k| {
                    let (limiter, limit) = (limiter.clone(), limit.clone());
                    async move {
                        let d = limiter.check(Key::Id(k), &limit, 1).await;
                        assert!(d.is_allowed(), "{:?}", d.source());
                    }
                })
            });
        });
    }
    let script = Arc::new(redis::Script::new(PLAIN_GCRA));
    group.bench_function("plain_evalsha", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (script, conn) = (Arc::clone(&script), conn.clone());
            run_callers(iters, move |k| {
                let (script, mut conn) = (Arc::clone(&script), conn.clone());
                async move {
                    let key = format!("bench:plain:gcra:{{{k}}}");
                    let reply: Vec<i64> = script
                        .key(key)
                        .arg(1000)
                        .arg(1_000_000)
                        .invoke_async(&mut conn)
                        .await
                        .unwrap();
                    assert_eq!(reply[0], 1);
                }
            })
        });
    });
    group.bench_function("ping", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let conn = conn.clone();
            run_callers(iters, move |_| {
                let mut conn = conn.clone();
                async move {
                    let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
                }
            })
        });
    });
    group.finish();
}

/// Ours and governor in alternating short rounds, best round of each: on a shared machine a load spike hits
/// both sides alike and the best rounds are the undisturbed ones, so the ratio is steadier than criterion's means
/// taken seconds apart. Printed after the groups.
fn interleaved(_c: &mut Criterion) {
    const ROUNDS: usize = 40;
    const OPS: u64 = 200_000;
    fn best(rounds: &mut [f64], i: usize, start: Instant, ops: u64) {
        let ns = start.elapsed().as_nanos() as f64 / ops as f64;
        rounds[i] = rounds[i].min(ns);
    }
    let ours = RateLimiter::in_memory();
    let limit = ours_minute();
    let (minute, hour) = minute_and_hour();
    let hot = hot_limit();
    let governor = governor_keyed();
    let direct = governor_direct();
    // ours one limit, ours two limits, governor keyed, ours hot key, governor direct, two threads ours, governor.
    let mut t = [f64::MAX; 7];
    // Two threads by thread CPU time (the larger of the two, ns per decision of one thread): ours, governor.
    let mut cpu_best = [f64::MAX; 2];
    fn on_two_threads(decide: impl Fn(u64) + Sync) -> f64 {
        let barrier = std::sync::Barrier::new(2);
        let cpu = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u64)
                .map(|th| {
                    let (decide, barrier) = (&decide, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        let start = thread_cpu_time();
                        let mut k = th * KEYS / 2;
                        for _ in 0..OPS / 2 {
                            k = (k + 1) % KEYS;
                            decide(k);
                        }
                        thread_cpu_time().saturating_sub(start)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .max()
                .unwrap_or_default()
        });
        cpu.as_nanos() as f64 / (OPS / 2) as f64
    }
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..OPS {
            black_box(ours.check_now(Key::Id(i % KEYS), &limit, 1).is_allowed());
        }
        best(&mut t, 0, start, OPS);
        let start = Instant::now();
        for i in 0..OPS {
            let k = i % KEYS;
            let checks = [
                Check::charge(&minute, Key::Id(k)),
                Check::charge(&hour, Key::Id(k)),
            ];
            black_box(
                ours.decide(&checks, 1)
                    .into_ready()
                    .is_ok_and(|d| d.is_allowed()),
            );
        }
        best(&mut t, 1, start, OPS);
        let start = Instant::now();
        for i in 0..OPS {
            black_box(governor.check_key(&(i % KEYS)).is_ok());
        }
        best(&mut t, 2, start, OPS);
        let start = Instant::now();
        for _ in 0..OPS {
            black_box(ours.check_now(Key::Id(7), &hot, 1).is_allowed());
        }
        best(&mut t, 3, start, OPS);
        let start = Instant::now();
        for _ in 0..OPS {
            black_box(direct.check().is_ok());
        }
        best(&mut t, 4, start, OPS);
        let start = Instant::now();
        let cpu = on_two_threads(|k| {
            black_box(ours.check_now(Key::Id(k), &limit, 1).is_allowed());
        });
        best(&mut t, 5, start, OPS);
        cpu_best[0] = cpu_best[0].min(cpu);
        let start = Instant::now();
        let cpu = on_two_threads(|k| {
            black_box(governor.check_key(&k).is_ok());
        });
        best(&mut t, 6, start, OPS);
        cpu_best[1] = cpu_best[1].min(cpu);
    }
    println!(
        "ratelimit/interleaved (best of {ROUNDS} alternating rounds of {OPS} decisions, ns per decision):"
    );
    println!(
        "  keyed_check: ours {:.1}, governor {:.1}: ours/governor {:.2}",
        t[0],
        t[2],
        t[0] / t[2]
    );
    println!(
        "  keyed_check_two_limits: ours {:.1}, governor (one limit) {:.1}: ours/governor {:.2}",
        t[1],
        t[2],
        t[1] / t[2]
    );
    println!(
        "  hot_key: ours {:.1}, governor direct {:.1}: ours/governor {:.2}",
        t[3],
        t[4],
        t[3] / t[4]
    );
    println!(
        "  keyed_check_two_threads (both threads): ours {:.1} = {:.1} M/s, governor {:.1} = {:.1} M/s: \
         throughput ours/governor {:.2}",
        t[5],
        1e3 / t[5],
        t[6],
        1e3 / t[6],
        t[6] / t[5]
    );
    println!(
        "  keyed_check_two_threads by thread CPU time (one thread's decision, both running): ours {:.1}, \
         governor {:.1}: with a core each ours {:.1} M/s, governor {:.1} M/s, throughput ours/governor {:.2}",
        cpu_best[0],
        cpu_best[1],
        2e3 / cpu_best[0],
        2e3 / cpu_best[1],
        cpu_best[1] / cpu_best[0]
    );
}

/// This thread's CPU time.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Bytes per idle key at 1 000 000 keys, counted by the allocator.
fn memory_per_key(_c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let limit = Limit::new("hour", Quota::per_hour(1000).unwrap()).unwrap();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let ours = RateLimiter::builder()
        .memory(tower_ratelimit::MemoryConfig::default().max_keys(2_000_000))
        .build();
    for k in 0..N {
        let _ = ours.check_now(Key::Id(k), &limit, 1);
    }
    let ours_bytes = ALLOCATED.load(Ordering::Relaxed) - before;
    assert_eq!(ours.memory().len(), 1_000_000);
    drop(ours);
    let before = ALLOCATED.load(Ordering::Relaxed);
    let governor =
        governor::RateLimiter::keyed(governor::Quota::per_hour(NonZeroU32::new(1000).unwrap()));
    for k in 0..N {
        let _ = governor.check_key(&k);
    }
    let governor_bytes = ALLOCATED.load(Ordering::Relaxed) - before;
    println!(
        "ratelimit/memory_per_idle_key at 1M keys: ours {:.1} B, governor {:.1} B",
        ours_bytes as f64 / N as f64,
        governor_bytes as f64 / N as f64
    );
    drop(governor);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = keyed_check, two_threads, redis_decisions, memory_per_key, interleaved
}
criterion_main!(benches);
