//! Criterion's samples, kept for our own summary.
//!
//! Criterion prints its estimates but does not hand them back, so the benchmarks time their
//! own loop inside `Bencher::iter_custom` and record every call here. Criterion first calls the
//! routine during warm-up and then once per sample, so the last `sample_size` records are the
//! measured samples; the summary uses the median of their per-iteration times. In
//! `--test` mode criterion calls the routine once, and that single record is the result.

use std::time::{Duration, Instant};

/// Every `(iterations, elapsed)` pair one benchmark's routine reported, in call order.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    runs: Vec<(u64, Duration)>,
}

impl Samples {
    /// Records one call of the routine.
    pub fn record(&mut self, iters: u64, elapsed: Duration) {
        self.runs.push((iters, elapsed));
    }

    /// Median time per iteration over the last `last` calls (the measured samples), or `None`
    /// if the benchmark never ran (filtered out).
    pub fn median_of_last(&self, last: usize) -> Option<Duration> {
        let start = self.runs.len().saturating_sub(last.max(1));
        let mut per_iter: Vec<f64> = self.runs[start..]
            .iter()
            .filter(|(iters, _)| *iters > 0)
            .map(|(iters, elapsed)| elapsed.as_secs_f64() / *iters as f64)
            .collect();
        if per_iter.is_empty() {
            return None;
        }
        per_iter.sort_by(f64::total_cmp);
        let mid = per_iter.len() / 2;
        let median = if per_iter.len() % 2 == 1 {
            per_iter[mid]
        } else {
            (per_iter[mid - 1] + per_iter[mid]) / 2.0
        };
        Some(Duration::from_secs_f64(median))
    }
}

/// Runs `f` `iters` times and returns the elapsed wall time.
pub fn time_iters(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_uses_only_the_last_samples() {
        let mut s = Samples::default();
        s.record(1, Duration::from_secs(100)); // warm-up, ignored
        for (iters, ms) in [(2, 20), (4, 44), (1, 9)] {
            s.record(iters, Duration::from_millis(ms));
        }
        let median = s.median_of_last(3).unwrap();
        assert!((median.as_secs_f64() - 0.010).abs() < 1e-9, "{median:?}");
        assert_eq!(Samples::default().median_of_last(3), None);
    }
}
