//! Rust errors as Python exceptions. The message is the command line's (`exit::render`: the
//! error chain on one line) and the class follows its exit code (`exit::code_for`): a bad
//! argument or text (USAGE, BAD_INPUT) is a `ValueError`, a file that cannot be opened,
//! created, read or written is an `OSError` (`FileNotFoundError` when it does not exist), and a
//! bug (INTERNAL, or a panic caught by [`guarded`]) is a `RuntimeError`.

use octet_tools::exit::{self, CliError};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The Python exception for an error of the engine or the converter.
pub fn to_py(err: anyhow::Error) -> PyErr {
    let message = exit::render(&err);
    let bug = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<octet::Error>(),
            Some(octet::Error::Internal(_) | octet::Error::Kernel(_) | octet::Error::ThreadPool(_))
        )
    });
    if bug {
        return PyRuntimeError::new_err(message);
    }
    match exit::code_for(&err) {
        exit::USAGE | exit::BAD_INPUT => PyValueError::new_err(message),
        exit::NO_INPUT if is_missing(&err) => PyFileNotFoundError::new_err(message),
        exit::NO_INPUT | exit::CANT_CREATE | exit::IO => PyOSError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// True if the chain says a file does not exist.
fn is_missing(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            || c.downcast_ref::<CliError>()
                .is_some_and(|e| e.message.contains("does not exist"))
    })
}

/// Runs `f`, turning a panic into an error: a bug in octet must surface as a Python
/// `RuntimeError`, never unwind into the interpreter.
pub fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Err(CliError::internal(format!(
            "internal error (a bug in octet, please report it): {text}"
        )))
    })
}
