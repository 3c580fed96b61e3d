//! Opening a model file for a command, with messages that say which file and what to do, and
//! the embedding options every embedding command shares.

use anyhow::{Context, Result};
use octet::{EmbedOptions, Embedder, Truncation};
use octet_tools::exit::CliError;
use std::path::Path;

/// Opens `path` with `threads` compute threads (0: one per core).
pub fn open_model(path: &Path, threads: usize) -> Result<Embedder> {
    if path.is_dir() {
        let hint = if path.join("config.json").is_file() {
            format!(
                "; it looks like a model source folder: convert it first with `octet convert {} -o model.octet`",
                path.display()
            )
        } else {
            String::new()
        };
        return Err(CliError::no_input(format!(
            "the model {} is a folder, not an .octet file{hint}",
            path.display()
        )));
    }
    if !path.exists() {
        return Err(CliError::no_input(format!(
            "the model file {} does not exist; check the path, or make one with `octet convert` \
             (`bash scripts/quickstart.sh` leaves all-MiniLM-L6-v2 in ~/.cache/octet/models/)",
            path.display()
        )));
    }
    Embedder::open_with_threads(path, threads).with_context(|| format!("cannot use the model {}", path.display()))
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
