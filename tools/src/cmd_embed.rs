//! `octet embed`: texts in (arguments, plain text, JSON lines, CSV), vectors out (JSON lines,
//! `.npy`, raw f16), streamed in chunks with a progress bar; see [`crate::input`],
//! [`crate::output`] and [`crate::stream`] for the rules.

use crate::input::{InputKind, TextReader};
use crate::load;
use crate::output::{output_files, VectorFormat, VectorWriter};
use crate::sink::{self, partial_path};
use crate::stream::{self, Progress};
use anyhow::Result;
use clap::Args;
use octet_tools::exit::{self, CliError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Embed texts: one vector per text, in input order.
///
/// Input (one of):
///   TEXT arguments                 each argument is one text
///   --input FILE, or stdin         plain text, one text per line; an empty line is an
///                                  empty text, so line N always has id N-1
///   ... with --field NAME          JSON lines: one object per line, text in field NAME
///                                  (blank lines are skipped; ids count records)
///   ... with --column NAME         CSV with a header row (quoted fields may hold commas
///                                  and newlines; .tsv files are tab-separated)
///
/// Output (--format, or guessed from --output's extension: .npy -> npy, .f16 -> f16):
///   jsonl      one line per text: {"id":N,"embedding":[...]} (default)
///   npy        NumPy float32 array (count, dims)
///   npy-int8   NumPy int8 array (count, dims) plus X.scales.npy, float32 (count,):
///              vector i ~ q[i] * scale[i], scale[i] = max|v[i]| / 127
///   f16        raw little-endian float16, count x dims values, no header
///
/// With --output FILE, vectors go to FILE.partial, renamed to FILE when complete: an
/// interrupted run never leaves a FILE that looks complete. FILE.partial is created
/// exclusively and locked: a second run into the same FILE is refused while the first runs.
/// A device, FIFO or socket (-o /dev/null) is written in place; an output that is the model
/// or the input (hard links and symlinks too) is refused. --resume continues a JSON lines
/// FILE.partial: it checks every complete line, cuts a torn last one, refuses other model or
/// options (prompt, dims, normalization, --field/--column) than the run began with
/// (FILE.partial.run records them), and skips as many input records. If a text is bad
/// (invalid UTF-8, missing field, a malformed CSV row, over the window with --no-truncate, a
/// vector that is not finite), the vectors before it are written (kept in FILE.partial for
/// --resume) and octet stops with an error naming the line. A write error (disk full)
/// removes this run's output.
///
/// Texts longer than the model's window are cut to it (a note at the end counts them), or
/// rejected with --no-truncate. The input streams in chunks of 256 texts: any size works in
/// bounded memory. A progress bar with texts/s, tokens/s and ETA shows on a terminal.
///
/// Examples:
///   octet embed minilm-int8.octet "The cat sat on the mat." "A dog barked."
///   cat sentences.txt | octet embed minilm-int8.octet > vectors.jsonl
///   octet embed minilm-int8.octet --input docs.jsonl --field body -o vectors.npy
///   octet embed minilm-int8.octet --input faq.csv --column question -o faq.npy --format npy-int8
///   octet embed minilm-int8.octet --input big.txt -o big.jsonl --resume    # after Ctrl-C
///   octet embed gemma.octet --prompt query --dims 256 "how do cats sleep"
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct EmbedArgs {
    /// The .octet model file.
    model: PathBuf,
    /// Texts to embed; if none are given, read --input or standard input.
    texts: Vec<String>,
    /// Read texts from this file ("-": standard input).
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// The input is JSON lines; embed the string in this field of each object.
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// The input is CSV with a header row; embed this column.
    #[arg(long, value_name = "NAME")]
    column: Option<String>,
    /// Write vectors to this file (atomically, via FILE.partial) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Output format [default: from --output's extension, else jsonl].
    #[arg(short, long, value_enum)]
    format: Option<VectorFormat>,
    /// Continue an interrupted run into --output (JSON lines only).
    #[arg(long, requires = "output")]
    resume: bool,
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
    /// Replace invalid UTF-8 in the input with U+FFFD instead of failing.
    #[arg(long)]
    lossy: bool,
    /// Hide the progress bar and the summary.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    let kind = InputKind::from_flags(args.field.clone(), args.column.clone())?;
    if !args.texts.is_empty() && args.input.is_some() {
        return Err(CliError::usage("give texts as arguments or with --input, not both"));
    }
    if !args.texts.is_empty() && kind != InputKind::Lines {
        return Err(CliError::usage(
            "--field and --column describe --input or standard input, not text arguments",
        ));
    }
    let format = args.format.unwrap_or_else(|| {
        args.output
            .as_deref()
            .map_or(VectorFormat::Jsonl, VectorFormat::from_extension)
    });
    if args.output.is_none() && format.is_binary() && std::io::stdout().is_terminal() {
        return Err(CliError::usage(format!(
            "--format {} is binary: write it with --output FILE or redirect standard output",
            clap::ValueEnum::to_possible_value(&format).map_or(String::new(), |v| v.get_name().to_string())
        )));
    }
    if let Some(output) = &args.output {
        let stdin = Path::new("-");
        let mut inputs: Vec<(&str, &Path)> = vec![("model", &args.model)];
        if args.texts.is_empty() {
            inputs.push(("input", args.input.as_deref().unwrap_or(stdin)));
        }
        sink::refuse_same_file("--output", output, &output_files(output, format), &inputs)?;
    }
    let embedder = load::open_model(&args.model, args.threads)?;
    let options = load::embed_options(
        args.batch_size,
        args.no_truncate,
        args.prompt.clone(),
        args.dims,
        args.no_normalize,
    );
    load::check_options(&embedder, &options)?;
    let dims = load::output_dims(&embedder, &options);

    let mut reader = if args.texts.is_empty() {
        if args.input.is_none() && std::io::stdin().is_terminal() && !args.quiet {
            eprintln!("reading texts from the terminal, one per line; end with Ctrl-D (see `octet embed --help`)");
        }
        TextReader::open(args.input.as_deref(), kind.clone(), args.lossy)?
    } else {
        TextReader::from_args(args.texts.clone())
    };

    let (mut writer, already) = match &args.output {
        None => (VectorWriter::stdout(format, dims)?, 0),
        Some(path) => {
            let run = load::run_description(&embedder, &options, &kind)?;
            VectorWriter::create(path, format, dims, args.resume, &run)?
        }
    };
    if let (true, Some(output)) = (already > 0, &args.output) {
        let skipped = reader.skip(already)?;
        if skipped < already {
            let note = writer.discard();
            return Err(CliError::usage(format!(
                "{} holds {already} vectors but {} has only {skipped} texts: it is not this input's output; \
                 delete it to start over ({})",
                partial_path(output).display(),
                reader.name(),
                note.unwrap_or_default()
            )));
        }
        if !args.quiet {
            eprintln!("resuming after {already} vectors already in the output");
        }
    }

    let progress = Progress::new(args.quiet, reader.total_bytes(), "embedding");
    progress.start_at(reader.bytes_read());
    let started = Instant::now();
    let result = stream::embed_all(&embedder, &options, &mut reader, &mut writer, &progress);
    progress.finish();
    let totals = match result {
        Ok(t) => t,
        Err(e) => {
            let code = exit::code_for(&e);
            let note = if code == exit::BAD_INPUT {
                writer.keep()
            } else {
                writer.discard()
            };
            return Err(match note {
                Some(note) if !exit::is_broken_pipe(&e) => {
                    CliError::with_code(code, format!("{}\n  {note}", exit::render(&e)))
                }
                _ => e,
            });
        }
    };
    let count = writer.count();
    writer.finish()?;
    if totals.truncated > 0 {
        eprintln!(
            "note: {} text(s) were longer than the model's window of {} tokens and were cut to it \
             (--no-truncate makes that an error)",
            totals.truncated,
            embedder.window()
        );
    }
    if let (Some(path), false) = (&args.output, args.quiet) {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "wrote {count} vectors of {dims} dims to {} ({} texts in {secs:.1} s, {:.0} texts/s)",
            path.display(),
            totals.texts,
            totals.texts as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}
