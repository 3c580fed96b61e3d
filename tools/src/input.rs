//! Where texts come from: command-line arguments, or a file / standard input holding plain text
//! (one text per line), JSON lines (`--field NAME`) or CSV (`--column NAME`).
//!
//! Rules (`octet embed --help` and the README say the same):
//! - **Plain text**: every line is one text, ended by `\n` or `\r\n` (the last line may lack
//!   it). An empty line is an empty text and is embedded like any other (the model sees only
//!   its special tokens), so line `n` always has id `n - 1`.
//! - **JSON lines**: every non-blank line is one JSON object and the text is the string in
//!   `field`. Blank lines are not records and are skipped; ids count records.
//! - **CSV**: the first row names the columns and every later row is one record; quoted fields
//!   may hold commas, quotes and line breaks. A `.tsv` file is tab-separated. An empty field is
//!   an empty text; blank lines are skipped. A row with more or fewer fields than the header,
//!   or with broken quoting ([`crate::csv_check`]), is an error naming its line: no part of a
//!   text is ever dropped, so the count of vectors is the count of rows.
//! - Text that is not valid UTF-8 is an error naming the line, unless `lossy` is set, which
//!   replaces the bad bytes with U+FFFD. A UTF-8 byte-order mark at the start is dropped.
//!
//! Records are read one at a time, so input of any size streams in bounded memory.

use crate::csv_check::{QuoteCheck, QuoteError};
use anyhow::Result;
use octet_tools::exit::CliError;
use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

/// How a file or stream is split into texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// One text per line.
    Lines,
    /// One JSON object per line; the text is the string member of this name.
    Jsonl { field: String },
    /// CSV with a header row; the text is the column of this name.
    Csv { column: String },
}

impl InputKind {
    /// The kind chosen by `--field` / `--column` (at most one of them).
    pub fn from_flags(field: Option<String>, column: Option<String>) -> Result<InputKind> {
        match (field, column) {
            (Some(_), Some(_)) => Err(CliError::usage(
                "--field (JSON lines) and --column (CSV) exclude each other: the input is one or the other",
            )),
            (Some(field), None) => Ok(InputKind::Jsonl { field }),
            (None, Some(column)) => Ok(InputKind::Csv { column }),
            (None, None) => Ok(InputKind::Lines),
        }
    }

    /// A short description that also identifies the field or column (for cache keys).
    pub fn describe(&self) -> String {
        match self {
            InputKind::Lines => "lines".to_string(),
            InputKind::Jsonl { field } => format!("jsonl field {field:?}"),
            InputKind::Csv { column } => format!("csv column {column:?}"),
        }
    }
}

/// One text and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub text: String,
    /// 1-based line of the input where the record starts (argument number for arguments).
    pub line: u64,
}

/// Reads records one at a time.
pub struct TextReader {
    /// "sentences.txt", "standard input" or "the arguments".
    name: String,
    lossy: bool,
    total_bytes: Option<u64>,
    source: Source,
}

enum Source {
    Args {
        texts: std::vec::IntoIter<String>,
        index: u64,
    },
    Lines {
        reader: Box<dyn BufRead>,
        /// `Some(field)` for JSON lines.
        field: Option<String>,
        buf: Vec<u8>,
        line: u64,
        bytes: u64,
    },
    Csv {
        reader: csv::Reader<Box<dyn Read>>,
        column: String,
        column_index: usize,
        /// Fields in the header row: every record must have as many.
        columns: usize,
        record: csv::ByteRecord,
        quote_error: Rc<Cell<Option<QuoteError>>>,
    },
}

const BOM: &[u8] = b"\xef\xbb\xbf";

impl TextReader {
    /// Texts given on the command line.
    pub fn from_args(texts: Vec<String>) -> TextReader {
        let total = texts.iter().map(|t| t.len() as u64 + 1).sum();
        TextReader {
            name: "the arguments".into(),
            lossy: false,
            total_bytes: Some(total),
            source: Source::Args {
                texts: texts.into_iter(),
                index: 0,
            },
        }
    }

    /// A file, or standard input for `None` or `-`.
    pub fn open(path: Option<&Path>, kind: InputKind, lossy: bool) -> Result<TextReader> {
        let path = path.filter(|p| p.as_os_str() != "-");
        let (name, reader, total_bytes): (String, Box<dyn Read>, Option<u64>) = match path {
            None => ("standard input".into(), Box::new(std::io::stdin()), None),
            Some(path) => {
                let file = open_input(path, "input")?;
                let len = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                (path.display().to_string(), Box::new(file), len)
            }
        };
        let source = match kind {
            InputKind::Lines => Source::Lines {
                reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
                field: None,
                buf: Vec::new(),
                line: 0,
                bytes: 0,
            },
            InputKind::Jsonl { field } => Source::Lines {
                reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
                field: Some(field),
                buf: Vec::new(),
                line: 0,
                bytes: 0,
            },
            InputKind::Csv { column } => {
                let tsv = path
                    .and_then(|p| p.extension())
                    .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
                let delimiter = if tsv { b'\t' } else { b',' };
                let (checked, quote_error) = QuoteCheck::new(reader, delimiter);
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .flexible(true)
                    .has_headers(true)
                    .from_reader(Box::new(checked) as Box<dyn Read>);
                let headers = match reader.byte_headers() {
                    Ok(h) => h.clone(),
                    Err(e) => return Err(csv_error(&name, e)),
                };
                if headers.is_empty() {
                    return Err(CliError::bad_input(format!(
                        "{name} is empty: a CSV input needs a header row naming its columns, then one row per text"
                    )));
                }
                let names: Vec<String> = headers
                    .iter()
                    .map(|h| String::from_utf8_lossy(h.strip_prefix(BOM).unwrap_or(h)).into_owned())
                    .collect();
                let Some(column_index) = names.iter().position(|n| n == &column) else {
                    return Err(CliError::bad_input(format!(
                        "{name} has no column '{column}' (its header row names: {}); pass the column holding the texts with --column",
                        list(&names)
                    )));
                };
                Source::Csv {
                    reader,
                    column,
                    column_index,
                    columns: headers.len(),
                    record: csv::ByteRecord::new(),
                    quote_error,
                }
            }
        };
        Ok(TextReader {
            name,
            lossy,
            total_bytes,
            source,
        })
    }

    /// The input's name for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where a record is, for messages: "line 7 of notes.txt", "argument 2".
    pub fn location(&self, line: u64) -> String {
        match self.source {
            Source::Args { .. } => format!("argument {line}"),
            _ => format!("line {line} of {}", self.name),
        }
    }

    /// The input's size in bytes, if known (a regular file or the arguments).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        match &self.source {
            Source::Args { texts, .. } => {
                self.total_bytes.unwrap_or(0) - texts.as_slice().iter().map(|t| t.len() as u64 + 1).sum::<u64>()
            }
            Source::Lines { bytes, .. } => *bytes,
            Source::Csv { reader, .. } => reader.position().byte(),
        }
    }

    /// The next record, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let lossy = self.lossy;
        match &mut self.source {
            Source::Args { texts, index } => Ok(texts.next().map(|text| {
                *index += 1;
                Record { text, line: *index }
            })),
            Source::Lines {
                reader,
                field,
                buf,
                line,
                bytes,
            } => loop {
                if !read_line(reader.as_mut(), buf, line, bytes, &self.name)? {
                    return Ok(None);
                }
                let text = decode_utf8(std::mem::take(buf), lossy, *line, &self.name)?;
                match field {
                    None => return Ok(Some(Record { text, line: *line })),
                    Some(field) => {
                        if text.trim().is_empty() {
                            continue;
                        }
                        let text = field_of(&text, field, *line, &self.name)?;
                        return Ok(Some(Record { text, line: *line }));
                    }
                }
            },
            Source::Csv {
                reader,
                column,
                column_index,
                columns,
                record,
                quote_error,
            } => {
                match reader.read_byte_record(record) {
                    Ok(false) => return Ok(None),
                    Ok(true) => {}
                    Err(e) => return Err(csv_error(&self.name, e)),
                }
                let line = record.position().map_or(0, |p| p.line());
                if let Some(e) = quote_error.get().filter(|e| e.opened < reader.position().line()) {
                    return Err(CliError::bad_input(format!(
                        "line {} of {} is not valid CSV: {}",
                        e.opened.max(line),
                        self.name,
                        e.describe()
                    )));
                }
                if record.len() != *columns {
                    let Some(_) = record.get(*column_index) else {
                        return Err(CliError::bad_input(format!(
                            "line {line} of {} has no value in column '{column}' (the row has {} fields, the header {}); \
                             fix the row or quote fields holding commas",
                            self.name,
                            record.len(),
                            *columns
                        )));
                    };
                    return Err(CliError::bad_input(format!(
                        "line {line} of {} has {} fields but the header row names {}: an unquoted comma would split \
                         a text and lose part of it; quote fields holding commas (\"a, b\"), or fix the row",
                        self.name,
                        record.len(),
                        *columns
                    )));
                }
                let field = record.get(*column_index).unwrap_or_default();
                let text = decode_utf8(field.to_vec(), lossy, line, &self.name)?;
                Ok(Some(Record { text, line }))
            }
        }
    }

    /// Reads and drops up to `n` records (for `--resume`); returns how many there were. Lines
    /// are counted without decoding them, so this is as fast as the disk.
    pub fn skip(&mut self, n: u64) -> Result<u64> {
        let mut skipped = 0;
        while skipped < n {
            match &mut self.source {
                Source::Lines {
                    reader,
                    field,
                    buf,
                    line,
                    bytes,
                } => {
                    if !read_line(reader.as_mut(), buf, line, bytes, &self.name)? {
                        break;
                    }
                    if field.is_some() && buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    buf.clear();
                }
                _ => {
                    if self.next_record()?.is_none() {
                        break;
                    }
                }
            }
            skipped += 1;
        }
        Ok(skipped)
    }
}

/// Opens an input file with messages that name the problem and the fix.
pub fn open_input(path: &Path, what: &str) -> Result<File> {
    if path.is_dir() {
        return Err(CliError::no_input(format!(
            "the {what} {} is a folder, not a file",
            path.display()
        )));
    }
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::no_input(format!(
            "the {what} file {} does not exist; check the path",
            path.display()
        )),
        _ => CliError::no_input(format!("cannot open the {what} file {}: {e}", path.display())),
    })
}

/// Reads one line into `buf` without its line ending; false at the end of the input.
fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>, line: &mut u64, bytes: &mut u64, name: &str) -> Result<bool> {
    buf.clear();
    let n = reader
        .read_until(b'\n', buf)
        .map_err(|e| CliError::io(format!("cannot read {name} after line {line}: {e}")))?;
    if n == 0 {
        return Ok(false);
    }
    *bytes += n as u64;
    *line += 1;
    if *line == 1 && buf.starts_with(BOM) {
        buf.drain(..BOM.len());
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

fn decode_utf8(bytes: Vec<u8>, lossy: bool, line: u64, name: &str) -> Result<String> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) if lossy => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(e) => Err(CliError::bad_input(format!(
            "line {line} of {name} is not valid UTF-8 (bad byte at column {}); convert the input to UTF-8 \
             (e.g. iconv -f latin1 -t utf-8), or pass --lossy to replace bad bytes with U+FFFD",
            e.utf8_error().valid_up_to() + 1
        ))),
    }
}

/// The string member `field` of the JSON object on one line.
fn field_of(line_text: &str, field: &str, line: u64, name: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(line_text).map_err(|e| {
        CliError::bad_input(format!(
            "line {line} of {name} is not valid JSON ({e}); JSON lines input needs one object per line, \
             e.g. {{\"{field}\": \"some text\"}}"
        ))
    })?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(CliError::bad_input(format!(
            "line {line} of {name} is a JSON {}, not an object; JSON lines input needs one object per line, \
             e.g. {{\"{field}\": \"some text\"}}",
            json_kind(&value)
        )));
    };
    match object.remove(field) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(CliError::bad_input(format!(
            "line {line} of {name}: field '{field}' is {}, not a string; pick the field holding the text with --field",
            with_article(json_kind(&other))
        ))),
        None => {
            let keys: Vec<String> = object.keys().cloned().collect();
            Err(CliError::bad_input(format!(
                "line {line} of {name} has no field '{field}' (it has: {}); pick the field holding the text with --field, \
                 or fix the line",
                list(&keys)
            )))
        }
    }
}

/// "an array", "a number", "null".
fn with_article(kind: &str) -> String {
    match kind {
        "null" => kind.to_string(),
        _ if kind.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn csv_error(name: &str, e: csv::Error) -> anyhow::Error {
    match e.kind() {
        csv::ErrorKind::Io(io) => CliError::io(format!("cannot read {name}: {io}")),
        _ => CliError::bad_input(format!("{name} is not valid CSV: {e}")),
    }
}

/// "a, b, c" (at most 10 names), or "nothing".
fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    let mut s = names
        .iter()
        .take(10)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(" and {} more", names.len() - 10));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use octet_tools::exit;

    fn read_all(bytes: &[u8], kind: InputKind, lossy: bool) -> Result<Vec<Record>> {
        let dir = std::env::temp_dir().join(format!("octet-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ext = match kind {
            InputKind::Csv { .. } => "csv",
            _ => "txt",
        };
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = dir.join(format!(
            "{}.{ext}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut reader = TextReader::open(Some(&path), kind, lossy)?;
        let mut out = Vec::new();
        while let Some(r) = reader.next_record()? {
            out.push(r);
        }
        assert_eq!(reader.bytes_read(), bytes.len() as u64);
        Ok(out)
    }

    fn texts(records: &[Record]) -> Vec<(&str, u64)> {
        records.iter().map(|r| (r.text.as_str(), r.line)).collect()
    }

    #[test]
    fn lines_keep_empty_lines_and_strip_endings() {
        let r = read_all(b"\xef\xbb\xbfa\r\n\nb\n  \nc", InputKind::Lines, false).unwrap();
        assert_eq!(texts(&r), [("a", 1), ("", 2), ("b", 3), ("  ", 4), ("c", 5)]);
    }

    #[test]
    fn invalid_utf8_names_the_line_or_is_replaced() {
        let err = read_all(b"ok\nbad \xff byte\n", InputKind::Lines, false).unwrap_err();
        assert_eq!(exit::code_for(&err), exit::BAD_INPUT);
        assert!(err.to_string().contains("line 2 of"), "{err}");
        assert!(err.to_string().contains("column 5"), "{err}");
        let r = read_all(b"ok\nbad \xff byte\n", InputKind::Lines, true).unwrap();
        assert_eq!(r[1].text, "bad \u{fffd} byte");
    }

    #[test]
    fn jsonl_reads_the_field_and_skips_blank_lines() {
        let kind = InputKind::Jsonl { field: "text".into() };
        let r = read_all(
            b"{\"text\": \"a\", \"n\": 1}\n\n{\"text\": \"\"}\n",
            kind.clone(),
            false,
        )
        .unwrap();
        assert_eq!(texts(&r), [("a", 1), ("", 3)]);
        let err = read_all(b"{\"text\": \"a\"}\n{\"body\": \"b\"}\n", kind.clone(), false).unwrap_err();
        assert!(
            err.to_string().contains("line 2 of") && err.to_string().contains("'body'"),
            "{err}"
        );
        let err = read_all(b"{\"text\": 3}\n", kind.clone(), false).unwrap_err();
        assert!(err.to_string().contains("is a number"), "{err}");
        let err = read_all(b"{\"text\": [3]}\n", kind.clone(), false).unwrap_err();
        assert!(err.to_string().contains("is an array, not a string"), "{err}");
        let err = read_all(b"[1]\n", kind.clone(), false).unwrap_err();
        assert!(err.to_string().contains("array, not an object"), "{err}");
        let err = read_all(b"{\"text\": \n", kind, false).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn csv_handles_quotes_newlines_and_missing_columns() {
        let kind = InputKind::Csv { column: "body".into() };
        let data = b"id,body\n1,\"a, \"\"quoted\"\" text\"\n2,\"two\nlines\"\n3,\n";
        let r = read_all(data, kind.clone(), false).unwrap();
        assert_eq!(texts(&r), [("a, \"quoted\" text", 2), ("two\nlines", 3), ("", 5)]);
        let err = read_all(b"id,text\n1,a\n", kind.clone(), false).unwrap_err();
        assert!(
            err.to_string().contains("no column 'body'") && err.to_string().contains("'text'"),
            "{err}"
        );
        let err = read_all(b"id,body\n1\n", kind.clone(), false).unwrap_err();
        assert!(
            err.to_string().contains("line 2 of") && err.to_string().contains("no value in column"),
            "{err}"
        );
        let err = read_all(b"", kind, false).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn skip_counts_records_like_next_record() {
        let dir = std::env::temp_dir().join(format!("octet-input-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.jsonl");
        std::fs::write(&path, b"{\"t\":\"a\"}\n\n{\"t\":\"b\"}\n{\"t\":\"c\"}\n").unwrap();
        let mut reader = TextReader::open(Some(&path), InputKind::Jsonl { field: "t".into() }, false).unwrap();
        assert_eq!(reader.skip(2).unwrap(), 2);
        assert_eq!(
            reader.next_record().unwrap().unwrap(),
            Record {
                text: "c".into(),
                line: 4
            }
        );
        assert_eq!(reader.skip(5).unwrap(), 0);
    }
}
