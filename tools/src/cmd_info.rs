//! `octet info`: what a model file holds and how this CPU will run it.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Show a model's architecture, dimensions, window, recipe, size, provenance, and the
/// kernels this CPU will use.
///
/// Example:
///   octet info minilm-int8.octet
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
    let embedder = octet::Embedder::open(&args.model)?;
    let file = embedder.file();
    if args.verify {
        file.verify_data()?;
    }
    let meta = file.meta();
    println!("file          {}", args.model.display());
    println!("size          {:.2} MB ({} bytes)", file.file_len() as f64 / 1e6, file.file_len());
    println!("architecture  {}", meta.architecture);
    println!("dims          {}", embedder.dim());
    if !meta.matryoshka_dims.is_empty() {
        println!("matryoshka    {:?}", meta.matryoshka_dims);
    }
    println!("window        {} tokens", meta.max_seq_len);
    println!("pooling       {:?}, normalize {}", meta.pooling.mode, meta.pooling.normalize);
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
