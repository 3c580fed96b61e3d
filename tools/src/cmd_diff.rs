//! `octet diff`: what changed between two model files. See
//! [`octet_tools::inventory::diff`].

use anyhow::Result;
use clap::Args;
use octet_tools::exit::CliError;
use octet_tools::inventory::{self, diff, Inventory};
use std::path::{Path, PathBuf};

/// Compare two model files: tensor counts, whether inputs and outputs agree, every tensor
/// whose dtype or size changed (with the MB saved), and the total size change.
///
/// A tensor counts together with its companions (scales, zero points, column sums), so an
/// f32 weight that became int8 is charged for its scales. Tensors are matched by name; when
/// names differ but both files hold the same shapes in the same order, by position (the
/// output says which). Any two of .octet, .safetensors and .tflite can be compared; across
/// formats few names match, and the diff lists what is only on each side.
///
/// Examples:
///   octet diff minilm-f32.octet minilm-int8.octet
///   octet diff ~/.cache/octet/sources/all-MiniLM-L6-v2/model.safetensors minilm-int8.octet
///   octet diff model-f32.tflite model-int8.tflite --json
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct DiffArgs {
    /// The first (older, larger) model file.
    a: PathBuf,
    /// The second model file.
    b: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
}

fn read(path: &Path) -> Result<Inventory> {
    if !path.is_file() {
        return Err(CliError::no_input(format!("{} is not a file", path.display())));
    }
    inventory::read(path).map_err(|e| CliError::bad_input(format!("{e:#}")))
}

pub fn run(args: DiffArgs) -> Result<()> {
    let (a, b) = (read(&args.a)?, read(&args.b)?);
    let d = diff::diff(&a, &b);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&a, &b, &d));
    }
    Ok(())
}

/// Tensors listed per "only in" side; files of different formats can differ in all of them.
const LISTED: usize = 20;

/// Changed tensors smaller than this on both sides are counted, not listed.
const SMALL_BYTES: u64 = 1024;

fn mb(bytes: u64) -> String {
    format!("{:.3}", bytes as f64 / 1e6)
}

fn recipe(inv: &Inventory) -> String {
    inv.facts
        .iter()
        .find(|(k, _)| k == "recipe")
        .map(|(_, v)| format!(", recipe {v}"))
        .unwrap_or_default()
}

/// The comparison as text.
pub fn render(a: &Inventory, b: &Inventory, d: &diff::Diff) -> String {
    let mut out = String::new();
    for (label, inv, groups, tensors) in [("A", a, d.groups.0, d.tensors.0), ("B", b, d.groups.1, d.tensors.1)] {
        out += &format!(
            "{label}  {} ({}{}): {groups} tensors + {} companions, {} MB\n",
            inv.path.display(),
            inv.format,
            recipe(inv),
            tensors - groups,
            mb(inv.file_bytes)
        );
    }
    let same = |s: bool| if s { "same" } else { "differ" };
    out += &format!("inputs   {}\n", same(d.same_inputs));
    if !d.same_inputs {
        for (l, inv) in [("A", a), ("B", b)] {
            for p in &inv.inputs {
                out += &format!("  {l} {}\n", p.describe());
            }
        }
    }
    out += &format!("outputs  {}\n", same(d.same_outputs));
    if !d.same_outputs {
        for (l, inv) in [("A", a), ("B", b)] {
            for p in &inv.outputs {
                out += &format!("  {l} {}\n", p.describe());
            }
        }
    }
    out += &match d.matching {
        diff::Matching::Name => format!("matched  {} tensors by name\n", d.matched),
        diff::Matching::Position => {
            format!(
                "matched  {} tensors by position (names differ; same shapes in the same order)\n",
                d.matched
            )
        }
    };
    out += &format!(
        "same     {} tensors ({} MB) unchanged in dtype and size\n",
        d.unchanged,
        mb(d.unchanged_bytes)
    );
    if !d.changed.is_empty() {
        let side = |s: &diff::Side| {
            let comp = if s.companions > 0 {
                format!("+{}", s.companions)
            } else {
                String::new()
            };
            format!("{}{comp} {}", s.dtype, mb(s.bytes))
        };
        // Tiny tensors (scalars, shape constants) are listed only as a count: converters such as
        // TensorFlow's number them anew in each file, so same-named ones rarely mean the same.
        let (listed, tiny): (Vec<&diff::Change>, Vec<&diff::Change>) =
            d.changed.iter().partition(|c| c.a.bytes.max(c.b.bytes) >= SMALL_BYTES);
        let rows: Vec<[String; 4]> = listed
            .iter()
            .map(|c| {
                let name = if c.a.name == c.b.name {
                    c.a.name.clone()
                } else {
                    format!("{} -> {}", c.a.name, c.b.name)
                };
                [name, side(&c.a), side(&c.b), format!("{:.3}", c.saved() as f64 / 1e6)]
            })
            .collect();
        let head = ["changed (dtype+companions MB)", "A", "B", "saved MB"];
        let w = inventory::column_widths(&head, &rows, 4);
        let line = |r: [&str; 4]| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            )
        };
        out += "\n";
        out += &line(head);
        for r in &rows {
            out += &line([&r[0], &r[1], &r[2], &r[3]]);
        }
        if !tiny.is_empty() {
            let bytes: i64 = tiny.iter().map(|c| c.saved()).sum();
            out += &format!(
                "... and {} tensors under {SMALL_BYTES} bytes (scalars, shapes) that differ in dtype or size, together {bytes:+} bytes saved (--json lists them)\n",
                tiny.len()
            );
        }
        let saved: i64 = d.changed.iter().map(diff::Change::saved).sum();
        out += &format!(
            "{} changed tensors save {:.3} MB\n",
            d.changed.len(),
            saved as f64 / 1e6
        );
    }
    for (label, only) in [("only in A", &d.only_in_a), ("only in B", &d.only_in_b)] {
        if !only.is_empty() {
            let bytes: u64 = only.iter().map(|s| s.bytes).sum();
            out += &format!("\n{label}: {} tensors, {} MB\n", only.len(), mb(bytes));
            for s in only.iter().take(LISTED) {
                out += &format!(
                    "  {} {} {} {} MB\n",
                    s.name,
                    s.dtype,
                    crate::cmd_inspect::shape(&s.shape),
                    mb(s.bytes)
                );
            }
            if only.len() > LISTED {
                out += &format!("  ... and {} more (--json lists all)\n", only.len() - LISTED);
            }
        }
    }
    let (fa, fb) = d.file_bytes;
    out += &format!(
        "\ntotal    {} MB -> {} MB: {:+.3} MB (B is {:.1}% of A)\n",
        mb(fa),
        mb(fb),
        (fb as f64 - fa as f64) / 1e6,
        fb as f64 / fa.max(1) as f64 * 100.0
    );
    out
}
