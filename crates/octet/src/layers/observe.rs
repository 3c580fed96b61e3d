//! Watching the inputs of linear layers while a model runs: how `octet convert` calibrates
//! int8 weights (it runs the f32 model on calibration texts and accumulates each layer's
//! input statistics, `octet-tools`' `convert::calibrate`).
//!
//! [`linear_inputs`] installs an observer of one model file for the length of one closure;
//! while it is installed, every [`super::Linear::forward`] of a layer bound to that file first
//! hands it the layer's weight name and its input rows (`m` rows of `k` f32 values,
//! token-packed: no padding rows). Layers of other files (other embedders running meanwhile
//! in the process, as tests do) are not seen. The observer is process-wide (a model runs its
//! layers on rayon's threads, not only the caller's) and one at a time: a second call waits
//! for the first to finish. When none is installed, a
//! forward pays one relaxed atomic load. Layers whose inputs a fused path quantizes without
//! writing them as f32 rows (an int8 FFN's handoff) are not seen: calibrate an f32 model.

use crate::format::ModelFile;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The observer's signature: (weight name, rows, k).
type Observer = dyn FnMut(&str, &[f32], usize) + Send;

/// Whether an observer is installed (checked before taking the lock).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The identity ([`file_id`]) of the observed model file.
static FILE: AtomicUsize = AtomicUsize::new(0);

/// The installed observer.
static OBSERVER: Mutex<Option<Box<Observer>>> = Mutex::new(None);

/// Serializes [`linear_inputs`] calls.
static INSTALL: Mutex<()> = Mutex::new(());

/// Runs `run` with `observer` called on every linear layer's input (see the module docs), and
/// returns what `run` returns. The observer is dropped when `run` returns or unwinds; to keep
/// what it gathered, let it write through a shared handle (`Arc<Mutex<_>>`).
pub fn linear_inputs<R>(
    file: &Arc<ModelFile>,
    observer: impl FnMut(&str, &[f32], usize) + Send + 'static,
    run: impl FnOnce() -> R,
) -> R {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    *OBSERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(observer));
    FILE.store(file_id(file), Ordering::SeqCst);
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

/// The identity of a model file while it is alive: its address.
pub(crate) fn file_id(file: &Arc<ModelFile>) -> usize {
    Arc::as_ptr(file) as usize
}

/// Hands one layer's input to the observer, if one is installed for the layer's file (`file`,
/// its [`file_id`]).
pub(crate) fn linear_input(file: usize, name: &str, rows: &[f32], k: usize) {
    if !ACTIVE.load(Ordering::Relaxed) || FILE.load(Ordering::SeqCst) != file {
        return;
    }
    if let Some(observer) = OBSERVER.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        observer(name, rows, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid model file to observe.
    fn test_file() -> Arc<ModelFile> {
        Arc::new(ModelFile::from_bytes(crate::format::tests::util::sample_bytes()).expect("sample file"))
    }

    #[test]
    fn observer_sees_inputs_only_while_installed() {
        let file = test_file();
        let id = file_id(&file);
        linear_input(id, "before", &[1.0], 1);
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let result = linear_inputs(
            &file,
            move |name: &str, rows: &[f32], k: usize| sink.lock().unwrap().push((name.to_string(), rows.len() / k)),
            || {
                linear_input(id, "a.weight", &[0.0; 6], 3);
                linear_input(id, "b.weight", &[0.0; 4], 4);
                linear_input(id + 1, "another file's", &[0.0; 4], 4);
                7
            },
        );
        linear_input(id, "after", &[1.0], 1);
        assert_eq!(result, 7);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, [("a.weight".to_string(), 2), ("b.weight".to_string(), 1)]);
    }

    #[test]
    fn observer_is_removed_when_the_run_panics() {
        let file = test_file();
        let outcome =
            std::panic::catch_unwind(|| linear_inputs(&file, |_: &str, _: &[f32], _: usize| {}, || panic!("boom")));
        assert!(outcome.is_err());
        // Another test's observer may be installed by now: check while holding the install lock.
        let _no_other = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!ACTIVE.load(Ordering::SeqCst));
        assert!(OBSERVER.lock().unwrap_or_else(|e| e.into_inner()).is_none());
    }
}
