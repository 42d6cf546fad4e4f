//! tower-ratelimit in an axum service: tiers from a (toy) verified token, route categories from method and
//! route, `RateLimit` headers and 429 problem answers, and a login handler that charges failed attempts per
//! account and per client address on top of the layer.
//!
//! Run: `cargo run -p examples --example ratelimit` (in memory), or with `REDIS_URL=redis://127.0.0.1:6379` to
//! share the limits through Redis; `RATE_LIMIT_POLICY=policy.toml` reads the policies from a file.
//! Then try:
//!
//! ```text
//! curl -i localhost:3000/api/v1/invoices                                   # anonymous tier, api_read
//! curl -i -H 'authorization: Bearer premium-token' localhost:3000/api/v1/invoices
//! curl -i -X POST -H 'authorization: Bearer user-token' localhost:3000/api/v1/payments   # payment: 5/min
//! curl -i -X POST -d 'alice@example.com:wrong' localhost:3000/api/v1/auth/login # 5 failures, then 429
//! curl -s localhost:3000/metrics/ratelimit
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_ratelimit::{
    ChargeMode, ClientIpConfig, FailurePolicy, Identity, Key, Policies, RateLimitLayer,
    RateLimiter, RedisConfig, RedisStore, RequestInfo, TierName, UserId,
};

#[derive(Clone)]
struct AppState {
    layer: RateLimitLayer<
        fn(&RequestInfo<'_>) -> Identity,
        fn(&RequestInfo<'_>) -> Option<Cow<'static, str>>,
    >,
}

/// Stands in for real token verification: a valid token puts the user and tier into the extensions.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let claims = match token {
        "Bearer user-token" => Some(("user-1", "authenticated")),
        "Bearer premium-token" => Some(("user-2", "premium")),
        _ => None,
    };
    if let Some((user, tier)) = claims {
        request.extensions_mut().insert(UserId(Arc::from(user)));
        request
            .extensions_mut()
            .insert(TierName(Cow::Borrowed(tier)));
    }
    next.run(request).await
}

fn tier_of(request: &RequestInfo<'_>) -> Identity {
    let user = request.extensions.get::<UserId>().map(|u| u.0.clone());
    let tier = request
        .extensions
        .get::<TierName>()
        .map_or(Cow::Borrowed("anonymous"), |t| t.0.clone());
    Identity { user, tier }
}

fn category_of(request: &RequestInfo<'_>) -> Option<Cow<'static, str>> {
    let path = request.uri.path();
    let category = if path.starts_with("/api/v1/auth/") {
        "auth"
    } else if path.starts_with("/api/v1/payments") {
        "payment"
    } else if path.starts_with("/api/v1/imports") {
        "upload"
    } else if matches!(*request.method, Method::GET | Method::HEAD) {
        "api_read"
    } else {
        "api_write"
    };
    Some(Cow::Borrowed(category))
}

/// Login: the layer checked `auth` (per address) without charging; failures charge it and `auth_account`.
async fn login(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let body = axum::body::to_bytes(request.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let (account, password) = text.split_once(':').unwrap_or((&text, ""));
    let limiter = state.layer.limiter();
    let policies = state.layer.policies();
    let (Some(per_account), Some(per_ip)) =
        (policies.limit("auth_account"), policies.limit("auth"))
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !limiter.peek(account, per_account, 1).await.is_allowed() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts for this account\n",
        )
            .into_response();
    }
    if password == "correct horse battery staple" {
        return (StatusCode::OK, "welcome\n").into_response();
    }
    let _ = limiter
        .check(Key::Str(account.trim()), per_account, 1)
        .await;
    if let Some(ip) = peer {
        let _ = limiter.check(ip, per_ip, 1).await;
    }
    (StatusCode::UNAUTHORIZED, "wrong email or password\n").into_response()
}

async fn metrics(State(state): State<AppState>) -> String {
    let snapshot = state.layer.snapshot();
    let mut out = format!(
        "ratelimit_keys_held {}\nratelimit_store {:?}\nratelimit_shadow {}\n",
        snapshot.keys_held, snapshot.store, snapshot.shadow
    );
    for limit in snapshot.limits {
        out.push_str(&format!(
            "ratelimit_allowed{{policy=\"{0}\"}} {1}\nratelimit_rejected{{policy=\"{0}\"}} {2}\n",
            limit.name, limit.allowed, limit.rejected
        ));
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policies = match std::env::var("RATE_LIMIT_POLICY") {
        Ok(path) => Policies::from_toml_file(path)?,
        Err(_) => Policies::finance_defaults(),
    };
    let limiter = match std::env::var("REDIS_URL") {
        Ok(url) => {
            let store =
                RedisStore::new(&url, RedisConfig::default().prefix("{example}:ratelimit:"))?;
            RateLimiter::builder()
                .redis(store, FailurePolicy::FallbackToMemory)
                .build()
        }
        Err(_) => RateLimiter::in_memory(),
    };
    let trusted: Vec<String> = std::env::var("TRUSTED_PROXIES")
        .map(|v| {
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let layer = RateLimitLayer::builder(limiter, policies)
        .client_ip(ClientIpConfig::new().trust(trusted)?)
        .tier_classifier(tier_of as fn(&RequestInfo<'_>) -> Identity)
        .category_classifier(category_of as fn(&RequestInfo<'_>) -> Option<Cow<'static, str>>)
        .build();
    // Limits the layer only checks (the `auth` category) are charged by handlers: here, failed logins.
    for limit in layer
        .policies()
        .all_limits()
        .filter(|l| l.charge_mode() == ChargeMode::Handler)
    {
        tracing::info!(policy = limit.limit().name(), "charged by handlers");
    }
    let state = AppState {
        layer: layer.clone(),
    };
    let app = Router::new()
        .route(
            "/api/v1/invoices",
            get(|| async { "[]\n" }).post(|| async { "created\n" }),
        )
        .route("/api/v1/payments", post(|| async { "paid\n" }))
        .route("/api/v1/imports", post(|| async { "imported\n" }))
        .route("/api/v1/auth/login", post(login))
        .layer(layer)
        .layer(middleware::from_fn(authenticate))
        .route("/metrics/ratelimit", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
