//! f32 vs int8 end-to-end embedding with the real all-MiniLM-L6-v2 and EmbeddingGemma-300m.
//!
//! Each model is fetched with its `scripts/fetch-*.sh` (cached after the first run) and
//! converted with the project's own converter into a temporary folder under three recipes:
//! `f32`, `int8-embeddings` (int8 token table, f32 linear layers) and `int8`. Each file is
//! opened with [`octet::Embedder::open_with_threads`] for 1 and 2 threads, and `embed` is timed
//! on real English prose cut to an exact token count (special tokens included; see
//! [`octet_benches::prose`]) at these points:
//!
//! - MiniLM: batch 1 x 16, 128 and 256 tokens (256 is its window), batch 32 x 128 tokens
//!   (32 different texts; the engine's default batch size is 32);
//! - EmbeddingGemma: batch 1 x 16, 128 and 512 tokens, batch 8 x 128 tokens (no prompt).
//!
//! Then the fixed corpus (`tools/data/lee-sentences.txt`, 400 real sentences of mixed length)
//! is embedded whole, in texts/s, and each file is run in fresh processes of
//! `octet-bench-timer` (`benches/timer.rs`) for the cold start (process start to the first
//! vector) and the peak RSS of a corpus run.
//!
//! Tokenization is part of the timing, as a user sees it. The run ends with markdown tables:
//! medians, the int8 / f32 and int8-embeddings / f32 speed ratios (f32 time / other time) and
//! the 2-thread scaling. The machine may be busy: ratios of points measured side by side in
//! one run are the meaningful figures.
//!
//! Run: `cargo bench -p octet-benches --bench end_to_end` (both models), or choose with
//! `OCTET_BENCH_MODELS=minilm` / `embeddinggemma`.

use criterion::{Criterion, SamplingMode};
use octet::tokenize::TextTokenizer;
use octet::Embedder;
use octet_benches::host;
use octet_benches::prose::{fixture_words, lee_corpus, texts_of_exact_tokens};
use octet_benches::samples::{time_iters, Samples};
use octet_benches::table::{num, ratio, Table};
use octet_tools::convert::recipe::Recipe;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Conversion recipes, the float baseline first.
const RECIPES: [&str; 3] = ["f32", "int8-embeddings", "int8"];
/// One model to measure.
struct Case {
    name: &'static str,
    /// Fetch script in `scripts/`.
    script: &'static str,
    /// Reference fixture whose texts supply the words of the benchmark texts.
    fixture: &'static str,
    /// (texts per call, tokens per text).
    points: &'static [(usize, usize)],
}

const CASES: [Case; 2] = [
    Case {
        name: "all-MiniLM-L6-v2",
        script: "fetch-minilm.sh",
        fixture: "minilm",
        points: &[(1, 16), (1, 128), (1, 256), (32, 128)],
    },
    Case {
        name: "EmbeddingGemma-300m",
        script: "fetch-embeddinggemma.sh",
        fixture: "embeddinggemma",
        points: &[(1, 16), (1, 128), (1, 512), (8, 128)],
    },
];
/// Pool sizes (the machine this was written for has 2 cores).
const THREADS: [usize; 2] = [1, 2];

/// Runs a fetch script and returns the folder it prints on its last line.
fn fetch(script: &str) -> PathBuf {
    let script = octet_benches::repo_root().join("scripts").join(script);
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
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

/// Converts `source` with every recipe into `dir`; returns the paths in [`RECIPES`] order.
fn convert_all(model: &str, source: &Path, dir: &Path) -> Vec<PathBuf> {
    RECIPES
        .iter()
        .map(|&name| {
            let out = dir.join(format!("{model}-{name}.octet"));
            let recipe = Recipe::parse(name, vec![], None).expect("known recipe");
            let start = Instant::now();
            octet_tools::convert::convert(source, &out, &recipe, false)
                .unwrap_or_else(|e| panic!("convert {name}: {e:#}"));
            let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!(
                "converted {model} {name}: {:.1} MB in {:.1} s",
                bytes as f64 / 1e6,
                start.elapsed().as_secs_f64()
            );
            out
        })
        .collect()
}

/// How busy the rest of the machine was while one (point, threads) row was measured.
struct Busy {
    point: usize,
    threads: usize,
    /// CPUs kept busy by other processes, on average ([`host::CpuMeter`]).
    other_cpus: Option<f64>,
}

/// One measured point.
struct Point {
    point: usize,
    threads: usize,
    recipe: usize,
    seconds: Option<f64>,
}

fn main() {
    println!("{}", host::describe_host());
    println!("kernels: {}", octet_kernels::describe());
    let chosen = std::env::var("OCTET_BENCH_MODELS").unwrap_or_else(|_| "minilm,embeddinggemma".into());
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    for case in CASES
        .iter()
        .filter(|c| chosen.split(',').any(|m| m.trim() == c.fixture))
    {
        run_case(case, &mut criterion);
    }
    criterion.final_summary();
}

fn run_case(case: &Case, criterion: &mut Criterion) {
    println!(
        "load average at start of {}: {}",
        case.name,
        num(host::load_average(), 2)
    );
    let source = fetch(case.script);
    let dir = std::env::temp_dir().join(format!("octet-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary folder");
    let paths = convert_all(case.fixture, &source, &dir);

    // embedders[recipe][thread index]
    let embedders: Vec<Vec<Embedder>> = paths
        .iter()
        .map(|p| {
            THREADS
                .iter()
                .map(|&t| Embedder::open_with_threads(p, t).expect("open the converted model"))
                .collect()
        })
        .collect();
    let file = embedders[0][0].file();
    let tokenizer = TextTokenizer::from_file(file, file.meta().max_seq_len).expect("tokenizer");
    let fixture = octet_benches::repo_root()
        .join("tests/fixtures")
        .join(case.fixture)
        .join("reference.json");
    let words = fixture_words(&fixture).expect("fixture words");
    let texts: Vec<Vec<String>> = case
        .points
        .iter()
        .map(|&(batch, tokens)| texts_of_exact_tokens(&tokenizer, &words, batch, tokens).expect("texts"))
        .collect();

    let mut points: Vec<Point> = Vec::new();
    let mut busy: Vec<Busy> = Vec::new();
    for (pi, &(batch, tokens)) in case.points.iter().enumerate() {
        let mut group = criterion.benchmark_group(format!("{} batch {batch}x{tokens}", case.fixture));
        let sample_size = if batch * tokens >= 1024 { 10 } else { 20 };
        group.sampling_mode(SamplingMode::Flat).sample_size(sample_size);
        if batch * tokens >= 1024 {
            group.measurement_time(Duration::from_secs(3));
        }
        for (ti, &threads) in THREADS.iter().enumerate() {
            let meter = host::CpuMeter::now();
            for (ri, recipe) in RECIPES.iter().enumerate() {
                let embedder = &embedders[ri][ti];
                let texts = &texts[pi];
                let mut samples = Samples::default();
                group.bench_function(format!("{recipe}/t{threads}"), |b| {
                    b.iter_custom(|iters| {
                        let elapsed = time_iters(iters, || {
                            black_box(embedder.embed(black_box(texts)).expect("embed"));
                        });
                        samples.record(iters, elapsed);
                        elapsed
                    })
                });
                let seconds = samples.median_of_last(sample_size).map(|d| d.as_secs_f64());
                if let Some(s) = seconds {
                    println!(
                        "  batch {batch}x{tokens} t={threads} {recipe}: {:.2} ms, {:.0} tokens/s",
                        s * 1e3,
                        (batch * tokens) as f64 / s
                    );
                }
                points.push(Point {
                    point: pi,
                    threads,
                    recipe: ri,
                    seconds,
                });
            }
            let other_cpus = meter
                .zip(host::CpuMeter::now())
                .and_then(|(a, b)| a.other_busy_cpus(&b));
            busy.push(Busy {
                point: pi,
                threads,
                other_cpus,
            });
        }
        group.finish();
    }
    let corpus = corpus_throughput(&embedders);
    drop(embedders);
    let process = paths.iter().map(|p| process_figures(p)).collect::<Vec<_>>();
    let _ = std::fs::remove_dir_all(&dir);
    println!("load average at end of {}: {}", case.name, num(host::load_average(), 2));
    print_summary(case, &points, &busy);
    print_corpus_summary(case, &corpus, &process);
}

/// Rounds of the corpus pass per (recipe, threads), after one warm-up pass; the median counts.
fn corpus_rounds() -> usize {
    std::env::var("OCTET_BENCH_CORPUS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Texts per second on the fixed corpus (`tools/data/lee-sentences.txt`, 400 sentences of
/// mixed length, default batch size 32), `[recipe][thread index]`. Timed by hand rather than
/// by criterion: one pass takes seconds, and criterion wants at least 10 samples.
fn corpus_throughput(embedders: &[Vec<Embedder>]) -> Vec<Vec<f64>> {
    let corpus = lee_corpus().expect("the committed corpus");
    let rounds = corpus_rounds();
    embedders
        .iter()
        .enumerate()
        .map(|(ri, per_thread)| {
            per_thread
                .iter()
                .zip(THREADS)
                .map(|(embedder, threads)| {
                    black_box(embedder.embed(&corpus).expect("embed the corpus"));
                    let mut seconds: Vec<f64> = (0..rounds)
                        .map(|_| {
                            let start = Instant::now();
                            black_box(embedder.embed(&corpus).expect("embed the corpus"));
                            start.elapsed().as_secs_f64()
                        })
                        .collect();
                    seconds.sort_by(f64::total_cmp);
                    let per_s = corpus.len() as f64 / seconds[seconds.len() / 2];
                    println!("  corpus {} t={threads}: {per_s:.1} texts/s", RECIPES[ri]);
                    per_s
                })
                .collect()
        })
        .collect()
}

/// What a fresh process costs with one model file, measured with `octet-bench-timer`.
struct ProcessFigures {
    file_bytes: u64,
    /// Median wall time from spawning the process to its exit after the first vector.
    cold_start_ms: Option<f64>,
    /// Peak resident set of a process that embeds the corpus once (after a warm-up pass).
    peak_rss_bytes: Option<u64>,
}

/// Cold start (median of 5 process runs, one short text, every core) and peak RSS of the
/// corpus run (2 threads) for one file.
fn process_figures(path: &Path) -> ProcessFigures {
    let timer = env!("CARGO_BIN_EXE_octet-bench-timer");
    let mut cold: Vec<f64> = (0..5)
        .filter_map(|_| {
            let start = Instant::now();
            let out = Command::new(timer)
                .arg("cold")
                .arg(path)
                .args(["0", "The quick brown fox jumps over the lazy dog."])
                .output()
                .ok()?;
            out.status.success().then(|| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    cold.sort_by(f64::total_cmp);
    let corpus_file = octet_benches::repo_root().join("tools/data/lee-sentences.txt");
    let peak_rss_bytes = Command::new(timer)
        .arg("corpus")
        .arg(path)
        .arg("2")
        .arg(&corpus_file)
        .arg("1")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["peak_rss_bytes"].as_u64());
    ProcessFigures {
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        cold_start_ms: cold.get(cold.len() / 2).copied(),
        peak_rss_bytes,
    }
}

fn print_corpus_summary(case: &Case, corpus: &[Vec<f64>], process: &[ProcessFigures]) {
    println!("## Corpus throughput, cold start and peak RSS, {}", case.name);
    println!();
    println!(
        "corpus: tools/data/lee-sentences.txt ({} rounds, median); cold start: process spawn to exit after the \
         first vector, median of 5; peak RSS: VmHWM of a process embedding the corpus on 2 threads.",
        corpus_rounds()
    );
    println!();
    let mb = |b: u64| b as f64 / 1e6;
    let mut table = Table::new(&[
        "recipe",
        "file MB",
        "texts/s 1T",
        "texts/s 2T",
        "vs f32 (2T)",
        "cold start ms",
        "peak RSS MB",
        "RSS - file MB",
    ]);
    for (ri, recipe) in RECIPES.iter().enumerate() {
        let p = &process[ri];
        table.row(vec![
            recipe.to_string(),
            num(Some(mb(p.file_bytes)), 1),
            num(corpus[ri].first().copied(), 1),
            num(corpus[ri].get(1).copied(), 1),
            ratio(corpus[ri].get(1).zip(corpus[0].get(1)).map(|(o, f)| o / f)),
            num(p.cold_start_ms, 1),
            num(p.peak_rss_bytes.map(mb), 1),
            num(p.peak_rss_bytes.map(|r| mb(r) - mb(p.file_bytes)), 1),
        ]);
    }
    println!("{}", table.render());
}

fn print_summary(case: &Case, points: &[Point], busy: &[Busy]) {
    let seconds = |pi: usize, t: usize, ri: usize| {
        points
            .iter()
            .find(|p| p.point == pi && p.threads == t && p.recipe == ri)
            .and_then(|p| p.seconds)
    };
    println!();
    println!(
        "## End to end, {} (median of criterion's samples, tokenization included)",
        case.name
    );
    println!();
    println!("kernels: {}", octet_kernels::describe());
    println!("ratios are speed-ups: f32 time / other time, measured side by side in this run;");
    println!("other CPUs busy = CPUs used by other processes on average while the row was measured (noise).");
    println!();
    let mut table = Table::new(&[
        "batch x tokens",
        "threads",
        "f32 ms",
        "int8-emb ms",
        "int8 ms",
        "int8-emb/f32",
        "int8/f32",
        "int8 tokens/s",
        "other CPUs busy",
    ]);
    for (pi, &(batch, tokens)) in case.points.iter().enumerate() {
        for &t in &THREADS {
            let s = |ri| seconds(pi, t, ri);
            if (0..RECIPES.len()).all(|ri| s(ri).is_none()) {
                continue;
            }
            let ms = |ri| num(s(ri).map(|x| x * 1e3), 2);
            let speedup = |ri| s(0).zip(s(ri)).map(|(f, o)| f / o);
            table.row(vec![
                format!("{batch}x{tokens}"),
                t.to_string(),
                ms(0),
                ms(1),
                ms(2),
                ratio(speedup(1)),
                ratio(speedup(2)),
                num(s(2).map(|x| (batch * tokens) as f64 / x), 0),
                num(
                    busy.iter()
                        .find(|b| b.point == pi && b.threads == t)
                        .and_then(|b| b.other_cpus),
                    2,
                ),
            ]);
        }
    }
    println!("{}", table.render());

    println!("## Thread scaling, {} (1-thread time / 2-thread time)", case.name);
    println!();
    let mut scaling = Table::new(&["batch x tokens", "f32 2T/1T", "int8-emb 2T/1T", "int8 2T/1T"]);
    for (pi, &(batch, tokens)) in case.points.iter().enumerate() {
        let speedup = |ri| seconds(pi, 1, ri).zip(seconds(pi, 2, ri)).map(|(one, two)| one / two);
        if (0..RECIPES.len()).all(|ri| speedup(ri).is_none()) {
            continue;
        }
        scaling.row(vec![
            format!("{batch}x{tokens}"),
            ratio(speedup(0)),
            ratio(speedup(1)),
            ratio(speedup(2)),
        ]);
    }
    println!("{}", scaling.render());
}
