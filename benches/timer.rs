//! `octet-bench-timer`: octet's side of the peer runner (`benches/peers/run.py`), timed in
//! process so that octet and its peers are measured the same way (model loaded, clock around
//! the embedding call only, tokenization included).
//!
//! Subcommands (every answer is one line of JSON on stdout):
//!
//! - `texts MODEL BATCHxTOKENS...`: for each point, `BATCH` different texts of exactly `TOKENS`
//!   tokens (special tokens included) as MODEL's tokenizer counts them, cut from the English
//!   prose of the MiniLM reference fixture ([`octet_benches::prose`]). The criterion bench
//!   `end_to_end` builds its texts the same way, so both runs see the same inputs.
//! - `serve`: a loop over JSON requests, one per stdin line, so one process keeps its models
//!   loaded while the runner interleaves it with the peers (every subcommand embeds the texts as
//!   given, with no task prompt, whatever the model's default: the runner prepends prompts itself,
//!   the same for every engine):
//!   `{"op":"load","name":N,"model":PATH,"threads":T}` -> `{"load_ms":..}`;
//!   `{"op":"time","name":N,"texts":[..],"iters":K}` -> `{"ms":[K per-call times]}`;
//!   `{"op":"embed","name":N,"texts":[..]}` -> `{"vectors":[[..],..]}`;
//!   `{"op":"quit"}`. An error answers `{"error":".."}` and the loop goes on.
//! - `cold MODEL THREADS TEXT`: opens MODEL and embeds TEXT once, then exits; prints the time
//!   from `main` to the first vector. The runner times the whole process from outside (process
//!   start to exit), which is the cold start a user of the library sees.
//! - `corpus MODEL THREADS FILE [ROUNDS]`: embeds every line of FILE (default batch size 32),
//!   ROUNDS times (default 1) after one warm-up pass, and prints texts/s of the median round
//!   and the process's peak resident set size (`VmHWM`) at the end.

use octet::tokenize::TextTokenizer;
use octet::{EmbedOptions, Embedder};
use octet_benches::prose::{corpus_lines, fixture_words, texts_of_exact_tokens};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

fn main() {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("texts") if args.len() >= 3 => texts(&args[1], &args[2..]),
        Some("serve") => serve(),
        Some("cold") if args.len() == 4 => cold(&args[1], &args[2], &args[3], start),
        Some("corpus") if args.len() == 4 || args.len() == 5 => {
            corpus(&args[1], &args[2], &args[3], args.get(4).map(String::as_str))
        }
        _ => Err(
            "usage: octet-bench-timer texts MODEL BxT... | serve | cold MODEL THREADS TEXT | \
             corpus MODEL THREADS FILE [ROUNDS]"
                .to_string(),
        ),
    };
    match result {
        Ok(Some(answer)) => println!("{answer}"),
        Ok(None) => {}
        Err(message) => {
            eprintln!("octet-bench-timer: {message}");
            std::process::exit(2);
        }
    }
}

/// Parses `32x128` into (32, 128).
fn parse_point(point: &str) -> Result<(usize, usize), String> {
    let (b, t) = point
        .split_once('x')
        .ok_or_else(|| format!("point '{point}' is not BATCHxTOKENS"))?;
    let parse = |s: &str| s.parse::<usize>().map_err(|e| format!("point '{point}': {e}"));
    Ok((parse(b)?, parse(t)?))
}

fn parse_threads(threads: &str) -> Result<usize, String> {
    threads.parse().map_err(|e| format!("threads '{threads}': {e}"))
}

/// No task prompt: the texts are embedded exactly as given.
fn no_prompt() -> EmbedOptions {
    EmbedOptions {
        prompt: Some(String::new()),
        ..EmbedOptions::default()
    }
}

fn open(model: &str, threads: usize) -> Result<Embedder, String> {
    Embedder::open_with_threads(model, threads).map_err(|e| format!("open {model}: {e}"))
}

fn texts(model: &str, points: &[String]) -> Result<Option<Value>, String> {
    let embedder = open(model, 1)?;
    let file = embedder.file();
    let tokenizer = TextTokenizer::from_file(file, file.meta().max_seq_len).map_err(|e| e.to_string())?;
    let words = fixture_words(&octet_benches::repo_root().join("tests/fixtures/minilm/reference.json"))?;
    let mut out = Vec::new();
    for point in points {
        let (batch, tokens) = parse_point(point)?;
        let texts = texts_of_exact_tokens(&tokenizer, &words, batch, tokens)?;
        out.push(json!({"point": point, "batch": batch, "tokens": tokens, "texts": texts}));
    }
    Ok(Some(json!({ "points": out })))
}

fn serve() -> Result<Option<Value>, String> {
    let mut models: HashMap<String, Embedder> = HashMap::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) if request["op"] == "quit" => break,
            Ok(request) => handle(&mut models, &request).unwrap_or_else(|e| json!({ "error": e })),
            Err(e) => json!({ "error": format!("bad request: {e}") }),
        };
        writeln!(stdout, "{answer}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
    }
    Ok(None)
}

fn handle(models: &mut HashMap<String, Embedder>, request: &Value) -> Result<Value, String> {
    let name = request["name"].as_str().ok_or("no 'name'")?.to_string();
    let texts = || -> Result<Vec<String>, String> {
        request["texts"]
            .as_array()
            .ok_or("no 'texts' array")?
            .iter()
            .map(|t| {
                t.as_str()
                    .map(String::from)
                    .ok_or_else(|| "a text is not a string".to_string())
            })
            .collect()
    };
    match request["op"].as_str() {
        Some("load") => {
            let model = request["model"].as_str().ok_or("no 'model'")?;
            let threads = request["threads"].as_u64().ok_or("no 'threads'")? as usize;
            let start = Instant::now();
            let embedder = open(model, threads)?;
            let load_ms = start.elapsed().as_secs_f64() * 1e3;
            models.insert(name, embedder);
            Ok(json!({ "load_ms": load_ms }))
        }
        Some("time") => {
            let embedder = models.get(&name).ok_or_else(|| format!("model '{name}' not loaded"))?;
            let texts = texts()?;
            let iters = request["iters"].as_u64().unwrap_or(1).max(1);
            let options = no_prompt();
            let mut ms = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                let start = Instant::now();
                let vectors = embedder.embed_with(&texts, &options).map_err(|e| e.to_string())?;
                ms.push(start.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(vectors);
            }
            Ok(json!({ "ms": ms }))
        }
        Some("embed") => {
            let embedder = models.get(&name).ok_or_else(|| format!("model '{name}' not loaded"))?;
            let vectors = embedder
                .embed_with(&texts()?, &no_prompt())
                .map_err(|e| e.to_string())?;
            Ok(json!({ "vectors": vectors }))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

fn cold(model: &str, threads: &str, text: &str, start: Instant) -> Result<Option<Value>, String> {
    let embedder = open(model, parse_threads(threads)?)?;
    let vectors = embedder.embed_with(&[text], &no_prompt()).map_err(|e| e.to_string())?;
    let first_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(Some(
        json!({ "main_to_first_vector_ms": first_ms, "dim": vectors[0].len() }),
    ))
}

fn corpus(model: &str, threads: &str, file: &str, rounds: Option<&str>) -> Result<Option<Value>, String> {
    let rounds: usize = rounds.map_or(Ok(1), |r| r.parse().map_err(|e| format!("rounds '{r}': {e}")))?;
    let texts = corpus_lines(Path::new(file))?;
    let embedder = open(model, parse_threads(threads)?)?;
    embedder.embed_with(&texts, &no_prompt()).map_err(|e| e.to_string())?;
    let mut seconds: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            let vectors = embedder.embed_with(&texts, &no_prompt()).map_err(|e| e.to_string())?;
            std::hint::black_box(vectors);
            Ok(start.elapsed().as_secs_f64())
        })
        .collect::<Result<_, String>>()?;
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let file_bytes = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    Ok(Some(json!({
        "texts": texts.len(),
        "median_s": median,
        "texts_per_s": texts.len() as f64 / median,
        "peak_rss_bytes": octet_benches::host::peak_rss_bytes(),
        "file_bytes": file_bytes,
    })))
}
