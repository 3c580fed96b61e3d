//! A fence around the `tokenizers` crate for tokenizers that come from untrusted model files.
//!
//! `tokenizers` 0.22 panics instead of returning an error on some malformed `tokenizer.json`
//! files: a syntax error inside the `decoder` object (`expect("Helper")`), or a `Precompiled`
//! normalizer whose fields do not parse (`expect("Precompiled")`). The `model_file` fuzz target
//! found the first. A model file may come from anyone, so every call that builds a tokenizer
//! or encodes with it goes through [`guarded`], which turns a panic into
//! [`Error::Tokenizer`]; and JSON is checked for syntax first ([`check_json`]), so the common
//! case fails with serde's message and position instead of reaching the panic at all. A caught
//! panic still prints the standard panic message on stderr before the error.

use crate::error::{Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Fails with the position of the first syntax error if `bytes` are not one JSON value.
pub fn check_json(what: &str, bytes: &[u8]) -> Result<()> {
    // Skipping (`IgnoredAny`) takes about 1 ms on MiniLM's 466 KB, a full parse into a `Value`
    // 20-30 ms, too much for a cold start. Skipping does not check `\u` escapes inside
    // strings, so a bad escape inside `decoder` still reaches the panic, which `guarded` catches.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| Error::Tokenizer(format!("{what} is not valid JSON: {e}")))
}

/// Runs `f`, turning a panic inside it into an error that says what was being done.
///
/// Unwind safety: a panic leaves at most a half-built tokenizer, which is dropped, or a
/// tokenizer whose internal cache lock may be poisoned; a later call on it panics again and is
/// caught again, so nothing inconsistent is ever returned as a result.
pub fn guarded<T>(what: impl std::fmt::Display, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(Error::Tokenizer(format!(
                "the tokenizers library failed while {what} (it panicked: {message}); the model's tokenizer.json is malformed"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_step() {
        let err = guarded::<()>("loading tokenizer.json", || panic!("Helper")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("loading tokenizer.json") && msg.contains("Helper"),
            "{msg}"
        );
        assert_eq!(guarded("x", || Ok(7)).unwrap(), 7);
    }

    fn fixture_tokenizer() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/t5/gated/model/tokenizer.json"
        );
        std::fs::read_to_string(path).unwrap()
    }

    /// Regression: the `model_file` fuzz target's first crash (a stored T5 tokenizer.json with
    /// a mutated byte inside `decoder`) panicked in `tokenizers` at `expect("Helper")`.
    #[test]
    fn a_syntax_error_inside_the_decoder_is_an_error() {
        let json = fixture_tokenizer();
        let at = json.find("\"decoder\"").unwrap();
        let comma = at + json[at..].find(',').unwrap();
        let mut broken = json.clone().into_bytes();
        broken[comma] = b' ';
        let msg = crate::tokenize::TextTokenizer::from_json(&broken, 16)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("not valid JSON"), "{msg}");
    }

    /// Regression: the fuzzer's second crash, an escape that is no code point inside `decoder`,
    /// passes the syntax check and panics in `tokenizers`; the guard catches it.
    #[test]
    fn a_bad_escape_inside_the_decoder_is_an_error() {
        let json = fixture_tokenizer();
        let broken = json.replacen("\"Metaspace\"", "\"\\udc00\"", 1);
        assert_ne!(broken, json);
        let msg = crate::tokenize::TextTokenizer::from_json(broken.as_bytes(), 16)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("tokenizer"), "{msg}");
    }

    /// A `Precompiled` normalizer whose charsmap does not decode panics in `tokenizers` at
    /// `expect("Precompiled")`, even though the JSON is valid.
    #[test]
    fn a_bad_precompiled_normalizer_is_an_error() {
        let mut json: serde_json::Value = serde_json::from_str(&fixture_tokenizer()).unwrap();
        json["normalizer"] = serde_json::json!({"type": "Precompiled", "precompiled_charsmap": "not base64!"});
        let bytes = serde_json::to_vec(&json).unwrap();
        let msg = crate::tokenize::TextTokenizer::from_json(&bytes, 16)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("tokenizer"), "{msg}");
    }

    #[test]
    fn syntax_errors_give_their_position() {
        let msg = check_json("the skeleton", br#"{"a": 1 "b": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("the skeleton is not valid JSON") && msg.contains("column"),
            "{msg}"
        );

        check_json("x", br#"{"a": [1, 2, {"b": null}]}"#).unwrap();
    }
}
