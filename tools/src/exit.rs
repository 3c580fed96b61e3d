//! Maps errors to the exit codes documented in `main.rs`.

/// A usage error found after argument parsing (e.g. conflicting inputs).
pub const USAGE: u8 = 2;
/// Bad input: a model file or text that cannot be used.
pub const BAD_INPUT: u8 = 65;
/// Internal error: a bug.
pub const INTERNAL: u8 = 70;
/// I/O error: a file that cannot be read or written.
pub const IO: u8 = 74;

/// An error the command line raises itself, with its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        CliError { message: message.into(), code: USAGE }.into()
    }
    pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
        CliError { message: message.into(), code: BAD_INPUT }.into()
    }
}

/// The exit code for an error chain: the first recognised cause decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return e.code;
        }
        if let Some(e) = cause.downcast_ref::<octet::Error>() {
            return match e {
                octet::Error::Kernel(_) => INTERNAL,
                octet::Error::Format(octet::format::FormatError::Io { .. }) => IO,
                _ => BAD_INPUT,
            };
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return IO;
        }
    }
    BAD_INPUT
}
