//! The helpers against the real PostgreSQL and Redis of this machine.

use redis::AsyncCommands;
use sqlx::{Connection, Row};

#[tokio::test]
async fn each_test_gets_its_own_postgres_database_dropped_afterwards() {
    let db = test_support::require!(test_support::postgres().await);
    let other = test_support::require!(test_support::postgres().await);
    assert_ne!(db.name(), other.name());

    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let row = sqlx::query("SELECT current_database() AS name")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("name"), db.name());
    conn.close().await.unwrap();

    let name = db.name().to_owned();
    drop(db);
    let mut admin = sqlx::PgConnection::connect(&test_support::postgres_admin_url())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "the database should be dropped with its guard");
}

#[tokio::test]
async fn each_test_gets_its_own_redis_prefix_cleaned_afterwards() {
    let slice = test_support::require!(test_support::redis().await);
    let other = test_support::require!(test_support::redis().await);
    assert_ne!(slice.prefix(), other.prefix());

    let mut conn = slice.connection().await;
    let key = slice.key("greeting");
    let () = conn.set(&key, "hello").await.unwrap();
    let read: String = conn.get(&key).await.unwrap();
    assert_eq!(read, "hello");
    let seen_by_other: Option<String> = conn.get(other.key("greeting")).await.unwrap();
    assert_eq!(seen_by_other, None);

    drop(slice);
    let after: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(
        after, None,
        "the prefix's keys should be deleted with its guard"
    );
}

#[tokio::test]
async fn fault_proxy_cuts_and_restores_postgres() {
    let db = test_support::require!(test_support::postgres().await);
    let (proxy, url) = test_support::FaultProxy::in_front_of(db.url())
        .await
        .unwrap();

    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();

    proxy.cut();
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
    assert!(sqlx::PgConnection::connect(&url).await.is_err());

    proxy.restore();
    let mut again = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut again).await.unwrap();
}
