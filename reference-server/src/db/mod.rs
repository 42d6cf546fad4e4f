//! The database: one pool for SQLite or PostgreSQL, chosen by `DATABASE_URL`, with migrations for each.
//!
//! Queries are written per backend behind repository traits (shared/ARCHITECTURE.md, Storage): `sqlx::Any`
//! cannot read UUID, NUMERIC or timestamp columns on PostgreSQL, so it is not used.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::DatabaseUrl;

/// How long a request waits for a pooled connection before the database counts as not answering.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The server or file could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A connection pool on one of the two supported backends.
#[derive(Debug, Clone)]
pub enum Db {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// The server for many instances.
    Postgres(PgPool),
}

impl Db {
    /// Opens a pool for `url` with at most `max_connections` connections. Nothing is queried yet, except that
    /// SQLite creates its file (and directory) when missing.
    ///
    /// # Errors
    ///
    /// When the URL cannot be used or the SQLite file cannot be created.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Self, DbError> {
        match url {
            DatabaseUrl::Sqlite(url) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(DbError::Connect)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                if let Some(dir) = options
                    .get_filename()
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Self::Sqlite(pool))
            }
            DatabaseUrl::Postgres(url) => {
                let options = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // A connection that died while idle (the server restarted) is found before it is used.
                    .test_before_acquire(true)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Applies every migration this build carries that the database has not seen yet.
    ///
    /// # Errors
    ///
    /// When a migration fails or the database holds migrations this build does not know.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
            Self::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
        .map_err(DbError::Migrate)
    }

    /// One round trip to the database, for readiness.
    ///
    /// # Errors
    ///
    /// When no connection can be had or the query fails.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .map_err(DbError::Query)
    }

    /// The backend's name, for logs and health output.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection, waiting for the ones in use.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Opens a transaction that will write: `BEGIN IMMEDIATE` on SQLite, which takes the write lock at once, so
/// concurrent writers wait for each other (up to the busy timeout) instead of one failing with "database is
/// locked" when it upgrades a read; a plain `BEGIN` on PostgreSQL, whose row locks do the same.
pub trait BeginWrite {
    /// The database of the pool.
    type Database: sqlx::Database;

    /// Begins the transaction.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// Runs the same code on whichever pool `db` holds: `with_pool!(db, |pool| sqlx::query("...").execute(pool))`.
///
/// The body is compiled once per backend, so one SQL text (with `$1`-style parameters, which SQLite reads as
/// numbered parameters too) and one set of Rust types serve both; where the SQL must differ, match on [`Db`].
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
