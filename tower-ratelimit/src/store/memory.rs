//! The in-memory store: sharded, one atomic word per key, bounded.
//!
//! Each key is hashed once per decision (numbers and IPv4 addresses by a folded multiply with random seeds per
//! store, other keys by foldhash with a random seed per store, so clients cannot aim at one shard; two keys
//! share a state only when their 64-bit cell ids collide, with negligible probability); the hash picks the
//! shard, and together with the limit's name hash makes the 64-bit cell id. A shard is an array of slots, each a cell id next to an `AtomicU64` holding the TAT (16 bytes, so a
//! lookup reads one cache line), with open addressing; the cells of one key start at the same slot (chosen by
//! the key's hash alone), so a decision over several limits of one key usually reads one line.
//!
//! A known key takes no lock: each thread caches a reference to the arrays of the shards it used, valid while the
//! shard's version (one atomic load of a line that only changes when the array is replaced) is unchanged, and
//! settles the key with a compare-and-swap on its TAT. So a decision on a known key costs one atomic
//! read-modify-write per limit and writes no shared line but the TAT itself. Everything else (a new key, a stale
//! cache, a cell not found) runs under the shard's mutex, which adds cells in place (state first, then the id,
//! published with release ordering) and replaces the array to grow it or to drop lapsed cells: it first freezes
//! every state of the old array (swapping in a marker), so a compare-and-swap on the old array either lands
//! before the freeze and is copied, or fails and the caller looks again in the new one; no update is lost.
//!
//! Memory: a thread's cache keeps the arrays it holds alive, at most one per shard (1 024 per thread in all).
//! When an array is replaced, the store's epoch moves; a thread lets go of all its replaced arrays of the store
//! the next time it takes the slow path on any of its shards (a new key, or a shard whose array was replaced) or
//! sweeps, or when it exits. A thread that only settles known keys of unchanged shards, or stays idle, keeps
//! them: so beside the current arrays (`table_bytes`), each thread that used the store may hold up to one
//! replaced array per shard, at worst `threads x shards x` the largest array a shard had. Dropping a store
//! frees the dropping thread's entries at once, other threads' when they reuse the entry or exit.
//!
//! A TAT at or before now equals no state at all, so such cells are dropped by sweeps without changing any
//! decision. A shard sweeps itself whenever it has doubled since its last sweep, so memory tracks the keys in use.
//! When the store holds `max_keys` keys and a sweep frees nothing, a new key is counted in its shard's overflow
//! cell for that limit: every new key of that shard shares one budget until keys expire. A flood of fresh keys
//! thus cannot grow memory, and cannot get more than one key's quota per shard; known keys are not affected.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::decision::{Decision, DecisionSource};
use crate::gcra::{Limit, LimitOutcome, MAX_LIMITS_PER_DECISION, Quota, admit, describe};
use crate::key::Key;
use crate::limiter::Check;

/// Bytes per slot of a shard's array: a cell id and its state.
const BYTES_PER_SLOT: usize = size_of::<Slot>();
/// A shard never sweeps below this many keys.
const MIN_SWEEP_AT: usize = 1024;
/// At the cap, a shard sweeps at most this often (microseconds), so a flood cannot make every insert a sweep.
const CAP_SWEEP_INTERVAL_MICROS: u64 = 100_000;
const OVERFLOW_MARK: u64 = 0x6f76_6572_666c_6f77;
/// The bits of a cell id that come from the key alone.
const KEY_BITS: u64 = 0xffff_0000_0000_0000;

/// Settings of a [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    max_keys: usize,
    shards: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_keys: 1_000_000,
            shards: 128,
        }
    }
}

impl MemoryConfig {
    /// The most `(limit, key)` cells held at once (default 1 000 000: with the default 128 shards, arrays of
    /// about 34 MB at the cap). See the module docs for what happens at the cap. On top of the current arrays,
    /// each thread that used the store may hold up to one replaced array per shard until its next slow path on
    /// the store (a new key, a replaced shard, a sweep) or its exit: at worst `threads x` that peak again.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The number of shards, rounded up to a power of two (default 128).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 1 << 16).next_power_of_two();
        self
    }
}

/// An empty slot's id (cell ids are never 0).
const EMPTY: u64 = 0;
/// The state of a cell in an array that has been replaced: whoever reads it looks again in the shard's current
/// array. Never a real state (`admit` never produces it).
const FROZEN: u64 = u64::MAX;
/// Entries in each thread's cache of shard arrays.
const THREAD_CACHE: usize = 1024;

/// One cell: its id and its state, side by side (16 bytes, four to a cache line), so a lookup reads one line.
struct Slot {
    id: AtomicU64,
    tat: AtomicU64,
}

impl Slot {
    const fn empty() -> Self {
        Self {
            id: AtomicU64::new(EMPTY),
            tat: AtomicU64::new(0),
        }
    }
}

/// The first slot to probe for `id`: its top 16 bits (the key's, see [`cell_id`]) first, then the rest.
#[inline]
fn home(id: u64, mask: usize) -> usize {
    usize::try_from(id.rotate_left(16) & (mask as u64)).unwrap_or(0)
}

/// The state word of cell `id` in `slots` (open addressing, linear probing, never full).
#[inline]
fn find(slots: &[Slot], id: u64) -> Option<&AtomicU64> {
    let mask = slots.len().checked_sub(1)?;
    let mut i = home(id, mask);
    loop {
        let slot = slots.get(i)?;
        let found = slot.id.load(Ordering::Acquire);
        if found == id {
            return Some(&slot.tat);
        }
        if found == EMPTY {
            return None;
        }
        i = (i + 1) & mask;
    }
}

/// The smallest array (a power of two, at least 8 slots) that holds `len` cells at most 3/4 full.
fn capacity_for(len: usize) -> usize {
    (len.saturating_mul(4) / 3 + 1).next_power_of_two().max(8)
}

/// A shard's cells, changed only under its mutex. The array is shared (`Arc`) with the threads' caches: cells are
/// added in place (state first, then the id, released), and an array that must grow or shed lapsed cells is
/// replaced by a new one after each of its states has been frozen (swapped for [`FROZEN`]) and copied, so a
/// compare-and-swap on the old array either lands before the freeze (and is copied) or fails.
struct Table {
    slots: Arc<[Slot]>,
    len: usize,
    sweep_at: usize,
    next_cap_sweep: u64,
}

impl Table {
    fn get(&self, id: u64) -> Option<&AtomicU64> {
        find(&self.slots, id)
    }

    /// The cell `id`, added with state 0 when absent; `None` only if it is still not found after that (cannot
    /// happen: only the holder of the mutex adds cells), so that no other key's cell is ever charged instead.
    fn get_or_insert(&mut self, id: u64, version: Versions<'_>) -> Option<&AtomicU64> {
        if find(&self.slots, id).is_none() {
            if (self.len + 1) * 4 > self.slots.len() * 3 {
                let capacity = self.slots.len();
                self.replace(
                    version,
                    |_| true,
                    |kept| capacity_for(kept + 1).max(capacity * 2),
                );
            }
            place(&self.slots, id, 0);
            self.len += 1;
        }
        find(&self.slots, id)
    }

    /// Replaces the array: freezes every state of the old one, keeps the cells whose state `keep` accepts, in a
    /// new array of `capacity(kept)` slots (at least enough to hold them 3/4 full), and tells the threads' caches
    /// (a new shard version, then a new store epoch).
    fn replace(
        &mut self,
        version: Versions<'_>,
        mut keep: impl FnMut(u64) -> bool,
        capacity: impl FnOnce(usize) -> usize,
    ) {
        let mut kept = Vec::with_capacity(self.len);
        for slot in self.slots.iter() {
            let id = slot.id.load(Ordering::Acquire);
            if id == EMPTY {
                continue;
            }
            let tat = slot.tat.swap(FROZEN, Ordering::AcqRel);
            if tat != FROZEN && keep(tat) {
                kept.push((id, tat));
            }
        }
        let capacity = capacity(kept.len()).max(capacity_for(kept.len()));
        let slots: Arc<[Slot]> = (0..capacity).map(|_| Slot::empty()).collect();
        for &(id, tat) in &kept {
            place(&slots, id, tat);
        }
        self.slots = slots;
        self.len = kept.len();
        version.shard.fetch_add(1, Ordering::Release);
        // After the shard's version: a thread that sees the new epoch sees the new version too.
        version.store.fetch_add(1, Ordering::Release);
    }
}

/// The counters a replacement of a shard's array bumps: the shard's version (its threads' cached arrays of that
/// shard are stale) and the store's epoch (some shard's array was replaced: see [`MemoryStore::release_stale`]).
#[derive(Clone, Copy)]
struct Versions<'a> {
    shard: &'a AtomicU64,
    store: &'a AtomicU64,
}

/// Puts a new cell in the first empty slot from its home (the array has room): state first, then the id.
fn place(slots: &[Slot], id: u64, tat: u64) {
    let mask = slots.len() - 1;
    let mut i = home(id, mask);
    while slots[i].id.load(Ordering::Relaxed) != EMPTY {
        i = (i + 1) & mask;
    }
    slots[i].tat.store(tat, Ordering::Relaxed);
    slots[i].id.store(id, Ordering::Release);
}

#[repr(align(64))]
struct Shard {
    /// Bumped whenever the array is replaced; a thread's cached array is current while this has not moved.
    version: AtomicU64,
    table: Mutex<Table>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A thread's reference to one shard's array, valid while the shard's version is `version`.
struct Cached {
    store: u64,
    shard: usize,
    version: u64,
    slots: Arc<[Slot]>,
}

thread_local! {
    /// Each thread's cache of shard arrays, so a known key is settled without touching a lock: one atomic load
    /// (the version) and the compare-and-swap. At most [`THREAD_CACHE`] arrays per thread; an entry is replaced
    /// when its slot is needed for another shard or store.
    static CACHE: RefCell<ThreadCache> = const {
        RefCell::new(ThreadCache {
            entries: Vec::new(),
            seen: Vec::new(),
        })
    };
}

/// A thread's cached arrays, and the last epoch of each store at which it released its stale ones.
struct ThreadCache {
    entries: Vec<Option<Cached>>,
    /// `(store id, epoch)`, at most [`SEEN_STORES`] stores (the oldest goes first).
    seen: Vec<(u64, u64)>,
}

/// Stores whose epoch a thread remembers; with more stores in turn, a thread only checks for stale arrays more
/// often.
const SEEN_STORES: usize = 8;

/// A counter on a cache line of its own (it changes while the store's hot fields are read).
#[repr(align(64))]
struct Padded(AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

struct Inner {
    id: u64,
    shards: Box<[Shard]>,
    shard_mask: u64,
    per_shard_cap: usize,
    hasher: foldhash::quality::RandomState,
    /// Seeds for numbers and IPv4 addresses, hashed with one folded multiply instead of the generic hasher.
    seeds: [u64; 4],
    config: MemoryConfig,
    /// Bumped whenever any shard's array is replaced (after that shard's version).
    epoch: Padded,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // This thread's cached arrays of this store go with it (other threads drop theirs when they reuse the
        // entry for another store, or exit).
        let _ = CACHE.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                cache.seen.retain(|seen| seen.0 != self.id);
                for entry in cache.entries.iter_mut() {
                    if entry.as_ref().is_some_and(|c| c.store == self.id) {
                        *entry = None;
                    }
                }
            }
        });
    }
}

/// Limits kept in this process. Clones share one store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("config", &self.inner.config)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(MemoryConfig::default())
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new(config: MemoryConfig) -> Self {
        let shards = config.shards.max(1).next_power_of_two();
        let per_shard_cap = (config.max_keys / shards).max(1);
        let hasher = foldhash::quality::RandomState::default();
        let shards_vec: Vec<Shard> = (0..shards)
            .map(|_| Shard {
                version: AtomicU64::new(0),
                table: Mutex::new(Table {
                    slots: Arc::new([]),
                    len: 0,
                    sweep_at: MIN_SWEEP_AT.min(per_shard_cap),
                    next_cap_sweep: 0,
                }),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                shards: shards_vec.into_boxed_slice(),
                shard_mask: (shards as u64) - 1,
                per_shard_cap,
                seeds: [
                    hasher.hash_one(1u64),
                    hasher.hash_one(2u64) | 1,
                    hasher.hash_one(3u64),
                    hasher.hash_one(4u64) | 1,
                ],
                hasher,
                config,
                epoch: Padded(AtomicU64::new(0)),
            }),
        }
    }

    /// The number of cells held (one per `(limit, key)` seen and not yet swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().len).sum()
    }

    /// Whether no cell is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured cap on cells.
    #[must_use]
    pub fn max_keys(&self) -> usize {
        self.inner.config.max_keys
    }

    /// Bytes of the shards' current arrays (their allocated capacity). Not counted: replaced arrays that
    /// threads' caches still hold (see [`MemoryConfig::max_keys`]), up to one per shard and thread.
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().slots.len() * BYTES_PER_SLOT)
            .sum()
    }

    /// Drops every cell whose state has lapsed (a TAT at or before `now_micros`): no decision changes.
    pub fn sweep(&self, now_micros: u64) {
        for shard in &self.inner.shards {
            let mut table = shard.lock();
            sweep_table(&mut table, now_micros, self.versions(shard));
        }
        self.release_stale();
    }

    fn versions<'a>(&'a self, shard: &'a Shard) -> Versions<'a> {
        Versions {
            shard: &shard.version,
            store: &self.inner.epoch,
        }
    }

    /// Drops this thread's cached arrays of this store that have been replaced, once per change of the store's
    /// epoch (so a thread releases superseded arrays of every shard, not only of the shards it uses again).
    fn release_stale(&self) {
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let store = self.inner.id;
        let _ = CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return;
            };
            if cache.seen.contains(&(store, epoch)) {
                return;
            }
            for (shard_index, shard) in self.inner.shards.iter().enumerate() {
                let index = self.cache_index(shard_index);
                let Some(entry) = cache.entries.get_mut(index) else {
                    break;
                };
                let stale = entry.as_ref().is_some_and(|c| {
                    c.store == store
                        && c.shard == shard_index
                        && c.version != shard.version.load(Ordering::Acquire)
                });
                if stale {
                    *entry = None;
                }
            }
            match cache.seen.iter_mut().find(|seen| seen.0 == store) {
                Some(seen) => seen.1 = epoch,
                None => {
                    if cache.seen.len() >= SEEN_STORES {
                        cache.seen.remove(0);
                    }
                    cache.seen.push((store, epoch));
                }
            }
        });
    }

    /// The key's seeded hash and the shard it lives in: every limit of one key lives in the same shard, so a
    /// decision over several limits of one key reads one array.
    /// The key's seeded hash: numbers and IPv4 addresses (the usual keys) by one folded multiply with the store's
    /// random seeds (one pair per kind, so kinds never share a count), the rest by the generic hasher.
    #[inline]
    fn key_hash(&self, key: &Key<'_>) -> u64 {
        let [a, b, c, d] = self.inner.seeds;
        match *key {
            Key::Id(n) => folded_multiply(n ^ a, b),
            Key::Ip(IpAddr::V4(v4)) => folded_multiply(u64::from(u32::from(v4)) ^ c, d),
            Key::Str(s) => self.hash_other(Key::Str(s)),
            Key::Bytes(b) => self.hash_other(Key::Bytes(b)),
            Key::Ip(ip) => self.hash_other(Key::Ip(ip)),
        }
    }

    #[inline(never)]
    fn hash_other(&self, key: Key<'_>) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    #[inline]
    fn locate_hashed(&self, key_hash: u64, check: &Check<'_>) -> (usize, u64) {
        // Bits 32 and up pick the shard (at most 16 of them), the top 16 the slot within it (see `cell_id`).
        let shard = usize::try_from((key_hash >> 32) & self.inner.shard_mask).unwrap_or(0);
        (shard, cell_id(key_hash, check.limit.name_hash()))
    }

    fn cache_index(&self, shard: usize) -> usize {
        // Stores start 128 entries apart, so a few stores with 128 shards each do not evict each other.
        let store = usize::try_from(self.inner.id).unwrap_or(0);
        shard.wrapping_add(store.wrapping_mul(128)) % THREAD_CACHE
    }

    /// Runs `f` on this thread's cached array of `shard` when it is the current one; `None` when it is not, or
    /// when `f` says so: the caller then asks under the shard's mutex.
    #[inline]
    fn cached<R>(&self, shard: usize, f: impl FnOnce(&[Slot]) -> Option<R>) -> Option<R> {
        let version = self
            .inner
            .shards
            .get(shard)?
            .version
            .load(Ordering::Acquire);
        let index = self.cache_index(shard);
        CACHE
            .try_with(|cache| {
                let cache = cache.try_borrow().ok()?;
                let entry = cache.entries.get(index)?.as_ref()?;
                if entry.store != self.inner.id || entry.shard != shard || entry.version != version
                {
                    return None;
                }
                f(&entry.slots)
            })
            .ok()
            .flatten()
    }

    /// Runs `f` under `shard`'s mutex, then caches the shard's current array for this thread (and drops its
    /// replaced ones, see [`Self::release_stale`]).
    fn locked<R>(&self, shard_index: usize, f: impl FnOnce(&mut Table) -> R) -> R {
        let shard = &self.inner.shards[shard_index];
        let mut table = shard.lock();
        let result = f(&mut table);
        let version = shard.version.load(Ordering::Relaxed);
        let index = self.cache_index(shard_index);
        let _ = CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return;
            };
            if cache.entries.is_empty() {
                cache.entries.resize_with(THREAD_CACHE, || None);
            }
            let Some(entry) = cache.entries.get_mut(index) else {
                return;
            };
            let current = entry.as_ref().is_some_and(|c| {
                c.store == self.inner.id && c.shard == shard_index && c.version == version
            });
            if !current {
                *entry = Some(Cached {
                    store: self.inner.id,
                    shard: shard_index,
                    version,
                    slots: Arc::clone(&table.slots),
                });
            }
        });
        drop(table);
        // The slow path also lets go of this thread's replaced arrays of other shards (once per epoch).
        self.release_stale();
        result
    }

    /// Decides `checks` at `now_micros`: every check that is to be charged is charged when all fit, none
    /// otherwise.
    #[inline]
    pub(crate) fn decide(&self, checks: &[Check<'_>], cost: u64, now: u64) -> Decision {
        if let [check] = checks {
            return self.decide_one(check, cost, now);
        }
        let n = checks.len().min(MAX_LIMITS_PER_DECISION);
        let mut located = [(0usize, 0u64); MAX_LIMITS_PER_DECISION];
        let mut one_shard = true;
        let mut key_hash = 0;
        for (i, check) in checks[..n].iter().enumerate() {
            // A set usually counts several limits for one key: hash it once.
            if i == 0 || check.key != checks[i - 1].key {
                key_hash = self.key_hash(&check.key);
            }
            located[i] = self.locate_hashed(key_hash, check);
            one_shard &= located[i].0 == located[0].0;
        }
        if n >= 2
            && one_shard
            && cost > 0
            && let Some(decision) = self.decide_known(&checks[..n], &located[..n], cost, now)
        {
            return decision;
        }
        let mut decision = Decision::new(DecisionSource::Memory);
        let mut cells = [(0usize, 0u64); MAX_LIMITS_PER_DECISION];
        let mut states = [0u64; MAX_LIMITS_PER_DECISION];
        let mut charged = [false; MAX_LIMITS_PER_DECISION];
        let mut charges = [Charged::NONE; MAX_LIMITS_PER_DECISION];
        let mut all_fit = true;
        for (i, check) in checks[..n].iter().enumerate() {
            let (shard, id) = located[i];
            let name_hash = check.limit.name_hash();
            let quota = check.limit.quota();
            if check.charge && all_fit && cost > 0 {
                match self.charge(shard, id, name_hash, quota, cost, now) {
                    Ok((cell, done)) => {
                        cells[i] = (shard, cell);
                        states[i] = done.after;
                        charges[i] = done;
                        charged[i] = true;
                    }
                    Err(tat) => {
                        states[i] = tat;
                        all_fit = false;
                    }
                }
            } else {
                let tat = self.peek(shard, id, name_hash);
                states[i] = tat;
                if admit(tat, now, quota, cost).is_none() {
                    all_fit = false;
                }
            }
        }
        if !all_fit {
            for i in 0..n {
                if charged[i] {
                    states[i] = self.refund(cells[i], charges[i]);
                    charged[i] = false;
                }
            }
        }
        decision.allowed = all_fit;
        for i in 0..n {
            let outcome: LimitOutcome =
                describe(states[i], now, checks[i].limit.quota(), cost, charged[i]);
            decision.push(outcome);
        }
        decision
    }

    /// The common case of a set: every limit of one shard (one key), every cell known and in this thread's
    /// cached array, every check charged: no lock at all. `None` (nothing charged) when the case does not apply.
    #[inline]
    fn decide_known(
        &self,
        checks: &[Check<'_>],
        located: &[(usize, u64)],
        cost: u64,
        now: u64,
    ) -> Option<Decision> {
        if checks.iter().any(|c| !c.charge) {
            return None;
        }
        let n = checks.len();
        let mut states = [0u64; MAX_LIMITS_PER_DECISION];
        let mut charges = [Charged::NONE; MAX_LIMITS_PER_DECISION];
        // How many limits were charged (in order), and whether the next one refused (else its array was
        // replaced under us).
        let (charged, refused) = self.cached(located[0].0, |slots| {
            let mut cells: [Option<&AtomicU64>; MAX_LIMITS_PER_DECISION] =
                [None; MAX_LIMITS_PER_DECISION];
            for (cell, &(_, id)) in cells.iter_mut().zip(located) {
                *cell = Some(find(slots, id)?);
            }
            for (i, check) in checks.iter().enumerate() {
                match cas_admit(cells[i]?, check.limit.quota(), cost, now) {
                    Some(Ok(done)) => {
                        states[i] = done.after;
                        charges[i] = done;
                    }
                    Some(Err(tat)) => {
                        states[i] = tat;
                        return Some((i, true));
                    }
                    None => return Some((i, false)),
                }
            }
            Some((n, false))
        })?;
        if charged < n && !refused {
            // The array was replaced while we charged: give back and let the general path decide.
            for i in 0..charged {
                self.refund(located[i], charges[i]);
            }
            return None;
        }
        let all_fit = charged == n;
        if !all_fit {
            // Give back what was charged, as the general path does; the rest are described as they stand.
            for i in 0..charged {
                states[i] = self.refund(located[i], charges[i]);
            }
            for i in charged + 1..n {
                let (shard, id) = located[i];
                states[i] = self.peek(shard, id, checks[i].limit.name_hash());
            }
        }
        let mut decision = Decision::new(DecisionSource::Memory);
        decision.allowed = all_fit;
        for (i, check) in checks.iter().enumerate() {
            let quota = check.limit.quota();
            decision.push(describe(states[i], now, quota, cost, all_fit));
        }
        Some(decision)
    }

    /// One check: the common case, without the bookkeeping of a set.
    #[inline]
    fn decide_one(&self, check: &Check<'_>, cost: u64, now: u64) -> Decision {
        self.decide_single(&check.key, check.limit, check.charge, cost, now)
    }

    /// One limit for one key, from borrowed parts (no copy of the key on the way).
    #[inline]
    fn decide_single(
        &self,
        key: &Key<'_>,
        limit: &Limit,
        charge: bool,
        cost: u64,
        now: u64,
    ) -> Decision {
        self.decide_located(self.locate_single(key, limit), limit, charge, cost, now)
    }

    /// The shard and cell id of `limit` for `key` (to locate before reading the clock, while the key is fresh).
    #[inline]
    pub(crate) fn locate_single(&self, key: &Key<'_>, limit: &Limit) -> (usize, u64) {
        let key_hash = self.key_hash(key);
        let shard = usize::try_from((key_hash >> 32) & self.inner.shard_mask).unwrap_or(0);
        (shard, cell_id(key_hash, limit.name_hash()))
    }

    /// One limit for one located key.
    #[inline]
    pub(crate) fn decide_located(
        &self,
        (shard, id): (usize, u64),
        limit: &Limit,
        charge: bool,
        cost: u64,
        now: u64,
    ) -> Decision {
        let mut decision = Decision::new(DecisionSource::Memory);
        let quota = limit.quota();
        let name_hash = limit.name_hash();
        let outcome = if charge && cost > 0 {
            match self.charge(shard, id, name_hash, quota, cost, now) {
                Ok((_, done)) => describe(done.after, now, quota, cost, true),
                Err(tat) => describe(tat, now, quota, cost, false),
            }
        } else {
            describe(self.peek(shard, id, name_hash), now, quota, cost, false)
        };
        decision.allowed = outcome.fits();
        decision.push(outcome);
        decision
    }

    fn peek(&self, shard: usize, id: u64, name_hash: u64) -> u64 {
        let cached = self.cached(shard, |slots| {
            let tat = find(slots, id)?.load(Ordering::Acquire);
            (tat != FROZEN).then_some(tat)
        });
        if let Some(tat) = cached {
            return tat;
        }
        self.locked(shard, |table| {
            if let Some(cell) = table.get(id) {
                return cell.load(Ordering::Acquire);
            }
            if table.len >= self.inner.per_shard_cap {
                // A new key at the cap would be charged to the overflow cell: read that one.
                let overflow = self.overflow_id(name_hash, shard);
                return table.get(overflow).map_or(0, |c| c.load(Ordering::Acquire));
            }
            0
        })
    }

    fn overflow_id(&self, name_hash: u64, shard: usize) -> u64 {
        self.inner
            .hasher
            .hash_one((OVERFLOW_MARK, name_hash, shard))
            .max(1)
    }

    /// Charges a cell; `Ok((cell id used, the charge))` or `Err(current TAT)`.
    fn charge(
        &self,
        shard_index: usize,
        id: u64,
        name_hash: u64,
        quota: &Quota,
        cost: u64,
        now: u64,
    ) -> Result<(u64, Charged), u64> {
        // A known key: this thread's cached array and one compare-and-swap.
        if let Some(result) = self.cached(shard_index, |slots| {
            cas_admit(find(slots, id)?, quota, cost, now)
        }) {
            return result.map(|t| (id, t));
        }
        self.locked(shard_index, |table| {
            if let Some(cell) = table.get(id) {
                return live(cas_admit(cell, quota, cost, now)).map(|t| (id, t));
            }
            // Unknown key: nothing to store unless it is admitted.
            if admit(0, now, quota, cost).is_none() {
                return Err(0);
            }
            let version = self.versions(&self.inner.shards[shard_index]);
            let cell_id = self.make_room(table, id, now, version, || {
                self.overflow_id(name_hash, shard_index)
            });
            // A cell that cannot be found after insertion (cannot happen) refuses, like a frozen state under the
            // mutex: never another key's cell.
            let Some(cell) = table.get_or_insert(cell_id, version) else {
                return Err(FROZEN);
            };
            live(cas_admit(cell, quota, cost, now)).map(|t| (cell_id, t))
        })
    }

    /// Sweeps when due; returns the cell id to use: `id`, or the shard's overflow cell when at the cap.
    fn make_room(
        &self,
        table: &mut Table,
        id: u64,
        now: u64,
        version: Versions<'_>,
        overflow: impl FnOnce() -> u64,
    ) -> u64 {
        let cap = self.inner.per_shard_cap;
        // Growing: sweep whenever the shard has doubled since the last sweep (amortized O(1) per insert).
        if table.len >= table.sweep_at && table.len < cap {
            sweep_table(table, now, version);
            table.sweep_at = (table.len * 2).max(MIN_SWEEP_AT).min(cap);
        }
        if table.len < cap {
            return id;
        }
        // At the cap: sweep at most once per interval, so a flood cannot make every insert a full sweep.
        if now >= table.next_cap_sweep {
            sweep_table(table, now, version);
            table.next_cap_sweep = now.saturating_add(CAP_SWEEP_INTERVAL_MICROS);
            if table.len < cap {
                return id;
            }
        }
        overflow()
    }

    /// Undoes a charge of a cell when no other has landed since (see [`give_back`]); its state after that.
    fn refund(&self, (shard, id): (usize, u64), charged: Charged) -> u64 {
        if let Some(after) = self.cached(shard, |slots| give_back(find(slots, id)?, charged)) {
            return after;
        }
        self.locked(shard, |table| match table.get(id) {
            Some(cell) => give_back(cell, charged).unwrap_or(charged.before),
            // Swept: the state had lapsed, which is what the charge found at most.
            None => charged.before,
        })
    }
}

/// A charge that landed: the state it found and the one it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Charged {
    before: u64,
    after: u64,
}

impl Charged {
    /// A placeholder where nothing was charged.
    const NONE: Self = Self {
        before: 0,
        after: 0,
    };
}

/// Undoes `charged` on its cell: puts back the state it found, but only while the cell still holds the one it
/// wrote. When another charge has landed since, the state is left as it is: GCRA charges from `max(TAT, now)`,
/// so taking the units off the later state could erase part of that other charge (an overshoot), while leaving
/// them costs at most a false refusal. Returns the cell's state after, or `None` when the array was replaced
/// (the state is frozen).
fn give_back(cell: &AtomicU64, charged: Charged) -> Option<u64> {
    match cell.compare_exchange(
        charged.after,
        charged.before,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Some(charged.before),
        Err(FROZEN) => None,
        Err(actual) => Some(actual),
    }
}

/// The result of a compare-and-swap on the shard's current array (under its mutex), where no state is frozen.
fn live(result: Option<Result<Charged, u64>>) -> Result<Charged, u64> {
    result.unwrap_or(Err(FROZEN))
}

/// A cell's id: the key's seeded hash in the top 16 bits (they choose the cell's first slot, so the limits of one
/// key sit side by side), and in the other 48 a bijective mix (murmur3's finalizer) of the key's hash and the
/// limit's name hash, so ids of one key under two limits differ, and which keys share an id stays as
/// unpredictable as the seed. Never 0 (an empty slot).
#[inline]
fn cell_id(key_hash: u64, name_hash: u64) -> u64 {
    let mut x = key_hash ^ name_hash;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    ((key_hash & KEY_BITS) | (x >> 16)).max(1)
}

/// The high and low halves of the 128-bit product, folded (foldhash's and ahash's mixing step).
#[inline]
fn folded_multiply(x: u64, y: u64) -> u64 {
    let full = u128::from(x) * u128::from(y);
    let high = u64::try_from(full >> 64).unwrap_or(0);
    // Truncation intended: the low half.
    #[allow(clippy::cast_possible_truncation)]
    let low = full as u64;
    high ^ low
}

/// The GCRA step on one cell: `Some(Ok(Charged))` when admitted, `Some(Err(current TAT))` when refused, `None`
/// when the cell's array was replaced (look again in the current one).
#[inline]
fn cas_admit(cell: &AtomicU64, quota: &Quota, cost: u64, now: u64) -> Option<Result<Charged, u64>> {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        if current == FROZEN {
            return None;
        }
        let Some(new_tat) = admit(current, now, quota, cost).filter(|&t| t != FROZEN) else {
            return Some(Err(current));
        };
        match cell.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                return Some(Ok(Charged {
                    before: current,
                    after: new_tat,
                }));
            }
            Err(actual) => current = actual,
        }
    }
}

/// Drops the cells that have lapsed by `now`, shrinking the array when most of it went.
fn sweep_table(table: &mut Table, now: u64, version: Versions<'_>) {
    let lapsed = table
        .slots
        .iter()
        .any(|s| s.id.load(Ordering::Relaxed) != EMPTY && s.tat.load(Ordering::Relaxed) <= now);
    if !lapsed {
        return;
    }
    let capacity = table.slots.len();
    table.replace(
        version,
        |tat| tat > now,
        |kept| {
            // Shrink when most cells went (keeping room to grow back to twice the survivors), else keep the size.
            if capacity > capacity_for(kept.saturating_mul(4).max(MIN_SWEEP_AT)) {
                capacity_for(kept.saturating_mul(2))
            } else {
                capacity.max(capacity_for(kept))
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_charge_is_lost_while_the_array_is_replaced_under_other_threads() {
        // One shard, so the growing keys and the sweeps replace the array the racing threads use.
        let store = MemoryStore::new(MemoryConfig::default().shards(1).max_keys(1 << 20));
        let burst = 1_000_000_000;
        let hot = Limit::new(
            "hot",
            Quota::per_second(1_000_000)
                .unwrap()
                .with_burst(burst)
                .unwrap(),
        )
        .unwrap();
        let filler = Limit::new("filler", Quota::per_second(1000).unwrap()).unwrap();
        let now = 1_000_000;
        // Charged before the race, so the hot cell's TAT is a second beyond `now` from the start: the sweeps at
        // `now + 2 ms` below drop the fillers but never the hot cell, and any shortfall is a lost charge.
        let pre_charge = 1_000_000;
        assert!(
            store
                .decide(&[Check::charge(&hot, Key::Id(7))], pre_charge, now)
                .is_allowed()
        );
        let admitted = AtomicU64::new(0);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        let d = store.decide(&[Check::charge(&hot, Key::Id(7))], 1, now);
                        assert!(d.is_allowed(), "a false refusal");
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            s.spawn(|| {
                for k in 0..100_000u64 {
                    let _ = store.decide(&[Check::charge(&filler, Key::Id(1000 + k))], 1, now);
                    if k % 1_000 == 0 {
                        // The fillers have lapsed 2 ms later; `hot` has not.
                        store.sweep(now + 2_000);
                    }
                }
                done.store(true, Ordering::Relaxed);
            });
        });
        // Every admitted unit is in the state: a lost update would leave more remaining.
        let d = store.decide(&[Check::peek(&hot, Key::Id(7))], 1, now);
        let admitted = admitted.load(Ordering::Relaxed);
        assert!(admitted > 0);
        assert_eq!(d.outcomes()[0].remaining(), burst - pre_charge - admitted);
    }

    #[test]
    fn a_refund_after_another_charge_never_lets_a_third_one_overshoot() {
        // Burst 1, T = 1 ms. A charges L at 10 ms, then stalls; B is admitted at 12 ms; A's other limit refuses
        // and A gives L back. Taking T off the state then would erase B's charge (13 ms -> 12 ms) and admit C at
        // 12 ms too: two admissions at one instant with burst 1.
        let store = MemoryStore::new(MemoryConfig::default());
        let l = Limit::new("l", Quota::per_second(1000).unwrap().with_burst(1).unwrap()).unwrap();
        let quota = l.quota();
        let (shard, id) = store.locate_single(&Key::Id(1), &l);
        let name_hash = l.name_hash();
        let a = store.charge(shard, id, name_hash, quota, 1, 10_000);
        assert_eq!(a.map(|(_, c)| c.after), Ok(11_000));
        let b = store.charge(shard, id, name_hash, quota, 1, 12_000);
        assert_eq!(b.map(|(_, c)| c.after), Ok(13_000));
        let (cell, charged) = a.unwrap();
        store.refund((shard, cell), charged);
        assert!(
            store
                .charge(shard, id, name_hash, quota, 1, 12_000)
                .is_err(),
            "C admitted at the instant B was"
        );
        // Without a charge in between, a refund still gives the units back whole (here through the lock-free
        // path of a set: both cells are known and cached after the first decision).
        let z = Limit::new("z", Quota::per_second(1000).unwrap().with_burst(1).unwrap()).unwrap();
        let set = [Check::charge(&l, Key::Id(2)), Check::charge(&z, Key::Id(2))];
        assert!(store.decide(&set, 1, 20_000).is_allowed());
        assert!(
            store
                .decide(&[Check::charge(&z, Key::Id(2))], 1, 21_000)
                .is_allowed()
        );
        assert!(!store.decide(&set, 1, 21_000).is_allowed());
        assert!(
            store
                .decide(&[Check::charge(&l, Key::Id(2))], 1, 21_000)
                .is_allowed()
        );
    }

    #[test]
    fn a_thread_lets_go_of_replaced_arrays_of_every_shard_on_its_next_slow_path() {
        let store = MemoryStore::new(MemoryConfig::default().shards(16));
        let limit = Limit::new("l", Quota::per_second(1000).unwrap()).unwrap();
        let now = 1_000;
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Cells in every shard: this thread caches every shard's array.
                for k in 0..4_096u64 {
                    assert!(
                        store
                            .decide(&[Check::charge(&limit, Key::Id(k))], 1, now)
                            .is_allowed()
                    );
                }
                barrier.wait();
                barrier.wait();
                // One new key: one shard's slow path.
                assert!(
                    store
                        .decide(&[Check::charge(&limit, Key::Id(1 << 40))], 1, now)
                        .is_allowed()
                );
                barrier.wait();
            });
            barrier.wait();
            let old: Vec<std::sync::Weak<[Slot]>> = store
                .inner
                .shards
                .iter()
                .map(|shard| Arc::downgrade(&shard.lock().slots))
                .collect();
            // Every cell has lapsed: every array is replaced (and shrinks).
            store.sweep(now + 10_000_000);
            barrier.wait();
            barrier.wait();
            let held = old.iter().filter(|w| w.strong_count() > 0).count();
            assert_eq!(
                held, 0,
                "replaced arrays still held by the other thread's cache"
            );
        });
    }

    #[test]
    fn a_set_of_limits_of_one_key_is_charged_together_across_growth() {
        let store = MemoryStore::new(MemoryConfig::default().shards(2));
        let minute = Limit::new("minute", Quota::per_minute(3).unwrap()).unwrap();
        let hour = Limit::new("hour", Quota::per_hour(5).unwrap()).unwrap();
        let now = 1;
        for k in 0..5_000u64 {
            let set = [
                Check::charge(&minute, Key::Id(k)),
                Check::charge(&hour, Key::Id(k)),
            ];
            for _ in 0..3 {
                assert!(store.decide(&set, 1, now).is_allowed());
            }
            let refused = store.decide(&set, 1, now);
            assert!(!refused.is_allowed());
            assert_eq!(refused.outcomes()[1].remaining(), 2, "hour not charged");
        }
        assert_eq!(store.len(), 10_000);
        // Every key kept its state through the arrays' growth.
        for k in 0..5_000u64 {
            let d = store.decide(&[Check::peek(&hour, Key::Id(k))], 1, now);
            assert_eq!(d.outcomes()[0].remaining(), 2);
        }
        assert!(store.table_bytes() >= 10_000 * BYTES_PER_SLOT);
    }
}
