//! Fuzz target `model_file`: an untrusted `.octet` file, from the bytes to a vector.
//!
//! The input is a whole model file. Before opening it, the target recomputes the metadata
//! checksum (FORMAT.md 3.2) over the header and JSON the mutated header points at, so mutations
//! of the header and of the JSON reach the JSON, metadata and tensor-table validation instead of
//! stopping at "checksum mismatch" (the checksum check itself is covered by the proptests in
//! `crates/octet/src/format/tests/fuzz.rs`). If the file opens, every check the engine runs on
//! its way to a vector runs too: binding the tokenizer and the encoder (`Embedder::from_file`)
//! and embedding a short text. None of it may panic, hang or run out of memory.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// libfuzzer-sys's panic hook aborts on every panic, even one the engine catches: the engine
/// fences the `tokenizers` crate, which panics on some malformed tokenizer.json files
/// (`octet::tokenize` guard). This hook only prints where the panic happened; a panic that
/// escapes the engine still aborts, in libfuzzer-sys's wrapper, and counts as a crash.
fn octet_fuzz_hook() {
    std::panic::set_hook(Box::new(|info| eprintln!("panic (caught or not): {info}")));
}
use octet::format::ModelFile;
use octet::Embedder;
use sha2::{Digest, Sha256};

/// Header length and the byte range of `meta_sha256` in it (FORMAT.md section 3).
const HEADER_LEN: usize = 128;
const SHA_RANGE: std::ops::Range<usize> = 56..88;

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Writes the correct `meta_sha256` for whatever header and JSON range the bytes describe
/// (clamped to the input, so a header pointing past the end still gets a checksum).
fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let json_offset = u64_at(bytes, 16);
    let json_len = u64_at(bytes, 24);
    let start = usize::try_from(json_offset).unwrap_or(usize::MAX).min(bytes.len());
    let end = usize::try_from(json_offset.saturating_add(json_len)).unwrap_or(usize::MAX).min(bytes.len()).max(start);
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&bytes[..HEADER_LEN]);
    header[SHA_RANGE].fill(0);
    let mut hasher = Sha256::new();
    hasher.update(header);
    hasher.update(&bytes[start..end]);
    let digest: [u8; 32] = hasher.finalize().into();
    bytes[SHA_RANGE].copy_from_slice(&digest);
}

fuzz_target!(init: octet_fuzz_hook(), |data: &[u8]| {
    let mut bytes = data.to_vec();
    reseal(&mut bytes);
    let Ok(file) = ModelFile::from_bytes(bytes) else { return };
    let _ = file.verify_data();
    // One thread: the fuzzer runs one job per core already.
    let Ok(embedder) = Embedder::from_file(file, 1) else { return };
    let _ = embedder.embed(&["The cat sat on the mat.", ""]);
});
