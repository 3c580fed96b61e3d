//! [`FormatError`]: everything that can go wrong opening, validating or writing a `.octet` file.
//!
//! Every message names the problem and, where there is one, the fix. The engine wraps this enum in
//! its own error type; the CLI shows the message as is.

use std::path::PathBuf;

/// Why a `.octet` file could not be opened, validated, read or written.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading or writing the file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The first 8 bytes are not the octet magic: some other kind of file.
    #[error(
        "not an octet model file (it starts with {found:02x?}, an octet file starts with \"OCTETMDL\"); \
         convert the model with `octet convert`"
    )]
    NotOctet { found: Vec<u8> },

    /// The file's major version is newer than this reader: it cannot be read safely.
    #[error(
        "this model file uses octet format {file_major}.{file_minor}, newer than this octet supports \
         ({reader_major}.x); upgrade octet, or convert the model with this version of `octet convert`"
    )]
    NewerVersion {
        file_major: u16,
        file_minor: u16,
        reader_major: u16,
    },

    /// The file's major version is older than anything this reader supports.
    #[error(
        "this model file uses octet format {file_major}.{file_minor}, which this octet no longer reads \
         (it reads {reader_major}.x); re-run `octet convert`"
    )]
    OlderVersion {
        file_major: u16,
        file_minor: u16,
        reader_major: u16,
    },

    /// The header sets a required feature flag this reader does not know.
    #[error(
        "this model file needs format features this octet does not have (unknown required flags \
         {flags:#010x}); upgrade octet"
    )]
    UnknownRequiredFlags { flags: u32 },

    /// The file is shorter than its header says (or shorter than a header).
    #[error(
        "truncated file: expected {expected} bytes, got {got}; the file was cut short (an interrupted copy \
         or download?): copy it again or re-run `octet convert`"
    )]
    Truncated { expected: u64, got: u64 },

    /// The file is longer than its header says.
    #[error(
        "the file has {got} bytes but its header says {expected}: extra bytes were appended or the header \
         is corrupt; re-run `octet convert`"
    )]
    TrailingBytes { expected: u64, got: u64 },

    /// A header field is impossible (offsets overlap, misaligned, out of the file, over a limit).
    #[error("corrupt header: {detail}; re-run `octet convert`")]
    BadHeader { detail: String },

    /// A stored checksum does not match the bytes.
    #[error("checksum mismatch in the {what}: the file is corrupt; re-run `octet convert`")]
    ChecksumMismatch { what: &'static str },

    /// The JSON document is not valid UTF-8 JSON or does not have the documented structure.
    #[error("corrupt metadata JSON: {detail}; re-run `octet convert`")]
    BadJson { detail: String },

    /// The metadata parsed but a value in it is invalid or inconsistent.
    #[error("invalid model metadata: {detail}; re-run `octet convert`")]
    BadMetadata { detail: String },

    /// The metadata names an architecture this reader does not implement.
    #[error("unknown architecture '{name}': this octet supports {supported}; upgrade octet or re-convert")]
    UnknownArchitecture { name: String, supported: &'static str },

    /// A tensor's dtype is not one this reader knows.
    #[error("tensor '{tensor}' has unknown dtype '{dtype}' (this octet knows {known}); upgrade octet or re-convert")]
    UnknownDtype {
        tensor: String,
        dtype: String,
        known: &'static str,
    },

    /// Two tensor-table entries have the same name.
    #[error("the tensor table lists '{name}' twice; re-run `octet convert`")]
    DuplicateTensor { name: String },

    /// A tensor's shape is invalid (too many dimensions, or its size overflows).
    #[error("tensor '{tensor}' has an invalid shape {shape:?}: {detail}")]
    BadShape {
        tensor: String,
        shape: Vec<u64>,
        detail: String,
    },

    /// A tensor's byte length does not match its dtype and shape.
    #[error(
        "tensor '{tensor}' has {got} bytes but its dtype and shape need {expected}; the file is corrupt, \
         re-run `octet convert`"
    )]
    SizeMismatch { tensor: String, expected: u64, got: u64 },

    /// A tensor's bytes do not lie inside the data section.
    #[error(
        "tensor '{tensor}' (offset {offset}, {len} bytes) lies outside the data section of {data_len} bytes; \
         the file is corrupt, re-run `octet convert`"
    )]
    OutOfBounds {
        tensor: String,
        offset: u64,
        len: u64,
        data_len: u64,
    },

    /// A tensor's offset is not a multiple of 64.
    #[error(
        "tensor '{tensor}' starts at data offset {offset}, which is not a multiple of {align}; re-run `octet convert`"
    )]
    Misaligned { tensor: String, offset: u64, align: u64 },

    /// Two tensors share bytes.
    #[error("tensors '{first}' and '{second}' overlap in the data section; re-run `octet convert`")]
    Overlap { first: String, second: String },

    /// A tensor the file or the caller needs is absent.
    #[error("missing tensor '{name}' (needed by {needed_by}); re-run `octet convert`")]
    MissingTensor { name: String, needed_by: String },

    /// A tensor has a different dtype from the one required.
    #[error("tensor '{tensor}' has dtype {got}, expected {expected}")]
    WrongDtype {
        tensor: String,
        expected: String,
        got: String,
    },

    /// A tensor has a different shape from the one required.
    #[error("tensor '{tensor}' has shape {got:?}, expected {expected:?}")]
    WrongShape {
        tensor: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },

    /// A writer argument is inconsistent (lengths, names, metadata); nothing was written.
    #[error("cannot write the model file: {detail}")]
    InvalidInput { detail: String },
}

impl FormatError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn bad_header(detail: impl Into<String>) -> Self {
        FormatError::BadHeader { detail: detail.into() }
    }

    pub(crate) fn bad_meta(detail: impl Into<String>) -> Self {
        FormatError::BadMetadata { detail: detail.into() }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        FormatError::InvalidInput { detail: detail.into() }
    }
}
