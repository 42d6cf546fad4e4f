//! Settings every bench group of this crate shares (shared/notes/peer-benchmarks.md: 1 s warm-up, 3 s
//! measurement, 30 samples), so ours and the peer are always measured alike.

use std::time::Duration;

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;

/// 1 s warm-up, 3 s measurement, 30 samples.
pub(crate) fn settings(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
}
