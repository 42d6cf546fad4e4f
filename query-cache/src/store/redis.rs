//! The Redis tier: values with their generations, read in one pipelined round trip, written only if no
//! invalidation happened since the read (a Lua check-and-set), invalidated by generation bumps announced on a
//! pub/sub channel that keeps every instance's in-process tier coherent.
//!
//! A read is one `MGET` (the value and its generations). Keys (every key of a tenant shares the hash tag `{tenant}`, so multi-key commands stay valid on Redis
//! Cluster):
//!
//! | key | holds |
//! |---|---|
//! | `<prefix>qc:{<tenant>}:v:<name>:<params>` | the generations it was written under, a bar, the record; `PX` = TTL + stale window |
//! | `<prefix>qc:{<tenant>}:k:<name>:<params>` | the key's generation |
//! | `<prefix>qc:{<tenant>}:t:<tag>` | a tag's generation |
//! | `<prefix>qc:{<tenant>}:a` | the tenant's generation |
//!
//! No `KEYS` or `SCAN` is ever sent.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BoxFuture, L2Lookup, L2Value, LocalInvalidator, SecondTier};
use crate::cache::QueryCacheBuilder;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::key::CacheKey;
use crate::stats::RedisStatus;

/// The write. The stored value is `<generations as decimal, comma-separated>|<postcard record>`, so that the
/// script can write the generations itself. With `ARGV[3] == "check"`, it first compares the generations with
/// the ones read before the load (`ARGV[4..]`) and writes nothing if any moved. With `"current"` (a direct
/// insert of a new value) it bumps the key's generation first (a load racing elsewhere cannot overwrite the
/// new value), records the generations it finds, and announces the key on the channel (other instances drop
/// their in-process copy); `ARGV[4]` is the generation TTL, `ARGV[5]` the channel, `ARGV[6]` the message.
const SET_VALUE: &str = r"
local mode = ARGV[3]
local seen = {}
local first = 2
if mode == 'current' then
  seen[1] = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  first = 3
end
for i = first, #KEYS do
  local g = redis.call('GET', KEYS[i]) or '0'
  if mode == 'check' and tonumber(g) ~= tonumber(ARGV[i + 2]) then return 0 end
  seen[#seen + 1] = g
end
redis.call('SET', KEYS[1], table.concat(seen, ',') .. '|' .. ARGV[2], 'PX', ARGV[1])
if mode == 'current' then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return 1
";

/// Record format version (first byte of every stored value).
const RECORD_VERSION: u8 = 2;

/// A connection to Redis for one or more caches: where keys live, how long to wait, how to back off.
///
/// Built without connecting ([`RedisStore::new`] is synchronous and never fails on a down server): a cache
/// can start while Redis is down and use it once it answers.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<RedisShared>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

pub(crate) struct RedisShared {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// Generation keys outlive every value (so a reset generation can never revive an old value).
    generation_ttl_ms: u64,
    ping_interval: Duration,
    format: ValueFormat,
    instance: String,
    started: Instant,
    down_until_ms: AtomicU64,
    failures: AtomicU64,
    subscribed: AtomicBool,
    /// Invalidations Redis did not receive, replayed before Redis is read again.
    pending: Mutex<Vec<Pending>>,
    has_pending: AtomicBool,
    script: redis::Script,
    /// Freshness of records (wall clock; manual in tests).
    clock: Clock,
}

#[derive(Debug, Clone)]
enum Pending {
    Key(CacheKey),
    Tag(String, Option<String>),
}

/// Options of a [`RedisStore`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    ping_interval: Duration,
    format: ValueFormat,
    clock: Clock,
}

/// How values are encoded in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValueFormat {
    /// postcard: compact, a documented stable format (the default).
    #[default]
    Postcard,
    /// JSON: readable with `redis-cli`, larger and slower.
    Json,
}

impl ValueFormat {
    fn encode<V: Serialize>(self, value: &V) -> Result<Vec<u8>, StoreError> {
        match self {
            ValueFormat::Postcard => {
                postcard::to_allocvec(value).map_err(|e| StoreError::Decode(e.to_string()))
            }
            ValueFormat::Json => {
                serde_json::to_vec(value).map_err(|e| StoreError::Decode(e.to_string()))
            }
        }
    }

    fn decode<V: DeserializeOwned>(self, bytes: &[u8]) -> Result<V, StoreError> {
        match self {
            ValueFormat::Postcard => {
                postcard::from_bytes(bytes).map_err(|e| StoreError::Decode(e.to_string()))
            }
            ValueFormat::Json => {
                serde_json::from_slice(bytes).map_err(|e| StoreError::Decode(e.to_string()))
            }
        }
    }
}

impl RedisStoreBuilder {
    /// How values are encoded (default [`ValueFormat::Postcard`]). Instances sharing keys must agree.
    pub fn format(mut self, format: ValueFormat) -> Self {
        self.format = format;
        self
    }

    /// The clock that dates records' freshness (default [`Clock::system`]: Unix time, so instances compare
    /// freshness across processes, within their clocks' skew). Tests share one [`Clock::manual`] between
    /// stores to move time; Redis still drops records itself after their TTL plus stale window in real time.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A prefix for every key and the channel (for example `app:`); default none.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one Redis operation may take before it counts as failed (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often the invalidation subscriber pings to find a dead connection (default 1 s); a missed message
    /// is served for at most about this plus the timeout.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Builds the store without connecting.
    ///
    /// # Errors
    ///
    /// [`StoreError::Redis`] when the URL is not a Redis URL; [`StoreError::NoRuntime`] outside a tokio runtime.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        // The connection manager spawns its driver on the current runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::NoRuntime);
        }
        let client =
            redis::Client::open(self.url.as_str()).map_err(|e| StoreError::Redis(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StoreError::Redis(e.to_string()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(RedisStore {
            shared: Arc::new(RedisShared {
                client,
                conn,
                prefix: self.prefix,
                timeout: self.timeout,
                generation_ttl_ms: 2 * 86_400 * 1000 * 2,
                ping_interval: self.ping_interval,
                format: self.format,
                instance: format!("{}-{}", std::process::id(), nanos % 1_000_000_000_000),
                started: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                subscribed: AtomicBool::new(false),
                pending: Mutex::new(Vec::new()),
                has_pending: AtomicBool::new(false),
                script: redis::Script::new(SET_VALUE),
                clock: self.clock,
            }),
        })
    }
}

impl RedisStore {
    /// Options for a store at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: String::new(),
            timeout: Duration::from_millis(250),
            ping_interval: Duration::from_secs(1),
            format: ValueFormat::Postcard,
            clock: Clock::system(),
        }
    }

    /// A store at `url` with the default options.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::build`].
    pub fn new(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).build()
    }

    /// The state of the connection.
    #[must_use]
    pub fn status(&self) -> RedisStatus {
        self.shared.status()
    }

    /// The Redis key holding the value of `key` (for tests and operators).
    #[must_use]
    pub fn value_key(&self, key: &CacheKey) -> String {
        self.shared.value_key(key)
    }
}

impl RedisShared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn status(&self) -> RedisStatus {
        RedisStatus {
            up: self.failures.load(Ordering::Acquire) == 0,
            subscribed: self.subscribed.load(Ordering::Acquire),
            consecutive_failures: self.failures.load(Ordering::Acquire),
        }
    }

    fn readable(&self) -> bool {
        self.now_ms() >= self.down_until_ms.load(Ordering::Acquire)
    }

    fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Release);
        }
    }

    fn failed(&self) -> StoreError {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        // Skip reads for 100 ms, doubling per failure up to 1.6 s, so a dead Redis costs one timeout per
        // period instead of one per request.
        let backoff = 100u64 << failures.min(5).saturating_sub(1);
        self.down_until_ms
            .store(self.now_ms().saturating_add(backoff), Ordering::Release);
        StoreError::Down
    }

    async fn run<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Ok(value)
            }
            Ok(Err(e)) => {
                let _ = self.failed();
                Err(StoreError::Redis(e.to_string()))
            }
            Err(_) => {
                let _ = self.failed();
                Err(StoreError::Timeout)
            }
        }
    }

    fn base(&self, tenant: &str) -> String {
        format!("{}qc:{{{tenant}}}:", self.prefix)
    }

    fn value_key(&self, key: &CacheKey) -> String {
        format!(
            "{}v:{}",
            self.base(key.tenant()),
            &key.as_str()[key.tenant().len() + 1..]
        )
    }

    fn key_generation(&self, key: &CacheKey) -> String {
        format!(
            "{}k:{}",
            self.base(key.tenant()),
            &key.as_str()[key.tenant().len() + 1..]
        )
    }

    fn tag_generation(&self, tenant: &str, tag: Option<&str>) -> String {
        match tag {
            Some(tag) => format!("{}t:{tag}", self.base(tenant)),
            None => format!("{}a", self.base(tenant)),
        }
    }

    fn channel(&self) -> String {
        format!("{}qc:invalidations", self.prefix)
    }

    /// Generation keys of a key, in the order records store them: key, tenant, tags.
    fn generation_keys(&self, key: &CacheKey) -> Vec<String> {
        let mut keys = vec![
            self.key_generation(key),
            self.tag_generation(key.tenant(), None),
        ];
        keys.extend(
            key.tags()
                .iter()
                .map(|tag| self.tag_generation(key.tenant(), Some(tag))),
        );
        keys
    }

    fn message(&self, pending: &Pending) -> String {
        match pending {
            Pending::Key(key) => format!("{}\nK\n{}", self.instance, key.as_str()),
            Pending::Tag(tenant, Some(tag)) => format!("{}\nT\n{tenant}\n{tag}", self.instance),
            Pending::Tag(tenant, None) => format!("{}\nA\n{tenant}", self.instance),
        }
    }

    async fn send_invalidation(&self, pending: &Pending) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        match pending {
            Pending::Key(key) => {
                let generation = self.key_generation(key);
                pipe.incr(&generation, 1).ignore();
                pipe.pexpire(
                    &generation,
                    i64::try_from(self.generation_ttl_ms).unwrap_or(i64::MAX),
                )
                .ignore();
                pipe.del(self.value_key(key)).ignore();
            }
            Pending::Tag(tenant, tag) => {
                let generation = self.tag_generation(tenant, tag.as_deref());
                pipe.incr(&generation, 1).ignore();
                pipe.pexpire(
                    &generation,
                    i64::try_from(self.generation_ttl_ms).unwrap_or(i64::MAX),
                )
                .ignore();
            }
        }
        pipe.publish(self.channel(), self.message(pending)).ignore();
        let mut conn = self.conn.clone();
        self.run(pipe.query_async::<()>(&mut conn)).await
    }

    /// Sends the invalidations Redis missed. Until this succeeds, Redis is not read (it may hold values those
    /// invalidations remove).
    async fn replay_pending(&self) -> Result<(), StoreError> {
        if !self.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let batch: Vec<Pending> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (i, item) in batch.iter().enumerate() {
            if let Err(e) = self.send_invalidation(item).await {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let rest = batch[i..].iter().cloned();
                let newer = std::mem::take(&mut *pending);
                pending.extend(rest);
                pending.extend(newer);
                return Err(e);
            }
        }
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.has_pending
            .store(!pending.is_empty(), Ordering::Release);
        Ok(())
    }

    /// Queues an invalidation for when Redis answers again (replayed before Redis is read).
    fn defer(&self, item: Pending) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: keep the newest 10 000 (older ones are still covered by their values' TTLs).
        if pending.len() >= 10_000 {
            pending.remove(0);
        }
        pending.push(item);
        self.has_pending.store(true, Ordering::Release);
    }

    async fn invalidate(&self, item: Pending) -> Result<(), StoreError> {
        let result = match self.replay_pending().await {
            Ok(()) => self.send_invalidation(&item).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.defer(item);
        }
        result
    }
}

/// One record as stored after its generations: format version, load time, stale window, encoded value.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    version: u8,
    load_ms: u64,
    /// Wall-clock end of freshness. Redis drops the record itself at the end of the stale window (`PX`), so
    /// clock skew between instances only moves the fresh/stale boundary, by the skew.
    fresh_until_unix_ms: u64,
    value: Option<Vec<u8>>,
}

/// Splits `g1,g2,...|record` into the generations and the record bytes.
fn split_generations(raw: &[u8]) -> Option<(Vec<u64>, &[u8])> {
    let bar = raw.iter().position(|&b| b == b'|')?;
    let text = std::str::from_utf8(&raw[..bar]).ok()?;
    let generations = text
        .split(',')
        .map(|g| g.parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((generations, &raw[bar + 1..]))
}

/// The Redis tier of a cache of `V`, values encoded with postcard.
struct RedisTier<V> {
    shared: Arc<RedisShared>,
    _values: PhantomData<fn() -> V>,
}

impl<V> SecondTier<V> for RedisTier<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<L2Lookup<V>, StoreError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.replay_pending().await?;
            // One command: the value and every generation it depends on (one slot: they share the hash tag).
            let mut keys = vec![shared.value_key(key)];
            keys.extend(shared.generation_keys(key));
            let mut conn = shared.conn.clone();
            let mut replies: Vec<Option<Vec<u8>>> = shared
                .run(redis::cmd("MGET").arg(&keys).query_async(&mut conn))
                .await?;
            let raw = if replies.is_empty() {
                None
            } else {
                replies.remove(0)
            };
            let generations: Vec<u64> = replies
                .iter()
                .map(|g| {
                    g.as_deref()
                        .and_then(|g| std::str::from_utf8(g).ok())
                        .and_then(|g| g.parse().ok())
                        .unwrap_or(0)
                })
                .collect();
            let found = match raw {
                None => None,
                Some(raw) => {
                    let (stored_generations, rest) = split_generations(&raw)
                        .ok_or_else(|| StoreError::Decode("no generations".to_owned()))?;
                    let record: Record = postcard::from_bytes(rest)
                        .map_err(|e| StoreError::Decode(e.to_string()))?;
                    if record.version != RECORD_VERSION || stored_generations != generations {
                        None
                    } else {
                        let value = match record.value {
                            Some(bytes) => Some(shared.format.decode::<V>(&bytes)?),
                            None => None,
                        };
                        Some(L2Value {
                            value,
                            fresh_for: Duration::from_millis(
                                record
                                    .fresh_until_unix_ms
                                    .saturating_sub(shared.clock.wall_ms()),
                            ),
                            load_ms: record.load_ms,
                        })
                    }
                }
            };
            Ok(L2Lookup { found, generations })
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        value: &'a Option<V>,
        fresh: Duration,
        stale: Duration,
        load_ms: u64,
        generations: Option<Vec<u64>>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let encoded = match value {
                Some(v) => Some(shared.format.encode(v)?),
                None => None,
            };
            let record = Record {
                version: RECORD_VERSION,
                load_ms,
                fresh_until_unix_ms: shared
                    .clock
                    .wall_ms()
                    .saturating_add(crate::clock::millis(fresh)),
                value: encoded,
            };
            let bytes =
                postcard::to_allocvec(&record).map_err(|e| StoreError::Decode(e.to_string()))?;
            let px = crate::clock::millis(fresh.saturating_add(stale)).max(1);
            let mut invocation = shared.script.prepare_invoke();
            invocation.key(shared.value_key(key));
            for generation_key in shared.generation_keys(key) {
                invocation.key(generation_key);
            }
            invocation.arg(px).arg(bytes);
            match &generations {
                Some(expected) => {
                    invocation.arg("check");
                    for g in expected {
                        invocation.arg(*g);
                    }
                }
                None => {
                    invocation
                        .arg("current")
                        .arg(shared.generation_ttl_ms)
                        .arg(shared.channel())
                        .arg(shared.message(&Pending::Key(key.clone())));
                }
            }
            let mut conn = shared.conn.clone();
            let result: Result<i64, StoreError> =
                shared.run(invocation.invoke_async(&mut conn)).await;
            if result.is_err() && generations.is_none() {
                // Redis may still hold the previous value: remove it (and tell the others) once it answers.
                shared.defer(Pending::Key(key.clone()));
            }
            result.map(|_| ())
        })
    }

    fn invalidate_key<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.shared.invalidate(Pending::Key(key.clone())))
    }

    fn invalidate_tag<'a>(
        &'a self,
        tenant: &'a str,
        tag: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            self.shared
                .invalidate(Pending::Tag(tenant.to_owned(), tag.map(str::to_owned))),
        )
    }

    fn status(&self) -> RedisStatus {
        self.shared.status()
    }

    fn readable(&self) -> bool {
        self.shared.readable()
    }

    fn defer_invalidation(&self, key: &CacheKey) {
        self.shared.defer(Pending::Key(key.clone()));
    }
}

/// Starts the invalidation subscriber once the cache exists.
pub(crate) struct CoherenceStarter {
    shared: Arc<RedisShared>,
}

impl CoherenceStarter {
    pub(crate) fn start(self, cache: Weak<dyn LocalInvalidator>) {
        // Without a runtime there is no subscriber: the in-process tier then stays capped at its max age.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(subscribe_loop(self.shared, cache));
        }
    }
}

/// Keeps one pub/sub connection, applies other instances' invalidations, and flushes the in-process tier
/// whenever messages may have been missed (on every connect and every disconnect).
async fn subscribe_loop(shared: Arc<RedisShared>, cache: Weak<dyn LocalInvalidator>) {
    let channel = shared.channel();
    let mut backoff = Duration::from_millis(50);
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let Ok(Ok(pubsub)) =
            tokio::time::timeout(shared.timeout.max(Duration::from_millis(500)), connected).await
        else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(50);
        {
            let Some(local) = cache.upgrade() else { return };
            // Anything published while we were away is lost: start from an empty in-process tier.
            local.flush_local();
            local.set_coherent(true);
        }
        shared.subscribed.store(true, Ordering::Release);
        let _ = shared.replay_pending().await;
        let (mut sink, mut stream) = pubsub.split();
        let mut ticker = tokio::time::interval(shared.ping_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(local) = cache.upgrade() else { return };
                    let Ok(text) = message.get_payload::<String>() else { continue };
                    apply(&shared.instance, &text, &*local);
                }
                _ = ticker.tick() => {
                    if cache.strong_count() == 0 {
                        return;
                    }
                    let ping = tokio::time::timeout(shared.timeout.max(Duration::from_millis(500)), sink.ping::<String>());
                    if !matches!(ping.await, Ok(Ok(_))) {
                        break;
                    }
                    let _ = shared.replay_pending().await;
                }
            }
        }
        shared.subscribed.store(false, Ordering::Release);
        let Some(local) = cache.upgrade() else { return };
        local.set_coherent(false);
        local.flush_local();
    }
}

fn apply(own_instance: &str, text: &str, local: &dyn LocalInvalidator) {
    let mut parts = text.split('\n');
    let (Some(instance), Some(kind)) = (parts.next(), parts.next()) else {
        return;
    };
    if instance == own_instance {
        return;
    }
    match (kind, parts.next(), parts.next()) {
        ("K", Some(key), None) => local.invalidate_local_key(key),
        ("T", Some(tenant), Some(tag)) => local.invalidate_local_tag(tenant, Some(tag)),
        ("A", Some(tenant), None) => local.invalidate_local_tag(tenant, None),
        _ => {}
    }
}

impl<V> QueryCacheBuilder<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Two levels: this process's tier in front of Redis, kept coherent with other instances over Redis
    /// pub/sub. The subscriber starts with [`build`](QueryCacheBuilder::build) (inside a tokio runtime).
    pub fn two_level(self, store: &RedisStore) -> Self {
        let mut builder = self.second_tier(Arc::new(RedisTier::<V> {
            shared: Arc::clone(&store.shared),
            _values: PhantomData,
        }));
        builder.coherence = Some(CoherenceStarter {
            shared: Arc::clone(&store.shared),
        });
        builder
    }

    /// Redis only: no in-process tier, every lookup reads Redis (one pipelined round trip).
    pub fn redis_only(self, store: &RedisStore) -> Self {
        self.without_in_process_tier()
            .second_tier(Arc::new(RedisTier::<V> {
                shared: Arc::clone(&store.shared),
                _values: PhantomData,
            }))
    }
}
