//! The `octet` command line: convert models, embed text, show model info.
//!
//! Exit codes: 0 success, 2 usage error (bad flags), 65 bad input (a model file or text
//! that cannot be used), 74 I/O error (cannot read or write a file), 70 internal error.

mod cmd_convert;
mod cmd_embed;
mod cmd_info;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "octet",
    version = version(),
    about = "Fast int8 inference for text-embedding models",
    long_about = "Fast int8 inference for text-embedding models.\n\n\
        Typical use:\n  \
        octet convert ./all-MiniLM-L6-v2 -o minilm-int8.octet --quant int8\n  \
        echo 'The cat sat on the mat.' | octet embed minilm-int8.octet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(cmd_convert::ConvertArgs),
    Embed(cmd_embed::EmbedArgs),
    Info(cmd_info::InfoArgs),
}

fn version() -> &'static str {
    let text = format!("{} ({})", env!("CARGO_PKG_VERSION"), octet_kernels::describe());
    Box::leak(text.into_boxed_str())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => cmd_convert::run(args),
        Command::Embed(args) => cmd_embed::run(args),
        Command::Info(args) => cmd_info::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(octet_tools::exit::code_for(&err))
        }
    }
}
