//! Lock-free counters of the closed path: per-thread stripes of totals and time buckets, and a count ring.
//!
//! Every call of the closed path updates its own stripe only, so two threads never write the same cache line
//! (the stripe is picked once per thread). Readers sum over the stripes; a sum is exact once the writers are
//! done, and may miss an update still in flight.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::tagged::{CALLS_MAX, TAG_MASK, TAG_SHIFT, bump};

/// Keeps a value on its own cache lines (128 bytes: adjacent-line prefetch pairs lines on x86).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// How many stripes a breaker keeps: four per available core, as a power of two from 8 to 64, so that
/// threads rarely share a stripe.
pub(crate) fn stripe_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
        n.saturating_mul(4).next_power_of_two().clamp(8, 64)
    })
}

/// This thread's stripe among `count` (a power of two): threads are numbered in the order they first ask.
#[inline]
pub(crate) fn stripe_index(count: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.with(|i| *i) & (count - 1)
}

/// What happened to a call, as the counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Success,
    Failure,
    Ignored,
    Rejected,
}

/// Totals since the breaker was built, for snapshots.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
    slow: AtomicU64,
}

/// A sum of [`Totals`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TotalsSum {
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) ignored: u64,
    pub(crate) rejected: u64,
    pub(crate) slow: u64,
}

impl Totals {
    #[inline]
    pub(crate) fn add(&self, mark: Mark, slow: bool) {
        let c = match mark {
            Mark::Success => &self.successes,
            Mark::Failure => &self.failures,
            Mark::Ignored => &self.ignored,
            Mark::Rejected => &self.rejected,
        };
        c.fetch_add(1, Relaxed);
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn sum<'a>(all: impl Iterator<Item = &'a Self>) -> TotalsSum {
        let mut s = TotalsSum::default();
        for t in all {
            s.successes += t.successes.load(Relaxed);
            s.failures += t.failures.load(Relaxed);
            s.ignored += t.ignored.load(Relaxed);
            s.rejected += t.rejected.load(Relaxed);
            s.slow += t.slow.load(Relaxed);
        }
        s
    }
}

/// Calls, failures and slow calls in a window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowSum {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

// A time bucket is two words tagged with their epoch (see `crate::tagged`).
const FIELD_BITS: u32 = 20;
const FIELD_MAX: u64 = (1 << FIELD_BITS) - 1;

#[derive(Debug, Default)]
#[repr(align(16))]
struct Bucket {
    /// tag | calls (40 bits)
    calls: AtomicU64,
    /// tag | failures (20 bits) | slow (20 bits), each saturating
    bad: AtomicU64,
}

/// The time window: `buckets` per stripe, epoch = now / width.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    width_nanos: u64,
    buckets: usize,
    /// buckets used per stripe plus 8 (128 bytes) of padding, so two stripes never share a cache line
    stride: usize,
    cells: Box<[Bucket]>,
    /// Per stripe: the epoch last written (`epoch << 8 | slot`), so that a call within the same bucket
    /// needs no division; `u64::MAX` when none.
    cursors: Box<[Padded<AtomicU64>]>,
}

impl TimeWindow {
    pub(crate) fn new(width_nanos: u64, buckets: usize, stripes: usize) -> Self {
        let stride = buckets + 8;
        let cells = (0..stride * stripes).map(|_| Bucket::default()).collect();
        let cursors = (0..stripes)
            .map(|_| Padded(AtomicU64::new(u64::MAX)))
            .collect();
        Self {
            width_nanos: width_nanos.max(1),
            buckets,
            stride,
            cells,
            cursors,
        }
    }

    /// The epoch of `now` and its slot, from the stripe's cursor when `now` still falls in its bucket.
    #[inline]
    fn locate(&self, stripe: usize, now: u64) -> (u64, usize) {
        let cursor = &self.cursors[stripe];
        let c = cursor.load(Relaxed);
        let epoch = c >> 8;
        // now - start < width, with now < start wrapping to a huge value
        if c != u64::MAX
            && now.wrapping_sub(epoch.wrapping_mul(self.width_nanos)) < self.width_nanos
        {
            return (epoch, usize::try_from(c & 0xFF).unwrap_or(0));
        }
        let epoch = self.epoch(now);
        let slot = epoch % self.buckets as u64;
        // epoch < 2^55 (width >= 166 us), slot < 64: the packing is lossless
        cursor.store((epoch << 8) | slot, Relaxed);
        (epoch, usize::try_from(slot).unwrap_or(0))
    }

    #[inline]
    fn epoch(&self, now: u64) -> u64 {
        now / self.width_nanos
    }

    /// Records one call (failed or slow or neither) in `stripe` at time `now`.
    #[inline]
    pub(crate) fn record(&self, stripe: usize, now: u64, failure: bool, slow: bool) {
        let (epoch, slot) = self.locate(stripe, now);
        let tag = (epoch & TAG_MASK) << TAG_SHIFT;
        let b = &self.cells[stripe * self.stride + slot];
        bump(&b.calls, tag, |v| if v < CALLS_MAX { v + 1 } else { v });
        if failure || slow {
            bump(&b.bad, tag, |v| {
                let mut f = v >> FIELD_BITS;
                let mut s = v & FIELD_MAX;
                if failure && f < FIELD_MAX {
                    f += 1;
                }
                if slow && s < FIELD_MAX {
                    s += 1;
                }
                (f << FIELD_BITS) | s
            });
        }
    }

    /// Sums every stripe's buckets that lie within the window ending at `now`.
    pub(crate) fn sum(&self, now: u64, stripes: usize) -> WindowSum {
        let cur = self.epoch(now);
        let n = self.buckets as u64;
        let mut s = WindowSum::default();
        for slot in 0..self.buckets {
            let slot_u = slot as u64;
            // the one epoch in (cur - n, cur] that maps to this slot
            let back = (cur % n + n - slot_u) % n;
            let Some(epoch) = cur.checked_sub(back) else {
                continue;
            };
            let tag = epoch & TAG_MASK;
            for stripe in 0..stripes {
                let b = &self.cells[stripe * self.stride + slot];
                let c = b.calls.load(Relaxed);
                if c >> TAG_SHIFT == tag {
                    s.calls += c & CALLS_MAX;
                }
                let bad = b.bad.load(Relaxed);
                if bad >> TAG_SHIFT == tag {
                    let v = bad & CALLS_MAX;
                    s.failures += v >> FIELD_BITS;
                    s.slow += v & FIELD_MAX;
                }
            }
        }
        s
    }

    /// Forgets every call.
    pub(crate) fn clear(&self) {
        for b in &*self.cells {
            b.calls.store(0, Relaxed);
            b.bad.store(0, Relaxed);
        }
    }
}

/// The count window: a ring of the last `n` outcomes with running counts. Exact when one thread writes at a
/// time; under concurrent writers each counter stays within the in-flight writes of the truth.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    failures: AtomicI64,
    slow: AtomicI64,
}

const PRESENT: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

impl CountWindow {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            failures: AtomicI64::new(0),
            slow: AtomicI64::new(0),
        }
    }

    pub(crate) fn record(&self, failure: bool, slow: bool) {
        let code = PRESENT | if failure { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let i = self.next.fetch_add(1, Relaxed);
        let slot = usize::try_from(i % self.slots.len() as u64).unwrap_or(0);
        let old = self.slots[slot].swap(code, Relaxed);
        let delta = |bit: u8| i64::from(code & bit != 0) - i64::from(old & bit != 0);
        let df = delta(FAILED);
        if df != 0 {
            self.failures.fetch_add(df, Relaxed);
        }
        let ds = delta(SLOW);
        if ds != 0 {
            self.slow.fetch_add(ds, Relaxed);
        }
    }

    pub(crate) fn sum(&self) -> WindowSum {
        let calls = self.next.load(Relaxed).min(self.slots.len() as u64);
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0);
        WindowSum {
            calls,
            failures: clamp(self.failures.load(Relaxed)),
            slow: clamp(self.slow.load(Relaxed)),
        }
    }

    pub(crate) fn clear(&self) {
        for s in &*self.slots {
            s.store(0, Relaxed);
        }
        self.next.store(0, Relaxed);
        self.failures.store(0, Relaxed);
        self.slow.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn time_window_forgets_buckets_older_than_the_window() {
        let w = TimeWindow::new(SEC, 10, 2);
        w.record(0, 0, true, false);
        w.record(1, SEC / 2, false, true);
        w.record(1, 3 * SEC, false, false);
        assert_eq!(
            w.sum(3 * SEC, 2),
            WindowSum {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        // bucket 0 leaves the window when epoch 10 starts
        assert_eq!(
            w.sum(9 * SEC + SEC / 2, 2),
            WindowSum {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        assert_eq!(
            w.sum(10 * SEC, 2),
            WindowSum {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        // a write into a reused slot restarts it
        w.record(0, 10 * SEC, false, false);
        assert_eq!(
            w.sum(10 * SEC, 2),
            WindowSum {
                calls: 2,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.sum(100 * SEC, 2), WindowSum::default());
        w.clear();
        assert_eq!(w.sum(10 * SEC, 2), WindowSum::default());
    }

    #[test]
    fn a_record_from_a_window_ago_does_not_wipe_a_newer_bucket() {
        let w = TimeWindow::new(SEC, 10, 1);
        w.record(0, 12 * SEC, true, false);
        w.record(0, 12 * SEC + 1, false, false);
        // slot 2 holds epoch 12; a writer that read the clock at 2 s arrives late
        w.record(0, 2 * SEC, false, false);
        assert_eq!(
            w.sum(12 * SEC, 1),
            WindowSum {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
        // the cursor moves back and forth without losing counts
        w.record(0, 13 * SEC, false, false);
        w.record(0, 12 * SEC + 5, false, false);
        assert_eq!(
            w.sum(13 * SEC, 1),
            WindowSum {
                calls: 4,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(3);
        w.record(true, false);
        w.record(true, true);
        assert_eq!(
            w.sum(),
            WindowSum {
                calls: 2,
                failures: 2,
                slow: 1
            }
        );
        w.record(false, false);
        w.record(false, false);
        assert_eq!(
            w.sum(),
            WindowSum {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(false, false);
        assert_eq!(
            w.sum(),
            WindowSum {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.clear();
        assert_eq!(w.sum(), WindowSum::default());
    }

    #[test]
    fn stripes_are_cache_line_apart() {
        assert_eq!(align_of::<Padded<Totals>>(), 128);
        assert!(stripe_count().is_power_of_two());
        assert!(stripe_index(4) < 4);
    }
}
