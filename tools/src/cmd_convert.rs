//! `octet convert`: see [`crate::convert`].

use anyhow::{Context, Result};
use clap::Args;
use octet_tools::convert::{self, calibrate::Calibration, recipe::Recipe};
use octet_tools::exit::CliError;
use octet_tools::report::{self, render::ReportFormat};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Convert a sentence-transformers / Hugging Face model folder into a .octet file.
///
/// The folder needs config.json, model.safetensors and tokenizer.json; modules.json,
/// 1_Pooling/config.json, Dense modules and config_sentence_transformers.json (prompts) are
/// read when present.
///
/// A TFLite encoder (a .tflite file) converts too: BERT as TensorFlow's converter or
/// litert-torch writes it, and T5 as TensorFlow's converter writes it from a fixed, padded
/// input (ids [1, n], 0 = padding, as the browser's embedding model). Its tokenizer comes from
/// --tokenizer, or else from the file's MediaPipe / TFLite Support metadata (a BERT vocab
/// packed in the file); its int8 tensors are kept exactly.
///
/// Recipes (--quant): f32 (no quantization); f16 (stored in half precision, computed in
/// f32: half the size, same results to 5 decimals); int8-embeddings (only the token table in
/// int8); int8 (token table in 6 bits, every linear layer in int8: about a quarter of f32).
/// Norms and biases stay f32 in every recipe.
///
/// Examples:
///   octet convert ~/.cache/octet/sources/all-MiniLM-L6-v2 -o minilm-int8.octet --quant int8
///   octet convert ~/.cache/octet/sources/all-MiniLM-L6-v2 -o minilm-f16.octet --quant f16
///   octet convert minilm-int8.tflite --tokenizer tokenizer.json -o minilm.octet
///   octet convert mediapipe-text-embedder.tflite -o embedder.octet     # tokenizer from its metadata
///
/// Selective quantization: --keep keeps matching tensors in f32 under any recipe. Names are
/// octet's (list them with `octet inspect FILE`): layers.N.attention.qkv / .output,
/// layers.N.ffn.up / .down (Gemma: .gate_up), embeddings.word, dense.N (post-pooling
/// projections).
///   octet convert SRC -o m.octet --quant int8 --keep 'layers.0.*' --keep 'layers.5.*'  # first and last layer (MiniLM has 6)
///   octet convert SRC -o m.octet --quant int8 --keep 'dense.*'                           # pooling projections
///   octet convert SRC -o m.octet --quant int8 --keep 'embeddings.*'                      # tables stay f32
///
/// Quality report (--report): converts SRC with f32 and each recipe, embeds 400 built-in news
/// sentences (or --report-texts FILE, one text per line) with each, and prints per recipe:
/// file size and its share of f32; mean, 1st-percentile and minimum cosine vs f32; top-10
/// neighbour overlap with f32; and speed vs f32 (same threads, alternating rounds, best of
/// --report-rounds). Files go to a temporary folder, or to -o DIR to keep them.
///   octet convert ~/.cache/octet/sources/all-MiniLM-L6-v2 --report
///   octet convert SRC --report --quant f16,int8 --report-texts my-queries.txt -o converted/
///   octet convert SRC --report --report-format markdown --threads 1 > recipes.md
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ConvertArgs {
    /// The model folder.
    input: PathBuf,
    /// Where to write the .octet file (written to a temporary file, then renamed). With
    /// --report: a folder to keep the converted files in (optional).
    #[arg(short, long, required_unless_present = "report")]
    output: Option<PathBuf>,
    /// Quantization recipe: f32, f16, int8-embeddings or int8 [default: int8]. With --report:
    /// a comma-separated list [default: f16,int8-embeddings,int8; f32 is always the reference].
    #[arg(long)]
    quant: Option<String>,
    /// Keep tensors matching this pattern in f32 (repeatable; `*` is a wildcard),
    /// e.g. --keep 'layers.0.*' --keep 'dense.*'. See the examples above.
    #[arg(long)]
    keep: Vec<String>,
    /// For int8 linear layers: quantize activations with one scale per group of this many
    /// input features (a multiple of 32) instead of one scale per token. Finer groups keep
    /// more accuracy on models with activation outliers, at some speed cost.
    #[arg(long)]
    k_group: Option<usize>,
    /// Bits per value of quantized token-embedding tables: 6 (four values in three bytes), 7
    /// (eight values in seven bytes) or 8, each with a per-row scale and zero point. Default
    /// for --quant int8: 7 for BERT, 8 for Gemma 3, 6 for T5; 8 for int8-embeddings.
    #[arg(long)]
    table_bits: Option<u8>,
    /// How int8 linear weights are rounded. `auto` (default): BERT and Gemma 3 models are
    /// calibrated on the built-in news sentences (the f32 model runs on them once: 1,290 of
    /// them, about 25 s, for MiniLM; the first 300, about 45 s, for EmbeddingGemma; GPTQ then
    /// rounds each layer's
    /// weights so that its outputs on such text move least); T5 is rounded to nearest.
    /// `built-in`: the built-in sentences for any architecture. `off`: round to nearest. Or a
    /// text file, one calibration text per line.
    /// The file format and the engine are the same either way.
    #[arg(long, default_value = "auto", value_name = "auto|built-in|off|FILE")]
    calibration: String,
    /// For a .tflite input: the model's tokenizer.json. Without it, the tokenizer the file
    /// carries in its MediaPipe / TFLite Support metadata (a BERT vocab) is used.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// For a .tflite input: a JSON file naming the tensors ({"tensors": {name or index: engine
    /// name}, "config": {...}}) when the graph is not recognised.
    #[arg(long)]
    tflite_map: Option<PathBuf>,
    /// For a .tflite BERT encoder: replay it exactly as the TFLite interpreter's builtin
    /// kernels run it. The int8 layers are the same either way (each activation row quantized
    /// as TFLite's hybrid kernels do); with this option the float steps between them
    /// (LayerNorm, attention and its softmax, GELU) follow TFLite's order of operations and its
    /// exp and erfc too, so every activation code is the interpreter's and the vectors agree
    /// with LiteRT to a cosine of about 0.99999 instead of 0.9993. Costs speed: those steps run
    /// as scalar loops instead of octet's fused kernels. Stored in the model (config
    /// `tflite_exact`); T5 encoders and the tanh GELU are refused.
    #[arg(long)]
    tflite_exact: bool,
    /// Compare recipes instead of writing one file: see "Quality report" above.
    #[arg(long)]
    report: bool,
    /// Texts for --report, one per line (default: the 400 built-in news sentences).
    #[arg(long, requires = "report")]
    report_texts: Option<PathBuf>,
    /// Output of --report: text (aligned table), markdown or json.
    #[arg(long, default_value = "text", requires = "report")]
    report_format: String,
    /// Timed passes over the texts per recipe for --report; the fastest counts.
    #[arg(long, default_value_t = 3, requires = "report")]
    report_rounds: usize,
    /// Compute threads for --report (0: one per core).
    #[arg(long, default_value_t = 0, requires = "report")]
    threads: usize,
    /// Hide the progress bar.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let progress = !args.quiet && std::io::stderr().is_terminal();
    if args.report {
        return run_report(args, progress);
    }
    let recipe = Recipe::parse(args.quant.as_deref().unwrap_or("int8"), args.keep, args.k_group)
        .and_then(|r| r.with_table_bits(args.table_bits))
        .map(|r| r.with_calibration(Calibration::parse(&args.calibration)))
        .map_err(|e| CliError::usage(e.to_string()))?;
    let output = args.output.expect("clap requires -o without --report");
    let report = if convert::tflite::is_tflite(&args.input) {
        let inputs = convert::tflite::TfliteInputs {
            tokenizer: args.tokenizer.as_deref(),
            mapping: args.tflite_map.as_deref(),
            exact: args.tflite_exact,
        };
        convert::tflite::convert(&args.input, &output, &recipe, &inputs)?
    } else if args.tflite_exact {
        return Err(CliError::usage(
            "--tflite-exact replays a .tflite file; this input is not one".to_string(),
        ));
    } else {
        convert::convert(&args.input, &output, &recipe, progress)?
    };
    eprintln!(
        "wrote {} ({} model, {} tensors, recipe {}, {:.1} MB)",
        output.display(),
        report.architecture,
        report.tensors,
        report.recipe,
        report.bytes as f64 / 1e6
    );
    Ok(())
}

/// `--report`: converts with every recipe and prints the comparison.
fn run_report(args: ConvertArgs, progress: bool) -> Result<()> {
    if convert::tflite::is_tflite(&args.input) {
        return Err(CliError::usage("--report converts a model folder with each recipe; a .tflite input has its own quantization (compare files with `octet diff`)".to_string()));
    }
    let format = ReportFormat::parse(&args.report_format).ok_or_else(|| {
        CliError::usage(format!(
            "--report-format must be text, markdown or json, got '{}'",
            args.report_format
        ))
    })?;
    let names = args.quant.as_deref().unwrap_or("f16,int8-embeddings,int8");
    let mut recipes = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let recipe =
            Recipe::parse(name, args.keep.clone(), args.k_group).map_err(|e| CliError::usage(e.to_string()))?;
        // --table-bits applies to the recipes with a quantized token table.
        let recipe = match args.table_bits {
            Some(_) if matches!(name, "f32" | "f16") => recipe,
            bits => recipe
                .with_table_bits(bits)
                .map_err(|e| CliError::usage(e.to_string()))?,
        };
        recipes.push(recipe.with_calibration(Calibration::parse(&args.calibration)));
    }
    let (texts, texts_source) = match &args.report_texts {
        None => (report::builtin_texts(), "built-in Lee news sentences".to_string()),
        Some(path) => {
            let content = std::fs::read_to_string(path)
                .map_err(|e| CliError::no_input(format!("cannot read the texts {}: {e}", path.display())))?;
            (report::texts_from(&content), path.display().to_string())
        }
    };
    if texts.is_empty() {
        return Err(CliError::usage("--report-texts has no non-empty lines".to_string()));
    }
    let options = report::ReportOptions {
        recipes,
        texts,
        texts_source,
        threads: args.threads,
        rounds: args.report_rounds,
        keep_dir: args.output,
        progress,
    };
    let result = report::run(&args.input, &options).context("recipe report")?;
    print!("{}", report::render::render(&result, format));
    Ok(())
}
