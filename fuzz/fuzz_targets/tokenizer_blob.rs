//! Fuzz target `tokenizer_blob`: the tokenizer built from a stored `tokenizer.json` blob.
//!
//! The input is the blob's bytes. The target builds the tokenizer exactly as the engine does for
//! a complete (not split) tokenizer blob (`TextTokenizer::from_json`) with a small window, and
//! encodes a few texts, truncating and refusing long ones. A hostile blob may be rejected, but
//! must never panic, hang or run out of memory. (BPE skeletons stored in parts need a model file
//! and are reached through the `model_file` target.)

#![no_main]

use libfuzzer_sys::fuzz_target;

/// libfuzzer-sys's panic hook aborts on every panic, even one the engine catches: the engine
/// fences the `tokenizers` crate, which panics on some malformed tokenizer.json files
/// (`octet::tokenize` guard). This hook only prints where the panic happened; a panic that
/// escapes the engine still aborts, in libfuzzer-sys's wrapper, and counts as a crash.
fn octet_fuzz_hook() {
    std::panic::set_hook(Box::new(|info| eprintln!("panic (caught or not): {info}")));
}
use octet::tokenize::TextTokenizer;
use octet::Truncation;

fuzz_target!(init: octet_fuzz_hook(), |data: &[u8]| {
    let Ok(tokenizer) = TextTokenizer::from_json(data, 16) else { return };
    let _ = tokenizer.vocab_size(true);
    for text in ["The cat sat on the mat.", "", "héllo wörld 日本 \u{0} <pad> </s>"] {
        let _ = tokenizer.encode(0, text, Truncation::Truncate);
        let _ = tokenizer.encode(1, text, Truncation::Error);
    }
});
