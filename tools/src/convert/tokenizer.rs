//! Stores the source's `tokenizer.json` in the model file.
//!
//! A BPE or WordPiece tokenizer is stored in parts (`octet::tokenize::stored`, FORMAT.md
//! "Tokenizer tensors"): a skeleton JSON whose `model.vocab` (and, for BPE, `model.merges`)
//! name the tensors [`VOCAB`] (+ `.offsets`) and [`MERGES`], which hold the vocabulary strings
//! in id order and the merges as id pairs. EmbeddingGemma's 33 MB tokenizer then loads in well
//! under half the time, and MiniLM's WordPiece vocabulary skips the JSON parse that was most of
//! its cold start. Before writing the parts, the converter loads them back and compares the result
//! with the source tokenizer loaded the ordinary way (the `tokenizers` crate's own
//! serialization of both must be equal); a tokenizer that fails the check, or that is neither
//! BPE nor WordPiece, is stored as one compact JSON blob, as before.

use anyhow::{Context, Result};
use octet::format::ModelWriter;
use octet::tokenize::stored::{LoadPath, StoredTokenizer, OFFSETS_SUFFIX};
use octet::tokenize::TextTokenizer;
use serde_json::Value;
use std::collections::HashMap;

/// The `u8` tensor of vocabulary strings (its offsets: `tokenizer.vocab.offsets`).
pub const VOCAB: &str = "tokenizer.vocab";
/// The `i32` tensor `[m, 2]` of merges as token-id pairs.
pub const MERGES: &str = "tokenizer.merges";

/// Adds the tokenizer `json` (the source's `tokenizer.json`) to `writer` as the blob `name`,
/// plus the vocabulary and merge tensors if it is stored in parts.
pub fn add(writer: &mut ModelWriter, name: &str, json: &[u8]) -> Result<()> {
    let value: Value = serde_json::from_slice(json).context("tokenizer.json is not valid JSON")?;
    let compact = serde_json::to_vec(&value)?;
    match split(&value)? {
        Some(parts) if parts.matches(&compact)? => {
            writer.add_blob(name, &parts.skeleton)?;
            writer.add_blob(VOCAB, &parts.vocab)?;
            writer.add_i32(
                &format!("{VOCAB}{OFFSETS_SUFFIX}"),
                &[parts.offsets.len()],
                &parts.offsets,
            )?;
            if parts.is_bpe {
                writer.add_i32(MERGES, &[parts.merges.len() / 2, 2], &parts.merges)?;
            }
        }
        _ => writer.add_blob(name, &compact)?,
    }
    Ok(())
}

/// A BPE or WordPiece tokenizer cut into the stored parts.
struct SplitTokenizer {
    is_bpe: bool,
    skeleton: Vec<u8>,
    vocab: Vec<u8>,
    offsets: Vec<i32>,
    merges: Vec<i32>,
}

impl SplitTokenizer {
    fn parts(&self) -> StoredTokenizer<'_> {
        StoredTokenizer {
            skeleton: &self.skeleton,
            vocab: &self.vocab,
            offsets: &self.offsets,
            merges: &self.merges,
        }
    }

    /// Whether the parts load, the fast way, into the same tokenizer as `compact` (the whole
    /// JSON) does the ordinary way. A source the ordinary way cannot load is kept whole, so
    /// that opening the model reports the same error as before.
    fn matches(&self, compact: &[u8]) -> Result<bool> {
        // The window only sets truncation, the same on both sides.
        const WINDOW: usize = 1 << 20;
        let Ok(original) = TextTokenizer::from_json(compact, WINDOW) else {
            return Ok(false);
        };
        let Ok(stored) = TextTokenizer::from_stored(&self.parts(), WINDOW) else {
            return Ok(false);
        };
        Ok(stored.load_path() == LoadPath::Stored && stored.canonical_json()? == original.canonical_json()?)
    }
}

/// Cuts a BPE or WordPiece `tokenizer.json` into parts; `None` if it is neither (with an
/// explicit `type`) or its vocabulary and merges do not fit the stored layout: ids not exactly
/// `0..n`, a merge naming a string outside the vocabulary, or sizes past `i32`.
fn split(value: &Value) -> Result<Option<SplitTokenizer>> {
    let Some(model) = value.get("model") else {
        return Ok(None);
    };
    let is_bpe = match model.get("type").and_then(Value::as_str) {
        Some("BPE") => true,
        Some("WordPiece") => false,
        _ => return Ok(None),
    };
    let empty = Vec::new();
    let merges = if is_bpe {
        model.get("merges").and_then(Value::as_array)
    } else {
        Some(&empty)
    };
    let (Some(vocab), Some(merges)) = (model.get("vocab").and_then(Value::as_object), merges) else {
        return Ok(None);
    };
    let mut by_id: Vec<Option<&str>> = vec![None; vocab.len()];
    for (string, id) in vocab {
        match id
            .as_u64()
            .and_then(|id| usize::try_from(id).ok())
            .and_then(|id| by_id.get_mut(id))
        {
            Some(slot @ None) => *slot = Some(string),
            _ => return Ok(None),
        }
    }
    let strings: Vec<&str> = by_id
        .into_iter()
        .collect::<Option<_>>()
        .expect("n distinct ids below n fill every slot");
    let ids: HashMap<&str, i32> = match strings
        .iter()
        .enumerate()
        .map(|(id, s)| Ok((*s, i32::try_from(id)?)))
        .collect::<Result<_>>()
    {
        Ok(ids) => ids,
        Err(_) => return Ok(None),
    };
    let mut pair_ids = Vec::with_capacity(2 * merges.len());
    for merge in merges {
        // `["a", "b"]`, or the older `"a b"` (split on the one space, as the tokenizers crate does).
        let (a, b) = match merge {
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => (a.as_str(), b.as_str()),
                _ => return Ok(None),
            },
            Value::String(line) => match line.split(' ').collect::<Vec<_>>().as_slice() {
                [a, b] => (*a, *b),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let (Some(&a), Some(&b)) = (ids.get(a), ids.get(b)) else {
            return Ok(None);
        };
        pair_ids.extend([a, b]);
    }
    let mut bytes = Vec::new();
    let mut offsets = Vec::with_capacity(strings.len() + 1);
    offsets.push(0);
    for s in &strings {
        bytes.extend_from_slice(s.as_bytes());
        let Ok(end) = i32::try_from(bytes.len()) else {
            return Ok(None);
        };
        offsets.push(end);
    }
    let mut skeleton = value.clone();
    skeleton["model"]["vocab"] = Value::String(VOCAB.into());
    if is_bpe {
        skeleton["model"]["merges"] = Value::String(MERGES.into());
    }
    Ok(Some(SplitTokenizer {
        is_bpe,
        skeleton: serde_json::to_vec(&skeleton)?,
        vocab: bytes,
        offsets,
        merges: pair_ids,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BPE tokenizer in the layout of EmbeddingGemma's (byte fallback, an added token
    /// past the vocabulary), with `merges` as given.
    fn tiny(merges: Value) -> Value {
        serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [
                {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 1, "content": "<bos>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                {"id": 7, "content": "<extra>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
            ],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
            "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": false, "ignore_merges": false,
                      "vocab": {"<unk>": 0, "<bos>": 1, "a": 2, "b": 3, "ab": 4, "\u{2581}": 5, "\u{2581}ab": 6},
                      "merges": merges}
        })
    }

    fn ids(t: &TextTokenizer, text: &str) -> Vec<u32> {
        t.encode(0, text, octet::Truncation::Truncate).unwrap().ids
    }

    #[test]
    fn bpe_is_split_and_loads_the_same() {
        for merges in [
            serde_json::json!([["a", "b"], ["\u{2581}", "ab"]]),
            serde_json::json!(["a b", "\u{2581} ab"]),
        ] {
            let value = tiny(merges);
            let compact = serde_json::to_vec(&value).unwrap();
            let parts = split(&value).unwrap().expect("a plain BPE tokenizer splits");
            assert_eq!(parts.offsets.len(), 8);
            assert_eq!(parts.merges, vec![2, 3, 5, 4]);
            assert!(parts.matches(&compact).unwrap());
            let stored = TextTokenizer::from_stored(&parts.parts(), 16).unwrap();
            let original = TextTokenizer::from_json(&compact, 16).unwrap();
            for text in ["ab", "a b ab", "ba<extra>ab", "<bos>xyz", ""] {
                assert_eq!(ids(&stored, text), ids(&original, text), "{text:?}");
            }
            // Joined back, the parts are the original tokenizer.json.
            let joined: Value = serde_json::from_slice(&parts.parts().to_json().unwrap()).unwrap();
            let mut expected = value.clone();
            expected["model"]["merges"] = serde_json::json!([["a", "b"], ["\u{2581}", "ab"]]);
            assert_eq!(joined, expected);
        }
    }

    #[test]
    fn unsuitable_tokenizers_stay_whole() {
        let mut holes = tiny(serde_json::json!([["a", "b"]]));
        holes["model"]["vocab"]["ab"] = 9.into();
        assert!(split(&holes).unwrap().is_none(), "ids not exactly 0..n");
        let unknown = tiny(serde_json::json!([["a", "zz"]]));
        assert!(
            split(&unknown).unwrap().is_none(),
            "merge of a string outside the vocabulary"
        );
        let mut unigram = tiny(serde_json::json!([]));
        unigram["model"]["type"] = "Unigram".into();
        assert!(split(&unigram).unwrap().is_none());
    }

    #[test]
    fn a_mismatch_keeps_the_whole_json() {
        // "ab" merges into a token the vocabulary lacks: the ordinary path fails to load, so
        // the split is refused rather than producing a different tokenizer.
        let mut value = tiny(serde_json::json!([["a", "b"]]));
        value["model"]["vocab"].as_object_mut().unwrap().remove("ab");
        value["model"]["vocab"]["ab2"] = 4.into();
        let parts = split(&value).unwrap().expect("ids are 0..n and merge strings known");
        assert!(!parts.matches(&serde_json::to_vec(&value).unwrap()).unwrap());
    }
}
