//! An axum dashboard endpoint cached per tenant and invalidated on write: `GET /orgs/{org}/dashboard` sums
//! the organization's invoices through `QueryCache::get_or_load` (tier `short`, tag `invoices`), and
//! `POST /orgs/{org}/invoices` records an invoice and invalidates that organization's `invoices` tag, so the next
//! dashboard read is fresh while other organizations keep their cached dashboards. `GET /cache/stats` shows the
//! statistics snapshot. With `REDIS_URL` set, the cache is two-level (process + Redis, kept coherent over
//! pub/sub); otherwise it is in process.
//!
//! The program drives a few requests through the router in process, prints what happened, and exits.
//!
//! Run: `cargo run -p examples --example querycache` (or `REDIS_URL=redis://127.0.0.1:6379 cargo run ...`)

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use query_cache::{CacheKey, QueryCache, RedisStore, Tier};
use tower::ServiceExt;

/// The "database": invoice amounts in cents per organization, and how many expensive queries ran.
#[derive(Default)]
struct Db {
    invoices: Mutex<HashMap<String, Vec<i64>>>,
    queries: AtomicU64,
}

#[derive(Clone)]
struct App {
    db: Arc<Db>,
    /// Dashboard totals: (invoice count, sum in cents).
    cache: QueryCache<(u64, i64)>,
}

async fn dashboard(State(app): State<App>, Path(org): Path<String>) -> Result<String, StatusCode> {
    let key = CacheKey::new(&org, "dashboard.totals", &())
        .and_then(|k| k.tagged(["invoices"]))
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let db = Arc::clone(&app.db);
    let org_for_load = org.clone();
    let (count, cents) = app
        .cache
        .get_or_load(&key, Tier::Short, move || async move {
            // The expensive aggregation (a slow SQL query or a rate-limited accounting API).
            db.queries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let invoices = db.invoices.lock().unwrap_or_else(PoisonError::into_inner);
            let list = invoices.get(&org_for_load).map_or(&[][..], Vec::as_slice);
            Ok::<_, std::convert::Infallible>((list.len() as u64, list.iter().sum()))
        })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(format!(
        "org {org}: {count} invoices, total {}.{:02}",
        cents / 100,
        cents % 100
    ))
}

async fn create_invoice(
    State(app): State<App>,
    Path(org): Path<String>,
    body: String,
) -> StatusCode {
    let Ok(cents) = body.trim().parse::<i64>() else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    app.db
        .invoices
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(org.clone())
        .or_default()
        .push(cents);
    // The write is committed: every cached query of this organization tagged `invoices` is now stale.
    match app.cache.invalidate_tag(&org, "invoices").await {
        Ok(()) => StatusCode::CREATED,
        // Stored, and invalidated in this process; Redis gets the invalidation when it answers again.
        Err(_) => StatusCode::CREATED,
    }
}

async fn stats(State(app): State<App>) -> String {
    let s = app.cache.stats();
    format!(
        "hits {} misses {} loads {} invalidated tags {} redis {:?}",
        s.hits(),
        s.misses(),
        s.loads(),
        s.invalidated_tags,
        s.redis
    )
}

fn router(app: App) -> Router {
    Router::new()
        .route("/orgs/{org}/dashboard", get(dashboard))
        .route("/orgs/{org}/invoices", post(create_invoice))
        .route("/cache/stats", get(stats))
        .with_state(app)
}

async fn call(router: &Router, method: &str, uri: &str, body: &str) -> String {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_owned()))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    format!(
        "{method} {uri} -> {status} {}",
        String::from_utf8_lossy(&bytes)
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = QueryCache::builder();
    let cache = match std::env::var("REDIS_URL") {
        Ok(url) => builder
            .two_level(&RedisStore::builder(url).prefix("example:").build()?)
            .build()?,
        Err(_) => builder.build()?,
    };
    let db = Arc::new(Db::default());
    let router = router(App {
        db: Arc::clone(&db),
        cache,
    });
    let mut out = std::io::stdout().lock();
    for (method, uri, body) in [
        ("POST", "/orgs/42/invoices", "12100"),
        ("POST", "/orgs/43/invoices", "500"),
        ("GET", "/orgs/42/dashboard", ""),
        ("GET", "/orgs/42/dashboard", ""), // cached
        ("GET", "/orgs/43/dashboard", ""),
        ("POST", "/orgs/42/invoices", "899"), // invalidates org 42's dashboard only
        ("GET", "/orgs/42/dashboard", ""),    // fresh: 2 invoices
        ("GET", "/orgs/43/dashboard", ""),    // still cached
        ("GET", "/cache/stats", ""),
    ] {
        writeln!(out, "{}", call(&router, method, uri, body).await)?;
    }
    writeln!(
        out,
        "expensive queries run: {}",
        db.queries.load(Ordering::Relaxed)
    )?;
    Ok(())
}
