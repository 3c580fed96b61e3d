//! Keeping the pool's other workers awake through a run of forward passes.
//!
//! A rayon worker that finds no work for about 30 us goes to sleep, and the next parallel
//! region pays 8-58 us to wake it (benches/RESULTS.md, "Fork-join latency"). A batch-1 pass of
//! a short text has dozens of regions a few tens of microseconds apart, so at 2 threads it was
//! no faster than at 1. [`with_workers_awake`] gives each other worker a job that spins,
//! running whatever pool work it can find (`rayon::yield_now`) until the passes are done, so
//! the parallel regions start at once, as ONNX Runtime's spinning pool does.

use rayon::Yield;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on the calling worker while the pool's other workers spin, stealing the work `f`
/// forks, until `f` returns. On a pool of one thread (or outside a pool) it only runs `f`.
pub(super) fn with_workers_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads();
    let Some(caller) = rayon::current_thread_index() else {
        return f();
    };
    if threads < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        for _ in 1..threads {
            s.spawn(|_| {
                // The caller may pop a spinner itself while it waits inside `f`: spinning there
                // would wait for its own frame below, so that one returns at once.
                if rayon::current_thread_index() == Some(caller) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        // Set when `f` returns or unwinds: the scope waits for the spinners before it passes a
        // panic on, so they must stop either way.
        let _stop = StopOnDrop(&done);
        f()
    })
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::with_workers_awake;
    use rayon::prelude::*;

    #[test]
    fn runs_the_work_and_returns_on_any_pool() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let sum: u64 =
                pool.install(|| with_workers_awake(|| (0..10_000u64).into_par_iter().map(|x| x * 2).sum::<u64>()));
            assert_eq!(sum, 10_000 * 9_999);
            // Nested parallel regions and repeated calls finish too.
            let nested: usize = pool.install(|| {
                (0..4)
                    .map(|_| {
                        with_workers_awake(|| {
                            (0..64)
                                .into_par_iter()
                                .map(|i| (0..i).into_par_iter().count())
                                .sum::<usize>()
                        })
                    })
                    .sum()
            });
            assert_eq!(nested, 4 * (0..64).sum::<usize>());
        }
        assert_eq!(with_workers_awake(|| 7), 7); // outside any pool
    }

    #[test]
    fn a_panic_in_the_work_stops_the_spinners_and_propagates() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let caught = pool.install(|| std::panic::catch_unwind(|| with_workers_awake(|| panic!("inside"))));
        assert!(caught.is_err());
        assert_eq!(pool.install(|| with_workers_awake(|| 1 + 1)), 2); // the pool still works
    }
}
