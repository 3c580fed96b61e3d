//! `octet inspect`: every tensor of a model file, totals per dtype, inputs, outputs and (for
//! TFLite) operator counts. See [`octet_tools::inventory`].

use anyhow::Result;
use clap::Args;
use octet_tools::exit::CliError;
use octet_tools::inventory::{self, Inventory};
use std::path::PathBuf;

/// List what a model file holds: every tensor (name, dtype, shape, MB, quantization with its
/// scale range), totals per dtype, the model's inputs and outputs, and for TFLite the operator
/// counts.
///
/// Reads .octet, .safetensors and .tflite files (told apart by their first bytes). Companion
/// tensors (scales, zero points, column sums of quantized tensors) are listed after the
/// tensor they serve and marked "companion of".
///
/// Examples:
///   octet inspect minilm-int8.octet
///   octet inspect ~/.cache/octet/sources/all-MiniLM-L6-v2/model.safetensors
///   octet inspect model.tflite --summary      # no per-tensor list
///   octet inspect minilm-int8.octet --json | jq '.tensors[] | select(.dtype == "u6")'
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct InspectArgs {
    /// The model file (.octet, .safetensors or .tflite).
    file: PathBuf,
    /// Leave out the per-tensor list.
    #[arg(long)]
    summary: bool,
    /// Print the inventory as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    if !args.file.is_file() {
        return Err(CliError::no_input(format!("{} is not a file", args.file.display())));
    }
    let inv = inventory::read(&args.file).map_err(|e| CliError::bad_input(format!("{e:#}")))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
    } else {
        print!("{}", render(&inv, !args.summary));
    }
    Ok(())
}

fn mb(bytes: u64) -> String {
    format!("{:.3}", bytes as f64 / 1e6)
}

/// `[a, b, c]` for a shape.
pub fn shape(dims: &[usize]) -> String {
    format!("[{}]", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

/// The inventory as text.
pub fn render(inv: &Inventory, tensors: bool) -> String {
    let mut out = String::new();
    out += &format!("file         {}\n", inv.path.display());
    if !inv.facts.iter().any(|(k, _)| k == "format") {
        out += &format!("format       {}\n", inv.format);
    }
    out += &format!(
        "size         {} MB ({} bytes; tensors {} MB)\n",
        mb(inv.file_bytes),
        inv.file_bytes,
        mb(inv.tensor_bytes())
    );
    for (key, value) in &inv.facts {
        out += &format!("{key:<12} {value}\n");
    }
    let ports = |label: &str, ports: &[inventory::Port]| -> String {
        if ports.is_empty() {
            return format!("{label:<12} n/a\n");
        }
        ports
            .iter()
            .map(|p| format!("{label:<12} {}\n", p.describe()))
            .collect()
    };
    out += &ports("input", &inv.inputs);
    out += &ports("output", &inv.outputs);
    for note in &inv.notes {
        out += &format!("note         {note}\n");
    }
    if tensors {
        let rows: Vec<[String; 5]> = inv
            .tensors
            .iter()
            .map(|t| {
                let quant = match &t.companion_of {
                    Some(of) => format!("companion of {of}"),
                    None => t.quantization.to_string(),
                };
                [t.name.clone(), t.dtype.clone(), shape(&t.shape), mb(t.bytes), quant]
            })
            .collect();
        let head = ["tensor", "dtype", "shape", "MB", "quantization"];
        let w = inventory::column_widths(&head, &rows, 4);
        out += &format!("\n{} tensors\n", inv.tensors.len());
        let line = |r: [&str; 5]| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            )
        };
        out += &line(head);
        for r in &rows {
            out += &line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
        }
    }
    out += "\ntotals by dtype\n";
    let total = inv.tensor_bytes().max(1) as f64;
    out += &format!("{:<12} {:>7} {:>10} {:>7}\n", "dtype", "tensors", "MB", "share");
    for d in inv.totals_by_dtype() {
        out += &format!(
            "{:<12} {:>7} {:>10} {:>6.1}%\n",
            d.dtype,
            d.tensors,
            mb(d.bytes),
            d.bytes as f64 / total * 100.0
        );
    }
    out += &format!(
        "{:<12} {:>7} {:>10}\n",
        "all",
        inv.tensors.len(),
        mb(inv.tensor_bytes())
    );
    if !inv.operators.is_empty() {
        out += &format!(
            "\noperators ({} kinds, {} in all)\n",
            inv.operators.len(),
            inv.operators.iter().map(|(_, n)| n).sum::<usize>()
        );
        for (op, n) in &inv.operators {
            out += &format!("{op:<28} {n:>5}\n");
        }
    }
    out
}
