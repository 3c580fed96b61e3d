//! Opening a model file for a command, with messages that say which file and what to do, and
//! the embedding options every embedding command shares.

use crate::input::InputKind;
use anyhow::{Context, Result};
use octet::{EmbedOptions, Embedder, Truncation};
use octet_tools::exit::CliError;
use std::path::Path;

/// Opens `path` with `threads` compute threads (0: one per core).
pub fn open_model(path: &Path, threads: usize) -> Result<Embedder> {
    octet_tools::model_path::check(path)?;
    let threads = cap_threads(threads);
    let embedder = Embedder::open_with_threads(path, threads)
        .with_context(|| format!("cannot use the model {}", path.display()))?;
    crate::sigbus::guard_model(path, embedder.file());
    Ok(embedder)
}

/// More threads than this per CPU only add overhead (and thousands exhaust the system).
pub const THREADS_PER_CPU: usize = 4;

/// `threads` capped at [`THREADS_PER_CPU`] per available CPU, with a note when it is.
pub fn cap_threads(threads: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = THREADS_PER_CPU * cpus;
    if threads > max {
        eprintln!("note: --threads {threads} is more than {THREADS_PER_CPU} per CPU ({cpus} CPUs here): using {max}");
        return max;
    }
    threads
}

/// Options for `embed_detailed` from the shared flags.
pub fn embed_options(
    batch_size: usize,
    no_truncate: bool,
    prompt: Option<String>,
    dims: Option<usize>,
    no_normalize: bool,
) -> EmbedOptions {
    EmbedOptions {
        batch_size,
        truncation: if no_truncate {
            Truncation::Error
        } else {
            Truncation::Truncate
        },
        prompt,
        dims,
        normalize: if no_normalize { Some(false) } else { None },
        ..EmbedOptions::default()
    }
}

/// Checks the options against the model before any input is read, so a bad `--prompt` or
/// `--dims` fails at once, with the engine's message (which lists the valid values).
pub fn check_options(embedder: &Embedder, options: &EmbedOptions) -> Result<()> {
    embedder
        .embed_detailed::<&str>(&[], options)
        .map(|_| ())
        .map_err(|e| CliError::usage(e.to_string()))
}

/// The width of the vectors these options give.
pub fn output_dims(embedder: &Embedder, options: &EmbedOptions) -> usize {
    options.dims.unwrap_or(embedder.dim())
}

/// The model's identity (`meta_sha256`, which covers the metadata and, through `data_sha256`,
/// every weight) as hex.
pub fn model_identity(embedder: &Embedder) -> Result<String> {
    let path = embedder.file().path().unwrap_or(Path::new(""));
    let mut head = [0u8; 88];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map_err(|e| CliError::io(format!("cannot read {}: {e}", path.display())))?;
    Ok(head[56..88].iter().map(|b| format!("{b:02x}")).collect())
}

/// What the vectors of a run depend on, one `name value` line each (see [`crate::resume`]).
pub fn run_description(embedder: &Embedder, options: &EmbedOptions, kind: &InputKind) -> Result<String> {
    Ok(format!(
        "model {}\nprompt {:?}\ndims {:?}\nnormalize {:?}\ninput {}\n",
        model_identity(embedder)?,
        options.prompt,
        options.dims,
        options.normalize,
        kind.describe()
    ))
}

/// Fails naming the first text whose vector holds a NaN or an infinity (a broken model).
pub fn check_finite<S: AsRef<str>>(vectors: &[Vec<f32>], texts: &[S], model: &Path) -> Result<()> {
    match vectors.iter().position(|v| v.iter().any(|x| !x.is_finite())) {
        None => Ok(()),
        Some(i) => Err(CliError::bad_input(format!(
            "the vector of text {} ({:?}) is not finite (NaN or infinity): the model {} is broken \
             (`octet info --verify` checks its weights)",
            i + 1,
            crate::cmd_similarity::clip(texts[i].as_ref(), 60),
            model.display()
        ))),
    }
}
