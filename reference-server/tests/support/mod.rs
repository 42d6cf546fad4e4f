//! Shared helpers of the server's integration tests: a server on each backend, and raw HTTP over loopback.

#![allow(
    dead_code,
    unused_macros,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used
)] // test helpers: a failure here is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use reference_server::AppState;
use reference_server::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// Which database a test runs the server on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running application state with what keeps its database alive.
pub struct TestServer {
    pub state: AppState,
    _sqlite_dir: Option<tempfile::TempDir>,
    _pg: Option<test_support::PgDatabase>,
}

pub fn config(extra: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_vars(&vars).expect("test configuration is valid")
}

/// Opens and migrates a fresh database on `backend` (None when PostgreSQL is missing and not required).
pub async fn server(backend: Backend, extra: &[(&str, &str)]) -> Option<TestServer> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/reference.db", dir.path().display());
            Some(server_at(&url, extra, Some(dir), None).await)
        }
        Backend::Postgres => {
            let db = test_support::postgres().await?;
            let url = db.url().to_owned();
            Some(server_at(&url, extra, None, Some(db)).await)
        }
    }
}

/// Opens and migrates the database at `url` (for tests that route it through a proxy).
pub async fn server_at(
    url: &str,
    extra: &[(&str, &str)],
    sqlite_dir: Option<tempfile::TempDir>,
    pg: Option<test_support::PgDatabase>,
) -> TestServer {
    let mut vars = vec![("DATABASE_URL", url)];
    vars.extend_from_slice(extra);
    let config = config(&vars);
    let db = reference_server::open_database(&config)
        .await
        .expect("database opens and migrates");
    let state = AppState::new(config, db);
    state.start().await;
    TestServer {
        state,
        _sqlite_dir: sqlite_dir,
        _pg: pg,
    }
}

/// Sends one GET through the whole application, in process.
pub async fn get(state: &AppState, path: &str) -> (StatusCode, String) {
    let response = reference_server::app(state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends one request through the whole application, in process, with an optional bearer token and JSON body;
/// answers the status and the JSON body (`Null` when empty or not JSON).
pub async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let (status, _, json) = call_with_headers(state, method, path, token, body).await;
    (status, json)
}

/// [`call`], with the response's headers too.
pub async fn call_with_headers(
    state: &AppState,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    call_from(state, None, method, path, token, body).await
}

/// [`call_with_headers`] from the client address `peer`, as the connection would show it.
pub async fn call_from(
    state: &AppState,
    peer: Option<SocketAddr>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(peer) = peer {
        request = request.extension(axum::extract::ConnectInfo(peer));
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(json) => request
            .header("content-type", "application/json")
            .body(Body::from(json.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = reference_server::app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Sends one HTTP/1.1 GET over a real socket; `None` when the connection fails.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// Declares each named `async fn(Backend)` test twice, in modules `sqlite` and `postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await; })*
        }
    };
}
pub(crate) use on_both_backends;

/// The value of a `SELECT COUNT(*) ...` on the state's database.
pub async fn count(state: &AppState, sql: &'static str) -> i64 {
    reference_server::with_pool!(state.db(), |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await)
    .unwrap()
}

/// The password every test user signs in with.
pub const PASSWORD: &str = "correct horse battery staple";

/// Registers an organization with an owner whose email is `email`; answers the owner's access token.
pub async fn owner(server: &TestServer, organization: &str, email: &str) -> String {
    let body = serde_json::json!({"organization_name": organization, "name": "Owner", "email": email, "password": PASSWORD});
    let (status, tokens) = call(
        &server.state,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// Sends one HTTP/1.1 request with an optional bearer token and JSON body over a real socket; answers the
/// status and the JSON body (`Null` when empty or not JSON).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(ToString::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
