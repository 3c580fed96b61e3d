//! The recipe quality report (`octet convert SOURCE --report`): converts one source with f32
//! and each requested recipe, embeds a fixed set of texts with every file, and compares each
//! recipe with f32 on size, agreement and speed.
//!
//! Figures per recipe: file size and its share of the f32 file; mean, 1st percentile and
//! minimum cosine between a text's vector and its f32 vector; top-10 neighbour overlap (for
//! each text, the fraction of its 10 nearest other texts by cosine that are also among f32's
//! 10, averaged: what a search index would notice); and speed as f32's embedding time over the
//! recipe's (above 1 is faster). Speed is measured in the same process with the same thread
//! count, recipes alternating within each round, best of the rounds, so background load hits
//! every recipe alike; on a shared machine it stays rough.
//!
//! The built-in texts are `tools/data/lee-sentences.txt` (400 news sentences, see
//! `tools/data/README.md`), compiled into the binary.

pub mod metrics;
pub mod render;

use crate::convert::{self, recipe::Recipe};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use octet::Embedder;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The built-in texts: 400 real news sentences, one per line.
pub const LEE_SENTENCES: &str = include_str!("../../data/lee-sentences.txt");

/// Neighbours compared per text.
pub const TOP_K: usize = 10;

/// The built-in texts as a list.
pub fn builtin_texts() -> Vec<String> {
    texts_from(LEE_SENTENCES)
}

/// One text per non-empty line.
pub fn texts_from(content: &str) -> Vec<String> {
    content
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// What to compare and how.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Recipes to compare with f32 (f32 is always converted, as the reference).
    pub recipes: Vec<Recipe>,
    /// Texts to embed.
    pub texts: Vec<String>,
    /// Where the texts came from (for the report header).
    pub texts_source: String,
    /// Compute threads for every model (0: one per core).
    pub threads: usize,
    /// Timed rounds over the texts; the best round counts.
    pub rounds: usize,
    /// Keep the converted files here instead of a temporary folder.
    pub keep_dir: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// One recipe's row.
#[derive(Clone, Debug, Serialize)]
pub struct RecipeRow {
    pub recipe: String,
    pub file: PathBuf,
    pub bytes: u64,
    /// `bytes` over the f32 file's bytes.
    pub size_vs_f32: f64,
    pub mean_cosine: f64,
    pub p1_cosine: f64,
    pub min_cosine: f64,
    /// Mean fraction of each text's top-10 neighbours shared with f32's.
    pub top10_overlap: f64,
    /// Best embedding time over the texts, seconds.
    pub seconds: f64,
    /// f32's `seconds` over this recipe's (above 1: faster than f32).
    pub speed_vs_f32: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub source: PathBuf,
    pub texts: usize,
    pub texts_source: String,
    pub threads: usize,
    pub rounds: usize,
    /// f32 first, then the requested recipes in the order given.
    pub rows: Vec<RecipeRow>,
}

/// Removes a temporary folder when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the report on the model folder `source`.
pub fn run(source: &Path, options: &ReportOptions) -> Result<Report> {
    if options.texts.is_empty() {
        bail!("the report needs at least one text");
    }
    let rounds = options.rounds.max(1);
    // f32 first (the reference), then each other recipe once, in the order given.
    let mut recipes: Vec<Recipe> = vec![Recipe::parse("f32", Vec::new(), None)?];
    for r in &options.recipes {
        if !recipes.iter().any(|have| have.name == r.name) {
            recipes.push(r.clone());
        }
    }
    let _temp;
    let dir = match &options.keep_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            let dir = std::env::temp_dir().join(format!("octet-report-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            _temp = TempDir(dir.clone());
            dir
        }
    };
    let stem = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());

    let steps = recipes.len() * (2 + rounds);
    let bar = if options.progress {
        ProgressBar::new(steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:32}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );

    let mut files = Vec::new();
    for r in &recipes {
        bar.set_message(format!("converting {}", r.name));
        let path = dir.join(format!("{stem}-{}.octet", r.name));
        let done = convert::convert(source, &path, r, false).with_context(|| format!("recipe {}", r.name))?;
        files.push((path, done.bytes));
        bar.inc(1);
    }
    let mut embedders = Vec::new();
    for (r, (path, _)) in recipes.iter().zip(&files) {
        bar.set_message(format!("loading {}", r.name));
        embedders.push(
            Embedder::open_with_threads(path, options.threads)
                .with_context(|| format!("cannot load the {} model {}", r.name, path.display()))?,
        );
        bar.inc(1);
    }

    let mut vectors: Vec<Vec<Vec<f32>>> = vec![Vec::new(); recipes.len()];
    let mut best = vec![Duration::MAX; recipes.len()];
    for round in 0..rounds {
        for (i, embedder) in embedders.iter().enumerate() {
            bar.set_message(format!("embedding {} ({}/{rounds})", recipes[i].name, round + 1));
            let start = Instant::now();
            let v = embedder
                .embed(&options.texts)
                .with_context(|| format!("embedding with {}", recipes[i].name))?;
            best[i] = best[i].min(start.elapsed());
            if round == 0 {
                vectors[i] = v;
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let reference = &vectors[0];
    let reference_near = metrics::nearest(reference, TOP_K);
    let (f32_bytes, f32_secs) = (files[0].1 as f64, best[0].as_secs_f64());
    let mut rows = Vec::new();
    for (i, r) in recipes.iter().enumerate() {
        let cosines: Vec<f64> = vectors[i]
            .iter()
            .zip(reference)
            .map(|(a, b)| metrics::cosine(a, b))
            .collect();
        let near = if i == 0 {
            reference_near.clone()
        } else {
            metrics::nearest(&vectors[i], TOP_K)
        };
        let secs = best[i].as_secs_f64();
        rows.push(RecipeRow {
            recipe: r.name.clone(),
            file: files[i].0.clone(),
            bytes: files[i].1,
            size_vs_f32: files[i].1 as f64 / f32_bytes,
            mean_cosine: cosines.iter().sum::<f64>() / cosines.len() as f64,
            p1_cosine: metrics::percentile(&cosines, 1.0),
            min_cosine: cosines.iter().cloned().fold(f64::INFINITY, f64::min),
            top10_overlap: metrics::neighbour_overlap(&near, &reference_near),
            seconds: secs,
            speed_vs_f32: if secs > 0.0 { f32_secs / secs } else { f64::NAN },
        });
    }
    let threads = embedders[0].threads();
    Ok(Report {
        source: source.to_path_buf(),
        texts: options.texts.len(),
        texts_source: options.texts_source.clone(),
        threads,
        rounds,
        rows,
    })
}
