//! The reference finance backend: an axum application composed of this workspace's crates.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive the application in process; [`run`]
//! is what `main` calls: connect, migrate, bind, serve, and drain on SIGTERM or Ctrl-C.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod health;
mod hex;
mod http;
mod idempotency;
pub mod logging;
mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::token::KeyRing;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Db, DbError};

/// What every handler can reach: the configuration, the database, and the lifecycle flags. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    db: Db,
    dashboards: Option<query_cache::QueryCache<Arc<domain::dashboard::Dashboard>>>,
    breakers: tower_circuitbreaker::BreakerRegistry,
    keys: KeyRing,
    clock: Clock,
    health: health_kit::Health,
    limits: Option<ratelimit::Limits>,
}

impl AppState {
    /// Bundles an opened (and migrated) database with the configuration.
    #[must_use]
    pub fn new(config: Config, db: Db) -> Self {
        Self::with_clock(config, db, Clock::default())
    }

    /// As [`AppState::new`], with a clock that tests can move forward.
    #[must_use]
    pub fn with_clock(config: Config, db: Db, clock: Clock) -> Self {
        // Tests that build a state directly with a bad policy run without limits; `run` refuses to start.
        let limits = if config.rate_limit_disabled {
            None
        } else {
            ratelimit::Limits::from_config(&config)
                .map_err(|e| tracing::error!(error = %e, "rate limits not set up"))
                .ok()
        };
        Self::with_limits(config, db, clock, limits)
    }

    /// The state with limits built (and checked) by the caller, so start-up builds them once.
    fn with_limits(
        config: Config,
        db: Db,
        clock: Clock,
        limits: Option<ratelimit::Limits>,
    ) -> Self {
        let keys = KeyRing::from_config(&config);
        // The defaults are valid (no zero TTL or capacity), so building cannot fail; if it did, the server
        // would run uncached rather than not at all.
        let dashboards = (!config.query_cache_disabled)
            .then(|| dashboard_cache(&config))
            .flatten();
        let breakers = upstream_breakers();
        let health = health::registry(&config, &db, dashboards.as_ref(), &breakers).unwrap_or_else(|e| {
            // The checks are fixed by this code: a refusal is a bug of ours, not an operator's input.
            tracing::error!(error = %e, "health registry refused the server's checks; serving without them");
            health_kit::Health::builder().build().unwrap_or_else(|_| unreachable!("an empty registry builds"))
        });
        Self {
            inner: Arc::new(Inner {
                config,
                db,
                dashboards,
                breakers,
                keys,
                clock,
                health,
                limits,
            }),
        }
    }

    /// The dashboard cache; `None` with `QUERY_CACHE_DISABLED=true`.
    #[must_use]
    pub fn dashboards(
        &self,
    ) -> Option<&query_cache::QueryCache<Arc<domain::dashboard::Dashboard>>> {
        self.inner.dashboards.as_ref()
    }

    /// The circuit breakers of the upstream APIs ([`UPSTREAMS`]), one per upstream, per instance.
    #[must_use]
    pub fn breakers(&self) -> &tower_circuitbreaker::BreakerRegistry {
        &self.inner.breakers
    }

    /// The access-token keys.
    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The domain's clock.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The configuration read at start-up.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database pool.
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The rate limits; `None` with `RATE_LIMIT_DISABLED=true`.
    #[must_use]
    pub fn limits(&self) -> Option<&ratelimit::Limits> {
        self.inner.limits.as_ref()
    }

    /// The health registry behind `/health/*`.
    #[must_use]
    pub fn health(&self) -> &health_kit::Health {
        &self.inner.health
    }

    /// Runs every health check once, marks start-up finished and keeps the checks running in the background.
    /// Call it once, after the migrations, before serving.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(&self) {
        self.inner.health.refresh().await;
        self.inner.health.mark_started();
        // The tasks end when the last clone of this state (and so of the registry) is dropped.
        let _ = self.inner.health.spawn_refresher();
    }

    /// Whether the server is shutting down (readiness then answers 503 so load balancers stop sending).
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.inner.health.is_draining()
    }

    /// Marks the server as shutting down.
    pub fn start_draining(&self) {
        self.inner.health.start_draining();
    }
}

/// The upstream APIs a finance backend calls: each gets its breaker at start-up, so `/health/status` and
/// `/metrics` show them before the first call (shared/ARCHITECTURE.md: wired before the integrations exist).
pub const UPSTREAMS: &[&str] = &["accounting", "bank", "payments"];

fn upstream_breakers() -> tower_circuitbreaker::BreakerRegistry {
    let registry =
        tower_circuitbreaker::BreakerRegistry::new(tower_circuitbreaker::BreakerConfig::default())
            .unwrap_or_else(|_| unreachable!("the default breaker configuration is valid"));
    for name in UPSTREAMS {
        let _ = registry.get(name);
    }
    registry
}

/// The dashboard cache: in process, and with `REDIS_URL` two-level (Redis shared by every instance, each
/// instance's in-process copy kept coherent over pub/sub). `None` only if the cache cannot be built at all.
fn dashboard_cache(
    config: &Config,
) -> Option<query_cache::QueryCache<Arc<domain::dashboard::Dashboard>>> {
    let builder = query_cache::QueryCache::builder();
    let builder = match &config.redis_url {
        Some(url) => {
            let url = String::from_utf8_lossy(url.expose()).into_owned();
            match query_cache::RedisStore::builder(url)
                .prefix(format!("{}qc:", config.redis_key_prefix))
                .build()
            {
                Ok(store) => builder.two_level(&store),
                Err(e) => {
                    tracing::error!(error = %e, "dashboard cache stays in process: Redis store not built");
                    builder
                }
            }
        }
        None => builder,
    };
    builder
        .build()
        .map_err(|e| tracing::error!(error = %e, "dashboard cache not built"))
        .ok()
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let config = state.config().clone();
    let _ = metrics::handle(); // installs the recorder before the first request is counted
    let (api, document) = openapi::api();
    let document = serde_json::to_value(&document).unwrap_or_default();
    let rules = Arc::new(openapi::AccessRules::from_document(&document));
    let document = axum::body::Bytes::from(document.to_string());
    let mut api = api
        .route_layer(axum::middleware::from_fn_with_state(
            rules,
            openapi::authorize,
        ))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ));
    if let Some(limits) = state.limits() {
        api = api.layer(limits.layer());
    }
    let routes = Router::new()
        .merge(api)
        // Probes and scrapes are not rate limited; inside authentication, so `/health/status` can show details
        // to owners and admins (a probe without an Authorization header passes through it untouched).
        .merge(state.health().router())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document,
                    )
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(metrics::render).with_state(state.clone()),
        )
        .route_layer(axum::middleware::from_fn(metrics::route))
        .layer(axum::middleware::from_fn_with_state(
            state,
            auth::authenticate,
        ));
    http::stack(routes, &config)
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The listening address could not be bound.
    #[error("BIND_ADDR: cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `BIND_ADDR`.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The rate limits could not be set up.
    #[error(transparent)]
    Limits(ratelimit::LimitsError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Opens the database named by the configuration and applies its migrations.
///
/// # Errors
///
/// When the database cannot be reached or a migration fails.
pub async fn open_database(config: &Config) -> Result<Db, DbError> {
    let db = Db::connect(&config.database_url, config.db_max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains: readiness answers 503 for
/// `SHUTDOWN_DRAIN` so load balancers stop sending, the listener closes, and in-flight requests finish.
///
/// # Errors
///
/// When the server's accept loop fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = state.config().shutdown_drain;
    let draining = state.clone();
    let router = app(state.clone());
    let stop = async move {
        shutdown.await;
        tracing::info!(
            drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
            "shutdown requested, draining"
        );
        draining.start_draining();
        tokio::time::sleep(drain).await;
        tracing::info!("drain period over, closing the listener and finishing in-flight requests");
    };
    // The peer address feeds the rate limiter's client keys.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await?;
    state.db().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the server from its configuration and runs it until SIGTERM or Ctrl-C.
///
/// # Errors
///
/// When the database cannot be opened, the address cannot be bound, or serving fails.
pub async fn run(config: Config) -> Result<(), StartError> {
    if config.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: using a key generated for this process; tokens end with it"
        );
    }
    if config.audit_chain_key_generated {
        tracing::warn!(
            "AUDIT_CHAIN_KEY is not set: using a key generated for this process; set it to verify the audit chain later"
        );
    }
    if config.totp_encryption_key_generated {
        tracing::warn!(
            "TOTP_ENCRYPTION_KEY is not set: using a key generated for this process; second factors enrolled now stop working with it"
        );
    }
    // Built once, here, so a bad policy file or Redis URL stops start-up.
    let limits = if config.rate_limit_disabled {
        None
    } else {
        Some(ratelimit::Limits::from_config(&config).map_err(StartError::Limits)?)
    };
    let db = open_database(&config).await?;
    tracing::info!(backend = db.backend(), "database ready, migrations applied");
    let addr = config.bind_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(%addr, "listening");
    let state = AppState::with_limits(config, db, Clock::default(), limits);
    state.start().await;
    let audit_every = state.config().integrity_audit_interval;
    let audits = tokio::spawn(every(audit_every, audit_every, {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move { integrity_audit(&state).await }
        }
    }));
    let retention = tokio::spawn(every(HOUR, DAY, {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move { apply_retention(&state).await }
        }
    }));
    let served = serve(listener, state, shutdown_signal())
        .await
        .map_err(StartError::Serve);
    audits.abort();
    retention.abort();
    served
}

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Runs `job` every `period`, the first time `first` after start (a restart loop must not turn into a job
/// loop); a run that overlaps the next tick makes that tick skipped, not queued.
async fn every<F, Fut>(first: Duration, period: Duration, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        job().await;
    }
}

/// The integrity audit of every organization, each `INTEGRITY_AUDIT_INTERVAL`, on one instance at a time.
async fn integrity_audit(state: &AppState) {
    use domain::integrity::Scheduled;
    let period = state.config().integrity_audit_interval;
    match domain::integrity::run_scheduled(state, period).await {
        Ok(Scheduled::Ran(runs)) => {
            let deviations: i64 = runs.iter().map(|r| r.deviations).sum();
            tracing::info!(
                organizations = runs.len(),
                deviations,
                "integrity audit finished"
            );
        }
        Ok(Scheduled::Busy) => tracing::info!("integrity audit left to the instance running it"),
        Ok(Scheduled::RanRecently) => tracing::info!("integrity audit ran recently: skipped"),
        Err(e) => tracing::error!(error = %e, "integrity audit could not run"),
    }
}

/// Retention (`domain::retention`), daily.
async fn apply_retention(state: &AppState) {
    match domain::retention::run(state).await {
        Ok(report) => tracing::info!(?report, "retention applied"),
        Err(e) => tracing::error!(error = %e, "retention could not run"),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
