//! Errors of the TFLite reader and importer.

use thiserror::Error;

/// What went wrong reading or mapping a TFLite file.
#[derive(Debug, Error)]
pub enum TfliteError {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The bytes are not a well-formed TFLite model.
    #[error("invalid TFLite file: {0}")]
    Invalid(String),
    /// A well-formed model whose graph octet does not recognise.
    #[error("unrecognised TFLite graph: {0}")]
    Unrecognised(String),
}
