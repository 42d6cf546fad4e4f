//! The closed path allocates nothing: calls through the tower layer, successes and failures alike, while the
//! breaker stays closed, with the default configuration (consecutive failures plus a time window).
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to System

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;

use tower::{Layer, Service, ServiceExt, service_fn};
use tower_circuitbreaker::{Breaker, BreakerConfig, CircuitBreakerLayer, Outcome};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter is a
// thread-local `Cell` with a const initializer, so counting neither allocates nor recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn closed_calls_through_the_layer_do_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let breaker = Breaker::new("upstream", BreakerConfig::default()).unwrap();
    // Every fourth call fails: never five in a row, and 25 % stays under the 50 % failure rate.
    let layer = CircuitBreakerLayer::new(breaker.clone()).classifier(
        |r: &Result<u64, Infallible>| match r {
            Ok(v) if v % 4 == 0 => Outcome::Failure,
            _ => Outcome::Success,
        },
    );
    let mut svc = layer.layer(service_fn(|i: u64| async move { Ok::<_, Infallible>(i) }));
    rt.block_on(async {
        // warm up: thread-locals, the stripe index, the runtime's first poll
        for i in 1..100u64 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        let before = allocations();
        for i in 0..10_000u64 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        assert_eq!(
            allocations() - before,
            0,
            "allocations in 10 000 closed calls"
        );
    });
    let s = breaker.snapshot();
    assert_eq!(
        (s.state, s.successes + s.failures),
        (tower_circuitbreaker::BreakerState::Closed, 10_099)
    );
    assert_eq!(s.failures, 2_524);
}

#[test]
fn a_refusal_allocates_nothing_in_the_core_and_only_its_box_in_the_layer() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let breaker = Breaker::new("bank-api.example.com", BreakerConfig::default()).unwrap();
    for _ in 0..5 {
        breaker.try_acquire().unwrap().failure();
    }
    // warm up: thread-locals, the stripe index
    assert!(breaker.try_acquire().is_err());
    let before = allocations();
    for _ in 0..1_000 {
        let e = breaker.try_acquire().unwrap_err();
        assert_eq!(e.name(), "bank-api.example.com");
    }
    assert_eq!(allocations() - before, 0, "allocations in 1 000 refusals");

    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .layer(service_fn(|i: u64| async move { Ok::<_, Infallible>(i) }));
    rt.block_on(async {
        let _ = svc.ready().await.unwrap().call(0).await.unwrap_err();
        let before = allocations();
        for i in 0..1_000u64 {
            let e = svc.ready().await.unwrap().call(i).await.unwrap_err();
            let open = e
                .downcast_ref::<tower_circuitbreaker::CircuitOpen>()
                .unwrap();
            assert!(open.retry_after().is_some());
        }
        assert_eq!(
            allocations() - before,
            1_000,
            "one allocation (the BoxError) per refusal through the layer"
        );
    });
    assert_eq!(breaker.snapshot().rejected, 2_002);
}
