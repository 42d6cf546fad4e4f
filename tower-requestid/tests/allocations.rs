//! Heap allocations per request, counted with a wrapping global allocator: the layer's cost floor, pinned so a
//! change that adds an allocation (a formatted id, a boxed future, a cloned context) fails here.
//!
//! With no tracing subscriber installed, a request without an id costs 6 allocations: the extensions map (its
//! box and its table) and the box of the `RequestId` in it, the id's bytes (one buffer shared by the
//! extension, the context and the echoed header), and the response `HeaderMap`'s first insert (indices and
//! entries). All but the id's bytes are the `http` types' own. The span, the trace context (without a
//! `tracestate`, which is boxed), the thread-local context slot and the id generation allocate nothing;
//! `trace_context_extension(true)` adds one box.
#![allow(unsafe_code)] // a GlobalAlloc wrapper is unsafe by definition; it only counts and forwards
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{HeaderValue, Request, Response};
use tower::{Service, service_fn};
use tower_layer::Layer;
use tower_requestid::RequestIdLayer;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards every call to `System` unchanged; the counter is a thread-local `Cell` without a destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

async fn handler(_req: Request<()>) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
}

/// Allocations of one request through `svc` (built beforehand), polled to completion on this thread.
fn allocations_of<S, B>(svc: &mut S, req: Request<()>) -> u64
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let before = ALLOCATIONS.with(Cell::get);
    assert!(svc.poll_ready(&mut cx).is_ready());
    let response = match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(e)) => match e {},
        Poll::Pending => panic!("the handler is ready at once"),
    };
    let after = ALLOCATIONS.with(Cell::get);
    drop(response);
    after - before
}

fn with_id() -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_static("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    );
    req
}

#[test]
fn a_request_costs_only_the_http_types_allocations() {
    let mut svc = RequestIdLayer::new().layer(service_fn(handler));
    // The first request on a thread seeds the generator and registers thread-locals.
    allocations_of(&mut svc, Request::new(()));

    assert_eq!(
        allocations_of(&mut service_fn(handler), Request::new(())),
        0,
        "the bare handler allocates nothing, so what follows is the layer's"
    );
    for _ in 0..3 {
        assert_eq!(
            allocations_of(&mut svc, Request::new(())),
            6,
            "generated id: extensions (map box, table, the id's box), id bytes, response headers (2)"
        );
        assert_eq!(
            allocations_of(&mut svc, with_id()),
            5,
            "kept id: the incoming header's bytes are shared, not copied"
        );
    }
    let mut with_trace = RequestIdLayer::new()
        .trace_context_extension(true)
        .layer(service_fn(handler));
    assert_eq!(
        allocations_of(&mut with_trace, Request::new(())),
        7,
        "the trace context in the extensions is one more box"
    );
}
