//! Calibration of int8 weights: run the f32 model on calibration texts and gather, for each
//! linear layer to be quantized, `H = sum_t x_t x_t^T` over the inputs it reads ([`gptq`]
//! then rounds its weights with it).
//!
//! The f32 model is built in memory from the planned tensors (no file is written), opened like
//! any other, and run on the texts with [`octet::layers::observe::linear_inputs`] watching
//! every layer's input rows. Each call's rows add `X^T X` to the layer's H: one f32 product on
//! the f32 kernels (`X^T` packed as the weights), added to an f64 sum.
//!
//! Texts: [`BUILT_IN`], 1,290 news sentences (`tools/data/calibration-sentences.txt`, made by
//! `scripts/reference/make_calibration_sentences.py` from documents that
//! `tools/data/lee-sentences.txt`, the corpus the recipes are measured on, does not use), or a
//! file of the user's, one text per line. Gemma 3 models run only the first
//! [`GEMMA_BUILT_IN_TEXTS`] built-in ones: each of its texts costs about 14 times MiniLM's, and
//! 300 hold its targets. On all-MiniLM-L6-v2 (400 Lee sentences vs fp32 sentence-transformers,
//! 7-bit table) 1,290 texts instead of the first 300 gave mean / p1 / min 0.999620 / 0.999334 /
//! 0.999027 -> 0.999632 / 0.999384 / 0.999279, for a conversion of about 25 s instead of 6 s.
//!
//! [`gptq`]: super::gptq

use super::recipe::Recipe;
use super::{store, Planned};
use anyhow::{bail, Context, Result};
use octet::format::{ModelFile, ModelWriter};
use octet::layers::observe;
use octet::Embedder;
use octet_kernels::{f32 as kf32, kernels, Epilogue};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The built-in calibration texts, one per line.
pub const BUILT_IN: &str = include_str!("../../data/calibration-sentences.txt");

/// Built-in texts a Gemma 3 model is calibrated on (the first ones of [`BUILT_IN`]).
pub const GEMMA_BUILT_IN_TEXTS: usize = 300;

/// Which texts calibrate the int8 weights (`octet convert --calibration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// The architecture's default: the built-in texts for BERT and Gemma 3, none for T5
    /// (unmeasured).
    Auto,
    /// Round to nearest, no calibration.
    Off,
    /// The built-in texts, for any architecture.
    BuiltIn,
    /// The texts of this file, one per line.
    Texts(PathBuf),
}

impl Calibration {
    /// Parses `--calibration`: `auto`, `off`, `built-in` or a path.
    pub fn parse(value: &str) -> Calibration {
        match value {
            "auto" => Calibration::Auto,
            "off" | "none" => Calibration::Off,
            "built-in" | "builtin" => Calibration::BuiltIn,
            path => Calibration::Texts(PathBuf::from(path)),
        }
    }

    /// The texts to run for a model of `model_type`, or `None` for round-to-nearest.
    pub fn texts(&self, model_type: &str) -> Result<Option<Vec<String>>> {
        let gemma = matches!(model_type, "gemma3_text" | "gemma3");
        let (text, most) = match self {
            Calibration::Off => return Ok(None),
            Calibration::Auto if !(gemma || model_type == "bert") => return Ok(None),
            Calibration::Auto | Calibration::BuiltIn if gemma => (BUILT_IN.to_string(), GEMMA_BUILT_IN_TEXTS),
            Calibration::Auto | Calibration::BuiltIn => (BUILT_IN.to_string(), usize::MAX),
            Calibration::Texts(path) => (read_texts(path)?, usize::MAX),
        };
        let texts: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .take(most)
            .collect();
        if texts.is_empty() {
            bail!("the calibration texts are empty");
        }
        Ok(Some(texts))
    }
}

/// Reads a calibration file as UTF-8 text.
fn read_texts(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read calibration texts {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("calibration texts {} are not UTF-8", path.display()))
}

/// One layer's gathered statistics.
pub struct Gram {
    /// Input features.
    pub k: usize,
    /// `sum x x^T`, [k, k] row-major.
    pub h: Vec<f64>,
    /// Rows (tokens) seen.
    pub rows: usize,
}

/// Runs the f32 model made of `planned` (with `writer`'s metadata and tokenizer already set by
/// `start`) on `texts`, and returns the [`Gram`] of each linear layer whose weight name
/// `wanted` accepts.
pub fn grams(
    start: impl FnOnce() -> Result<ModelWriter>,
    planned: &[Planned],
    texts: &[String],
    wanted: impl Fn(&str) -> bool + Send + 'static,
) -> Result<HashMap<String, Gram>> {
    let f32_recipe = Recipe::parse("f32", Vec::new(), None)?;
    let mut writer = start()?;
    for p in planned {
        store::store(&mut writer, &f32_recipe, p.clone())?;
    }
    let file = ModelFile::from_bytes(writer.to_bytes()?).context("the f32 calibration model does not load")?;
    let file = std::sync::Arc::new(file);
    let embedder = Embedder::from_shared(file.clone(), 0)?;
    let grams = Arc::new(Mutex::new(HashMap::<String, Gram>::new()));
    let sink = grams.clone();
    // Only this model's layers: other embedders may run in the process meanwhile.
    let observed = observe::linear_inputs(
        &file,
        move |name: &str, rows: &[f32], k: usize| {
            if wanted(name) {
                let mut grams = sink.lock().unwrap_or_else(|e| e.into_inner());
                let gram = grams.entry(name.to_string()).or_insert_with(|| Gram {
                    k,
                    h: vec![0.0; k * k],
                    rows: 0,
                });
                add_gram(gram, rows);
            }
        },
        || embedder.embed(texts),
    );
    observed.context("calibration run failed")?;
    let grams = std::mem::take(&mut *grams.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(grams)
}

/// Adds `X^T X` of `rows` (m rows of `gram.k`) to `gram`: X^T packed as the weights of an f32
/// product of X^T with itself.
fn add_gram(gram: &mut Gram, rows: &[f32]) {
    let k = gram.k;
    let m = rows.len() / k;
    if m == 0 {
        return;
    }
    let mut xt = vec![0f32; k * m];
    for (t, row) in rows.chunks_exact(k).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            xt[i * m + t] = v;
        }
    }
    let layout = kf32::PackedF32Layout::new(k, m);
    let mut packed = vec![0f32; layout.len()];
    let mut out = vec![0f32; k * k];
    let done = kf32::pack_nk(&xt, k, m, m, &mut packed).and_then(|()| {
        let w = kf32::PackedF32::from_parts(layout, &packed)?;
        kf32::matmul(kernels().f32, &xt, m, k, &w, &Epilogue::NONE, &mut out, k)
    });
    // The shapes are consistent by construction; a failure would be a bug.
    done.expect("X^T X product on consistent shapes");
    for (h, &v) in gram.h.iter_mut().zip(&out) {
        *h += f64::from(v);
    }
    gram.rows += m;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_is_x_transpose_x() {
        let k = 5;
        let rows: Vec<f32> = (0..3 * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut gram = Gram {
            k,
            h: vec![1.0; k * k],
            rows: 2,
        };
        add_gram(&mut gram, &rows);
        assert_eq!(gram.rows, 5);
        for i in 0..k {
            for j in 0..k {
                let want: f64 = 1.0
                    + (0..3)
                        .map(|t| f64::from(rows[t * k + i]) * f64::from(rows[t * k + j]))
                        .sum::<f64>();
                assert!((gram.h[i * k + j] - want).abs() < 1e-5, "({i}, {j})");
            }
        }
    }

    #[test]
    fn calibration_texts_by_architecture() {
        assert_eq!(Calibration::parse("auto").texts("t5").unwrap(), None);
        assert!(Calibration::parse("auto").texts("gemma3_text").unwrap().is_some());
        assert_eq!(Calibration::parse("off").texts("bert").unwrap(), None);
        let built_in = Calibration::parse("auto").texts("bert").unwrap().unwrap();
        assert_eq!(built_in.len(), 1290);
        assert_eq!(Calibration::parse("built-in").texts("t5").unwrap().unwrap(), built_in);
        // Gemma 3 takes the first GEMMA_BUILT_IN_TEXTS of them, with or without `built-in`.
        for how in ["auto", "built-in"] {
            let gemma = Calibration::parse(how).texts("gemma3_text").unwrap().unwrap();
            assert_eq!(gemma, built_in[..GEMMA_BUILT_IN_TEXTS]);
        }
        let missing = Calibration::parse("/nonexistent/calibration.txt")
            .texts("bert")
            .unwrap_err();
        assert!(
            format!("{missing:#}").contains("cannot read calibration texts"),
            "{missing:#}"
        );
    }
}
