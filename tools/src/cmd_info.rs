//! `octet info`: what a model file holds and how this CPU will run it.

use crate::load;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Show a model's architecture, dimensions, window, recipe, size, provenance, and the
/// kernels this CPU will use.
///
/// Examples:
///   octet info minilm-int8.octet
///   octet info --verify minilm-int8.octet     # also checks every weight byte (sha256)
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct InfoArgs {
    /// The .octet model file.
    model: PathBuf,
    /// Also verify the checksum of the whole data section (reads every byte).
    #[arg(long)]
    verify: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let embedder = load::open_model(&args.model, 1)?;
    let file = embedder.file();
    if args.verify {
        file.verify_data()
            .with_context(|| format!("cannot use the model {}", args.model.display()))?;
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
