//! The `Check` trait and adapters from closures.

use std::future::Future;
use std::pin::Pin;

use crate::observation::Observation;

/// A boxed future a check returns. Checks run once per interval, off the request path, so one allocation per
/// run costs nothing that matters and keeps `Check` usable as a trait object.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Observation> + Send + 'a>>;

/// Something that can tell whether a component is healthy.
///
/// The registry runs it concurrently with the other checks, cuts it at its timeout (dropping the future) and
/// caches the result; probes never run it. A check must not block its thread: a blocking call cannot be cut
/// by a timeout (use `tokio::task::spawn_blocking` inside it).
///
/// ```
/// use health_kit::{Check, CheckFuture, Observation};
///
/// struct Always;
///
/// impl Check for Always {
///     fn run(&self) -> CheckFuture<'_> {
///         Box::pin(async { Observation::pass() })
///     }
/// }
/// ```
pub trait Check: Send + Sync + 'static {
    /// Runs the check once.
    fn run(&self) -> CheckFuture<'_>;
}

/// A check from an async closure: `check_fn(|| async { Observation::pass() })`.
///
/// The closure may also return `Result<Observation, E>` through [`Observation::from`]; see [`CheckFn`].
pub fn check_fn<F, Fut>(f: F) -> CheckFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Observation> + Send + 'static,
{
    CheckFn { f }
}

/// A [`Check`] made by [`check_fn`].
#[derive(Clone)]
pub struct CheckFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for CheckFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckFn").finish_non_exhaustive()
    }
}

impl<F, Fut> Check for CheckFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Observation> + Send + 'static,
{
    fn run(&self) -> CheckFuture<'_> {
        Box::pin((self.f)())
    }
}

/// A check that reads a snapshot another part of the program keeps in memory, with a plain closure.
///
/// For any in-memory state without a typed check (for breaker registries and query caches, see
/// `checks::BreakerRegistryCheck` and `checks::QueryCacheCheck` behind their features): the closure reads a
/// snapshot and maps it to an [`Observation`]. It runs on the runtime's thread, so it must be quick and must
/// not block.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use health_kit::{Measurement, Observation, snapshot_fn};
///
/// let hits = Arc::new(AtomicU64::new(90));
/// let lookups = Arc::new(AtomicU64::new(100));
/// let check = snapshot_fn(move || {
///     let (h, l) = (hits.load(Ordering::Relaxed), lookups.load(Ordering::Relaxed));
///     let percent = if l == 0 { 0 } else { h * 100 / l };
///     Observation::pass().measurement(Measurement::new("hitRate").value(percent).unit("percent"))
/// });
/// # let _ = check;
/// ```
pub fn snapshot_fn<F>(f: F) -> SnapshotFn<F>
where
    F: Fn() -> Observation + Send + Sync + 'static,
{
    SnapshotFn { f }
}

/// A [`Check`] made by [`snapshot_fn`].
#[derive(Clone)]
pub struct SnapshotFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for SnapshotFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFn").finish_non_exhaustive()
    }
}

impl<F> Check for SnapshotFn<F>
where
    F: Fn() -> Observation + Send + Sync + 'static,
{
    fn run(&self) -> CheckFuture<'_> {
        let observation = (self.f)();
        Box::pin(std::future::ready(observation))
    }
}
