//! What the benchmarks share: the median of 21 timed runs.

use std::time::Instant;

/// The median over 21 runs of the time per call of `f`, in nanoseconds, `iterations` calls a run.
pub fn median_ns(iterations: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}
