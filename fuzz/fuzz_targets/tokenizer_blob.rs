//! Fuzz target `tokenizer_blob`: the tokenizer built from a stored `tokenizer.json` blob.
//!
//! The input is the blob's bytes. The target builds the tokenizer exactly as the engine does for
//! a complete (not split) tokenizer blob (`TextTokenizer::from_json`) with a small window, and
//! encodes a few texts, truncating and refusing long ones. A hostile blob may be rejected, but
//! must never panic, hang or run out of memory. (BPE skeletons stored in parts need a model file
//! and are reached through the `model_file` target.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use octet::tokenize::TextTokenizer;
use octet::Truncation;

fuzz_target!(|data: &[u8]| {
    let Ok(tokenizer) = TextTokenizer::from_json(data, 16) else { return };
    let _ = tokenizer.vocab_size(true);
    for text in ["The cat sat on the mat.", "", "héllo wörld 日本 \u{0} <pad> </s>"] {
        let _ = tokenizer.encode(0, text, Truncation::Truncate);
        let _ = tokenizer.encode(1, text, Truncation::Error);
    }
});
