//! The `octet` command line as users run it: the real all-MiniLM-L6-v2 converted to int8 by the
//! binary itself, every input and output format, `--resume`, `similarity`, `search`, and one
//! test per kind of bad input, each checking the exit code, a message that names the problem
//! and the fix, no panic, and that no earlier output is lost.
//!
//! The model is fetched with `scripts/fetch-minilm.sh` (a no-op when cached) and converted once
//! per test process: a missing model fails the tests, it never skips them.

mod bad_models;
mod bad_outputs;
mod bad_texts;
#[path = "../common/mod.rs"]
mod common;
mod inputs;
mod inspect;
mod outputs;
mod search;
mod usage;

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
    common::fresh_dir(scratch(), name)
}

/// The MiniLM int8 model, fetched and converted with the binary once per process.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let out = scratch().join("minilm-int8.octet");
        common::convert_minilm_int8(OCTET, &out);
        out
    })
}

fn m() -> &'static str {
    model().to_str().unwrap()
}

/// Runs octet with `args` and optional standard input.
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    common::run_octet(OCTET, args, stdin)
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
