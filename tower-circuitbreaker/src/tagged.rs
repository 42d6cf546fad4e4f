//! The tagged counter word of a time bucket, updated by one CAS loop: the closed path's only read-modify-write
//! loop. Kept apart (atomics through `crate::sync`) so that `tests/loom.rs` can include this file alone and
//! check it under loom without building the rest of the crate against loom.

use crate::sync::{AtomicU64, Relaxed};

// A time bucket is two words, each tagged with the low bits of the bucket's epoch (its index in time), so that a
// writer that finds an older tag restarts the word at one in a single CAS, and a reader skips words whose tag
// is not the epoch it expects at that position. Tags wrap after 2^24 epochs (194 days of 1 s buckets).
pub(crate) const TAG_SHIFT: u32 = 40;
pub(crate) const TAG_MASK: u64 = (1 << 24) - 1;
pub(crate) const CALLS_MAX: u64 = (1 << 40) - 1;

/// Applies `f` to the value part of a tagged word, restarting from zero when the tag is older.
#[inline]
pub(crate) fn bump(word: &AtomicU64, tag: u64, f: impl Fn(u64) -> u64) {
    let mut cur = word.load(Relaxed);
    loop {
        let held = cur >> TAG_SHIFT;
        let ours = tag >> TAG_SHIFT;
        if held != ours && cur & CALLS_MAX != 0 && held.wrapping_sub(ours) & TAG_MASK < 1 << 23 {
            // A later epoch already holds this slot: the caller read the clock a whole window ago.
            return;
        }
        let value = if held == ours { cur & CALLS_MAX } else { 0 };
        let next = tag | (f(value) & CALLS_MAX);
        match word.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(seen) => cur = seen,
        }
    }
}
