//! Helpers of the hostile-input catalogue (`tests/hostile.rs`): the model, running octet,
//! damaged models, FIFOs, locks, and the [`Case`] table row.

#![allow(dead_code)]

pub mod inputs;
pub mod outputs;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const OCTET: &str = env!("CARGO_BIN_EXE_octet");
pub const OK: i32 = 0;
pub const USAGE: i32 = 2;
pub const BAD_INPUT: i32 = 65;
pub const CANT_CREATE: i32 = 73;

pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| crate::common::process_scratch("octet-hostile-tests"))
}

pub fn test_dir(name: &str) -> PathBuf {
    crate::common::fresh_dir(scratch(), name)
}

/// The MiniLM int8 model, fetched and converted with the binary once per process.
pub fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let out = scratch().join("minilm-int8.octet");
        super::common::convert_minilm_int8(OCTET, &out);
        out
    })
}

pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    crate::common::run_octet(OCTET, args, stdin)
}

pub fn sha(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// The files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A model whose `embeddings.norm.bias[0]` is NaN, with both checksums resealed: only the
/// finiteness checks can catch it.
pub fn nan_model(path: &Path) {
    altered_model(path, f32::NAN)
}

/// A model whose `embeddings.norm.bias[0]` is `value`, with both checksums resealed.
pub fn altered_model(path: &Path, value: f32) {
    let mut bytes = std::fs::read(model()).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let (json_offset, json_len, data_offset) = (u64_at(&bytes, 16), u64_at(&bytes, 24), u64_at(&bytes, 32));
    let json: serde_json::Value = serde_json::from_slice(&bytes[json_offset..json_offset + json_len]).unwrap();
    let tensor = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "embeddings.norm.bias")
        .unwrap();
    let at = data_offset + tensor["offset"].as_u64().unwrap() as usize;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let old = json["data_sha256"].as_str().unwrap().to_string();
    let new: String = Sha256::digest(&bytes[data_offset..])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = &mut bytes[json_offset..json_offset + json_len];
    let pos = text.windows(old.len()).position(|w| w == old.as_bytes()).unwrap();
    text[pos..pos + old.len()].copy_from_slice(new.as_bytes());
    let mut header = bytes[..128].to_vec();
    header[56..88].fill(0);
    let digest = Sha256::new()
        .chain_update(&header)
        .chain_update(&bytes[json_offset..json_offset + json_len])
        .finalize();
    bytes[56..88].copy_from_slice(&digest);
    std::fs::write(path, bytes).unwrap();
}

/// One hostile case: `setup` prepares the folder and returns the arguments; `after` checks
/// what must hold once octet has run (e.g. the model is unchanged).
pub struct Case {
    pub name: &'static str,
    pub setup: fn(&Path) -> Vec<String>,
    pub stdin: Option<&'static [u8]>,
    pub code: i32,
    pub needle: &'static str,
    pub after: fn(&Path, &Output),
}

pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A private copy of the model in `dir`, and its path.
pub fn own_model(dir: &Path) -> PathBuf {
    let path = dir.join("model.octet");
    std::fs::copy(model(), &path).unwrap();
    path
}

pub fn model_unchanged(dir: &Path, _: &Output) {
    assert_eq!(sha(&dir.join("model.octet")), sha(model()), "the model was changed");
}

pub fn nothing(_: &Path, _: &Output) {}

pub fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Holds an exclusive lock on `path` for the rest of the test process, as a running octet would.
pub fn hold_lock(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: flock on a descriptor this process owns; the file is leaked so the lock stays.
    assert_eq!(
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    std::mem::forget(file);
}

/// The MiniLM source folder (after `model()` fetched it).
pub fn source_folder() -> PathBuf {
    model();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let fetch = Command::new("bash")
        .arg(root.join("scripts/fetch-minilm.sh"))
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&fetch.stdout).lines().last().unwrap().trim())
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
