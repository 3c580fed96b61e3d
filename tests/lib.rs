//! Shared helpers for the integration tests: fetching the real models with the project's own
//! scripts (so a fresh machine needs nothing prepared, and no test can skip for lack of a
//! model), converting them once per test process, reading the committed reference fixtures,
//! and the similarity statistics the tests report.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs a fetch script from `scripts/` and returns the folder it prints last.
/// Panics with the script's output if it fails: a missing model is a failure, never a skip.
pub fn fetch(script: &str) -> PathBuf {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    assert!(
        output.status.success(),
        "scripts/{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the fetch script prints its folder")
            .trim(),
    )
}

/// The all-MiniLM-L6-v2 sentence-transformers folder, fetched on first use.
pub fn minilm_source() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetch("fetch-minilm.sh"))
}

/// The EmbeddingGemma-300m sentence-transformers folder, fetched on first use (1.15 GB).
pub fn embeddinggemma_source() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetch("fetch-embeddinggemma.sh"))
}

/// The gensim evaluation data folder, fetched on first use.
pub fn gensim_data() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetch("fetch-gensim-data.sh"))
}

/// A scratch folder for converted models, unique to this test process. Statics are never
/// dropped, so each test process leaves its folder behind (EmbeddingGemma's are 2 GB); the
/// first call removes the folders of processes that no longer run.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_scratch_dirs();
        let dir = std::env::temp_dir().join(format!("octet-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    })
}

/// Removes `octet-tests-<pid>` folders whose process is gone (Linux: no `/proc/<pid>`).
fn remove_stale_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("octet-tests-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Converts `source` with `recipe` into the scratch folder (once per process and name).
pub fn convert(source: &Path, name: &str, recipe: &str) -> PathBuf {
    let out = scratch_dir().join(format!("{name}-{recipe}.octet"));
    if !out.exists() {
        let recipe = octet_tools::convert::recipe::Recipe::parse(recipe, vec![], None).expect("known recipe");
        octet_tools::convert::convert(source, &out, &recipe, false)
            .unwrap_or_else(|e| panic!("convert {name} {}: {e:#}", recipe.name));
    }
    out
}

/// One text of a reference fixture.
#[derive(Debug, Deserialize)]
pub struct FixtureText {
    pub id: String,
    pub category: String,
    pub text: String,
    pub token_ids: Vec<u32>,
    pub truncated: bool,
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// The name of the prompt (`query`, `document`, `STS`...), if one was used.
    #[serde(default)]
    pub prompt_name: Option<String>,
    /// Matryoshka outputs: width -> the first `width` values, L2-normalized again.
    #[serde(default)]
    pub embeddings_truncated: std::collections::BTreeMap<String, Vec<f32>>,
}

/// A reference-embedding fixture file (`tests/fixtures/*/reference.json`).
#[derive(Debug, Deserialize)]
pub struct Fixture {
    pub texts: Vec<FixtureText>,
}

/// Loads `tests/fixtures/<name>/reference.json`.
pub fn load_fixture(name: &str) -> Fixture {
    let path = repo_root().join("tests/fixtures").join(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
}

/// Cosine similarity in f64 (the engine's one definition).
pub use octet::similarity::cosine;

/// Largest absolute element difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Mean and min cosine, and the largest absolute difference, of paired embeddings `got` and
/// `want`, printed under `label` (the figures the model tests assert on and report).
pub fn compare_embeddings(label: &str, got: &[Vec<f32>], want: &[Vec<f32>]) -> (f64, f64, f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{label}: {} vectors against {}",
        got.len(),
        want.len()
    );
    let cos: Vec<f64> = got.iter().zip(want).map(|(a, b)| cosine(a, b)).collect();
    let mean = cos.iter().sum::<f64>() / cos.len().max(1) as f64;
    let min = cos.iter().cloned().fold(1.0, f64::min);
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| max_abs_diff(a, b))
        .fold(0.0, f32::max);
    eprintln!(
        "{label} over {} inputs: mean cosine {mean:.6}, min {min:.8}, max abs diff {diff:.2e}",
        cos.len()
    );
    (mean, min, diff)
}

/// Pearson correlation.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx.sqrt() * syy.sqrt())
}

/// Ranks with ties given their average rank (as scipy's `rankdata`).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.998).abs() < 1e-3);
        assert_eq!(ranks(&[10.0, 20.0, 10.0]), vec![1.5, 3.0, 1.5]);
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    }
}

/// The gensim similarity figures of one model (see `tests/fixtures/README.md` for the method).
#[derive(Debug, Clone, Copy)]
pub struct GensimFigures {
    /// Lee corpus: Pearson r of document cosines against human similarity, 1,225 pairs.
    pub lee: f64,
    /// wordsim353: Spearman rho of word cosines against human scores.
    pub wordsim353: f64,
    /// simlex999: Spearman rho.
    pub simlex999: f64,
}

/// Reads `word1 TAB word2 TAB score` lines, skipping `#` comments.
fn word_pairs(path: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].trim().parse().expect("score"))
        })
        .collect()
}

/// Computes the gensim figures with `embed` (which embeds a list of texts).
pub fn gensim_figures(embed: &dyn Fn(&[String]) -> Vec<Vec<f32>>) -> GensimFigures {
    let dir = gensim_data();
    // lee.cor is ISO-8859-1: every byte is the code point of the same value.
    let lee_bytes = std::fs::read(dir.join("lee.cor")).expect("lee.cor");
    let lee_text: String = lee_bytes.iter().map(|&b| b as char).collect();
    let docs: Vec<String> = lee_text.split('\n').map(String::from).collect();
    assert_eq!(docs.len(), 50, "lee.cor has 50 documents");
    let human: Vec<Vec<f64>> = std::fs::read_to_string(dir.join("similarities0-1.txt"))
        .expect("similarities0-1.txt")
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse().expect("similarity")).collect())
        .collect();
    let vectors = embed(&docs);
    let (mut model, mut people) = (Vec::new(), Vec::new());
    for i in 0..50 {
        for j in i + 1..50 {
            model.push(cosine(&vectors[i], &vectors[j]));
            people.push(human[i][j]);
        }
    }
    let lee = pearson(&model, &people);
    let words = |file: &str| -> f64 {
        let pairs = word_pairs(&dir.join(file));
        let mut vocab: Vec<String> = pairs.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
        vocab.sort();
        vocab.dedup();
        let vectors = embed(&vocab);
        let at = |w: &String| &vectors[vocab.binary_search(w).expect("word in vocab")];
        let model: Vec<f64> = pairs.iter().map(|(a, b, _)| cosine(at(a), at(b))).collect();
        let people: Vec<f64> = pairs.iter().map(|(_, _, s)| *s).collect();
        spearman(&model, &people)
    };
    GensimFigures {
        lee,
        wordsim353: words("wordsim353.tsv"),
        simlex999: words("simlex999.txt"),
    }
}

/// Reads the reference figures from `tests/fixtures/<name>/gensim_reference.json`.
pub fn gensim_reference(name: &str) -> GensimFigures {
    let path = repo_root()
        .join("tests/fixtures")
        .join(name)
        .join("gensim_reference.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("gensim reference")).expect("json");
    let get = |k: &str| {
        v[k]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}.value in {}", path.display()))
    };
    GensimFigures {
        lee: get("lee"),
        wordsim353: get("wordsim353"),
        simlex999: get("simlex999"),
    }
}

/// The gensim checks of a real model: `f32` figures within 1e-3 of sentence-transformers'
/// `reference` (f32 matches it to ~1e-6 per vector), and `int8` within 0.01 of `f32` on Lee and
/// wordsim353. `model` names the model in the log.
pub fn check_gensim_figures(model: &str, reference: GensimFigures, f32: GensimFigures, int8: GensimFigures) {
    eprintln!("{model} gensim: sentence-transformers {reference:?}\n  octet f32 {f32:?}\n  octet int8 {int8:?}");
    for (got, want) in [
        (f32.lee, reference.lee),
        (f32.wordsim353, reference.wordsim353),
        (f32.simlex999, reference.simlex999),
    ] {
        assert!((got - want).abs() < 1e-3, "f32 figure {got} vs reference {want}");
    }
    assert!(
        (int8.lee - f32.lee).abs() <= 0.01,
        "Lee: int8 {} vs f32 {}",
        int8.lee,
        f32.lee
    );
    assert!(
        (int8.wordsim353 - f32.wordsim353).abs() <= 0.01,
        "wordsim353: int8 {} vs f32 {}",
        int8.wordsim353,
        f32.wordsim353
    );
}
