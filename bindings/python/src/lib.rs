//! `octet._octet`: the native half of the `octet` Python package (PyO3, abi3 for CPython >=
//! 3.9). The Python half (`python/octet/`) wraps it in the sentence-transformers-shaped API.
//!
//! - [`engine::Engine`] owns one [`octet::Embedder`]: it opens a `.octet` file and embeds
//!   lists of `str` straight into a new NumPy array (`Embedder::embed_into`), with the GIL
//!   released while the texts are tokenized and the encoder runs.
//! - [`convert::convert`] runs the command line's converter (`octet_tools::convert`).
//! - [`errors`] turns every Rust error, and any panic, into a Python exception carrying the
//!   command line's message: `ValueError` for a bad argument or text, `OSError` for a file.

use pyo3::prelude::*;

mod convert;
mod engine;
mod errors;
mod texts;

/// The extension module: `Engine`, `convert`, `kernels`.
#[pymodule]
fn _octet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(convert::convert, m)?)?;
    m.add_function(wrap_pyfunction!(kernels, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The kernels this CPU runs (instruction set level and each family's implementation).
#[pyfunction]
fn kernels() -> String {
    octet_kernels::describe()
}
