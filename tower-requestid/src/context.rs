//! The context of the request being served on this thread: for the outbound layer, the axum extractors of
//! the trace context, the Sentry hub and [`StreamingBodyLayer`](crate::StreamingBodyLayer).
//!
//! While the server layer calls the inner service and polls its future, a thread-local slot points at the
//! request's id and trace context (which stay where they are, in the future), the same way a tracing span
//! is entered. Code that the handler awaits, an outbound HTTP call included, sees them; a task spawned apart
//! does not, unless it is wrapped with [`RequestContext::scope`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll};

use crate::id::RequestId;
use crate::trace::TraceContext;

thread_local! {
    // A pointer, not the context itself: moving 90 bytes in and out around every poll cost about 12 ns a
    // request; a pointer is one store each way.
    static CURRENT: Cell<*const RequestContext> = const { Cell::new(ptr::null()) };
}

/// A request's id and trace context together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The request id.
    pub id: RequestId,
    /// The trace context.
    pub trace: TraceContext,
}

impl RequestContext {
    /// The context of the request being served on this thread (its inner service being called, its future
    /// polled, or a [`scope`](Self::scope)d future polled), if any.
    #[must_use]
    pub fn current() -> Option<Self> {
        Self::with_current(Self::clone)
    }

    /// `f` of the current context, if any, without cloning more of it than `f` takes.
    fn with_current<R>(f: impl FnOnce(&Self) -> R) -> Option<R> {
        CURRENT
            .try_with(|slot| {
                let current = slot.get();
                // SAFETY: the slot is non-null only while `enter` runs its closure, and `enter` holds a shared
                // borrow of the context it points at for that whole time; it puts the previous pointer back
                // before returning, unwinding included. The slot is thread-local: no other thread reads it.
                #[allow(unsafe_code)]
                let context = unsafe { current.as_ref() };
                context.map(f)
            })
            .ok()
            .flatten()
    }

    /// The trace context a layer put into `extensions`
    /// ([`RequestIdLayer::trace_context_extension`](crate::RequestIdLayer::trace_context_extension)), else
    /// the current request's.
    #[cfg(any(feature = "axum", feature = "sentry"))]
    pub(crate) fn trace_in(extensions: &http::Extensions) -> Option<TraceContext> {
        extensions
            .get::<TraceContext>()
            .cloned()
            .or_else(|| Self::with_current(|context| context.trace.clone()))
    }

    /// Wraps a future so that [`RequestContext::current`] returns this context while it runs (for work
    /// spawned from a handler: `tokio::spawn(ctx.scope(async { ... }))`).
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            inner: future,
            context: self,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that runs with a request context in place; see [`RequestContext::scope`].
    #[derive(Debug)]
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        context: RequestContext,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        enter(Some(this.context), || inner.poll(cx))
    }
}

/// Runs `f` inside `span` with the slot pointing at `context`: how the layers call, poll and stream a request.
pub(crate) fn in_request<R>(
    span: &tracing::Span,
    context: Option<&RequestContext>,
    f: impl FnOnce() -> R,
) -> R {
    let _entered = span.enter();
    enter(context, f)
}

/// Points the slot at `context` (or at nothing) while `f` runs, then back at what it pointed at before, also
/// when `f` panics.
pub(crate) fn enter<R>(context: Option<&RequestContext>, f: impl FnOnce() -> R) -> R {
    struct Restore(*const RequestContext);
    impl Drop for Restore {
        fn drop(&mut self) {
            // Fails only while the thread tears its thread-locals down, when nothing can read the slot.
            let _ = CURRENT.try_with(|slot| slot.set(self.0));
        }
    }
    let current = context.map_or(ptr::null(), ptr::from_ref);
    let Ok(previous) = CURRENT.try_with(|slot| slot.replace(current)) else {
        // The thread is tearing down its thread-locals: run without a context.
        return f();
    };
    let _restore = Restore(previous);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MakeRequestId, UuidV7};

    fn context() -> RequestContext {
        RequestContext {
            id: UuidV7.make_request_id(),
            trace: TraceContext::new_root(),
        }
    }

    #[test]
    fn the_slot_follows_nesting_and_unwinding() {
        let (outer, inner) = (context(), context());
        assert_eq!(RequestContext::current(), None);
        enter(Some(&outer), || {
            assert_eq!(RequestContext::current().as_ref(), Some(&outer));
            enter(Some(&inner), || {
                assert_eq!(RequestContext::current().as_ref(), Some(&inner));
            });
            enter(None, || assert_eq!(RequestContext::current(), None));
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                enter(Some(&inner), || panic!("handler panicked"));
            }));
            assert!(panicked.is_err());
            assert_eq!(RequestContext::current().as_ref(), Some(&outer));
        });
        assert_eq!(RequestContext::current(), None);
    }

    #[test]
    fn other_threads_never_see_the_slot() {
        let outer = context();
        enter(Some(&outer), || {
            let seen = std::thread::spawn(RequestContext::current).join().unwrap();
            assert_eq!(seen, None);
        });
    }
}
