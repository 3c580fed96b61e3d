//! The streaming loop shared by `octet embed` and `octet search`: read a chunk of texts, embed
//! it, write its vectors, and repeat until the input ends. Chunks are processed in input order,
//! so memory stays bounded by one chunk whatever the length of the input, and ids follow input
//! order. The progress bar (stderr, only on a terminal) shows texts/s, tokens/s and the ETA.
//!
//! On a bad record (invalid UTF-8, a missing field, a text over the window with
//! `--no-truncate`, a vector that is not finite) the texts before it are still embedded and written, then the error is
//! returned: no earlier output is lost.

use crate::input::{Record, TextReader};
use crate::output::VectorWriter;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use octet::{EmbedOptions, Embedder};
use octet_tools::exit::CliError;
use std::io::IsTerminal;
use std::time::Duration;

/// Texts per chunk: enough for the engine to sort by length and fill several batches of 32,
/// few enough that the progress bar moves about every second even on a busy laptop.
pub const CHUNK_TEXTS: usize = 256;
/// Bytes of text per chunk, so a file of long documents also moves in small steps.
pub const CHUNK_BYTES: usize = 256 << 10;

/// What a streaming run did.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Texts embedded and written by this run.
    pub texts: u64,
    /// Tokens processed, special and prompt tokens included.
    pub tokens: u64,
    /// Texts cut to the window.
    pub truncated: u64,
}

/// A progress bar on stderr, or nothing when stderr is not a terminal or `quiet` is set.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `total_bytes` of input (a spinner when the size is unknown).
    pub fn new(quiet: bool, total_bytes: Option<u64>, label: &str) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = match total_bytes {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}%  {msg}  ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(ProgressStyle::with_template("{prefix} {spinner} {msg}").expect("valid template")),
        };
        bar.set_prefix(label.to_string());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    /// Starts the bar at `bytes` (the part of the input an earlier run already did).
    pub fn start_at(&self, bytes: u64) {
        self.bar.set_position(bytes);
        self.bar.reset_eta();
    }

    fn update(&self, bytes: u64, totals: &Totals) {
        let secs = self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_position(bytes);
        self.bar.set_message(format!(
            "{} texts  {:.0} texts/s  {:.0} tokens/s",
            totals.texts,
            totals.texts as f64 / secs,
            totals.tokens as f64 / secs
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Embeds every remaining record of `reader` and writes the vectors to `writer`, ids starting
/// at `writer.count()`.
pub fn embed_all(
    embedder: &Embedder,
    options: &EmbedOptions,
    reader: &mut TextReader,
    writer: &mut VectorWriter,
    progress: &Progress,
) -> Result<Totals> {
    let mut totals = Totals::default();
    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK_TEXTS);
    loop {
        chunk.clear();
        let mut bytes = 0;
        let mut failure = None;
        let mut at_end = false;
        while chunk.len() < CHUNK_TEXTS && bytes < CHUNK_BYTES {
            match reader.next_record() {
                Ok(Some(record)) => {
                    bytes += record.text.len();
                    chunk.push(record);
                }
                Ok(None) => {
                    at_end = true;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if chunk.is_empty() && failure.is_none() {
            break;
        }
        let result = embed_chunk(embedder, options, reader, &chunk, writer, &mut totals);
        writer.flush()?;
        progress.update(reader.bytes_read(), &totals);
        result?;
        if let Some(e) = failure {
            return Err(e);
        }
        if at_end {
            break;
        }
    }
    Ok(totals)
}

/// Embeds one chunk and writes it. A text over the window (with truncation off) fails the whole
/// call in the engine, so the texts before the first such text are embedded again on their own
/// and written before the error is returned.
fn embed_chunk(
    embedder: &Embedder,
    options: &EmbedOptions,
    reader: &TextReader,
    chunk: &[Record],
    writer: &mut VectorWriter,
    totals: &mut Totals,
) -> Result<()> {
    let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
    let mut end = texts.len();
    let mut failure = None;
    while end > 0 {
        match embedder.embed_detailed(&texts[..end], options) {
            Ok(result) => {
                totals.tokens += result.tokens as u64;
                totals.truncated += result.truncated as u64;
                for (record, vector) in chunk.iter().zip(&result.vectors) {
                    if vector.iter().any(|v| !v.is_finite()) {
                        return Err(CliError::bad_input(format!(
                            "the vector of {} (id {}, {:?}) is not finite (NaN or infinity): the model is broken \
                             (`octet info --verify MODEL` checks its weights); nothing of it was written",
                            reader.location(record.line),
                            writer.count(),
                            crate::cmd_similarity::clip(&record.text, 60)
                        )));
                    }
                    writer.write(writer.count(), vector)?;
                    totals.texts += 1;
                }
                break;
            }
            Err(octet::Error::TextTooLong { index, max }) if index < end => {
                let record = &chunk[index];
                failure = Some(CliError::bad_input(format!(
                    "{} (id {}) is longer than the model's window of {max} tokens; shorten it, \
                     or drop --no-truncate to cut it to the window",
                    reader.location(record.line),
                    writer.count() + index as u64
                )));
                end = index;
            }
            Err(e) => {
                let (first, last) = (chunk[0].line, chunk[end - 1].line);
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot embed the texts of {} to {last}",
                    reader.location(first)
                )));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
