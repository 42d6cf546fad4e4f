//! The context of the request being served on this thread, for the outbound layer.
//!
//! While the server layer polls a request's future, the request's id and trace context sit in a
//! thread-local slot (moved in and out, never cloned per poll), the same way a tracing span is entered. Code
//! that the handler awaits, an outbound HTTP call included, sees them; a task spawned apart does not, unless
//! it is wrapped with [`RequestContext::scope`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::id::RequestId;
use crate::trace::TraceContext;

thread_local! {
    static CURRENT: Cell<Option<RequestContext>> = const { Cell::new(None) };
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
    /// The context of the request whose future is being polled on this thread, if any.
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT
            .try_with(|slot| {
                let context = slot.take();
                let copy = context.clone();
                slot.set(context);
                copy
            })
            .ok()
            .flatten()
    }

    /// Wraps a future so that [`RequestContext::current`] returns this context while it runs (for work
    /// spawned from a handler: `tokio::spawn(ctx.scope(async { ... }))`).
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            inner: future,
            context: Some(self),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that runs with a request context in place; see [`RequestContext::scope`].
    #[derive(Debug)]
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        context: Option<RequestContext>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        enter(this.context, || inner.poll(cx))
    }
}

/// Moves `context` into the slot for the duration of `f`, then moves it back, also when `f` panics.
pub(crate) fn enter<R>(context: &mut Option<RequestContext>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        context: &'a mut Option<RequestContext>,
        previous: Option<RequestContext>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            if let Ok(mine) = CURRENT.try_with(|slot| slot.replace(previous)) {
                *self.context = mine;
            }
        }
    }
    let Ok(previous) = CURRENT.try_with(|slot| slot.replace(context.take())) else {
        // The thread is tearing down its thread-locals: run without a context.
        return f();
    };
    let _restore = Restore { context, previous };
    f()
}
