//! Strict quoting for CSV input. The `csv` crate parses leniently: a quote that opens a field
//! and never closes swallows the rest of the file into one text, and text after a closing quote
//! is glued to the field, both without an error. [`QuoteCheck`] sits between the file and the
//! parser, follows the same RFC 4180 quoting as the bytes stream through, and records the first
//! such malformation with its line; the reader turns it into an error naming that line when it
//! reaches the record holding it, so the records before it are still embedded and kept.
//!
//! A quote inside an unquoted field (`5" screen`) is text, as in the `csv` crate, and not an
//! error.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

/// A quoting error: the 1-based line and what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteError {
    pub line: u64,
    pub opened: u64,
    pub kind: QuoteErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteErrorKind {
    /// A quoted field still open at the end of the input.
    NeverCloses,
    /// Text between a closing quote and the next delimiter or line end.
    TextAfterClosingQuote,
}

impl QuoteError {
    /// The explanation for a message that already names the line.
    pub fn describe(&self) -> String {
        match self.kind {
            QuoteErrorKind::NeverCloses => format!(
                "the quoted field opened on line {} never closes (a stray quote would swallow the rest of the file \
                 into one text); close it, or double a quote meant as text (\"\")",
                self.opened
            ),
            QuoteErrorKind::TextAfterClosingQuote => format!(
                "text follows the quote that closes the field opened on line {}; a quote inside a quoted field must \
                 be doubled (\"\")",
                self.opened
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the closing one, or the first of a doubled pair.
    QuoteInQuoted,
}

/// A reader that checks CSV quoting as bytes pass through it.
pub struct QuoteCheck<R> {
    inner: R,
    delimiter: u8,
    state: State,
    line: u64,
    opened: u64,
    error: Rc<Cell<Option<QuoteError>>>,
}

impl<R: Read> QuoteCheck<R> {
    /// Wraps `inner`; the first error found is put in the returned cell.
    pub fn new(inner: R, delimiter: u8) -> (QuoteCheck<R>, Rc<Cell<Option<QuoteError>>>) {
        let error = Rc::new(Cell::new(None));
        let check = QuoteCheck {
            inner,
            delimiter,
            state: State::FieldStart,
            line: 1,
            opened: 0,
            error: error.clone(),
        };
        (check, error)
    }

    fn fail(&mut self, kind: QuoteErrorKind) {
        if self.error.get().is_none() {
            self.error.set(Some(QuoteError {
                line: self.line,
                opened: self.opened,
                kind,
            }));
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let end_of_line = b == b'\n' || b == b'\r';
            self.state = match (self.state, b) {
                (State::FieldStart, b'"') => {
                    self.opened = self.line;
                    State::Quoted
                }
                (State::FieldStart | State::Unquoted, _) if b == self.delimiter || end_of_line => State::FieldStart,
                (State::FieldStart | State::Unquoted, _) => State::Unquoted,
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::Quoted, _) => State::Quoted,
                (State::QuoteInQuoted, b'"') => State::Quoted,
                (State::QuoteInQuoted, _) if b == self.delimiter || end_of_line => State::FieldStart,
                (State::QuoteInQuoted, _) => {
                    self.fail(QuoteErrorKind::TextAfterClosingQuote);
                    State::Unquoted
                }
            };
            if b == b'\n' {
                self.line += 1;
            }
        }
    }
}

impl<R: Read> Read for QuoteCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.state == State::Quoted {
            self.fail(QuoteErrorKind::NeverCloses);
        }
        self.scan(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<QuoteError> {
        let (mut reader, error) = QuoteCheck::new(text.as_bytes(), b',');
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        error.get()
    }

    #[test]
    fn sound_quoting_passes() {
        assert_eq!(check("a,b\n1,\"x, \"\"y\"\"\nz\"\n2,5\" screen\n\"\",\"\"\r\n"), None);
    }

    #[test]
    fn a_quote_that_never_closes_names_its_line() {
        let e = check("a,b\n1,x\n2,\"oops\n3,y\n4,z\n").unwrap();
        assert_eq!((e.opened, e.kind), (3, QuoteErrorKind::NeverCloses));
    }

    #[test]
    fn text_after_a_closing_quote_names_its_line() {
        let e = check("a,b\n1,\"x\n2,\"y\n").unwrap();
        assert_eq!(
            (e.line, e.opened, e.kind),
            (3, 2, QuoteErrorKind::TextAfterClosingQuote)
        );
    }
}
