//! Watching the inputs of linear layers while a model runs: how `octet convert` calibrates
//! int8 weights (it runs the f32 model on calibration texts and accumulates each layer's
//! input statistics, `octet-tools`' `convert::calibrate`).
//!
//! [`linear_inputs`] installs an observer for the length of one closure; while it is
//! installed, every [`super::Linear::forward`] in the process first hands it the layer's weight
//! name and its input rows (`m` rows of `k` f32 values, token-packed: no padding rows). The
//! observer is process-wide (a model runs its layers on rayon's threads, not only the caller's)
//! and one at a time: a second call waits for the first to finish. When none is installed, a
//! forward pays one relaxed atomic load. Layers whose inputs a fused path quantizes without
//! writing them as f32 rows (an int8 FFN's handoff) are not seen: calibrate an f32 model.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The observer's signature: (weight name, rows, k).
type Observer = dyn FnMut(&str, &[f32], usize) + Send;

/// Whether an observer is installed (checked before taking the lock).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The installed observer.
static OBSERVER: Mutex<Option<Box<Observer>>> = Mutex::new(None);

/// Serializes [`linear_inputs`] calls.
static INSTALL: Mutex<()> = Mutex::new(());

/// Runs `run` with `observer` called on every linear layer's input (see the module docs), and
/// returns what `run` returns. The observer is dropped when `run` returns or unwinds; to keep
/// what it gathered, let it write through a shared handle (`Arc<Mutex<_>>`).
pub fn linear_inputs<R>(observer: impl FnMut(&str, &[f32], usize) + Send + 'static, run: impl FnOnce() -> R) -> R {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    *OBSERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(observer));
    ACTIVE.store(true, Ordering::SeqCst);
    let _uninstall = Uninstall;
    run()
}

/// Removes the observer when [`linear_inputs`] ends, normally or by unwinding.
struct Uninstall;

impl Drop for Uninstall {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
        OBSERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Hands one layer's input to the observer, if one is installed.
pub(crate) fn linear_input(name: &str, rows: &[f32], k: usize) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    if let Some(observer) = OBSERVER.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        observer(name, rows, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_sees_inputs_only_while_installed() {
        linear_input("before", &[1.0], 1);
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let result = linear_inputs(
            move |name: &str, rows: &[f32], k: usize| sink.lock().unwrap().push((name.to_string(), rows.len() / k)),
            || {
                linear_input("a.weight", &[0.0; 6], 3);
                linear_input("b.weight", &[0.0; 4], 4);
                7
            },
        );
        linear_input("after", &[1.0], 1);
        assert_eq!(result, 7);
        // Other tests of this crate may run layers meanwhile: keep only this test's names.
        let mut seen = seen.lock().unwrap().clone();
        seen.retain(|(name, _)| name == "a.weight" || name == "b.weight");
        assert_eq!(seen, [("a.weight".to_string(), 2), ("b.weight".to_string(), 1)]);
    }

    #[test]
    fn observer_is_removed_when_the_run_panics() {
        let outcome = std::panic::catch_unwind(|| linear_inputs(|_: &str, _: &[f32], _: usize| {}, || panic!("boom")));
        assert!(outcome.is_err());
        // Another test's observer may be installed by now: check while holding the install lock.
        let _no_other = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!ACTIVE.load(Ordering::SeqCst));
        assert!(OBSERVER.lock().unwrap_or_else(|e| e.into_inner()).is_none());
    }
}
