//! The in-memory store: sharded, one atomic word per key, bounded.
//!
//! Each key is hashed once per check (foldhash with a random seed per store, so clients cannot aim at one shard
//! or make two keys share a state); the hash picks the shard, and a bijective mix of it with the limit's name
//! hash is the 64-bit cell id. A shard is a `RwLock` around a map from cell id to an `AtomicU64` holding the
//! TAT: a decision on a known key takes the shard's read lock (one atomic read-modify-write to take, one to
//! release; not lock-free) and settles the key with a compare-and-swap, so decisions on one shard run side by
//! side; only a new key takes the write lock. All limits of one key live in one shard, so a decision over
//! several limits of one key takes that read lock once.
//!
//! A TAT at or before now equals no state at all, so such cells are dropped by sweeps without changing any
//! decision. A shard sweeps itself whenever it has doubled since its last sweep, so memory tracks the keys in use.
//! When the store holds `max_keys` keys and a sweep frees nothing, a new key is counted in its shard's overflow
//! cell for that limit: every new key of that shard shares one budget until keys expire. A flood of fresh keys
//! thus cannot grow memory, and cannot get more than one key's quota per shard; known keys are not affected.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::decision::{Decision, DecisionSource};
use crate::gcra::{LimitOutcome, MAX_LIMITS_PER_DECISION, Quota, admit, describe};
use crate::limiter::Check;

/// Memory per key at most: the map's entry (16 bytes) and control byte at the lowest load factor.
const BYTES_PER_SLOT: usize = 17;
/// A shard never sweeps below this many keys.
const MIN_SWEEP_AT: usize = 1024;
/// At the cap, a shard sweeps at most this often (microseconds), so a flood cannot make every insert a sweep.
const CAP_SWEEP_INTERVAL_MICROS: u64 = 100_000;
const OVERFLOW_MARK: u64 = 0x6f76_6572_666c_6f77;

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
    /// The most `(limit, key)` cells held at once (default 1 000 000, about 40 MB at most). See the module docs
    /// for what happens at the cap.
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

#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type CellMap = HashMap<u64, AtomicU64, BuildHasherDefault<IdentityHasher>>;

struct Table {
    cells: CellMap,
    sweep_at: usize,
    next_cap_sweep: u64,
}

#[repr(align(64))]
struct Shard {
    table: RwLock<Table>,
}

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Inner {
    shards: Box<[Shard]>,
    shard_mask: u64,
    per_shard_cap: usize,
    hasher: foldhash::quality::RandomState,
    config: MemoryConfig,
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
        let shards_vec: Vec<Shard> = (0..shards)
            .map(|_| Shard {
                table: RwLock::new(Table {
                    cells: CellMap::default(),
                    sweep_at: MIN_SWEEP_AT.min(per_shard_cap),
                    next_cap_sweep: 0,
                }),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards: shards_vec.into_boxed_slice(),
                shard_mask: (shards as u64) - 1,
                per_shard_cap,
                hasher: foldhash::quality::RandomState::default(),
                config,
            }),
        }
    }

    /// The number of cells held (one per `(limit, key)` seen and not yet swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.read().cells.len()).sum()
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

    /// Bytes held by the cell tables (their allocated capacity), the only memory that grows with keys.
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.read().cells.capacity() * BYTES_PER_SLOT)
            .sum()
    }

    /// Drops every cell whose state has lapsed (a TAT at or before `now_micros`): no decision changes.
    pub fn sweep(&self, now_micros: u64) {
        for shard in &self.inner.shards {
            let mut table = shard.write();
            sweep_table(&mut table, now_micros);
        }
    }

    /// The key's seeded hash and the shard it lives in: every limit of one key lives in the same shard, so a
    /// decision over several limits of one key takes one read lock.
    fn locate(&self, check: &Check<'_>) -> (usize, u64) {
        let key_hash = self.inner.hasher.hash_one(check.key);
        // The middle bits: cell ids are a bijective mix of the whole hash, so the buckets stay independent.
        let shard = usize::try_from((key_hash >> 32) & self.inner.shard_mask).unwrap_or(0);
        (shard, cell_id(key_hash, check.limit.name_hash()))
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
        for (i, check) in checks[..n].iter().enumerate() {
            located[i] = self.locate(check);
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
        let mut all_fit = true;
        for (i, check) in checks[..n].iter().enumerate() {
            let (shard, id) = located[i];
            let name_hash = check.limit.name_hash();
            let quota = check.limit.quota();
            if check.charge && all_fit && cost > 0 {
                match self.charge(shard, id, name_hash, quota, cost, now) {
                    Ok((cell, tat)) => {
                        cells[i] = (shard, cell);
                        states[i] = tat;
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
                    states[i] = self.refund(cells[i], checks[i].limit.quota(), cost, states[i]);
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

    /// The common case of a set: every limit of one shard (one key), every cell known, every check charged.
    /// One read lock for the whole set; `None` (nothing charged) when the case does not apply.
    #[inline]
    fn decide_known(
        &self,
        checks: &[Check<'_>],
        located: &[(usize, u64)],
        cost: u64,
        now: u64,
    ) -> Option<Decision> {
        let table = self.inner.shards[located[0].0].read();
        let mut cells: [Option<&AtomicU64>; MAX_LIMITS_PER_DECISION] =
            [None; MAX_LIMITS_PER_DECISION];
        for (i, (check, &(_, id))) in checks.iter().zip(located).enumerate() {
            if !check.charge {
                return None;
            }
            cells[i] = Some(table.cells.get(&id)?);
        }
        let mut states = [0u64; MAX_LIMITS_PER_DECISION];
        let mut charged = 0;
        let mut all_fit = true;
        for (i, check) in checks.iter().enumerate() {
            let cell = cells[i]?;
            match cas_admit(cell, check.limit.quota(), cost, now) {
                Ok(tat) => {
                    states[i] = tat;
                    charged += 1;
                }
                Err(tat) => {
                    states[i] = tat;
                    all_fit = false;
                    break;
                }
            }
        }
        if !all_fit {
            // Give back what was charged, as the general path does; the rest are described as they stand.
            for (i, check) in checks.iter().enumerate().take(charged) {
                let dec = check
                    .limit
                    .quota()
                    .emission_interval_micros()
                    .saturating_mul(cost);
                let cell = cells[i]?;
                states[i] = match cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some(t.saturating_sub(dec))
                }) {
                    Ok(prev) | Err(prev) => prev.saturating_sub(dec),
                };
            }
            for (i, cell) in cells
                .iter()
                .enumerate()
                .take(checks.len())
                .skip(charged + 1)
            {
                states[i] = cell.map_or(0, |c| c.load(Ordering::Acquire));
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
        let mut decision = Decision::new(DecisionSource::Memory);
        let (shard, id) = self.locate(check);
        let quota = check.limit.quota();
        let name_hash = check.limit.name_hash();
        let outcome = if check.charge && cost > 0 {
            match self.charge(shard, id, name_hash, quota, cost, now) {
                Ok((_, tat)) => describe(tat, now, quota, cost, true),
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
        let table = self.inner.shards[shard].read();
        if let Some(cell) = table.cells.get(&id) {
            return cell.load(Ordering::Acquire);
        }
        if table.cells.len() >= self.inner.per_shard_cap {
            // A new key at the cap would be charged to the overflow cell: read that one.
            let overflow = self.overflow_id(name_hash, shard);
            return table
                .cells
                .get(&overflow)
                .map_or(0, |c| c.load(Ordering::Acquire));
        }
        0
    }

    fn overflow_id(&self, name_hash: u64, shard: usize) -> u64 {
        self.inner
            .hasher
            .hash_one((OVERFLOW_MARK, name_hash, shard))
    }

    /// Charges a cell; `Ok((cell id used, new TAT))` or `Err(current TAT)`.
    fn charge(
        &self,
        shard_index: usize,
        id: u64,
        name_hash: u64,
        quota: &Quota,
        cost: u64,
        now: u64,
    ) -> Result<(u64, u64), u64> {
        let shard = &self.inner.shards[shard_index];
        {
            let table = shard.read();
            if let Some(cell) = table.cells.get(&id) {
                return cas_admit(cell, quota, cost, now).map(|t| (id, t));
            }
        }
        // Unknown key: nothing to store unless it is admitted.
        if admit(0, now, quota, cost).is_none() {
            return Err(0);
        }
        let mut table = shard.write();
        let cell_id = if table.cells.contains_key(&id) {
            id
        } else {
            self.make_room(&mut table, id, now, || {
                self.overflow_id(name_hash, shard_index)
            })
        };
        let cell = table
            .cells
            .entry(cell_id)
            .or_insert_with(|| AtomicU64::new(0));
        cas_admit(cell, quota, cost, now).map(|t| (cell_id, t))
    }

    /// Sweeps when due; returns the cell id to use: `id`, or the shard's overflow cell when at the cap.
    fn make_room(
        &self,
        table: &mut Table,
        id: u64,
        now: u64,
        overflow: impl FnOnce() -> u64,
    ) -> u64 {
        let cap = self.inner.per_shard_cap;
        // Growing: sweep whenever the shard has doubled since the last sweep (amortized O(1) per insert).
        if table.cells.len() >= table.sweep_at && table.cells.len() < cap {
            sweep_table(table, now);
            table.sweep_at = (table.cells.len() * 2).max(MIN_SWEEP_AT).min(cap);
        }
        if table.cells.len() < cap {
            return id;
        }
        // At the cap: sweep at most once per interval, so a flood cannot make every insert a full sweep.
        if now >= table.next_cap_sweep {
            sweep_table(table, now);
            table.next_cap_sweep = now.saturating_add(CAP_SWEEP_INTERVAL_MICROS);
            if table.cells.len() < cap {
                return id;
            }
        }
        overflow()
    }

    fn refund(&self, (shard, id): (usize, u64), quota: &Quota, cost: u64, tat: u64) -> u64 {
        let table = self.inner.shards[shard].read();
        let dec = quota.emission_interval_micros().saturating_mul(cost);
        let Some(cell) = table.cells.get(&id) else {
            return tat.saturating_sub(dec);
        };
        match cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
            Some(t.saturating_sub(dec))
        }) {
            Ok(prev) | Err(prev) => prev.saturating_sub(dec),
        }
    }
}

/// A cell's id: a bijective mix (murmur3's finalizer) of the key's seeded hash and the limit's name hash, so
/// ids of one key under two limits differ, and which keys share an id stays as unpredictable as the seed.
#[inline]
fn cell_id(key_hash: u64, name_hash: u64) -> u64 {
    let mut x = key_hash ^ name_hash;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn cas_admit(cell: &AtomicU64, quota: &Quota, cost: u64, now: u64) -> Result<u64, u64> {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        let Some(new_tat) = admit(current, now, quota, cost) else {
            return Err(current);
        };
        match cell.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(new_tat),
            Err(actual) => current = actual,
        }
    }
}

fn sweep_table(table: &mut Table, now: u64) {
    table.cells.retain(|_, tat| *tat.get_mut() > now);
    let len = table.cells.len();
    if table.cells.capacity() > len.saturating_mul(4).max(MIN_SWEEP_AT) {
        table.cells.shrink_to(len.saturating_mul(2));
    }
}
