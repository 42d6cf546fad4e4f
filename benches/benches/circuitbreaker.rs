//! Circuit breakers: the cost of one call in the closed state next to failsafe and tower-resilience, the
//! scaling from one thread to two on one breaker, and the cost of a call refused while open.
//!
//! Run: `cargo bench -p benches --bench circuitbreaker`
//!
//! Every function runs the same harness as shared/notes/peer-benchmarks.md section 2: a tokio current-thread
//! runtime, `to_async(&rt).iter_custom`, the trivial `async fn(u64) -> Result<u64, Infallible>` as the
//! upstream, each call `svc.ready().await?.call(i).await?` (or the breaker's own call).

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_circuitbreaker::{Breaker, BreakerConfig, CircuitBreakerLayer};

async fn trivial(i: u64) -> Result<u64, Infallible> {
    Ok(i)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn ours_layer(config: BreakerConfig) -> CircuitBreakerLayer {
    CircuitBreakerLayer::new(Breaker::new("bench", config).expect("valid config"))
}

fn closed_overhead(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("circuitbreaker/closed_overhead");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);

    let ours = ours_layer(BreakerConfig::default()).layer(service_fn(trivial));
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = ours.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let v = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(i)
                        .await
                        .expect("closed");
                    black_box(v);
                }
                start.elapsed()
            }
        });
    });

    let failsafe_cb = failsafe::Config::new().build();
    g.bench_function("failsafe", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let cb = failsafe_cb.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let v = failsafe::futures::CircuitBreaker::call(&cb, trivial(i))
                        .await
                        .expect("closed");
                    black_box(v);
                }
                start.elapsed()
            }
        });
    });

    let resilience = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .expect("valid config")
        .layer(service_fn(trivial));
    g.bench_function("tower-resilience", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = resilience.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let v = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(i)
                        .await
                        .expect("closed");
                    black_box(v);
                }
                start.elapsed()
            }
        });
    });
    g.finish();

    // The bare service, for the overhead of each breaker above.
    let mut g = c.benchmark_group("circuitbreaker/closed_overhead_baseline");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let bare = service_fn(trivial);
    g.bench_function("service_fn", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = bare;
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let v = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(i)
                        .await
                        .expect("infallible");
                    black_box(v);
                }
                start.elapsed()
            }
        });
    });
    g.finish();
}

/// Runs `iters` calls of `svc` on each of `threads` threads at once (each with its own clone and its own
/// current-thread runtime, built before the clock starts) and returns the wall time from the first thread's
/// start to the last thread's end.
///
/// One common window, not the longest thread's own time: on a busy machine a thread may only get a core
/// after the other has finished, and then each thread's own time is the one-thread time although nothing
/// ran in parallel, which would show perfect scaling where there was none. The harness shares nothing
/// between the threads but the barrier (passed before any clock is read) and the service under test.
fn on_threads<S>(svc: &S, threads: u64, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    let barrier = std::sync::Barrier::new(usize::try_from(threads).expect("small"));
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let rt = runtime();
                    barrier.wait();
                    rt.block_on(async move {
                        let start = Instant::now();
                        for i in 0..iters {
                            let v = svc
                                .ready()
                                .await
                                .expect("ready")
                                .call(i)
                                .await
                                .expect("closed");
                            black_box(v);
                        }
                        (start, Instant::now())
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    }
}

/// This thread's CPU time.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// As [`on_threads`], but returns the largest CPU time a thread spent, not wall time: on a machine shared
/// with other work this still shows whether the two threads slow each other down (shared cache lines),
/// which is what limits scaling when each thread has a core.
fn on_threads_cpu<S>(svc: &S, threads: u64, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    let barrier = std::sync::Barrier::new(usize::try_from(threads).expect("small"));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let rt = runtime();
                    barrier.wait();
                    rt.block_on(async move {
                        let start = thread_cpu_time();
                        for i in 0..iters {
                            let v = svc
                                .ready()
                                .await
                                .expect("ready")
                                .call(i)
                                .await
                                .expect("closed");
                            black_box(v);
                        }
                        thread_cpu_time().saturating_sub(start)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .max()
            .unwrap_or_default()
    })
}

/// One breaker with the default configuration (consecutive failures plus a time window), called from 1 and
/// from 2 threads. Each iteration is one call on every thread, so elements per second is the total
/// throughput; `circuitbreaker/two_threads_baseline` runs the bare service the same way, to show what the
/// machine itself gives.
fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("circuitbreaker/two_threads");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let svc = ours_layer(BreakerConfig::default()).layer(service_fn(trivial));
    for threads in [1u64, 2] {
        g.throughput(Throughput::Elements(threads));
        g.bench_with_input(
            BenchmarkId::new("ours", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| on_threads(&svc, threads, iters));
            },
        );
    }
    g.finish();

    // The same, timed by each thread's CPU time: with a core per thread, throughput scales by
    // threads x (time at 1) / (time at 2).
    let mut g = c.benchmark_group("circuitbreaker/two_threads_cpu_time");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    for threads in [1u64, 2] {
        g.bench_with_input(
            BenchmarkId::new("ours", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| on_threads_cpu(&svc, threads, iters));
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("circuitbreaker/two_threads_baseline");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let bare = service_fn(trivial);
    for threads in [1u64, 2] {
        g.throughput(Throughput::Elements(threads));
        g.bench_with_input(
            BenchmarkId::new("service_fn", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| on_threads(&bare, threads, iters));
            },
        );
    }
    g.finish();
}

/// A call refused while the circuit is open (tripped by 5 failures, open for an hour).
fn open_rejected(c: &mut Criterion) {
    let rt = runtime();
    let breaker = Breaker::new(
        "bench",
        BreakerConfig::default().open_duration(Duration::from_secs(3600)),
    )
    .expect("valid");
    for _ in 0..5 {
        breaker.try_acquire().expect("closed").failure();
    }
    assert!(breaker.try_acquire().is_err(), "open");

    let mut g = c.benchmark_group("circuitbreaker/open_rejected");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let svc = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(trivial));
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = svc.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let e = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(i)
                        .await
                        .expect_err("open");
                    black_box(e);
                }
                start.elapsed()
            }
        });
    });
    g.finish();

    // The same refusal without the tower shell (no boxed error): `Breaker::try_acquire`.
    let mut g = c.benchmark_group("circuitbreaker/open_rejected_core");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.bench_function("ours", |b| {
        b.iter(|| black_box(breaker.try_acquire().is_err()));
    });
    g.finish();
}

criterion_group!(benches, closed_overhead, two_threads, open_rejected);
criterion_main!(benches);
