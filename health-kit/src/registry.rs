//! The registry: named checks run concurrently in the background, their results cached and the answers of
//! every endpoint prebuilt, so a probe reads memory and never runs a check.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::check::Check;
use crate::clock::{WallClock, rfc3339, system_wall_clock};
use crate::error::ConfigError;
use crate::observation::{Measurement, Observation};
use crate::policy::DetailPolicy;
use crate::report::{self, Meta};
use crate::response::{Endpoint, HealthResponse};
use crate::status::{ComponentType, Status, aggregate};

const STARTED: u8 = 1;
const NOT_READY: u8 = 2;
const DRAINING: u8 = 4;

/// How one check is run: critical or not, its timeout, its interval and when it counts as slow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    critical: bool,
    timeout: Duration,
    interval: Duration,
    slow_after: Option<Duration>,
    component_type: ComponentType,
}

impl CheckOptions {
    /// The default timeout: one second, the kubelet's default probe timeout (a check slower than that would
    /// have failed a probe that ran it inline).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default interval between two runs: five seconds, half the kubelet's default probe period.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

    /// A check whose failure makes `/health/ready` and `/health/status` answer `fail` (503).
    #[must_use]
    pub fn critical() -> Self {
        Self {
            critical: true,
            timeout: Self::DEFAULT_TIMEOUT,
            interval: Self::DEFAULT_INTERVAL,
            slow_after: None,
            component_type: ComponentType::Component,
        }
    }

    /// A check whose failure only makes the answer `warn` (200).
    #[must_use]
    pub fn non_critical() -> Self {
        Self {
            critical: false,
            ..Self::critical()
        }
    }

    /// How long one run may take before it is cut and reported `fail` with the timeout in `output`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time between the starts of two runs; also the minimum: no caller can make the check run more often.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// A run that passes but takes longer than this is reported `warn`.
    #[must_use]
    pub fn slow_after(mut self, threshold: Duration) -> Self {
        self.slow_after = Some(threshold);
        self
    }

    /// The `componentType` shown for the check (default `component`).
    #[must_use]
    pub fn component_type(mut self, component_type: ComponentType) -> Self {
        self.component_type = component_type;
        self
    }

    /// Whether the check is critical.
    #[must_use]
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// The configured timeout.
    #[must_use]
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The configured interval.
    #[must_use]
    pub fn get_interval(&self) -> Duration {
        self.interval
    }
}

/// Builds a [`Health`]: its checks, the service's identity and the detail policy.
#[must_use]
pub struct HealthBuilder {
    checks: Vec<(String, Arc<dyn Check>, CheckOptions)>,
    meta: Meta,
    policy: DetailPolicy,
    cache_max_age: Duration,
    ready_requires_startup: bool,
    wall_clock: WallClock,
}

impl std::fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthBuilder")
            .field(
                "checks",
                &self
                    .checks
                    .iter()
                    .map(|(n, _, o)| (n, o))
                    .collect::<Vec<_>>(),
            )
            .field("meta", &self.meta)
            .field("policy", &self.policy)
            .field("cache_max_age", &self.cache_max_age)
            .field("ready_requires_startup", &self.ready_requires_startup)
            .finish_non_exhaustive()
    }
}

impl HealthBuilder {
    /// Registers a check under `name`, the component name of its keys in `checks` (`postgres` gives
    /// `postgres:responseTime`).
    pub fn check(
        mut self,
        name: impl Into<String>,
        check: impl Check,
        options: CheckOptions,
    ) -> Self {
        self.checks.push((name.into(), Arc::new(check), options));
        self
    }

    /// `version`: the public version of the service's API.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.meta.version = Some(version.into());
        self
    }

    /// `releaseId`: the release of the implementation.
    pub fn release_id(mut self, release_id: impl Into<String>) -> Self {
        self.meta.release_id = Some(release_id.into());
        self
    }

    /// `serviceId`: an identifier of the service.
    pub fn service_id(mut self, service_id: impl Into<String>) -> Self {
        self.meta.service_id = Some(service_id.into());
        self
    }

    /// `description`: a human-readable description of the service.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.meta.description = Some(description.into());
        self
    }

    /// Who sees details on `/health/status` (default [`DetailPolicy::Never`]).
    pub fn detail_policy(mut self, policy: DetailPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The `Cache-Control: max-age` of every answer, in whole seconds (default 1 s: a load balancer or proxy
    /// may reuse an answer that long, and no longer, so a drain is seen within a second).
    pub fn cache_max_age(mut self, max_age: Duration) -> Self {
        self.cache_max_age = max_age;
        self
    }

    /// Whether `/health/ready` answers 503 until [`Health::mark_started`] (default `true`: a service still
    /// starting is not ready for traffic).
    pub fn ready_requires_startup(mut self, required: bool) -> Self {
        self.ready_requires_startup = required;
        self
    }

    /// The wall clock for each check's `time` (default `SystemTime::now`).
    pub fn wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = clock;
        self
    }

    /// Checks the configuration and builds the registry. No check runs until [`Health::spawn_refresher`] or
    /// [`Health::refresh`]; until then critical checks count as failing.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a name is empty, contains `:` or repeats, or a timeout or interval is zero.
    pub fn build(self) -> Result<Health, ConfigError> {
        let mut seen = std::collections::HashSet::new();
        let mut entries = Vec::with_capacity(self.checks.len());
        for (name, check, options) in self.checks {
            if name.is_empty() || name.contains(':') {
                return Err(ConfigError::InvalidName(name));
            }
            if !seen.insert(name.clone()) {
                return Err(ConfigError::DuplicateName(name));
            }
            for (what, value) in [("timeout", options.timeout), ("interval", options.interval)] {
                if value.is_zero() {
                    return Err(ConfigError::ZeroDuration { name, what, value });
                }
            }
            entries.push(Entry {
                name: name.into(),
                options,
                check,
                record: Mutex::new(None),
                run_lock: tokio::sync::Mutex::new(()),
                executions: AtomicU64::new(0),
            });
        }
        let max_age = self.cache_max_age.as_secs();
        let cache_control = cache_control(max_age);
        let fixed = FixedAnswers {
            live: report::lifecycle_body(Status::Pass, None),
            startup_pass: report::lifecycle_body(Status::Pass, None),
            starting: report::lifecycle_body(Status::Fail, Some("starting")),
            not_ready: report::lifecycle_body(Status::Fail, Some("not ready")),
            draining: report::lifecycle_body(Status::Fail, Some("draining")),
        };
        let inner = Arc::new(Inner {
            entries: entries.into_boxed_slice(),
            meta: self.meta,
            policy: self.policy,
            cache_control,
            wall_clock: self.wall_clock,
            ready_requires_startup: self.ready_requires_startup,
            lifecycle: AtomicU8::new(0),
            published: RwLock::new(Arc::new(Published::empty())),
            publish_lock: Mutex::new(()),
            status_tx: tokio::sync::watch::Sender::new(Status::Fail),
            fixed,
        });
        inner.publish();
        Ok(Health { inner })
    }
}

/// The registry of checks and the state of the service's lifecycle. Cheap to clone; clones share everything.
///
/// Probes read prebuilt answers ([`Health::ready`] takes a read lock and clones a `Bytes`); checks run only in
/// [`Health::spawn_refresher`]'s tasks and in [`Health::refresh`], each at most once per interval, however
/// many probes arrive.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field(
                "checks",
                &self
                    .inner
                    .entries
                    .iter()
                    .map(|e| &*e.name)
                    .collect::<Vec<_>>(),
            )
            .field("status", &self.status())
            .field("started", &self.is_started())
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

struct Inner {
    entries: Box<[Entry]>,
    meta: Meta,
    policy: DetailPolicy,
    cache_control: HeaderValue,
    wall_clock: WallClock,
    ready_requires_startup: bool,
    lifecycle: AtomicU8,
    published: RwLock<Arc<Published>>,
    publish_lock: Mutex<()>,
    status_tx: tokio::sync::watch::Sender<Status>,
    fixed: FixedAnswers,
}

struct FixedAnswers {
    live: Bytes,
    startup_pass: Bytes,
    starting: Bytes,
    not_ready: Bytes,
    draining: Bytes,
}

struct Entry {
    name: Arc<str>,
    options: CheckOptions,
    check: Arc<dyn Check>,
    record: Mutex<Option<Arc<CheckRecord>>>,
    run_lock: tokio::sync::Mutex<()>,
    executions: AtomicU64,
}

impl Entry {
    fn current(&self) -> Option<Arc<CheckRecord>> {
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn next_due(&self) -> Option<Instant> {
        self.current().map(|r| r.started + self.options.interval)
    }

    /// How old a result may get before it no longer counts: the next run is due one interval after this one
    /// started and takes at most the timeout, so a result older than two intervals plus the timeout means the
    /// refresher has stopped or cannot keep up.
    fn stale_after(&self) -> Duration {
        self.options
            .interval
            .saturating_mul(2)
            .saturating_add(self.options.timeout)
    }
}

/// The cached result of one run.
pub(crate) struct CheckRecord {
    pub(crate) observation: Observation,
    pub(crate) started: Instant,
    pub(crate) time: String,
}

/// The answers every probe reads, rebuilt whenever a result changes.
struct Published {
    status: Status,
    ready: Bytes,
    status_brief: Bytes,
    status_full: Bytes,
    /// When the first result in it turns stale, so the answers must be rebuilt; `None` when none can.
    fresh_until: Option<Instant>,
}

impl Published {
    fn empty() -> Self {
        Self {
            status: Status::Fail,
            ready: Bytes::new(),
            status_brief: Bytes::new(),
            status_full: Bytes::new(),
            fresh_until: None,
        }
    }

    fn is_stale(&self) -> bool {
        self.fresh_until.is_some_and(|until| Instant::now() > until)
    }
}

impl Health {
    /// Starts building a registry.
    pub fn builder() -> HealthBuilder {
        HealthBuilder {
            checks: Vec::new(),
            meta: Meta::default(),
            policy: DetailPolicy::default(),
            cache_max_age: Duration::from_secs(1),
            ready_requires_startup: true,
            wall_clock: system_wall_clock(),
        }
    }

    /// Spawns one task per check on the current tokio runtime that runs it now and then once per interval.
    ///
    /// The tasks end when every clone of this `Health` is dropped, or at [`Refresher::stop`]. Dropping the
    /// returned handle does not stop them.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn spawn_refresher(&self) -> Refresher {
        let tasks = (0..self.inner.entries.len())
            .map(|index| tokio::spawn(refresh_loop(Arc::downgrade(&self.inner), index)))
            .collect();
        Refresher { tasks }
    }

    /// Runs now, concurrently, every check whose last run started at least one interval ago, and waits for
    /// them. A check already running is waited for, not run again.
    pub async fn refresh(&self) {
        let mut set = JoinSet::new();
        for index in 0..self.inner.entries.len() {
            let inner = Arc::clone(&self.inner);
            set.spawn(async move { run_entry(&inner, index).await });
        }
        while set.join_next().await.is_some() {}
    }

    /// Marks start-up finished: `/health/startup` answers 200, and `/health/ready` follows the checks.
    pub fn mark_started(&self) {
        self.inner.lifecycle.fetch_or(STARTED, Ordering::AcqRel);
    }

    /// Makes `/health/ready` answer 503 until [`Health::mark_ready`], whatever the checks say (maintenance,
    /// a warm-up after a configuration reload).
    pub fn mark_not_ready(&self) {
        self.inner.lifecycle.fetch_or(NOT_READY, Ordering::AcqRel);
    }

    /// Undoes [`Health::mark_not_ready`]. It does not end a drain.
    pub fn mark_ready(&self) {
        self.inner.lifecycle.fetch_and(!NOT_READY, Ordering::AcqRel);
    }

    /// Makes `/health/ready` answer 503 from now on; `/health/live` keeps answering 200. There is no way back:
    /// a draining instance is on its way out.
    pub fn start_draining(&self) {
        if self.inner.lifecycle.fetch_or(DRAINING, Ordering::AcqRel) & DRAINING == 0 {
            tracing::info!("health: draining, /health/ready now answers 503");
        }
    }

    /// Whether [`Health::mark_started`] was called.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.inner.lifecycle.load(Ordering::Acquire) & STARTED != 0
    }

    /// Whether the instance is draining.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.inner.lifecycle.load(Ordering::Acquire) & DRAINING != 0
    }

    /// Flips readiness to 503, then waits `period` so load balancers see it and stop sending traffic, then
    /// returns: the caller lets the server stop (and finish in-flight requests) after this.
    ///
    /// Kubernetes marks a terminating pod's endpoints not ready asynchronously, at about the time it sends
    /// SIGTERM; a period of a few seconds (within `terminationGracePeriodSeconds`, 30 s by default) covers
    /// load balancers that poll `/health/ready` themselves.
    pub async fn drain(&self, period: Duration) {
        self.start_draining();
        tokio::time::sleep(period).await;
        tracing::info!(
            period_ms = period.as_millis(),
            "health: drain period over, the server may stop"
        );
    }

    /// A future for axum's `with_graceful_shutdown` (or any server's): waits for `signal` (SIGTERM, Ctrl-C),
    /// then [`drain`s](Health::drain) for `period`, then completes, and the server stops accepting and finishes
    /// the requests in flight.
    pub fn drain_after<F>(
        &self,
        signal: F,
        period: Duration,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future + Send + 'static,
    {
        let health = self.clone();
        async move {
            signal.await;
            health.drain(period).await;
        }
    }

    /// The status of all checks combined (what `/health/status` answers), regardless of the lifecycle.
    #[must_use]
    pub fn status(&self) -> Status {
        self.read_published().status
    }

    /// A receiver that sees [`Health::status`] each time it changes (for a gRPC `Watch`, a log line or a
    /// metric); it does not change with the lifecycle (started, draining).
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Status> {
        self.inner.status_tx.subscribe()
    }

    /// The last status of the check named `name` (`fail` once its result is stale): `None` when there is no
    /// such check or it has not run yet.
    #[must_use]
    pub fn check_status(&self, name: &str) -> Option<Status> {
        let entry = self.inner.entries.iter().find(|e| &*e.name == name)?;
        let record = entry.current()?;
        if Instant::now() > record.started + entry.stale_after() {
            return Some(Status::Fail);
        }
        Some(record.observation.status())
    }

    /// The last observation of the check named `name`, if it has run.
    #[must_use]
    pub fn check_observation(&self, name: &str) -> Option<Observation> {
        let entry = self.inner.entries.iter().find(|e| &*e.name == name)?;
        entry.current().map(|r| r.observation.clone())
    }

    /// Whether a check is registered under `name`.
    #[must_use]
    pub fn has_check(&self, name: &str) -> bool {
        self.inner.entries.iter().any(|e| &*e.name == name)
    }

    /// How many times the check named `name` has been started (for metrics, and for tests that show probes do
    /// not multiply load). `None` when there is no such check.
    #[must_use]
    pub fn executions(&self, name: &str) -> Option<u64> {
        let entry = self.inner.entries.iter().find(|e| &*e.name == name)?;
        Some(entry.executions.load(Ordering::Relaxed))
    }

    /// The answer of `/health/live`: 200 whenever the process and its runtime can answer; no check is read.
    #[must_use]
    pub fn live(&self) -> HealthResponse {
        self.response(Status::Pass, self.inner.fixed.live.clone())
    }

    /// The answer of `/health/startup`: 503 until [`Health::mark_started`], then 200.
    #[must_use]
    pub fn startup(&self) -> HealthResponse {
        if self.is_started() {
            self.response(Status::Pass, self.inner.fixed.startup_pass.clone())
        } else {
            self.response(Status::Fail, self.inner.fixed.starting.clone())
        }
    }

    /// The answer of `/health/ready`, without details: 503 while draining, marked not ready, not yet started
    /// (unless configured otherwise) or when a critical check fails; 200 otherwise.
    #[must_use]
    pub fn ready(&self) -> HealthResponse {
        let flags = self.inner.lifecycle.load(Ordering::Acquire);
        let fixed = &self.inner.fixed;
        if flags & DRAINING != 0 {
            return self.response(Status::Fail, fixed.draining.clone());
        }
        if self.inner.ready_requires_startup && flags & STARTED == 0 {
            return self.response(Status::Fail, fixed.starting.clone());
        }
        if flags & NOT_READY != 0 {
            return self.response(Status::Fail, fixed.not_ready.clone());
        }
        let (status, body, stale) = {
            let published = self
                .inner
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            (
                published.status,
                published.ready.clone(),
                published.is_stale(),
            )
        };
        if stale {
            // Rare: the refresher stopped or fell behind. Rebuild with the old results counted as failing.
            let published = self.read_published();
            return self.response(published.status, published.ready.clone());
        }
        self.response(status, body)
    }

    /// The answer of `/health/status`: every check when `details` is true, the status alone otherwise. 503
    /// when a critical check fails.
    #[must_use]
    pub fn status_report(&self, details: bool) -> HealthResponse {
        let published = self.read_published();
        let body = if details {
            published.status_full.clone()
        } else {
            published.status_brief.clone()
        };
        self.response(published.status, body)
    }

    /// The answer of `/health/status` for the caller with this request head, per the detail policy.
    #[must_use]
    pub fn status_for(&self, parts: &Parts) -> HealthResponse {
        self.status_report(self.inner.policy.allows(parts))
    }

    /// The answer of an endpoint for a request head (only `/health/status` looks at it).
    #[must_use]
    pub fn answer(&self, endpoint: Endpoint, parts: &Parts) -> HealthResponse {
        match endpoint {
            Endpoint::Live => self.live(),
            Endpoint::Ready => self.ready(),
            Endpoint::Startup => self.startup(),
            Endpoint::Status => self.status_for(parts),
        }
    }

    /// The detail policy in force.
    #[must_use]
    pub fn detail_policy(&self) -> &DetailPolicy {
        &self.inner.policy
    }

    fn read_published(&self) -> Arc<Published> {
        let published = Arc::clone(
            &self
                .inner
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if !published.is_stale() {
            return published;
        }
        self.inner.publish();
        Arc::clone(
            &self
                .inner
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn response(&self, health: Status, body: Bytes) -> HealthResponse {
        HealthResponse::new(health, body, self.inner.cache_control.clone())
    }
}

impl Inner {
    /// Rebuilds the answers from the cached results. Serialised, so an older rebuild never overwrites a newer.
    fn publish(&self) {
        let _guard = self
            .publish_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let records: Vec<Option<Arc<CheckRecord>>> =
            self.entries.iter().map(Entry::current).collect();
        let mut fresh_until: Option<Instant> = None;
        let views: Vec<report::CheckView<'_>> = self
            .entries
            .iter()
            .zip(&records)
            .map(|(e, r)| {
                let stale = r.as_deref().and_then(|r| {
                    let until = r.started + e.stale_after();
                    if now > until {
                        Some(now.saturating_duration_since(r.started))
                    } else {
                        fresh_until = Some(fresh_until.map_or(until, |t| t.min(until)));
                        None
                    }
                });
                report::CheckView {
                    name: &e.name,
                    critical: e.options.critical,
                    component_type: &e.options.component_type,
                    record: r.as_deref(),
                    stale_for: stale,
                }
            })
            .collect();
        let status = aggregate(views.iter().map(|v| (v.critical, v.status())));
        let published = Published {
            status,
            ready: report::lifecycle_body(status, None),
            status_brief: report::status_body(status, &self.meta, None),
            status_full: report::status_body(status, &self.meta, Some(&views)),
            fresh_until,
        };
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(published);
        self.status_tx.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

/// `max-age=N`; a static value for the usual few seconds, so cloning it per probe touches no reference count.
fn cache_control(max_age: u64) -> HeaderValue {
    const STATIC: [&str; 11] = [
        "max-age=0",
        "max-age=1",
        "max-age=2",
        "max-age=3",
        "max-age=4",
        "max-age=5",
        "max-age=6",
        "max-age=7",
        "max-age=8",
        "max-age=9",
        "max-age=10",
    ];
    usize::try_from(max_age)
        .ok()
        .and_then(|i| STATIC.get(i))
        .map_or_else(
            || {
                HeaderValue::try_from(format!("max-age={max_age}"))
                    .unwrap_or_else(|_| HeaderValue::from_static("max-age=1"))
            },
            |s| HeaderValue::from_static(s),
        )
}

/// The background tasks of [`Health::spawn_refresher`].
#[derive(Debug)]
pub struct Refresher {
    tasks: Vec<JoinHandle<()>>,
}

impl Refresher {
    /// Stops the background runs; a run in progress is cut.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn refresh_loop(inner: Weak<Inner>, index: usize) {
    loop {
        // Hold only a weak reference while sleeping, so dropping every `Health` ends the loop.
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let due = strong.entries[index].next_due();
        drop(strong);
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        run_entry(&strong, index).await;
    }
}

/// Runs one check if it is due; callers that arrive while it runs wait and then find it not due.
async fn run_entry(inner: &Arc<Inner>, index: usize) {
    let entry = &inner.entries[index];
    let _single_flight = entry.run_lock.lock().await;
    let started = Instant::now();
    if entry.next_due().is_some_and(|due| started < due) {
        return;
    }
    entry.executions.fetch_add(1, Ordering::Relaxed);
    let check = Arc::clone(&entry.check);
    // A task of its own: a panicking check is reported, not propagated, and the timeout aborts it.
    let task = AbortOnDrop(tokio::spawn(async move { check.run().await }));
    let timeout = entry.options.timeout;
    let outcome = tokio::time::timeout(timeout, task).await;
    let elapsed = started.elapsed();
    let mut observation = match outcome {
        Ok(Ok(observation)) => observation,
        Ok(Err(e)) if e.is_panic() => Observation::fail("check panicked"),
        Ok(Err(_)) => Observation::fail("check cancelled"),
        Err(_) => Observation::fail(format!("timed out after {}", human(timeout))),
    };
    if let Some(slow) = entry.options.slow_after.filter(|slow| elapsed > *slow) {
        observation.raise(Status::Warn, || {
            format!("slow: took {} (over {})", human(elapsed), human(slow))
        });
    }
    observation.ensure_measurement(|| Measurement::response_time(elapsed));
    let record = Arc::new(CheckRecord {
        observation,
        started,
        time: rfc3339((inner.wall_clock)()),
    });
    let new_status = record.observation.status();
    let previous = entry
        .record
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(Arc::clone(&record));
    let old_status = previous.map(|p| p.observation.status());
    if old_status != Some(new_status) {
        log_transition(
            &entry.name,
            entry.options.critical,
            old_status,
            &record.observation,
        );
    }
    inner.publish();
}

/// One event per change of a check's status: WARN when it gets worse, INFO when it gets better or first
/// passes. The output is the check's own text (it names no secret unless the check put one there).
fn log_transition(name: &str, critical: bool, old: Option<Status>, new: &Observation) {
    let from = old.map_or("none", Status::as_str);
    let to = new.status();
    let output = new.output_text().unwrap_or("");
    if old.is_none_or(|old| to > old) && to != Status::Pass {
        tracing::warn!(
            check = name,
            critical,
            from,
            to = to.as_str(),
            output,
            "health check changed status"
        );
    } else {
        tracing::info!(
            check = name,
            critical,
            from,
            to = to.as_str(),
            "health check changed status"
        );
    }
}

/// `1s`, `250ms`, `1.5s`, `800µs`: short and exact enough for an `output`.
pub(crate) fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d >= Duration::from_millis(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

/// A join handle that aborts its task when dropped (on timeout, or when the refresher is stopped).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_values() {
        assert_eq!(cache_control(0), "max-age=0");
        assert_eq!(cache_control(10), "max-age=10");
        assert_eq!(cache_control(3600), "max-age=3600");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(1)), "1s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_micros(1_500)), "1ms");
        assert_eq!(human(Duration::from_micros(800)), "800µs");
    }

    #[test]
    fn invalid_configurations_are_refused_once() {
        let ok = || crate::check::snapshot_fn(Observation::pass);
        let err = Health::builder()
            .check("a:b", ok(), CheckOptions::critical())
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::InvalidName("a:b".into()));
        let err = Health::builder()
            .check("", ok(), CheckOptions::critical())
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::InvalidName(String::new()));
        let err = Health::builder()
            .check("db", ok(), CheckOptions::critical())
            .check("db", ok(), CheckOptions::non_critical())
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::DuplicateName("db".into()));
        let err = Health::builder()
            .check("db", ok(), CheckOptions::critical().timeout(Duration::ZERO))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::ZeroDuration {
                what: "timeout",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "check \"db\": timeout must be greater than zero, got 0ns"
        );
    }
}
