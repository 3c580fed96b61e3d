//! `octet embed`: texts in, one JSON line per text out.

use octet_tools::exit::CliError;
use anyhow::{Context, Result};
use clap::Args;
use octet::{EmbedOptions, Embedder, Truncation};
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

/// Embed texts and print one JSON line per text: {"id": N, "embedding": [...]}.
///
/// Texts come from the arguments, or else from standard input, one text per line. Lines are
/// read and embedded in chunks, so input of any length streams with bounded memory. An empty
/// line is embedded like any other text (the model sees only its special tokens).
///
/// Examples:
///   octet embed minilm-int8.octet "The cat sat on the mat." "A dog barked."
///   cat sentences.txt | octet embed minilm-int8.octet > vectors.jsonl
///   octet embed gemma.octet --prompt query --dims 256 "how do cats sleep"
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct EmbedArgs {
    /// The .octet model file.
    model: PathBuf,
    /// Texts to embed; if none are given, read standard input, one text per line.
    texts: Vec<String>,
    /// Task prompt stored in the model (e.g. query, document); see `octet info`.
    #[arg(long)]
    prompt: Option<String>,
    /// Keep only the first N dimensions (Matryoshka truncation), then re-normalize.
    #[arg(long)]
    dims: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Compute threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Fail on a text longer than the model's window instead of truncating it.
    #[arg(long)]
    no_truncate: bool,
    /// Do not L2-normalize the vectors.
    #[arg(long)]
    no_normalize: bool,
    /// Replace invalid UTF-8 on standard input instead of failing.
    #[arg(long)]
    lossy: bool,
}

const CHUNK_LINES: usize = 1024;

pub fn run(args: EmbedArgs) -> Result<()> {
    let embedder = Embedder::open_with_threads(&args.model, args.threads)?;
    let options = EmbedOptions {
        batch_size: args.batch_size,
        truncation: if args.no_truncate { Truncation::Error } else { Truncation::Truncate },
        prompt: args.prompt.clone(),
        dims: args.dims,
        normalize: if args.no_normalize { Some(false) } else { None },
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut next_id = 0usize;
    let mut truncated = 0usize;
    let mut emit = |texts: &[String], out: &mut BufWriter<std::io::StdoutLock>| -> Result<()> {
        let result = embedder.embed_detailed(texts, &options).map_err(|e| match e {
            octet::Error::TextTooLong { index, max } => {
                CliError::bad_input(format!("text {} is longer than the model's window of {max} tokens (drop --no-truncate to truncate it)", next_id + index + 1))
            }
            other => other.into(),
        })?;
        truncated += result.truncated;
        for v in result.vectors {
            serde_json::to_writer(&mut *out, &serde_json::json!({ "id": next_id, "embedding": v }))?;
            out.write_all(b"\n")?;
            next_id += 1;
        }
        Ok(())
    };
    if !args.texts.is_empty() {
        emit(&args.texts, &mut out)?;
    } else {
        let stdin = std::io::stdin();
        let mut reader = stdin.lock();
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        let mut line_no = 0usize;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).context("cannot read standard input")? == 0 {
                break;
            }
            line_no += 1;
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            let text = match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(s) => s,
                Err(e) if args.lossy => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                Err(e) => return Err(CliError::bad_input(format!("line {line_no} of standard input is not valid UTF-8 ({}); fix the input or pass --lossy to replace bad bytes", e.utf8_error()))),
            };
            chunk.push(text);
            if chunk.len() == CHUNK_LINES {
                emit(&chunk, &mut out)?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            emit(&chunk, &mut out)?;
        }
    }
    out.flush().context("cannot write to standard output")?;
    if truncated > 0 {
        eprintln!("note: {truncated} text(s) were longer than the model's window of {} tokens and were truncated", embedder.window());
    }
    Ok(())
}
