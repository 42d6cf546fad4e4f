//! The Redis and two-level stores against the real Redis (through test-support): sharing between instances,
//! coherence of in-process tiers over pub/sub, conditional writes, and outages (a cut proxy, a killed server).
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use query_cache::{CacheKey, QueryCache, RedisStore, Tier};
use test_support::FaultProxy;

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_millis(200))
        .build()
        .expect("valid store")
}

fn two_level(store: &RedisStore) -> QueryCache<String> {
    QueryCache::builder()
        .two_level(store)
        .build()
        .expect("valid config")
}

fn key(n: u32) -> CacheKey {
    CacheKey::new("42", "dashboard", &n)
        .expect("valid key")
        .tagged(["invoices"])
        .expect("valid key")
}

fn loader(
    calls: &Arc<AtomicU64>,
    value: &str,
) -> impl FnOnce() -> std::future::Ready<Result<String, std::convert::Infallible>> + use<> {
    let calls = Arc::clone(calls);
    let value = value.to_owned();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(value))
    }
}

/// Waits (polling, bounded) until a condition holds; returns how long it took.
async fn within(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() <= limit {
        if condition() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn subscribed(cache: &QueryCache<String>) {
    let ok = within(Duration::from_secs(5), || {
        cache.stats().redis.is_some_and(|r| r.subscribed)
    })
    .await;
    assert!(ok.is_some(), "the invalidation subscriber did not connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_only_store_shares_values_between_instances() {
    let redis = test_support::require!(test_support::redis().await);
    let a: QueryCache<String> = QueryCache::builder()
        .redis_only(&store(redis.url(), redis.prefix()))
        .build()
        .unwrap();
    let b: QueryCache<String> = QueryCache::builder()
        .redis_only(&store(redis.url(), redis.prefix()))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    assert_eq!(
        a.get_or_load(&key(1), Tier::Short, loader(&calls, "v1"))
            .await
            .unwrap(),
        "v1"
    );
    assert_eq!(
        b.get_or_load(&key(1), Tier::Short, loader(&calls, "other"))
            .await
            .unwrap(),
        "v1"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(b.stats().l2_hits, 1);

    // The value sits under the test's prefix, with a hash tag, and expires with the tier.
    let store = store(redis.url(), redis.prefix());
    let value_key = store.value_key(&key(1));
    assert!(
        value_key.starts_with(redis.prefix()) && value_key.contains("{42}"),
        "{value_key}"
    );
    let mut conn = redis.connection().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&value_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((59_000..=60_000).contains(&pttl), "pttl {pttl}");

    b.invalidate_tag("42", "invoices").await.unwrap();
    assert_eq!(
        a.get_or_load(&key(1), Tier::Short, loader(&calls, "v2"))
            .await
            .unwrap(),
        "v2"
    );
    a.invalidate(&key(1)).await.unwrap();
    assert_eq!(
        b.get_or_load(&key(1), Tier::Short, loader(&calls, "v3"))
            .await
            .unwrap(),
        "v3"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_instance_reaches_the_others_in_process_tier_within_100_ms() {
    let redis = test_support::require!(test_support::redis().await);
    let a = two_level(&store(redis.url(), redis.prefix()));
    let b = two_level(&store(redis.url(), redis.prefix()));
    subscribed(&a).await;
    subscribed(&b).await;
    let calls = Arc::new(AtomicU64::new(0));
    for (cache, n) in [(&a, 1), (&b, 1), (&a, 2), (&b, 2)] {
        cache
            .get_or_load(&key(n), Tier::Medium, loader(&calls, "old"))
            .await
            .unwrap();
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "b found a's values in Redis"
    );
    assert_eq!(
        b.get(&key(1)).as_deref(),
        Some("old"),
        "b holds it in process"
    );

    a.invalidate_tag("42", "invoices").await.unwrap();
    let took = within(Duration::from_millis(100), || {
        b.get(&key(1)).is_none() && b.get(&key(2)).is_none()
    })
    .await;
    assert!(
        took.is_some(),
        "b still served the invalidated value after 100 ms"
    );

    b.get_or_load(&key(1), Tier::Medium, loader(&calls, "new"))
        .await
        .unwrap();
    a.get_or_load(&key(1), Tier::Medium, loader(&calls, "newer"))
        .await
        .unwrap();
    let removed = |c: &QueryCache<String>| c.stats().tier(Tier::Medium).unwrap().invalidations;
    let before = removed(&a);
    b.invalidate(&key(1)).await.unwrap();
    let took = within(Duration::from_millis(100), || a.get(&key(1)).is_none()).await;
    assert!(
        took.is_some(),
        "a still served the invalidated key after 100 ms"
    );
    assert_eq!(
        removed(&a),
        before + 1,
        "the entry the message removed counts in its tier on the instance that held it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_raced_an_invalidation_on_another_instance_is_not_stored_in_redis() {
    let redis = test_support::require!(test_support::redis().await);
    let a = two_level(&store(redis.url(), redis.prefix()));
    let b = two_level(&store(redis.url(), redis.prefix()));
    subscribed(&a).await;
    subscribed(&b).await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = {
        let a = a.clone();
        tokio::spawn(async move {
            a.get_or_load(&key(9), Tier::Short, move || async move {
                let _ = started_tx.send(());
                let _ = release_rx.await;
                Ok::<_, std::convert::Infallible>("read before the write".to_owned())
            })
            .await
        })
    };
    started_rx.await.unwrap();
    b.invalidate_tag("42", "invoices").await.unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), "read before the write");
    // Neither Redis nor a's own tier kept it.
    let calls = Arc::new(AtomicU64::new(0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        b.get_or_load(&key(9), Tier::Short, loader(&calls, "fresh"))
            .await
            .unwrap(),
        "fresh"
    );
    assert_eq!(a.get(&key(9)), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_falls_back_to_the_loader_and_loses_no_invalidation() {
    let redis = test_support::require!(test_support::redis().await);
    let (proxy, proxied) = FaultProxy::in_front_of(redis.url()).await.unwrap();
    let a_store = store(&proxied, redis.prefix());
    let a = two_level(&a_store);
    let b = two_level(&store(redis.url(), redis.prefix()));
    subscribed(&a).await;
    subscribed(&b).await;
    let calls = Arc::new(AtomicU64::new(0));
    assert_eq!(
        b.get_or_load(&key(1), Tier::Medium, loader(&calls, "v1"))
            .await
            .unwrap(),
        "v1"
    );

    proxy.cut();
    let down = within(Duration::from_secs(5), || {
        !a.stats().redis.unwrap().subscribed
    })
    .await;
    assert!(down.is_some(), "the subscriber noticed the cut");
    // No request fails because the cache failed: the loader answers, the in-process tier keeps the value.
    let started = std::time::Instant::now();
    assert_eq!(
        a.get_or_load(&key(2), Tier::Medium, loader(&calls, "v2"))
            .await
            .unwrap(),
        "v2"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a cut Redis cost {:?}",
        started.elapsed()
    );
    assert_eq!(a.get(&key(2)).as_deref(), Some("v2"));
    // An invalidation while Redis is unreachable: local at once, Redis later.
    assert!(a.invalidate_tag("42", "invoices").await.is_err());
    let status = a.stats().redis.unwrap();
    assert!(!status.up, "the outage is reported: {status:?}");

    proxy.restore();
    let back = within(Duration::from_secs(10), || {
        a.stats().redis.unwrap().subscribed
    })
    .await;
    assert!(back.is_some(), "the subscriber reconnected");
    // The invalidation made during the cut reached Redis and b: b's old value is gone.
    let replayed = within(Duration::from_secs(3), || b.get(&key(1)).is_none()).await;
    assert!(
        replayed.is_some(),
        "the invalidation made during the outage was lost"
    );
    assert_eq!(
        b.get_or_load(&key(1), Tier::Medium, loader(&calls, "v3"))
            .await
            .unwrap(),
        "v3"
    );
    assert!(
        a.stats().redis.unwrap().up
            || a.get_or_load(&key(3), Tier::Short, loader(&calls, "x"))
                .await
                .is_ok()
    );
}

/// A private redis-server on a free port, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn ready(&self) -> bool {
        within(Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        })
        .await
        .is_some()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_server_then_restarted_serves_nothing_stale() {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !test_support::services_required(),
            "redis-server is needed for this test"
        );
        eprintln!("skipped: no redis-server binary");
        return;
    }
    let port = free_port();
    let server = PrivateRedis::start(port).unwrap();
    assert!(server.ready().await);
    let url = server.url();
    let a = two_level(&store(&url, "kill:"));
    let b = two_level(&store(&url, "kill:"));
    subscribed(&a).await;
    subscribed(&b).await;
    let calls = Arc::new(AtomicU64::new(0));
    a.get_or_load(&key(1), Tier::Long, loader(&calls, "before"))
        .await
        .unwrap();
    b.get_or_load(&key(1), Tier::Long, loader(&calls, "unused"))
        .await
        .unwrap();
    assert_eq!(b.get(&key(1)).as_deref(), Some("before"));

    drop(server);
    // b's subscriber loses its connection and flushes its tier: a change made meanwhile cannot reach it.
    let flushed = within(Duration::from_secs(5), || b.get(&key(1)).is_none()).await;
    assert!(
        flushed.is_some(),
        "b kept serving after losing the invalidation channel"
    );
    // While Redis is dead, reads still answer (from the loader, then from the in-process tier).
    assert_eq!(
        b.get_or_load(&key(1), Tier::Long, loader(&calls, "during"))
            .await
            .unwrap(),
        "during"
    );
    assert!(a.invalidate(&key(1)).await.is_err());

    let server = PrivateRedis::start(port).unwrap();
    assert!(server.ready().await);
    subscribed(&a).await;
    subscribed(&b).await;
    // Reconnected: b flushed what it loaded during the outage (a's invalidation was never delivered to it).
    assert_eq!(b.get(&key(1)), None);
    assert_eq!(
        b.get_or_load(&key(1), Tier::Long, loader(&calls, "after"))
            .await
            .unwrap(),
        "after"
    );
    a.invalidate_tag("42", "invoices").await.unwrap();
    let took = within(Duration::from_millis(100), || b.get(&key(1)).is_none()).await;
    assert!(
        took.is_some(),
        "coherence did not come back after the restart"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_are_readable_in_redis_and_shared() {
    let redis = test_support::require!(test_support::redis().await);
    let json = || {
        RedisStore::builder(redis.url())
            .prefix(redis.prefix())
            .format(query_cache::ValueFormat::Json)
            .build()
            .expect("valid store")
    };
    let a: QueryCache<String> = QueryCache::builder().redis_only(&json()).build().unwrap();
    let b: QueryCache<String> = QueryCache::builder().redis_only(&json()).build().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    a.get_or_load(&key(5), Tier::Short, loader(&calls, "readable"))
        .await
        .unwrap();
    assert_eq!(
        b.get_or_load(&key(5), Tier::Short, loader(&calls, "x"))
            .await
            .unwrap(),
        "readable"
    );
    let mut conn = redis.connection().await;
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(json().value_key(&key(5)))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        raw.windows(10).any(|w| w == b"\"readable\""),
        "the JSON text is in the record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_replaces_the_value_on_every_instance() {
    let redis = test_support::require!(test_support::redis().await);
    let a = two_level(&store(redis.url(), redis.prefix()));
    let b = two_level(&store(redis.url(), redis.prefix()));
    subscribed(&a).await;
    subscribed(&b).await;
    let calls = Arc::new(AtomicU64::new(0));
    a.get_or_load(&key(6), Tier::Short, loader(&calls, "old"))
        .await
        .unwrap();
    assert_eq!(
        b.get_or_load(&key(6), Tier::Short, loader(&calls, "x"))
            .await
            .unwrap(),
        "old"
    );
    a.insert(&key(6), Tier::Short, "new".to_owned()).await;
    let dropped = within(Duration::from_millis(100), || b.get(&key(6)).is_none()).await;
    assert!(dropped.is_some(), "b kept its copy of the replaced value");
    assert_eq!(
        b.get_or_load(&key(6), Tier::Short, loader(&calls, "x"))
            .await
            .unwrap(),
        "new"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
