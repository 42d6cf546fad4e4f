//! The closed path's one compare-and-swap loop, the tagged word of a time bucket (`src/tagged.rs`), under
//! loom: every interleaving of writers racing on one word, some of them in a new epoch and some a whole
//! window late. Only that file is built against loom's atomics (through a `sync` module of this test);
//! the rest of the crate stays on std.
//!
//! Run: `RUSTFLAGS="--cfg circuitbreaker_loom" cargo test -p tower-circuitbreaker --test loom --release`
//! (use a separate `CARGO_TARGET_DIR`, the flag rebuilds every dependency).
#![cfg(circuitbreaker_loom)]

/// What `src/tagged.rs` imports as `crate::sync`.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering::Relaxed};
}

#[path = "../src/tagged.rs"]
mod tagged;

use loom::sync::Arc;
use loom::thread;
use sync::{AtomicU64, Relaxed};
use tagged::{CALLS_MAX, TAG_MASK, TAG_SHIFT, bump};

fn tag(epoch: u64) -> u64 {
    (epoch & TAG_MASK) << TAG_SHIFT
}

fn inc(v: u64) -> u64 {
    if v < CALLS_MAX { v + 1 } else { v }
}

/// Runs `bump(tag(epoch))` for every epoch in `writers`, each on its own thread, on a word that holds
/// `initial`; returns the final word.
fn race(initial: u64, writers: &[u64]) -> u64 {
    let word = Arc::new(AtomicU64::new(initial));
    let handles: Vec<_> = writers
        .iter()
        .map(|&epoch| {
            let word = Arc::clone(&word);
            thread::spawn(move || bump(&word, tag(epoch), inc))
        })
        .collect();
    for h in handles {
        if let Err(panic) = h.join() {
            std::panic::resume_unwind(panic);
        }
    }
    word.load(Relaxed)
}

#[test]
fn writers_in_the_same_epoch_lose_no_count() {
    loom::model(|| assert_eq!(race(tag(13) | 5, &[13, 13]), tag(13) | 7));
}

#[test]
fn writers_entering_a_new_epoch_restart_the_word_once() {
    // The slot still holds epoch 3 (a window of 10 buckets ago): both writers count from zero, once.
    loom::model(|| assert_eq!(race(tag(3) | 5, &[13, 13]), tag(13) | 2));
}

#[test]
fn a_writer_a_window_late_never_wipes_the_newer_epoch() {
    // Whichever goes first, the word ends in epoch 13 with its one call: the late writer either counts into
    // the old epoch before it is replaced, or finds the newer epoch and drops its write.
    loom::model(|| assert_eq!(race(tag(3) | 5, &[3, 13]), tag(13) | 1));
    loom::model(|| assert_eq!(race(tag(3) | 5, &[3, 13, 3]), tag(13) | 1));
}

#[test]
fn two_new_writers_and_a_late_one_count_exactly_the_new_ones() {
    loom::model(|| assert_eq!(race(tag(3) | 5, &[13, 3, 13]), tag(13) | 2));
}
