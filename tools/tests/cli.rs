//! The `octet` command line as users run it: the real all-MiniLM-L6-v2 converted to int8 by the
//! binary itself, every input and output format, `--resume`, `similarity`, `search`, and one
//! test per kind of bad input, each checking the exit code, a message that names the problem
//! and the fix, no panic, and that no earlier output is lost.
//!
//! The model is fetched with `scripts/fetch-minilm.sh` (a no-op when cached) and converted once
//! per test process: a missing model fails the tests, it never skips them.

mod common;

use common::repo_root;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const OCTET: &str = env!("CARGO_BIN_EXE_octet");

// Exit codes (tools/src/exit.rs).
const USAGE: i32 = 2;
const BAD_INPUT: i32 = 65;
const NO_INPUT: i32 = 66;
const CANT_CREATE: i32 = 73;
const IO: i32 = 74;

/// A scratch folder unique to this test process (earlier processes' folders are removed).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::process_scratch("octet-cli-tests"))
}

/// A fresh folder for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// The MiniLM int8 model, fetched and converted with the binary once per process.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let fetch = Command::new("bash")
            .arg(repo_root().join("scripts/fetch-minilm.sh"))
            .output()
            .expect("run fetch-minilm.sh");
        assert!(
            fetch.status.success(),
            "fetch-minilm.sh failed:\n{}",
            String::from_utf8_lossy(&fetch.stderr)
        );
        let stdout = String::from_utf8_lossy(&fetch.stdout);
        let source = stdout
            .lines()
            .last()
            .expect("the fetch script prints its folder")
            .trim()
            .to_string();
        let out = scratch().join("minilm-int8.octet");
        let convert = run(
            &["convert", &source, "-o", out.to_str().unwrap(), "--quant", "int8", "-q"],
            None,
        );
        assert!(
            convert.status.success(),
            "octet convert failed:\n{}",
            String::from_utf8_lossy(&convert.stderr)
        );
        out
    })
}

fn m() -> &'static str {
    model().to_str().unwrap()
}

/// Runs octet with `args` and optional standard input.
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(OCTET)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octet");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).expect("write stdin");
    }
    child.wait_with_output().expect("wait for octet")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts success and returns stdout.
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "octet failed ({:?}):\n{}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts a clean failure: exit `code`, no panic, and every `needles` in the message.
fn fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "expected exit {code}, stderr:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "panic or internal error:\n{err}"
    );
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "no error line:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

/// JSON lines output -> (id, vector) pairs.
fn parse_jsonl(text: &str) -> Vec<(u64, Vec<f32>)> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            let emb = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["id"].as_u64().unwrap(), emb)
        })
        .collect()
}

fn vectors(text: &str) -> Vec<Vec<f32>> {
    parse_jsonl(text).into_iter().map(|(_, v)| v).collect()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector counts differ");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

/// The reference: the texts given as arguments.
fn embed_args(texts: &[&str]) -> Vec<Vec<f32>> {
    let mut args = vec!["embed", m()];
    args.extend_from_slice(texts);
    vectors(&ok(run(&args, None)))
}

/// Reads a `.npy` written by octet: (descr, shape, data bytes).
fn read_npy(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "header not padded to 64");
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (descr, shape, bytes[10 + len..].to_vec())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

const TEXTS: [&str; 3] = [
    "The cat sat on the mat.",
    "A kitten is resting on the rug.",
    "Stock markets fell sharply today.",
];
/// MiniLM keeps cosine of identical texts within this of 1 after int8 and float printing.
const SAME: f32 = 1e-5;

// ---------------------------------------------------------------- help and usage

#[test]
fn every_subcommand_help_teaches_with_an_example() {
    for cmd in ["convert", "embed", "similarity", "search", "info", "inspect", "diff"] {
        let help = ok(run(&[cmd, "--help"], None));
        assert!(help.contains("Example"), "`octet {cmd} --help` has no example:\n{help}");
        assert!(
            help.contains(&format!("octet {cmd} ")),
            "`octet {cmd} --help` example does not run {cmd}:\n{help}"
        );
    }
    let top = ok(run(&["--help"], None));
    assert!(top.contains("Exit codes") && top.contains("65 bad input"), "{top}");
}

#[test]
fn usage_errors_exit_2_before_doing_anything() {
    let dir = test_dir("usage");
    let out = dir.join("v.jsonl");
    let o = run(&["embed", m(), "text", "--input", "x.txt"], None);
    fails(&o, USAGE, &["not both"]);
    let o = run(&["embed", m(), "--field", "a", "--column", "b"], Some(b""));
    fails(&o, USAGE, &["--field", "--column"]);
    let o = run(&["embed", m(), "--format", "npy", "x"], None);
    fails(&o, USAGE, &["--output"]);
    let o = run(&["embed", m(), "--prompt", "query", "x"], None);
    fails(&o, USAGE, &["unknown prompt 'query'"]);
    let o = run(&["embed", m(), "--dims", "999", "x"], None);
    fails(&o, USAGE, &["dims 999"]);
    let o = run(
        &["embed", m(), "--resume", "-o", out.to_str().unwrap(), "-f", "npy", "x"],
        None,
    );
    fails(&o, USAGE, &["--resume works with JSON lines"]);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "a usage error created files"
    );
    // clap's own errors use the same code.
    assert_eq!(run(&["embed"], None).status.code(), Some(USAGE));
    assert_eq!(run(&["similarity", m(), "only one"], None).status.code(), Some(USAGE));
}

// ---------------------------------------------------------------- inputs

#[test]
fn stdin_file_jsonl_and_csv_give_the_argument_vectors() {
    let reference = embed_args(&TEXTS);
    let dir = test_dir("inputs");

    let stdin = ok(run(&["embed", m()], Some(format!("{}\n", TEXTS.join("\n")).as_bytes())));
    assert!(max_diff(&vectors(&stdin), &reference) <= SAME);

    let txt = dir.join("t.txt");
    std::fs::write(&txt, format!("{}\r\n{}\r\n{}", TEXTS[0], TEXTS[1], TEXTS[2])).unwrap();
    let file = ok(run(&["embed", m(), "--input", txt.to_str().unwrap()], None));
    assert!(max_diff(&vectors(&file), &reference) <= SAME);

    let jsonl = dir.join("t.jsonl");
    let lines: Vec<String> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"n": i, "body": t}).to_string())
        .collect();
    std::fs::write(&jsonl, format!("{}\n\n{}\n{}\n", lines[0], lines[1], lines[2])).unwrap();
    let out = ok(run(
        &["embed", m(), "--input", jsonl.to_str().unwrap(), "--field", "body"],
        None,
    ));
    let parsed = parse_jsonl(&out);
    assert_eq!(
        parsed.iter().map(|p| p.0).collect::<Vec<_>>(),
        [0, 1, 2],
        "ids count records, not blank lines"
    );
    assert!(max_diff(&vectors(&out), &reference) <= SAME);

    // Quoted fields with commas, quotes and a line break.
    let tricky = "Hello, \"world\"\nsecond line";
    let csv = dir.join("t.csv");
    std::fs::write(
        &csv,
        format!(
            "id,text\n1,{}\n2,\"{}\"\n3,\"{}\"\n",
            TEXTS[0],
            TEXTS[1],
            tricky.replace('"', "\"\"")
        ),
    )
    .unwrap();
    let out = vectors(&ok(run(
        &["embed", m(), "--input", csv.to_str().unwrap(), "--column", "text"],
        None,
    )));
    assert!(max_diff(&out, &embed_args(&[TEXTS[0], TEXTS[1], tricky])) <= SAME);
}

#[test]
fn empty_lines_are_empty_texts_and_keep_ids_aligned_with_lines() {
    let out = ok(run(&["embed", m()], Some(b"first\n\n\nfourth\n")));
    let parsed = parse_jsonl(&out);
    assert_eq!(parsed.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let reference = embed_args(&["first", "", "", "fourth"]);
    assert!(max_diff(&vectors(&out), &reference) <= SAME);
    assert!(max_diff(&reference[1..2], &reference[2..3]) == 0.0);
}

// ---------------------------------------------------------------- outputs

#[test]
fn npy_npy_int8_and_f16_outputs_match_the_jsonl_vectors() {
    let dir = test_dir("outputs");
    let txt = dir.join("t.txt");
    std::fs::write(&txt, TEXTS.join("\n")).unwrap();
    let reference = embed_args(&TEXTS);
    let flat: Vec<f32> = reference.concat();

    let npy = dir.join("v.npy");
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            npy.to_str().unwrap(),
            "-q",
        ],
        None,
    ));
    let (descr, shape, data) = read_npy(&npy);
    assert_eq!((descr.as_str(), shape.as_slice()), ("<f4", &[3, 384][..]));
    assert!(f32s(&data).iter().zip(&flat).all(|(a, b)| (a - b).abs() <= SAME));

    let q8 = dir.join("q.npy");
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            q8.to_str().unwrap(),
            "--format",
            "npy-int8",
        ],
        None,
    ));
    let (descr, shape, data) = read_npy(&q8);
    assert_eq!((descr.as_str(), shape.as_slice()), ("|i1", &[3, 384][..]));
    let (sdescr, sshape, sdata) = read_npy(&dir.join("q.scales.npy"));
    assert_eq!((sdescr.as_str(), sshape.as_slice()), ("<f4", &[3][..]));
    let scales = f32s(&sdata);
    for (i, row) in data.chunks_exact(384).enumerate() {
        assert!(
            row.iter().any(|&b| b as i8 == 127 || b as i8 == -127),
            "the largest value maps to +-127"
        );
        for (j, &b) in row.iter().enumerate() {
            // Rounding error of symmetric int8: at most half a step.
            assert!((b as i8 as f32 * scales[i] - flat[i * 384 + j]).abs() <= scales[i] * 0.5 + SAME);
        }
    }

    let f16 = dir.join("v.f16");
    ok(run(
        &["embed", m(), "-i", txt.to_str().unwrap(), "-o", f16.to_str().unwrap()],
        None,
    ));
    let halves: Vec<f32> = std::fs::read(&f16)
        .unwrap()
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    assert_eq!(halves.len(), 3 * 384);
    // f16 keeps 11 significant bits: relative error 2^-11, values here are below 0.5.
    assert!(halves.iter().zip(&flat).all(|(a, b)| (a - b).abs() <= 2.5e-4));

    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".partial")),
        "temporary files left: {names:?}"
    );
}

#[test]
fn resume_continues_a_torn_partial_file_without_loss_or_duplicates() {
    let dir = test_dir("resume");
    let txt = dir.join("t.txt");
    let texts: Vec<String> = (0..40)
        .map(|i| format!("Sentence {i} about a cat, a dog or the weather."))
        .collect();
    std::fs::write(&txt, texts.join("\n")).unwrap();
    let full = dir.join("full.jsonl");
    ok(run(
        &["embed", m(), "-i", txt.to_str().unwrap(), "-o", full.to_str().unwrap()],
        None,
    ));
    let reference = std::fs::read_to_string(&full).unwrap();

    // An interrupted run: 17 complete lines and half of the 18th.
    let out = dir.join("v.jsonl");
    let partial = dir.join("v.jsonl.partial");
    let cut: usize = reference.lines().take(17).map(|l| l.len() + 1).sum::<usize>() + 100;
    std::fs::write(&partial, &reference.as_bytes()[..cut]).unwrap();

    let o = run(
        &["embed", m(), "-i", txt.to_str().unwrap(), "-o", out.to_str().unwrap()],
        None,
    );
    fails(&o, USAGE, &["v.jsonl.partial exists", "--resume"]);
    assert_eq!(
        std::fs::metadata(&partial).unwrap().len(),
        cut as u64,
        "a refused run touched the partial file"
    );

    let o = run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after 17 vectors"), "{}", stderr(&o));
    assert!(!partial.exists());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        reference,
        "resumed output differs from one run"
    );

    // Resuming a complete output changes nothing.
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    ));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), reference);

    // A partial file from another model width is refused, untouched.
    std::fs::write(&partial, "{\"id\":0,\"embedding\":[0.5,0.5]}\n").unwrap();
    let o = run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    );
    fails(&o, USAGE, &["2 dims", "384"]);
    assert_eq!(
        std::fs::read_to_string(&partial).unwrap(),
        "{\"id\":0,\"embedding\":[0.5,0.5]}\n"
    );
}

// ---------------------------------------------------------------- similarity and search

#[test]
fn similarity_prints_a_number_or_an_aligned_matrix() {
    let two = ok(run(&["similarity", m(), TEXTS[0], TEXTS[1]], None));
    let score: f32 = two.trim().parse().unwrap();
    assert!(score > 0.4 && score < 0.9, "{score}");
    let table = ok(run(&["similarity", m(), TEXTS[0], TEXTS[1], TEXTS[2]], None));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines.iter().all(|l| l.chars().count() == lines[0].chars().count()),
        "not aligned:\n{table}"
    );
    assert!(
        lines[1].starts_with("[1] The cat") && lines[1].contains(" 1.000 "),
        "{table}"
    );
    let cell: f32 = lines[1].split_whitespace().rev().nth(1).unwrap().parse().unwrap();
    // The pair prints 4 decimals, the matrix 3.
    assert!((cell - score).abs() <= 6e-4, "matrix disagrees with the pair:\n{table}");
}

#[test]
fn search_ranks_the_corpus_and_caches_it_until_corpus_or_model_change() {
    let dir = test_dir("search");
    let corpus = dir.join("c.txt");
    std::fs::write(
        &corpus,
        "Stock markets fell sharply today.\nA kitten is resting on the rug.\nThe weather is sunny.\n",
    )
    .unwrap();
    let cache = dir.join("c.txt.octet-vectors");
    let q = "a small cat sleeping on a carpet";
    let out = ok(run(
        &["search", m(), "--corpus", corpus.to_str().unwrap(), q, "-k", "2"],
        None,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("query: a small cat"), "{out}");
    assert!(lines[1].contains("line 2") && lines[1].contains("kitten"), "{out}");
    assert_eq!(lines.len(), 3, "{out}");
    let stamp = std::fs::metadata(&cache)
        .expect("cache written next to the corpus")
        .modified()
        .unwrap();

    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = ok(run(
        &["search", m(), "--corpus", corpus.to_str().unwrap(), q, "-k", "2"],
        None,
    ));
    assert_eq!(again, out);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        stamp,
        "an unchanged corpus was embedded again"
    );

    // Same length, other content: the key changes and the cache is rebuilt.
    std::fs::write(
        &corpus,
        "Stock markets fell sharply today.\nA puppy is resting on the rug.\nThe weather is sunny.\n",
    )
    .unwrap();
    let json = ok(run(
        &[
            "search",
            m(),
            "--corpus",
            corpus.to_str().unwrap(),
            q,
            "-k",
            "1",
            "--json",
        ],
        None,
    ));
    let hit: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(hit["text"], "A puppy is resting on the rug.", "{json}");
    assert_eq!(
        (hit["rank"].as_u64(), hit["id"].as_u64(), hit["line"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    assert_ne!(std::fs::metadata(&cache).unwrap().modified().unwrap(), stamp);

    // Another model (the same weights re-converted with other metadata) is another key.
    let other = dir.join("other.octet");
    let mut bytes = std::fs::read(model()).unwrap();
    edit_json(&mut bytes, "\"converter\":\"octet", "\"converter\":\"OCTET");
    std::fs::write(&other, &bytes).unwrap();
    let stamp = std::fs::metadata(&cache).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(run(
        &[
            "search",
            other.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            q,
        ],
        None,
    ));
    assert_ne!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        stamp,
        "another model reused the cache"
    );
}

/// A copy of the model whose metadata has `query` and `document` prompts, as EmbeddingGemma's
/// does: the JSON grows, so the data section moves (tensor offsets are relative to it).
fn model_with_prompts(path: &Path) {
    let bytes = std::fs::read(model()).unwrap();
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (json_offset, json_len, data_offset, data_len) = (u64_at(16), u64_at(24), u64_at(32), u64_at(40));
    let json = std::str::from_utf8(&bytes[json_offset..json_offset + json_len]).unwrap();
    assert!(json.contains("\"prompts\":{}"), "MiniLM has no prompts");
    let json = json.replace(
        "\"prompts\":{}",
        "\"prompts\":{\"query\":\"query: \",\"document\":\"passage: \"}",
    );
    let new_data_offset = (128 + json.len()).div_ceil(64) * 64;
    let mut out = bytes[..128].to_vec();
    out[24..32].copy_from_slice(&(json.len() as u64).to_le_bytes());
    out[32..40].copy_from_slice(&(new_data_offset as u64).to_le_bytes());
    out[48..56].copy_from_slice(&((new_data_offset + data_len) as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.resize(new_data_offset, 0);
    out.extend_from_slice(&bytes[data_offset..data_offset + data_len]);
    reseal(&mut out);
    std::fs::write(path, out).unwrap();
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    octet::similarity::cosine(a, b) as f32
}

#[test]
fn search_uses_the_models_query_and_document_prompts_by_default() {
    let dir = test_dir("prompts");
    let prompted = dir.join("prompted.octet");
    model_with_prompts(&prompted);
    let pm = prompted.to_str().unwrap();
    let info = ok(run(&["info", pm], None));
    assert!(info.contains("document, query"), "{info}");

    let corpus = dir.join("c.txt");
    std::fs::write(&corpus, format!("{}\n", TEXTS.join("\n"))).unwrap();
    let q = "a cat resting";
    let scores = |extra: &[&str]| -> Vec<f32> {
        let mut args = vec![
            "search",
            pm,
            "--corpus",
            corpus.to_str().unwrap(),
            "-k",
            "3",
            "--json",
            q,
        ];
        args.extend_from_slice(extra);
        let out = ok(run(&args, None));
        let mut by_id = vec![0f32; 3];
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            by_id[v["id"].as_u64().unwrap() as usize] = v["score"].as_f64().unwrap() as f32;
        }
        by_id
    };
    let expected = |query_prompt: &str, document_prompt: &str| -> Vec<f32> {
        let query = vectors(&ok(run(&["embed", pm, "--prompt", query_prompt, q], None)));
        let docs = vectors(&ok(run(
            &["embed", pm, "--prompt", document_prompt, "-i", corpus.to_str().unwrap()],
            None,
        )));
        docs.iter().map(|d| cosine(&query[0], d)).collect()
    };
    // Float sums in another order: a few ulps of a value below 1.
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5);

    let default = scores(&[]);
    assert!(close(&default, &expected("query", "document")), "{default:?}");
    let none = scores(&["--query-prompt", "", "--document-prompt", ""]);
    assert!(close(&none, &expected("", "")), "{none:?}");
    assert!(!close(&default, &none), "the prompts changed nothing: {default:?}");
    let swapped = scores(&["--query-prompt", "document", "--document-prompt", "query"]);
    assert!(close(&swapped, &expected("document", "query")), "{swapped:?}");

    // MiniLM has no prompts: naming one is a usage error that lists what the model has.
    let o = run(
        &[
            "search",
            m(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--query-prompt",
            "query",
            q,
        ],
        None,
    );
    fails(&o, USAGE, &["unknown prompt 'query'", "none"]);
}

// ---------------------------------------------------------------- bad model files

/// Replaces `from` by `to` (same length) in the JSON document and re-seals the header checksum
/// as FORMAT.md 3.2 says: sha256 over the header with bytes 56..88 zeroed, then the JSON.
fn edit_json(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let json_offset = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let json_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    let json = &mut bytes[json_offset..json_offset + json_len];
    let at = json
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("text in the JSON");
    json[at..at + to.len()].copy_from_slice(to.as_bytes());
    reseal(bytes);
}

fn reseal(bytes: &mut [u8]) {
    let json_offset = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let json_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    let mut header = bytes[..128].to_vec();
    header[56..88].fill(0);
    let digest = Sha256::new()
        .chain_update(&header)
        .chain_update(&bytes[json_offset..json_offset + json_len])
        .finalize();
    bytes[56..88].copy_from_slice(&digest);
}

/// Runs `embed` and `info` on a damaged copy of the model; both must fail the same clean way,
/// having written nothing.
fn bad_model(name: &str, damage: impl FnOnce(&mut Vec<u8>), needles: &[&str]) {
    let dir = test_dir(name);
    let path = dir.join(format!("{name}.octet"));
    let mut bytes = std::fs::read(model()).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let out = dir.join("v.jsonl");
    let o = run(
        &["embed", path.to_str().unwrap(), "-o", out.to_str().unwrap(), "hello"],
        None,
    );
    fails(&o, BAD_INPUT, needles);
    assert!(
        stderr(&o).contains(&path.display().to_string()),
        "the message does not name the file:\n{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty() && !out.exists() && !dir.join("v.jsonl.partial").exists());
    fails(&run(&["info", path.to_str().unwrap()], None), BAD_INPUT, needles);
}

#[test]
fn a_missing_model_names_the_path_and_how_to_make_one() {
    let o = run(&["embed", "/nonexistent/minilm.octet", "hello"], None);
    fails(
        &o,
        NO_INPUT,
        &["/nonexistent/minilm.octet does not exist", "octet convert"],
    );
    assert!(o.stdout.is_empty());
    let dir = test_dir("folder-model");
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    fails(
        &run(&["info", dir.to_str().unwrap()], None),
        NO_INPUT,
        &["is a folder", "convert it first"],
    );
}

#[test]
fn a_file_that_is_not_an_octet_file() {
    bad_model(
        "not-octet",
        |b| *b = b"{\"this is\": \"json\"}\n".repeat(20),
        &["not an octet model file", "octet convert"],
    );
}

#[test]
fn a_file_from_a_newer_format_version() {
    bad_model(
        "newer",
        |b| b[8..10].copy_from_slice(&2u16.to_le_bytes()),
        &["format 2.", "newer", "upgrade octet"],
    );
}

#[test]
fn a_truncated_file() {
    bad_model(
        "truncated",
        |b| b.truncate(b.len() / 2),
        &["truncated", "copy it again or re-run `octet convert`"],
    );
}

#[test]
fn a_checksum_mismatch() {
    bad_model(
        "checksum",
        |b| {
            let at = b.windows(6).position(|w| w == b"\"bert\"").unwrap();
            b[at + 1] = b'B';
        },
        &["checksum mismatch", "corrupt", "re-run `octet convert`"],
    );
    // Damaged weights pass the cheap open but not `info --verify`.
    let dir = test_dir("data-checksum");
    let path = dir.join("m.octet");
    let mut bytes = std::fs::read(model()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    fails(
        &run(&["info", "--verify", path.to_str().unwrap()], None),
        BAD_INPUT,
        &["checksum mismatch", "data"],
    );
}

#[test]
fn an_unknown_architecture() {
    bad_model(
        "arch",
        |b| edit_json(b, "\"architecture\":\"bert\"", "\"architecture\":\"bort\""),
        &["unknown architecture 'bort'", "upgrade octet"],
    );
}

// ---------------------------------------------------------------- bad texts

#[test]
fn invalid_utf8_on_stdin_names_the_line_keeps_earlier_vectors_and_lossy_replaces() {
    let input = b"The cat sat.\nbad \xff\xfe bytes\nlast line\n";
    let o = run(&["embed", m()], Some(input));
    fails(
        &o,
        BAD_INPUT,
        &["line 2 of standard input is not valid UTF-8", "column 5", "--lossy"],
    );
    let kept = parse_jsonl(&stdout(&o));
    assert_eq!(kept.len(), 1, "the vector of line 1 must be written before the error");
    assert!(max_diff(&[kept[0].1.clone()], &embed_args(&["The cat sat."])) <= SAME);

    let lossy = vectors(&ok(run(&["embed", m(), "--lossy"], Some(input))));
    assert!(
        max_diff(
            &lossy,
            &embed_args(&["The cat sat.", "bad \u{fffd}\u{fffd} bytes", "last line"])
        ) <= SAME
    );
}

#[test]
fn a_text_longer_than_the_window_is_cut_with_a_note_or_refused() {
    let long = "word ".repeat(400);
    let input = format!("short one\n{long}\nshort two\n");
    let o = run(&["embed", m()], Some(input.as_bytes()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(parse_jsonl(&stdout(&o)).len(), 3);
    assert!(
        stderr(&o).contains("note: 1 text(s) were longer than the model's window of 256 tokens"),
        "{}",
        stderr(&o)
    );

    let o = run(&["embed", m(), "--no-truncate"], Some(input.as_bytes()));
    fails(
        &o,
        BAD_INPUT,
        &[
            "line 2 of standard input (id 1) is longer than the model's window of 256 tokens",
            "--no-truncate",
        ],
    );
    assert_eq!(
        parse_jsonl(&stdout(&o)).len(),
        1,
        "line 1's vector must be written before the error"
    );
}

#[test]
fn a_jsonl_line_without_the_field_keeps_earlier_vectors_for_resume() {
    let dir = test_dir("jsonl-field");
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"title\": \"three\"}\n{\"text\": \"four\"}\n",
    )
    .unwrap();
    let o = run(&["embed", m(), "-i", input.to_str().unwrap(), "--field", "text"], None);
    fails(&o, BAD_INPUT, &["line 3 of", "no field 'text'", "'title'", "--field"]);
    assert_eq!(parse_jsonl(&stdout(&o)).len(), 2);

    // To a file: the complete vectors stay in the partial file; fix the line and resume.
    let out = dir.join("v.jsonl");
    let o = run(
        &[
            "embed",
            m(),
            "-i",
            input.to_str().unwrap(),
            "--field",
            "text",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    );
    fails(
        &o,
        BAD_INPUT,
        &["no field 'text'", "2 vectors before it are kept in", "--resume"],
    );
    assert!(!out.exists(), "an incomplete output must not look complete");
    assert_eq!(
        std::fs::read_to_string(dir.join("v.jsonl.partial"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    std::fs::write(
        &input,
        "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n{\"text\": \"four\"}\n",
    )
    .unwrap();
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            input.to_str().unwrap(),
            "--field",
            "text",
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    ));
    let got = parse_jsonl(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(
        max_diff(
            &got.into_iter().map(|g| g.1).collect::<Vec<_>>(),
            &embed_args(&["one", "two", "three", "four"])
        ) <= SAME
    );
}

#[test]
fn a_csv_without_the_column() {
    let dir = test_dir("csv-column");
    let input = dir.join("in.csv");
    std::fs::write(&input, "id,title,body\n1,a,b\n").unwrap();
    let out = dir.join("v.npy");
    let o = run(
        &[
            "embed",
            m(),
            "-i",
            input.to_str().unwrap(),
            "--column",
            "text",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    );
    fails(
        &o,
        BAD_INPUT,
        &["has no column 'text'", "'id', 'title', 'body'", "--column"],
    );
    assert!(std::fs::read_dir(&dir).unwrap().count() == 1, "files were created");
}

#[test]
fn an_input_file_that_does_not_exist() {
    let o = run(&["embed", m(), "-i", "/nonexistent/in.txt"], None);
    fails(&o, NO_INPUT, &["/nonexistent/in.txt does not exist"]);
}

// ---------------------------------------------------------------- bad outputs

#[test]
fn an_output_path_in_a_missing_folder() {
    let dir = test_dir("missing-folder");
    let out = dir.join("no/such/folder/v.jsonl");
    let o = run(&["embed", m(), "-o", out.to_str().unwrap(), "hello"], None);
    fails(&o, CANT_CREATE, &["does not exist", "mkdir -p"]);
    assert!(!dir.join("no").exists());
}

#[test]
fn a_full_disk_is_a_clean_error_that_leaves_no_partial_output() {
    let dir = test_dir("full-disk");
    let input = dir.join("in.txt");
    std::fs::write(&input, (0..200).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
    for (name, format) in [("v.jsonl", "jsonl"), ("v.npy", "npy"), ("q.npy", "npy-int8")] {
        let out = dir.join(name);
        // `ulimit -f 50`: files may not grow past 50 blocks (25-50 KiB), about 60 JSON lines.
        let script = format!(
            "ulimit -f 50; exec '{OCTET}' embed '{}' -i '{}' -o '{}' --format {format}",
            m(),
            input.display(),
            out.display()
        );
        let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
        fails(
            &o,
            IO,
            &["cannot write", "File too large", "ulimit -f", "nothing was written"],
        );
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["in.txt"], "{format}: output left behind");
    }
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let input: String = (0..1100).map(|i| format!("line {i}\n")).collect();
    let script = format!(
        "'{OCTET}' embed '{}' | head -c 10 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        m()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

/// The safetensors file the test model was converted from.
fn source_safetensors() -> PathBuf {
    let fetch = Command::new("bash")
        .arg(repo_root().join("scripts/fetch-minilm.sh"))
        .output()
        .expect("run fetch-minilm.sh");
    let stdout = String::from_utf8_lossy(&fetch.stdout);
    PathBuf::from(stdout.lines().last().expect("folder").trim()).join("model.safetensors")
}

#[test]
fn inspect_lists_tensors_totals_and_ports_as_text_and_json() {
    let text = ok(run(&["inspect", m()], None));
    for needle in [
        "format       octet",
        "embeddings.word",
        "u6",
        "totals by dtype",
        "input",
        "output",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
    let summary = ok(run(&["inspect", m(), "--summary"], None));
    assert!(
        !summary.contains("layers.0.ffn.up") && summary.contains("totals by dtype"),
        "{summary}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(run(&["inspect", m(), "--json"], None))).unwrap();
    let tensors = json["tensors"].as_array().unwrap();
    let word = tensors
        .iter()
        .find(|t| t["name"] == "embeddings.word")
        .expect("embeddings.word listed");
    assert_eq!(word["shape"], serde_json::json!([30522, 384]));
    let total: u64 = tensors.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert!(total <= std::fs::metadata(m()).unwrap().len());

    let st = source_safetensors();
    let text = ok(run(&["inspect", st.to_str().unwrap(), "--summary"], None));
    assert!(text.contains("safetensors") && text.contains("F32"), "{text}");
}

#[test]
fn diff_of_the_safetensors_and_the_int8_file_totals_the_change() {
    let st = source_safetensors();
    let text = ok(run(&["diff", st.to_str().unwrap(), m()], None));
    assert!(text.contains("total") && text.contains("MB"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(run(&["diff", st.to_str().unwrap(), m(), "--json"], None))).unwrap();
    let (a, b) = (
        json["file_bytes"][0].as_u64().unwrap(),
        json["file_bytes"][1].as_u64().unwrap(),
    );
    assert_eq!(a, std::fs::metadata(&st).unwrap().len());
    assert_eq!(b, std::fs::metadata(m()).unwrap().len());
    // A file against itself: nothing changed.
    let same: serde_json::Value = serde_json::from_str(&ok(run(&["diff", m(), m(), "--json"], None))).unwrap();
    assert_eq!(same["changed"].as_array().unwrap().len(), 0);
    assert_eq!(same["same_inputs"], true);
}

#[test]
fn inspect_and_diff_refuse_what_is_not_a_model_file() {
    let dir = test_dir("inspect-bad");
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "not a model at all, just some words\n".repeat(10)).unwrap();
    let missing = dir.join("missing.octet");
    fails(
        &run(&["inspect", missing.to_str().unwrap()], None),
        NO_INPUT,
        &["missing.octet"],
    );
    fails(
        &run(&["inspect", junk.to_str().unwrap()], None),
        BAD_INPUT,
        &["notes.txt"],
    );
    fails(
        &run(&["diff", m(), junk.to_str().unwrap()], None),
        BAD_INPUT,
        &["notes.txt"],
    );
    let mut truncated = std::fs::read(m()).unwrap();
    truncated.truncate(truncated.len() / 2);
    let cut = dir.join("cut.octet");
    std::fs::write(&cut, truncated).unwrap();
    fails(
        &run(&["inspect", cut.to_str().unwrap()], None),
        BAD_INPUT,
        &["cut.octet"],
    );
}
