//! Exit codes of the `octet` command line, and the mapping from an error to its code.
//!
//! The codes follow BSD `sysexits.h`, so scripts can tell "you called it wrong" from "the
//! data is bad" from "a file could not be read or written" from "octet has a bug":
//!
//! | code | name        | meaning |
//! |-----:|-------------|---------|
//! |    0 |             | success |
//! |    2 | USAGE       | bad flags or arguments (clap's own errors use 2 too) |
//! |   65 | BAD_INPUT   | a model file or a text that cannot be used (corrupt, newer format, invalid UTF-8, missing field...) |
//! |   66 | NO_INPUT    | an input file (model, `--input`, corpus) does not exist or cannot be opened |
//! |   70 | INTERNAL    | a bug in octet (including a panic) |
//! |   73 | CANT_CREATE | an output file cannot be created (missing folder, no permission) |
//! |   74 | IO          | reading or writing failed midway (disk full, file-size limit, I/O error) |

use std::io::ErrorKind;

/// Bad flags or arguments, found after argument parsing (e.g. conflicting inputs).
pub const USAGE: u8 = 2;
/// Bad input: a model file or text that cannot be used.
pub const BAD_INPUT: u8 = 65;
/// An input file that does not exist or cannot be opened.
pub const NO_INPUT: u8 = 66;
/// Internal error: a bug.
pub const INTERNAL: u8 = 70;
/// An output file that cannot be created.
pub const CANT_CREATE: u8 = 73;
/// I/O error while reading or writing.
pub const IO: u8 = 74;

/// An error the command line raises itself, with its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    /// An error with an explicit exit code.
    pub fn with_code(code: u8, message: impl Into<String>) -> anyhow::Error {
        CliError {
            message: message.into(),
            code,
        }
        .into()
    }
    /// Bad flags or arguments.
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Self::with_code(USAGE, message)
    }
    /// A text, record or model that cannot be used.
    pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
        Self::with_code(BAD_INPUT, message)
    }
    /// An input file that cannot be opened.
    pub fn no_input(message: impl Into<String>) -> anyhow::Error {
        Self::with_code(NO_INPUT, message)
    }
    /// An output file that cannot be created.
    pub fn cant_create(message: impl Into<String>) -> anyhow::Error {
        Self::with_code(CANT_CREATE, message)
    }
    /// Reading or writing failed midway.
    pub fn io(message: impl Into<String>) -> anyhow::Error {
        Self::with_code(IO, message)
    }
    /// A bug.
    pub fn internal(message: impl Into<String>) -> anyhow::Error {
        Self::with_code(INTERNAL, message)
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
                octet::Error::Format(octet::format::FormatError::Io { source, .. }) => io_code(source),
                _ => BAD_INPUT,
            };
        }
        if let Some(e) = cause.downcast_ref::<octet::format::FormatError>() {
            return match e {
                octet::format::FormatError::Io { source, .. } => io_code(source),
                _ => BAD_INPUT,
            };
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return io_code(e);
        }
    }
    BAD_INPUT
}

/// An I/O error on opening is a missing input; anything else failed midway.
fn io_code(e: &std::io::Error) -> u8 {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory => NO_INPUT,
        _ => IO,
    }
}

/// The error chain as one line, `a: b: c`, skipping a cause whose text an earlier one already
/// holds (a file error that prints its I/O cause, whose cause prints the same words again).
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// True if the chain holds a broken pipe (the reader of our standard output went away, as in
/// `octet embed ... | head -1`): not an error worth a message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut codes = [USAGE, BAD_INPUT, NO_INPUT, INTERNAL, CANT_CREATE, IO];
        codes.sort_unstable();
        assert!(codes.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn first_recognised_cause_decides() {
        let err = CliError::io("disk full").context("writing vectors");
        assert_eq!(code_for(&err), IO);
        let missing: anyhow::Error = std::io::Error::from(ErrorKind::NotFound).into();
        assert_eq!(code_for(&missing), NO_INPUT);
        let kernel: anyhow::Error = octet::Error::Option("x".into()).into();
        assert_eq!(code_for(&kernel), BAD_INPUT);
        let denied = std::io::Error::new(ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let twice =
            anyhow::Error::new(std::io::Error::new(ErrorKind::PermissionDenied, denied)).context("cannot use m");
        assert_eq!(render(&twice), "cannot use m: Permission denied (os error 13)");
        let pipe: anyhow::Error = std::io::Error::from(ErrorKind::BrokenPipe).into();
        assert!(is_broken_pipe(&pipe.context("writing")));
    }
}
