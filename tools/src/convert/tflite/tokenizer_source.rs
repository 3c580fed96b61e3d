//! Where a TFLite import's `tokenizer.json` comes from: the user's `--tokenizer` file, which
//! always wins, or else the tokenizer the file's MediaPipe / TFLite Support metadata carries
//! ([`octet_tflite::metadata`]; a BERT vocab becomes a `tokenizer.json` through
//! [`octet_tflite::wordpiece`], a SentencePiece Unigram model through
//! [`octet_tflite::sentencepiece`]).
//! With neither, the error names both. Errors keep the CLI's exit codes: an unreadable
//! `--tokenizer` file is a missing input, no tokenizer at all a usage error, malformed metadata
//! a bad input.

use crate::exit::CliError;
use anyhow::{Context, Result};
use octet_tflite::metadata::{self, TokenizerKind};
use octet_tflite::sentencepiece::SentencePieceModel;
use octet_tflite::wordpiece;
use octet_tflite::TfliteModel;
use std::path::Path;

/// The tokenizer a conversion stores.
#[derive(Debug)]
pub struct TokenizerSource {
    /// The `tokenizer.json` bytes.
    pub json: Vec<u8>,
    /// What it came from, for the file's provenance: the user's file name, or
    /// `model.tflite:vocab.txt` for an associated file.
    pub origin: String,
    /// The window it implies, if any: `max_seq_length` of a `sentence_bert_config.json` beside
    /// the user's file, or the fixed token input length of a file with metadata.
    pub window: Option<usize>,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The user's `tokenizer.json` at `path`.
fn from_user_file(path: &Path) -> Result<TokenizerSource> {
    let json = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let window = path
        .parent()
        .map(|d| d.join("sentence_bert_config.json"))
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
        .map(|m| m as usize);
    Ok(TokenizerSource {
        json,
        origin: file_name(path),
        window,
    })
}

/// The tokenizer for converting `model` (read from `input`): `user`'s file when given, else the
/// one in the model's metadata.
pub fn resolve(model: &TfliteModel, user: Option<&Path>, input: &Path) -> Result<TokenizerSource> {
    if let Some(path) = user {
        return from_user_file(path);
    }
    let Some(found) = metadata::embedded_tokenizer(model)? else {
        return Err(CliError::usage(format!(
            "{} has no tokenizer: it carries no MediaPipe / TFLite Support tokenizer metadata (a BERT vocab \
             or SentencePiece model named in its {} buffer); pass --tokenizer tokenizer.json (the model's \
             Hugging Face tokenizer)",
            input.display(),
            metadata::METADATA_NAME
        )));
    };
    match found.unit.kind {
        TokenizerKind::Bert => Ok(TokenizerSource {
            json: wordpiece::tokenizer_json(&found.contents, found.lower_case(), &found.unit.file)?,
            origin: format!("{}:{}", file_name(input), found.unit.file),
            window: found.max_seq_len,
        }),
        TokenizerKind::SentencePiece => Ok(TokenizerSource {
            json: SentencePieceModel::parse(&found.contents)
                .and_then(|m| m.tokenizer_json())
                .with_context(|| format!("the SentencePiece model '{}' in the TFLite metadata", found.unit.file))?,
            origin: format!("{}:{}", file_name(input), found.unit.file),
            window: found.max_seq_len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use octet_tflite::testing::{bert_model, build, metadata_buffer, model_with, valid, zip_of, Place};
    use octet_tflite::TfliteModel;

    #[test]
    fn the_user_tokenizer_wins_and_neither_is_a_usage_error() {
        let input = std::path::Path::new("model.tflite");
        let with_metadata = TfliteModel::from_bytes(bert_model()).unwrap();
        let found = resolve(&with_metadata, None, input).unwrap();
        assert_eq!(found.origin, "model.tflite:vocab.txt");
        assert_eq!(found.window, Some(2));
        assert!(tokenizers::Tokenizer::from_bytes(&found.json).is_ok());

        let user = std::env::temp_dir().join(format!("octet-metadata-test-{}.json", std::process::id()));
        std::fs::write(&user, b"{\"user\": true}").unwrap();
        let chosen = resolve(&with_metadata, Some(&user), input).unwrap();
        std::fs::remove_file(&user).ok();
        assert_eq!(chosen.json, b"{\"user\": true}");

        let missing = resolve(&with_metadata, Some(std::path::Path::new("/nonexistent/t.json")), input).unwrap_err();
        assert_eq!(crate::exit::code_for(&missing), crate::exit::NO_INPUT, "{missing:#}");

        let plain = TfliteModel::from_bytes(build(&valid())).unwrap();
        let neither = resolve(&plain, None, input).unwrap_err();
        assert_eq!(crate::exit::code_for(&neither), crate::exit::USAGE, "{neither:#}");
        let msg = format!("{neither:#}");
        assert!(msg.contains("--tokenizer") && msg.contains("metadata"), "{msg}");

        let sp = model_with(
            metadata_buffer(5, "sp.model", Place::Subgraph, "M001"),
            &zip_of(&[("sp.model", b"not really a model")]),
        );
        let sp = TfliteModel::from_bytes(sp).unwrap();
        let msg = format!("{:#}", resolve(&sp, None, input).unwrap_err());
        assert!(msg.contains("SentencePiece model") && msg.contains("sp.model"), "{msg}");
    }

    /// A SentencePiece model in the metadata becomes a tokenizer with sentencepiece's ids
    /// (the model and ids of tests/fixtures/sentencepiece, see octet_tflite::sentencepiece).
    #[test]
    fn a_sentencepiece_model_in_the_metadata_is_converted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sentencepiece");
        let model = std::fs::read(dir.join("unigram.model")).unwrap();
        let file = model_with(
            metadata_buffer(5, "spm.model", Place::Subgraph, "M001"),
            &zip_of(&[("spm.model", &model)]),
        );
        let found = resolve(
            &TfliteModel::from_bytes(file).unwrap(),
            None,
            std::path::Path::new("t5.tflite"),
        )
        .unwrap();
        assert_eq!(found.origin, "t5.tflite:spm.model");
        let tokenizer = tokenizers::Tokenizer::from_bytes(&found.json).unwrap();
        let ids = tokenizer
            .encode("The cat sat on the mat.", true)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(*ids.last().unwrap(), 1, "</s> appended: {ids:?}");
    }
}
