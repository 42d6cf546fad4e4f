//! The Redis store: every instance shares one state, decided by one server-side script per round trip.
//!
//! The script reads the time from Redis (`TIME`, microseconds) so all instances share one clock; a limiter
//! built with a test clock passes its `now` instead, so the memory and Redis stores can be driven through the
//! same sequence. All keys of a decision are read, and written only when every limit fits, inside one script:
//! all-or-none holds on one Redis node, and on Redis Cluster when a decision's keys share a hash tag (put one in
//! the prefix, e.g. `{rl}:`; with batching, a whole batch must share it). Keys expire by themselves (`PX`) when
//! their state lapses.
//!
//! **Batching** (on by default, exact): decisions that arrive while earlier round trips are in flight are sent
//! together as one script call, evaluated one after another in arrival order on the server, so the answers are
//! exactly those of one call each. It saves Redis the per-call cost of `EVALSHA` (parsing, script lookup, Lua
//! entry), which is what limits a plain GCRA script.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clock::Clock;
use crate::decision::{Decision, DecisionSource};
use crate::error::StoreError;
use crate::gcra::{Limit, LimitOutcome, admit, describe};
use crate::key::Key;
use crate::limiter::{Check, Decide, DecideState};
use crate::store::memory::MemoryStore;

/// The script. `ARGV[1]` is the number of decisions; then, per decision: `now` (0 = Redis' `TIME`), cost, k,
/// `min_px`, and T, tau and charge (0/1) for each of its k limits. `KEYS` holds every decision's keys in order.
/// Returns per decision `now, allowed, tat_1 .. tat_k` (the TATs before the decision). It makes no table per
/// decision and writes only when every limit of the decision fits.
pub const GCRA_SCRIPT: &str = r"
local time_now = nil
local out = {}
local n = 0
local a = 2
local ki = 1
for d = 1, tonumber(ARGV[1]) do
  local now = tonumber(ARGV[a])
  if now == 0 then
    if not time_now then
      local t = redis.call('TIME')
      time_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = time_now
  end
  local cost = tonumber(ARGV[a + 1])
  local k = tonumber(ARGV[a + 2])
  local min_px = tonumber(ARGV[a + 3])
  a = a + 4
  local ok = true
  for i = 0, k - 1 do
    local tat = tonumber(redis.call('GET', KEYS[ki + i])) or 0
    out[n + 3 + i] = tat
    if tat < now then tat = now end
    if tat + tonumber(ARGV[a + 3 * i]) * cost - now > tonumber(ARGV[a + 3 * i + 1]) then ok = false end
  end
  out[n + 1] = now
  out[n + 2] = ok and 1 or 0
  if ok then
    for i = 0, k - 1 do
      if ARGV[a + 3 * i + 2] == '1' then
        local tat = out[n + 3 + i]
        if tat < now then tat = now end
        local new = tat + tonumber(ARGV[a + 3 * i]) * cost
        local px = math.floor((new - now) / 1000) + 1
        if px < min_px then px = min_px end
        redis.call('SET', KEYS[ki + i], string.format('%.0f', new), 'PX', px)
      end
    end
  end
  n = n + 2 + k
  a = a + 3 * k
  ki = ki + k
end
return out
";

/// What the limiter does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit every request unchecked.
    FailOpen,
    /// Refuse every request (`Retry-After: 1`).
    FailClosed,
    /// Decide in this process's memory store (per instance, so the quota multiplies by the instances).
    #[default]
    FallbackToMemory,
}

/// Settings of a [`RedisStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    prefix: String,
    call_timeout: Duration,
    max_batch: usize,
    max_in_flight: usize,
    retry_interval: Duration,
    deny_cache: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "ratelimit:".into(),
            call_timeout: Duration::from_millis(250),
            max_batch: 64,
            max_in_flight: 1,
            retry_interval: Duration::from_millis(200),
            deny_cache: 0,
        }
    }
}

impl RedisConfig {
    /// The key prefix (default `ratelimit:`). Keys are `<prefix><limit>:<key>`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest wait for one decision (default 250 ms); past it the failure policy decides.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The most decisions sent in one script call (default 64; 1 turns batching off).
    #[must_use]
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Script calls in flight at once when batching (default 1: on a small machine one large batch at a time
    /// beat several smaller ones; raise it when Redis is far away).
    #[must_use]
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    /// Remembers up to `capacity` `(limit, key)` pairs that Redis refused, until the time one unit fits again,
    /// and refuses them without a round trip meanwhile (default 0: off). A TAT never moves back, so this refuses
    /// nothing Redis would admit: no overshoot; the figures of the other limits of such a refusal are not known
    /// and reported as full. It spares Redis the traffic of a client hammering a refused key.
    #[must_use]
    pub fn deny_cache(mut self, capacity: usize) -> Self {
        self.deny_cache = capacity;
        self
    }

    /// After a failure, how long decisions go straight to the failure policy before Redis is tried again
    /// (default 200 ms).
    #[must_use]
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }
}

/// One decision as the script takes it.
struct Job {
    keys: Vec<String>,
    /// The decision's arguments (see [`GCRA_SCRIPT`]).
    args: Vec<u64>,
    reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
}

struct RedisInner {
    conn: ConnectionManager,
    script: redis::Script,
    config: RedisConfig,
    batches: Option<mpsc::UnboundedSender<Job>>,
}

/// Limits kept in Redis and shared by every instance that uses the same server and prefix. Clones share one
/// connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<RedisInner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the server at `url` (`redis://host:port/db`). Connects lazily, and reconnects by itself, so
    /// it can be made while Redis is down.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] for a URL that does not parse, or when called outside a tokio runtime.
    pub fn new(url: &str, config: RedisConfig) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.call_timeout))
            .set_response_timeout(Some(config.call_timeout))
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200))
            .set_number_of_retries(3);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Unavailable(
                "a Redis store must be made inside a tokio runtime".into(),
            ));
        }
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let script = redis::Script::new(GCRA_SCRIPT);
        let batches = (config.max_batch > 1).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(batch_loop(rx, conn.clone(), script.clone(), config.clone()));
            tx
        });
        Ok(Self {
            inner: Arc::new(RedisInner {
                conn,
                script,
                config,
                batches,
            }),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The Redis key of `limit` for `key`.
    #[must_use]
    pub fn redis_key(&self, limit: &Limit, key: &Key<'_>) -> String {
        let mut out =
            String::with_capacity(self.inner.config.prefix.len() + limit.name().len() + 24);
        out.push_str(&self.inner.config.prefix);
        out.push_str(limit.name());
        out.push(':');
        key.write_to(&mut out);
        out
    }

    /// Decides `checks` in Redis, at `now_micros` when given (a test clock), else at Redis' own time.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when Redis does not answer within the call timeout, fails, or answers oddly.
    pub async fn decide(
        &self,
        checks: &[Check<'_>],
        cost: u64,
        now_micros: Option<u64>,
    ) -> Result<Decision, StoreError> {
        let owned: Vec<OwnedCheck> = checks.iter().map(OwnedCheck::from).collect();
        let job = self.job(&owned, cost, now_micros);
        let reply = tokio::time::timeout(self.inner.config.call_timeout, self.run(job))
            .await
            .map_err(|_| StoreError::Timeout)??;
        interpret(&owned, cost, &reply)
    }

    fn job(&self, checks: &[OwnedCheck], cost: u64, now: Option<u64>) -> (Vec<String>, Vec<u64>) {
        let mut keys = Vec::with_capacity(checks.len());
        let mut args = Vec::with_capacity(4 + 3 * checks.len());
        // With a test clock the state's time is not Redis' time: keep keys long enough that they cannot expire
        // in real time before the test clock reaches them. Clocks start at 1, so 0 asks for Redis' TIME.
        args.extend([
            now.unwrap_or(0),
            cost,
            checks.len() as u64,
            if now.is_some() { 3_600_000 } else { 0 },
        ]);
        for check in checks {
            keys.push(self.redis_key(&check.limit, &check.key.as_key()));
            let quota = check.limit.quota();
            args.extend([
                quota.emission_interval_micros(),
                quota.tolerance_micros(),
                u64::from(check.charge && cost > 0),
            ]);
        }
        (keys, args)
    }

    async fn run(&self, (keys, args): (Vec<String>, Vec<u64>)) -> Result<Vec<i64>, StoreError> {
        match &self.inner.batches {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Job { keys, args, reply })
                    .map_err(|_| StoreError::Unavailable("batcher stopped".into()))?;
                rx.await
                    .map_err(|_| StoreError::Unavailable("batcher dropped the call".into()))?
            }
            None => {
                let mut invocation = self.inner.script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(1);
                for arg in &args {
                    invocation.arg(*arg);
                }
                let mut conn = self.inner.conn.clone();
                invocation
                    .invoke_async::<Vec<i64>>(&mut conn)
                    .await
                    .map_err(|e| redis_error(&e))
            }
        }
    }
}

fn redis_error(e: &redis::RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// Collects jobs into script calls, at most `max_in_flight` at a time.
async fn batch_loop(
    mut rx: mpsc::UnboundedReceiver<Job>,
    conn: ConnectionManager,
    script: redis::Script,
    config: RedisConfig,
) {
    let permits = Arc::new(Semaphore::new(config.max_in_flight));
    let script = Arc::new(script);
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < config.max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A caller that gave up (its call timed out and the failure policy decided) must not be charged later.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut conn = conn.clone();
        let script = Arc::clone(&script);
        let timeout = config.call_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut invocation = script.prepare_invoke();
            for job in &batch {
                for key in &job.keys {
                    invocation.key(key);
                }
            }
            invocation.arg(batch.len());
            for job in &batch {
                for arg in &job.args {
                    invocation.arg(*arg);
                }
            }
            let result =
                match tokio::time::timeout(timeout, invocation.invoke_async::<Vec<i64>>(&mut conn))
                    .await
                {
                    Ok(Ok(reply)) => Ok(reply),
                    Ok(Err(e)) => Err(redis_error(&e)),
                    Err(_) => Err(StoreError::Timeout),
                };
            match result {
                Ok(reply) => {
                    let mut at = 0;
                    for job in batch {
                        let k = job.keys.len();
                        let part = reply.get(at..at + 2 + k).map(<[i64]>::to_vec);
                        at += 2 + k;
                        let _ = job
                            .reply
                            .send(part.ok_or_else(|| StoreError::BadReply("short reply".into())));
                    }
                }
                Err(e) => {
                    for job in batch {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// A check that owns its key, for decisions that outlive the request.
#[derive(Debug, Clone)]
pub(crate) struct OwnedCheck {
    limit: Limit,
    key: OwnedKey,
    charge: bool,
}

#[derive(Debug, Clone)]
enum OwnedKey {
    Str(Box<str>),
    Bytes(Box<[u8]>),
    Ip(std::net::IpAddr),
    Id(u64),
}

impl OwnedKey {
    fn as_key(&self) -> Key<'_> {
        match self {
            OwnedKey::Str(s) => Key::Str(s),
            OwnedKey::Bytes(b) => Key::Bytes(b),
            OwnedKey::Ip(ip) => Key::Ip(*ip),
            OwnedKey::Id(n) => Key::Id(*n),
        }
    }
}

impl From<&Check<'_>> for OwnedCheck {
    fn from(check: &Check<'_>) -> Self {
        let key = match check.key {
            Key::Str(s) => OwnedKey::Str(s.into()),
            Key::Bytes(b) => OwnedKey::Bytes(b.into()),
            Key::Ip(ip) => OwnedKey::Ip(ip),
            Key::Id(n) => OwnedKey::Id(n),
        };
        Self {
            limit: check.limit.clone(),
            key,
            charge: check.charge,
        }
    }
}

impl OwnedCheck {
    fn as_check(&self) -> Check<'_> {
        Check {
            limit: &self.limit,
            key: self.key.as_key(),
            charge: self.charge,
        }
    }
}

/// Turns one decision's part of the reply (`now, allowed, tat_1 .. tat_k`) into a [`Decision`], with the same
/// arithmetic as the memory store.
fn interpret(checks: &[OwnedCheck], cost: u64, reply: &[i64]) -> Result<Decision, StoreError> {
    let bad = || {
        StoreError::BadReply(format!(
            "{} values for {} limits",
            reply.len(),
            checks.len()
        ))
    };
    if reply.len() != checks.len() + 2 {
        return Err(bad());
    }
    let now = u64::try_from(reply[0]).map_err(|_| bad())?;
    let allowed = reply[1] == 1;
    let mut decision = Decision::new(DecisionSource::Redis);
    decision.allowed = allowed;
    for (check, &tat) in checks.iter().zip(&reply[2..]) {
        let tat = u64::try_from(tat).map_err(|_| bad())?;
        let quota = check.limit.quota();
        let charged = allowed && check.charge && cost > 0;
        let state = if charged {
            admit(tat, now, quota, cost).unwrap_or(tat)
        } else {
            tat
        };
        decision.push(describe(state, now, quota, cost, charged));
    }
    Ok(decision)
}

/// Health of the Redis store as the limiter sees it.
#[derive(Debug, Default)]
struct Health {
    degraded: AtomicBool,
    /// While degraded: the clock time (microseconds) after which Redis is tried again.
    retry_at: AtomicU64,
}

/// A Redis store with its failure policy, as a limiter backend.
pub(crate) struct RedisBackend {
    store: RedisStore,
    policy: FailurePolicy,
    health: Arc<Health>,
    deny_cache: Option<Arc<DenyCache>>,
}

/// `(limit, key)` pairs refused by Redis, with the local time until which they stay refused.
struct DenyCache {
    shards: Box<[std::sync::Mutex<std::collections::HashMap<u64, u64>>]>,
    hasher: foldhash::quality::RandomState,
    per_shard: usize,
}

impl DenyCache {
    const SHARDS: usize = 32;

    fn new(capacity: usize) -> Self {
        let shards = (0..Self::SHARDS)
            .map(|_| std::sync::Mutex::default())
            .collect();
        Self {
            shards,
            hasher: foldhash::quality::RandomState::default(),
            per_shard: capacity.div_ceil(Self::SHARDS),
        }
    }

    fn id(&self, check: &Check<'_>) -> u64 {
        use std::hash::BuildHasher as _;
        self.hasher.hash_one((check.limit.name_hash(), check.key))
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u64>> {
        let index = usize::try_from(id >> 59).unwrap_or(0) % Self::SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn denied_until(&self, id: u64, now: u64) -> Option<u64> {
        self.shard(id)
            .get(&id)
            .copied()
            .filter(|&until| until > now)
    }

    fn insert(&self, id: u64, until: u64, now: u64) {
        let mut shard = self.shard(id);
        if shard.len() >= self.per_shard {
            shard.retain(|_, until| *until > now);
        }
        if shard.len() < self.per_shard {
            shard.insert(id, until);
        }
    }
}

impl RedisBackend {
    pub(crate) fn new(store: RedisStore, policy: FailurePolicy) -> Self {
        let capacity = store.config().deny_cache;
        Self {
            store,
            policy,
            health: Arc::default(),
            deny_cache: (capacity > 0).then(|| Arc::new(DenyCache::new(capacity))),
        }
    }

    pub(crate) fn health(&self) -> crate::limiter::StoreHealth {
        if self.health.degraded.load(Ordering::Acquire) {
            crate::limiter::StoreHealth::RedisDegraded
        } else {
            crate::limiter::StoreHealth::RedisUp
        }
    }

    pub(crate) fn decide(
        &self,
        clock: &Arc<dyn Clock>,
        memory: &MemoryStore,
        checks: &[Check<'_>],
        cost: u64,
    ) -> Decide {
        let now = clock.now_micros();
        if self.health.degraded.load(Ordering::Acquire) {
            let retry_at = self.health.retry_at.load(Ordering::Acquire);
            let retry_interval =
                u64::try_from(self.store.config().retry_interval.as_micros()).unwrap_or(u64::MAX);
            let probe = now >= retry_at
                && self
                    .health
                    .retry_at
                    .compare_exchange(
                        retry_at,
                        now.saturating_add(retry_interval),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
            if !probe {
                return Decide {
                    state: DecideState::Ready(Some(fallback(
                        self.policy,
                        memory,
                        checks,
                        cost,
                        now,
                    ))),
                };
            }
        }
        let deny_ids: Vec<u64> = match &self.deny_cache {
            Some(cache) => {
                let ids: Vec<u64> = checks.iter().map(|c| cache.id(c)).collect();
                if ids.iter().any(|&id| cache.denied_until(id, now).is_some()) {
                    return Decide {
                        state: DecideState::Ready(Some(cached_refusal(cache, &ids, checks, now))),
                    };
                }
                ids
            }
            None => Vec::new(),
        };
        let deny_cache = self.deny_cache.clone();
        let owned: Vec<OwnedCheck> = checks.iter().map(OwnedCheck::from).collect();
        let test_now = (!clock.is_real_time()).then_some(now);
        let store = self.store.clone();
        let health = Arc::clone(&self.health);
        let policy = self.policy;
        let memory = memory.clone();
        let clock = Arc::clone(clock);
        let job = store.job(&owned, cost, test_now);
        Decide {
            state: DecideState::Pending(Box::pin(async move {
                let timeout = store.config().call_timeout;
                let result = match tokio::time::timeout(timeout, store.run(job)).await {
                    Ok(Ok(reply)) => interpret(&owned, cost, &reply),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(StoreError::Timeout),
                };
                match result {
                    Ok(decision) => {
                        if health.degraded.swap(false, Ordering::AcqRel) {
                            tracing::info!("rate limit store: Redis answers again");
                        }
                        if let Some(cache) = &deny_cache
                            && !decision.is_allowed()
                        {
                            // `now` was read before the call, so the deny time never reaches past Redis' own.
                            for (outcome, &id) in decision.outcomes().iter().zip(&deny_ids) {
                                let wait_one =
                                    (outcome.ahead + outcome.t).saturating_sub(outcome.tau);
                                if !outcome.fits() && wait_one > 0 {
                                    cache.insert(id, now.saturating_add(wait_one), now);
                                }
                            }
                        }
                        decision
                    }
                    Err(error) => {
                        let now = clock.now_micros();
                        let interval = u64::try_from(store.config().retry_interval.as_micros())
                            .unwrap_or(u64::MAX);
                        health
                            .retry_at
                            .store(now.saturating_add(interval), Ordering::Release);
                        if !health.degraded.swap(true, Ordering::AcqRel) {
                            tracing::warn!(%error, ?policy, "rate limit store: Redis failed, following the failure policy");
                        }
                        let checks: Vec<Check<'_>> =
                            owned.iter().map(OwnedCheck::as_check).collect();
                        fallback(policy, &memory, &checks, cost, now)
                    }
                }
            })),
        }
    }
}

/// A refusal from the deny cache: the cached limits refuse with their wait; the others are not known.
fn cached_refusal(cache: &DenyCache, ids: &[u64], checks: &[Check<'_>], now: u64) -> Decision {
    let mut d = Decision::new(DecisionSource::DenyCache);
    d.allowed = false;
    for (check, &id) in checks.iter().zip(ids) {
        let quota = check.limit.quota();
        let (t, tau) = (quota.emission_interval_micros(), quota.tolerance_micros());
        let outcome = match cache.denied_until(id, now) {
            Some(until) => {
                let wait = until - now;
                LimitOutcome {
                    ahead: (tau + wait).saturating_sub(t),
                    t,
                    tau,
                    wait_micros: wait,
                }
            }
            None => LimitOutcome {
                ahead: 0,
                t,
                tau,
                wait_micros: 0,
            },
        };
        d.push(outcome);
    }
    d
}

fn fallback(
    policy: FailurePolicy,
    memory: &MemoryStore,
    checks: &[Check<'_>],
    cost: u64,
    now: u64,
) -> Decision {
    match policy {
        FailurePolicy::FallbackToMemory => memory.decide(checks, cost, now),
        FailurePolicy::FailOpen => {
            let mut d = Decision::new(DecisionSource::FailOpen);
            for check in checks {
                let quota = check.limit.quota();
                d.push(LimitOutcome {
                    ahead: 0,
                    t: quota.emission_interval_micros(),
                    tau: quota.tolerance_micros(),
                    wait_micros: 0,
                });
            }
            d
        }
        FailurePolicy::FailClosed => {
            let mut d = Decision::new(DecisionSource::FailClosed);
            d.allowed = false;
            for check in checks {
                let quota = check.limit.quota();
                d.push(LimitOutcome {
                    ahead: quota.tolerance_micros(),
                    t: quota.emission_interval_micros(),
                    tau: quota.tolerance_micros(),
                    wait_micros: 1_000_000,
                });
            }
            d
        }
    }
}
