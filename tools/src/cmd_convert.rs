//! `octet convert`: see [`crate::convert`].

use anyhow::Result;
use clap::Args;
use octet_tools::convert::{self, recipe::Recipe};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Convert a sentence-transformers / Hugging Face model folder into a .octet file.
///
/// The folder needs config.json, model.safetensors and tokenizer.json; modules.json,
/// 1_Pooling/config.json, Dense modules and config_sentence_transformers.json (prompts) are
/// read when present.
///
/// A TFLite BERT encoder (a .tflite file, as TensorFlow's converter writes it) converts too,
/// with its tokenizer given by --tokenizer; its int8 tensors are kept exactly.
///
/// Example:
///   octet convert ~/.cache/octet/sources/all-MiniLM-L6-v2 -o minilm-int8.octet --quant int8
///   octet convert minilm-int8.tflite --tokenizer tokenizer.json -o minilm.octet
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ConvertArgs {
    /// The model folder.
    input: PathBuf,
    /// Where to write the .octet file (written to a temporary file, then renamed).
    #[arg(short, long)]
    output: PathBuf,
    /// Quantization recipe: f32 (no quantization), int8-embeddings (only the token-embedding
    /// table in int8), int8 (table and every linear layer in int8).
    #[arg(long, default_value = "int8")]
    quant: String,
    /// Keep tensors matching this pattern in f32 (repeatable; `*` is a wildcard),
    /// e.g. --keep 'layers.0.*' --keep 'dense.*'.
    #[arg(long)]
    keep: Vec<String>,
    /// For int8 linear layers: quantize activations with one scale per group of this many
    /// input features (a multiple of 32) instead of one scale per token. Finer groups keep
    /// more accuracy on models with activation outliers, at some speed cost.
    #[arg(long)]
    k_group: Option<usize>,
    /// Bits per value of quantized token-embedding tables: 6 (four values in three bytes,
    /// per-row scale and zero point) or 8. Default: 6 for --quant int8, 8 for int8-embeddings.
    #[arg(long)]
    table_bits: Option<u8>,
    /// For a .tflite input: the model's tokenizer.json (required).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// For a .tflite input: a JSON file naming the tensors ({"tensors": {name or index: engine
    /// name}, "config": {...}}) when the graph is not recognised.
    #[arg(long)]
    tflite_map: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let recipe = Recipe::parse(&args.quant, args.keep, args.k_group)
        .and_then(|r| r.with_table_bits(args.table_bits))
        .map_err(|e| octet_tools::exit::CliError::usage(e.to_string()))?;
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let report = if convert::tflite::is_tflite(&args.input) {
        let tokenizer = args.tokenizer.ok_or_else(|| octet_tools::exit::CliError::usage("a .tflite input needs --tokenizer tokenizer.json".to_string()))?;
        let inputs = convert::tflite::TfliteInputs { tokenizer: &tokenizer, mapping: args.tflite_map.as_deref() };
        convert::tflite::convert(&args.input, &args.output, &recipe, &inputs)?
    } else {
        convert::convert(&args.input, &args.output, &recipe, progress)?
    };
    eprintln!(
        "wrote {} ({} model, {} tensors, recipe {}, {:.1} MB)",
        args.output.display(),
        report.architecture,
        report.tensors,
        recipe.name,
        report.bytes as f64 / 1e6
    );
    Ok(())
}
