//! `octet similarity`: cosine similarity of two texts (a number), or of several (a matrix).

use crate::load;
use anyhow::Result;
use clap::Args;
use octet_tools::exit::CliError;
use std::path::PathBuf;

/// Cosine similarity between texts: one number for two texts, an aligned matrix for more.
///
/// Cosine runs from -1 to 1; for these models unrelated sentences score around 0 to 0.2
/// and paraphrases 0.7 or more.
///
/// Examples:
///   octet similarity minilm-int8.octet "The cat sat on the mat." "A kitten rests on the rug."
///   octet similarity minilm-int8.octet "cats" "kittens" "stock markets" "shares fell"
///   octet similarity gemma.octet --prompt STS "A man plays guitar." "Someone plays music."
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct SimilarityArgs {
    /// The .octet model file.
    model: PathBuf,
    /// Two or more texts.
    #[arg(required = true, num_args = 2..)]
    texts: Vec<String>,
    /// Task prompt stored in the model, used for every text; see `octet info`.
    #[arg(long)]
    prompt: Option<String>,
    /// Keep only the first N dimensions (Matryoshka truncation).
    #[arg(long)]
    dims: Option<usize>,
    /// Compute threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(args: SimilarityArgs) -> Result<()> {
    if args.texts.len() < 2 {
        return Err(CliError::usage("give at least two texts to compare"));
    }
    let embedder = load::open_model(&args.model, args.threads)?;
    let options = load::embed_options(32, false, args.prompt.clone(), args.dims, false);
    load::check_options(&embedder, &options)?;
    let vectors = embedder.embed_with(&args.texts, &options)?;
    load::check_finite(&vectors, &args.texts, &args.model)?;
    if vectors.len() == 2 {
        println!("{:.4}", cosine(&vectors[0], &vectors[1]));
        return Ok(());
    }
    let matrix: Vec<Vec<f32>> = vectors
        .iter()
        .map(|a| vectors.iter().map(|b| cosine(a, b)).collect())
        .collect();
    print!("{}", render_matrix(&args.texts, &matrix));
    Ok(())
}

/// Cosine similarity as the matrix and the search ranking print it (the engine's one definition).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    octet::similarity::cosine(a, b) as f32
}

/// Longest label shown in the matrix, in characters.
const LABEL_CHARS: usize = 40;

/// `text` cut to `max` characters with an ellipsis, line breaks shown as spaces.
pub fn clip(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut s: String = flat.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// A table: one row per text, labelled `[i] text`, one column per text, headed `[j]`.
fn render_matrix(texts: &[String], matrix: &[Vec<f32>]) -> String {
    let labels: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("[{}] {}", i + 1, clip(t, LABEL_CHARS)))
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut out = format!("{:width$}", "");
    for j in 0..texts.len() {
        out.push_str(&format!(" {:>6}", format!("[{}]", j + 1)));
    }
    out.push('\n');
    for (label, row) in labels.iter().zip(matrix) {
        out.push_str(label);
        out.push_str(&" ".repeat(width - label.chars().count()));
        for v in row {
            out.push_str(&format!(" {v:>6.3}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_aligned() {
        let texts = [
            "short".to_string(),
            "a longer text with ünïcode".to_string(),
            "x".repeat(60),
        ];
        let m = vec![vec![1.0, 0.5, -0.25], vec![0.5, 1.0, 0.0], vec![-0.25, 0.0, 1.0]];
        let table = render_matrix(&texts, &m);
        let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{table}");
        assert!(table.contains("-0.250"), "{table}");
        assert!(table.contains('…'), "{table}");
    }

    #[test]
    fn cosine_of_zero_vector_is_zero() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
    }
}
