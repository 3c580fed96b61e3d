//! The engine's one error type. Every failure a caller can cause (a bad file, a bad option,
//! a text over the window with truncation off) is a variant here with a message that names
//! the problem and, where there is one, the fix.

use crate::format::FormatError;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file is missing, corrupt, truncated or foreign.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The file is a valid octet container, but its contents do not fit the architecture.
    #[error("model does not match its architecture '{arch}': {detail}")]
    Model { arch: String, detail: String },
    /// The tokenizer stored in the model could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A text is longer than the model's window and truncation is off.
    #[error("text {index} is longer than the model's window of {max} tokens; shorten it or allow truncation")]
    TextTooLong { index: usize, max: usize },
    /// An option does not fit this model (prompt name, output dims, batch size...).
    #[error("invalid option: {0}")]
    Option(String),
    /// The compute threads could not be started (the OS refused them).
    #[error("cannot start the compute threads: {0}")]
    ThreadPool(String),
    /// An invariant of the engine did not hold: a bug, never the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// A kernel rejected its arguments: a bug in the engine, never the caller's fault.
    #[error("internal error in a kernel: {0}")]
    Kernel(#[from] octet_kernels::KernelError),
}

impl Error {
    /// A mismatch between the file and what architecture `arch` expects.
    pub(crate) fn model(arch: &str, detail: impl Into<String>) -> Error {
        Error::Model {
            arch: arch.to_string(),
            detail: detail.into(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
