//! `octet info`: what a model file holds and how this CPU will run it.

use crate::load;
use anyhow::{Context, Result};
use clap::Args;
use octet::format::{Dtype, ModelFile};
use octet_tools::exit::CliError;
use std::path::PathBuf;

/// Show a model's architecture, dimensions, window, recipe, size, provenance, and the
/// kernels this CPU will use.
///
/// Examples:
///   octet info minilm-int8.octet
///   octet info --verify minilm-int8.octet     # checks every weight byte (sha256) and float (finite)
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct InfoArgs {
    /// The .octet model file.
    model: PathBuf,
    /// Also verify the checksum of the whole data section (reads every byte) and that every
    /// float tensor (weights, biases, scales) is finite.
    #[arg(long)]
    verify: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let embedder = load::open_model(&args.model, 1)?;
    let file = embedder.file();
    if args.verify {
        file.verify_data()
            .with_context(|| format!("cannot use the model {}", args.model.display()))?;
        check_finite(file, &args.model)?;
    }
    let meta = file.meta();
    println!("file          {}", args.model.display());
    println!(
        "size          {:.2} MB ({} bytes)",
        file.file_len() as f64 / 1e6,
        file.file_len()
    );
    println!("architecture  {}", meta.architecture);
    println!("dims          {}", embedder.dim());
    if !meta.matryoshka_dims.is_empty() {
        println!("matryoshka    {:?}", meta.matryoshka_dims);
    }
    println!("window        {} tokens", meta.max_seq_len);
    println!(
        "pooling       {:?}, normalize {}",
        meta.pooling.mode, meta.pooling.normalize
    );
    println!("recipe        {}", meta.quantization.recipe);
    if !meta.prompts.is_empty() {
        let names: Vec<&str> = meta.prompts.keys().map(String::as_str).collect();
        println!("prompts       {}", names.join(", "));
    }
    println!("kernels       {}", octet_kernels::describe());
    println!("converter     {}", meta.provenance.converter);
    for s in &meta.provenance.sources {
        println!("source        {} sha256 {}", s.file, s.sha256);
    }
    if args.verify {
        println!("checksum      ok");
    }
    Ok(())
}

/// Fails naming the float tensors that hold a NaN or an infinity (a checksum cannot catch
/// them: the converter wrote them faithfully from a broken source).
fn check_finite(file: &ModelFile, path: &std::path::Path) -> Result<()> {
    let mut bad = Vec::new();
    for t in file.tensors() {
        let count = match t.dtype {
            Dtype::F32 | Dtype::F32Packed => t
                .bytes
                .chunks_exact(4)
                .filter(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
                .count(),
            Dtype::F16 => t
                .bytes
                .chunks_exact(2)
                .filter(|b| !half::f16::from_le_bytes([b[0], b[1]]).is_finite())
                .count(),
            Dtype::Bf16 => t
                .bytes
                .chunks_exact(2)
                .filter(|b| !half::bf16::from_le_bytes([b[0], b[1]]).is_finite())
                .count(),
            _ => 0,
        };
        if count > 0 {
            bad.push(format!("{} ({count} of {})", t.name, t.numel()));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let more = if bad.len() > 5 {
        format!(" and {} more", bad.len() - 5)
    } else {
        String::new()
    };
    Err(CliError::bad_input(format!(
        "the model {} has NaN or infinite weights in {} tensor(s): {}{more}; its vectors would not be \
         finite: convert it again from a sound source",
        path.display(),
        bad.len(),
        bad[..bad.len().min(5)].join(", ")
    )))
}
