//! Per-test PostgreSQL databases and Redis key prefixes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The PostgreSQL server tests use when `DATABASE_URL` is not set: the machine's own, trust auth.
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The Redis server tests use when `REDIS_URL` is not set.
const LOCAL_REDIS: &str = "redis://127.0.0.1:6379";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Whether a missing service fails the test (`REQUIRE_SERVICES=1`, as CI sets it) instead of skipping it.
#[must_use]
pub fn services_required() -> bool {
    std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A name no other test of this run, or of a concurrent run, will pick.
fn unique_name(kind: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "{kind}_{}_{}_{seq}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

fn unavailable<T>(service: &str, why: &str) -> Option<T> {
    unavailable_when(services_required(), service, why)
}

/// Skips (prints why, `None`) or, when `required`, fails the test.
fn unavailable_when<T>(required: bool, service: &str, why: &str) -> Option<T> {
    let message = format!("{service} unavailable for this test: {why}");
    assert!(
        !required,
        "{message} (REQUIRE_SERVICES=1, so this fails instead of skipping)"
    );
    eprintln!("skipped: {message}");
    None
}

/// The URL of the server-wide PostgreSQL database tests create their databases from.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        .unwrap_or_else(|| LOCAL_POSTGRES.to_owned())
}

/// Replaces the database name (the path) of a PostgreSQL URL, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// A PostgreSQL database that exists for one test and is dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// The connection URL of this test's database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime we may use, so the clean-up gets a thread and a runtime of its own.
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Creates a fresh, empty PostgreSQL database for the calling test.
///
/// Returns `None` after printing why when the server cannot be reached.
///
/// # Panics
///
/// When the server cannot be reached and `REQUIRE_SERVICES=1`, or when it answers but refuses to create the
/// database.
pub async fn postgres() -> Option<PgDatabase> {
    postgres_at(postgres_admin_url(), services_required()).await
}

async fn postgres_at(admin_url: String, required: bool) -> Option<PgDatabase> {
    let connect = PgConnection::connect(&admin_url);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return unavailable_when(required, "PostgreSQL", &format!("cannot connect: {e}"));
        }
        Err(_) => return unavailable_when(required, "PostgreSQL", "connect timed out"),
    };
    let name = unique_name("test");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("PostgreSQL answered but refused CREATE DATABASE");
    let _ = conn.close().await;
    let url = with_database(&admin_url, &name);
    Some(PgDatabase {
        admin_url,
        name,
        url,
    })
}

/// The Redis URL tests use: `REDIS_URL`, or the machine's local server.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| LOCAL_REDIS.to_owned())
}

/// One test's share of Redis: the URL and a key prefix no other test uses. Keys under the prefix are deleted
/// when this is dropped.
#[derive(Debug)]
pub struct RedisSlice {
    url: String,
    prefix: String,
}

impl RedisSlice {
    /// The Redis server's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix (ending in `:`) every key of this test should start with.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key under this test's prefix.
    #[must_use]
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Opens a multiplexed connection that reconnects by itself.
    ///
    /// # Panics
    ///
    /// When the server answered a moment ago and no longer does.
    pub async fn connection(&self) -> redis::aio::ConnectionManager {
        let client = redis::Client::open(self.url.as_str()).expect("a valid Redis URL");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("Redis answered a moment ago")
    }
}

impl Drop for RedisSlice {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        let cleanup = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(CONNECT_TIMEOUT) else {
                return;
            };
            let keys: Vec<String> = match redis::cmd("KEYS").arg(&pattern).query(&mut conn) {
                Ok(keys) => keys,
                Err(_) => return,
            };
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        });
        let _ = cleanup.join();
    }
}

/// Gives the calling test the Redis URL and a key prefix of its own, after checking that Redis answers.
///
/// Returns `None` after printing why when the server cannot be reached.
///
/// # Panics
///
/// When the server cannot be reached and `REQUIRE_SERVICES=1`.
pub async fn redis() -> Option<RedisSlice> {
    let url = redis_url();
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(e) => return unavailable("Redis", &format!("bad REDIS_URL: {e}")),
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return unavailable("Redis", &format!("cannot connect: {e}")),
        Err(_) => return unavailable("Redis", "connect timed out"),
    }
    // A hash tag keeps every key of one test in one slot, so multi-key scripts work on Redis Cluster too.
    let prefix = format!("{{{}}}:", unique_name("test"));
    Some(RedisSlice { url, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }

    #[tokio::test]
    async fn a_missing_service_skips_the_test() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        assert!(
            postgres_at("postgres://postgres@127.0.0.1:1/postgres".to_owned(), false)
                .await
                .is_none()
        );
    }

    #[tokio::test]
    #[should_panic(expected = "REQUIRE_SERVICES=1, so this fails instead of skipping")]
    async fn a_missing_service_fails_the_test_when_services_are_required() {
        let _ = postgres_at("postgres://postgres@127.0.0.1:1/postgres".to_owned(), true).await;
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
    }
}
