//! Keeping the pool's other workers awake for the length of one embedding call.
//!
//! A forward pass over one short text is dozens of parallel regions of tens of microseconds
//! each (one per matrix product, attention, quantization). Between them a rayon worker that
//! found nothing to do for about 30 us goes to sleep, and the next region then waits 8-58 us
//! for the OS to wake it (`benches/RESULTS.md`, "Fork-join latency"). That is a large share of
//! a 2-thread call on one short text.
//!
//! [`KeepWarm::start`] spawns one job per other worker that, until the call ends, asks rayon
//! for work with [`rayon::yield_now`] (running any job of the pool's, stolen from the calling
//! worker's deque or the pool's queue) and spins while there is none, so every region finds
//! its workers running. Dropping the guard ends them; they never hold up the call itself (the
//! call does not wait for them), and each gives up after [`MAX_SPIN`] in any case. A job that
//! lands on the calling worker, or on a worker already keeping warm, returns at once: the
//! calling worker must never spin on its own call, which could then not finish.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a worker keeps spinning for one call (a long call keeps its workers busy
/// with real work anyway).
const MAX_SPIN: Duration = Duration::from_millis(250);

thread_local! {
    /// Set while this worker runs a keep-warm job.
    static WARMING: Cell<bool> = const { Cell::new(false) };
}

/// Ends the keep-warm jobs of one call when dropped.
pub(super) struct KeepWarm {
    done: Option<Arc<AtomicBool>>,
}

impl KeepWarm {
    /// Starts keep-warm jobs for the other workers of the current pool. Call it on a worker
    /// of the pool (inside `install`); with one thread, or outside a pool, it does nothing.
    pub(super) fn start(threads: usize) -> KeepWarm {
        let Some(caller) = rayon::current_thread_index() else {
            return KeepWarm { done: None };
        };
        if threads < 2 {
            return KeepWarm { done: None };
        }
        let done = Arc::new(AtomicBool::new(false));
        for _ in 1..threads {
            let done = Arc::clone(&done);
            rayon::spawn(move || spin_until(&done, caller));
        }
        KeepWarm { done: Some(done) }
    }
}

impl Drop for KeepWarm {
    fn drop(&mut self) {
        if let Some(done) = &self.done {
            done.store(true, Ordering::Release);
        }
    }
}

/// One keep-warm job: runs the pool's jobs as they come, spinning in between, until `done`
/// or [`MAX_SPIN`].
fn spin_until(done: &AtomicBool, caller: usize) {
    if rayon::current_thread_index() == Some(caller) || WARMING.with(Cell::get) {
        return;
    }
    WARMING.with(|w| w.set(true));
    let deadline = Instant::now() + MAX_SPIN;
    let mut polls = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(256) && Instant::now() >= deadline {
            break;
        }
    }
    WARMING.with(|w| w.set(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn a_call_finishes_and_its_workers_stop_spinning() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let started = Instant::now();
            let sum: u64 = pool.install(|| {
                let _warm = KeepWarm::start(threads);
                (0..10_000u64).into_par_iter().map(|x| x * x).sum()
            });
            assert_eq!(sum, (0..10_000u64).map(|x| x * x).sum::<u64>());
            // The spinners end with the guard: a second call is not held up by them.
            let again: u64 = pool.install(|| (0..100u64).into_par_iter().sum());
            assert_eq!(again, 4950);
            assert!(started.elapsed() < MAX_SPIN, "{threads} threads: {:?}", started.elapsed());
        }
    }

    #[test]
    fn nested_calls_do_not_deadlock() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let total: u64 = pool.install(|| {
            let _outer = KeepWarm::start(2);
            (0..64u64)
                .into_par_iter()
                .map(|i| {
                    let _inner = KeepWarm::start(2);
                    (0..100u64).into_par_iter().map(|x| x + i).sum::<u64>()
                })
                .sum()
        });
        assert_eq!(total, (0..64u64).map(|i| (0..100u64).map(|x| x + i).sum::<u64>()).sum::<u64>());
    }
}
