//! The `octet` command line: convert models, embed text, compare and search texts, show model
//! info, inspect and diff model files. Exit codes are listed in `octet_tools::exit` and in
//! `octet --help`.

mod cmd_convert;
mod cmd_diff;
mod cmd_embed;
mod cmd_info;
mod cmd_inspect;
mod cmd_search;
mod cmd_similarity;
mod csv_check;
mod input;
mod load;
mod output;
mod resume;
mod serve;
mod sigbus;
mod sink;
mod stream;

use clap::{Parser, Subcommand};
use octet_tools::exit;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "octet",
    version = version(),
    about = "Fast int8 inference for text-embedding models",
    long_about = "Fast int8 inference for text-embedding models.\n\n\
        Typical use:\n  \
        octet convert ~/.cache/octet/sources/all-MiniLM-L6-v2 -o minilm-int8.octet --quant int8\n  \
        octet embed minilm-int8.octet --input sentences.txt -o vectors.npy\n  \
        octet similarity minilm-int8.octet \"The cat sat.\" \"A kitten rested.\"\n  \
        octet search minilm-int8.octet --corpus faq.txt \"reset my password\"\n  \
        octet inspect minilm-int8.octet\n  \
        octet diff minilm-f32.octet minilm-int8.octet\n\n\
        `octet <command> --help` explains each command with examples.",
    after_long_help = "Exit codes: 0 success; 2 usage error (bad flags or arguments); 65 bad input (a model \
        file or text that cannot be used); 66 an input file is missing or unreadable; 70 internal error (a bug); \
        73 an output file cannot be created; 74 read or write failure (e.g. disk full).\n\n\
        Environment: OCTET_KERNEL=scalar|avx2|avx512|amx|neon|dotprod|i8mm forces a kernel path; \
        OCTET_ATTENTION=f32|bf16 sets the attention of int8 models: f32, or bf16 dot products where the CPU has them \
        (AVX-512 BF16); by default BERT-family models use bf16, EmbeddingGemma bf16 for Q K^T only, T5 f32; \
        OCTET_CACHE (default ~/.cache/octet) is where the scripts keep models."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(cmd_convert::ConvertArgs),
    Embed(cmd_embed::EmbedArgs),
    Similarity(cmd_similarity::SimilarityArgs),
    Search(cmd_search::SearchArgs),
    Info(cmd_info::InfoArgs),
    Inspect(cmd_inspect::InspectArgs),
    Diff(cmd_diff::DiffArgs),
    Serve(serve::ServeArgs),
}

fn version() -> &'static str {
    let text = format!("{} ({})", env!("CARGO_PKG_VERSION"), octet_kernels::describe());
    Box::leak(text.into_boxed_str())
}

/// Lets a file-size limit (`ulimit -f`) surface as an EFBIG write error, which the writers
/// turn into a clean message and remove their partial output, instead of SIGXFSZ killing the
/// process with a core dump and a half-written file.
fn ignore_sigxfsz() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN at start-up, before any other thread
    // exists, installs no handler code and has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn main() -> ExitCode {
    ignore_sigxfsz();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (a bug in octet; please report it with the command that caused it): {info}");
    }));
    let cli = Cli::parse();
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Convert(args) => cmd_convert::run(args),
        Command::Embed(args) => cmd_embed::run(args),
        Command::Similarity(args) => cmd_similarity::run(args),
        Command::Search(args) => cmd_search::run(args),
        Command::Info(args) => cmd_info::run(args),
        Command::Inspect(args) => cmd_inspect::run(args),
        Command::Diff(args) => cmd_diff::run(args),
        Command::Serve(args) => serve::run(args),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) if exit::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("error: {}", exit::render(&err));
            ExitCode::from(exit::code_for(&err))
        }
        Err(_) => ExitCode::from(exit::INTERNAL),
    }
}
