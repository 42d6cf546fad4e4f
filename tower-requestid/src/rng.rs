//! A thread-local wyrand generator, seeded once per thread from the operating system.
//!
//! Ids need uniqueness, not secrecy: a request id or trace id is sent in clear to every upstream. wyrand passes
//! BigCrush and PractRand, costs about a nanosecond, and needs no lock and no syscall per id (uuid's `now_v7`
//! takes a global mutex; without `fast-rng` every id is a `getrandom` syscall).

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    #[cfg(test)]
    tests::SEEDS.with(|n| n.set(n.get() + 1));
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (a sandbox without getrandom): fall back to the clock and this thread's stack
        // address, which still differ between threads and processes.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let local = 0u8;
        let addr = std::ptr::addr_of!(local) as usize as u64;
        bytes = (u64::from_le_bytes(nanos.to_le_bytes()[..8].try_into().unwrap_or_default())
            ^ addr.rotate_left(32))
        .to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}

/// The next 64 random bits of this thread's generator.
#[inline]
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        #[allow(clippy::cast_possible_truncation)] // folding 128 bits into 64 is the algorithm
        let folded = (t as u64) ^ ((t >> 64) as u64);
        folded
    })
}

/// The next 128 random bits.
#[inline]
pub(crate) fn next_u128() -> u128 {
    (u128::from(next_u64()) << 64) | u128::from(next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MakeRequestId, Ulid, UuidV4, UuidV7};
    use crate::trace::{SpanId, TraceContext, TraceId};

    thread_local! {
        /// How often this thread asked the operating system for randomness.
        pub(super) static SEEDS: Cell<u32> = const { Cell::new(0) };
    }

    #[test]
    fn a_thread_asks_the_os_for_randomness_once_not_per_id() {
        // `seed` is the crate's only call to getrandom (uuid is not a dependency): every generator must
        // draw from the thread's state, not re-create it. (The syscall itself shows in strace or
        // callgrind, not in a test.)
        let seeds = std::thread::spawn(|| {
            for _ in 0..10_000 {
                UuidV7.make_request_id();
                UuidV4.make_request_id();
                Ulid.make_request_id();
                let _ = (
                    TraceContext::new_root(),
                    TraceId::random(),
                    SpanId::random(),
                );
            }
            SEEDS.with(Cell::get)
        })
        .join()
        .unwrap();
        assert_eq!(seeds, 1);
    }

    #[test]
    fn threads_draw_different_sequences() {
        let here: Vec<u64> = (0..4).map(|_| next_u64()).collect();
        let there = std::thread::spawn(|| (0..4).map(|_| next_u64()).collect::<Vec<_>>())
            .join()
            .unwrap();
        assert_ne!(here, there);
        assert_ne!(here[0], here[1]);
    }
}
