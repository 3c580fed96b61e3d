//! A BPE or WordPiece `tokenizer.json` stored in parts, so that opening a model skips the slow
//! JSON path.
//!
//! EmbeddingGemma's `tokenizer.json` is 33 MB: 262,144 vocabulary strings and 514,906 merges.
//! `Tokenizer::from_bytes` spends about 2 s of CPU on it, mostly in serde: the model is a
//! tagged enum, so the whole vocabulary and merge list are first copied into a
//! `serde_json::Value` and then deserialized a second time. The converter therefore stores a
//! BPE tokenizer as (FORMAT.md, "Tokenizer tensors"):
//!
//! - the *skeleton*: the `tokenizer.json` with `model.vocab` and `model.merges` replaced by
//!   JSON strings, the names of the tensors that hold them. Everything else (normalizer,
//!   pre-tokenizer, post-processor, decoder, added tokens, BPE options) is unchanged.
//! - `<vocab>` (`u8`): the vocabulary strings in id order, UTF-8, back to back, and
//!   `<vocab>.offsets` (`i32`, `[n + 1]`): string `i` is `vocab[offsets[i]..offsets[i + 1]]`.
//! - `<merges>` (`i32`, `[m, 2]`): the merges in rank order, each a pair of token ids (BPE only).
//!
//! A WordPiece tokenizer (BERT, MiniLM) is stored the same way without merges: its 30,522
//! vocabulary strings were most of MiniLM's cold start through the JSON path.
//!
//! [`StoredTokenizer::build_mapped`] reads a BPE tokenizer's parts in place
//! ([`super::mapped_bpe::MappedBpe`]); that is how a model opens. [`StoredTokenizer::build`],
//! the converter's check and the fallback for options the mapped model does not take,
//! hands the parts to the same public builders the JSON path ends in
//! (`BpeBuilder` or `WordPieceBuilder` with every option of the skeleton, `TokenizerBuilder` with the skeleton's
//! normalizer, pre-tokenizer, post-processor and decoder, then `add_tokens` with the added
//! tokens in file order), so it builds the same tokenizer without the detour through
//! `serde_json::Value`. The vocabulary map and the merge strings are built on two threads.
//! If an added token does not get the id the skeleton gives it, the parts are joined back
//! into a plain `tokenizer.json` and loaded the slow way ([`LoadPath::StoredViaJson`]):
//! slow, but never different ids.

use super::mapped_bpe::{BpeOptions, MappedBpe};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::sync::Arc;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{
    AddedToken, DecoderWrapper, Model, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerBuilder, TokenizerImpl,
};

/// Suffix of the tensor holding the vocabulary offsets: `<vocab>.offsets`.
pub const OFFSETS_SUFFIX: &str = ".offsets";

/// How a tokenizer was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadPath {
    /// From a complete `tokenizer.json` (`Tokenizer::from_bytes`).
    Json,
    /// From a skeleton and binary vocabulary (and merges), with the builders.
    Stored,
    /// From a skeleton and a BPE vocabulary and merges read in place from the model file
    /// ([`super::mapped_bpe::MappedBpe`]).
    Mapped,
    /// From a skeleton and binary parts joined back into a `tokenizer.json`, because the
    /// builders gave an added token another id than the skeleton says.
    StoredViaJson,
}

/// The tensor names a skeleton's `model.vocab` and `model.merges` hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredNames {
    /// The `u8` tensor of vocabulary strings (its offsets are `<vocab>.offsets`).
    pub vocab: String,
    /// The `i32` tensor `[m, 2]` of merges (BPE; a WordPiece skeleton has none).
    pub merges: Option<String>,
}

/// Returns the tensor names if `json` is a skeleton (its `model.vocab`, and `model.merges` if
/// present, are strings), `None` for a complete `tokenizer.json` or anything else. Skips the
/// rest of the document without building it, so it is cheap even on a 33 MB file.
pub fn stored_names(json: &[u8]) -> Option<StoredNames> {
    let probe: Probe = serde_json::from_slice(json).ok()?;
    let model = probe.model?;
    let vocab = model.vocab.0?;
    match model.merges {
        None => Some(StoredNames { vocab, merges: None }),
        Some(Marker(Some(merges))) => Some(StoredNames {
            vocab,
            merges: Some(merges),
        }),
        // Merges kept inline next to a stored vocabulary: not a layout octet writes.
        Some(Marker(None)) => None,
    }
}

/// The parts of a stored tokenizer, borrowed from a model file or the converter's memory.
#[derive(Clone, Copy, Debug)]
pub struct StoredTokenizer<'a> {
    /// The skeleton `tokenizer.json`.
    pub skeleton: &'a [u8],
    /// The vocabulary strings in id order, back to back.
    pub vocab: &'a [u8],
    /// `n + 1` offsets into `vocab`: string `i` is `vocab[offsets[i]..offsets[i + 1]]`.
    pub offsets: &'a [i32],
    /// `2 m` token ids: merge `r` (rank `r`) joins `merges[2r]` and `merges[2r + 1]`; empty
    /// for WordPiece.
    pub merges: &'a [i32],
}

impl<'a> StoredTokenizer<'a> {
    /// Finds the parts `skeleton` names in `file`, checking their dtypes and shapes.
    pub fn from_file(file: &'a ModelFile, skeleton: &'a [u8], names: &StoredNames) -> Result<StoredTokenizer<'a>> {
        let vocab = file.blob(&names.vocab)?;
        let offsets_name = format!("{}{OFFSETS_SUFFIX}", names.vocab);
        let offsets_len = rank1_len(file, &offsets_name)?;
        let offsets = file.i32(&offsets_name, &[offsets_len])?;
        let merges: &[i32] = match &names.merges {
            Some(name) => {
                let rows = file.tensor(name)?.shape.first().copied().unwrap_or(0);
                file.i32(name, &[rows, 2])?
            }
            None => &[],
        };
        Ok(StoredTokenizer {
            skeleton,
            vocab,
            offsets,
            merges,
        })
    }

    /// Builds the tokenizer (see the module docs) and says which way it went. A panic inside
    /// the `tokenizers` crate on a malformed skeleton becomes an error (see `guard`).
    pub fn build(&self) -> Result<(Tokenizer, LoadPath)> {
        super::guard::check_json("the skeleton tokenizer.json", self.skeleton)?;
        super::guard::guarded("building the stored tokenizer", || self.build_unguarded())
    }

    fn build_unguarded(&self) -> Result<(Tokenizer, LoadPath)> {
        let skeleton = self.skeleton()?;
        let strings = self.strings()?;
        let model = match skeleton.model.kind.as_str() {
            "BPE" => self.bpe(&skeleton.model, &strings)?,
            "WordPiece" => wordpiece(&skeleton.model, &strings, self.merges)?,
            other => {
                return Err(bad(format!(
                    "a stored vocabulary needs a BPE or WordPiece model, not {other:?}"
                )))
            }
        };
        if let Some(tokenizer) = assemble(skeleton, model)? {
            return Ok((tokenizer.into(), LoadPath::Stored));
        }
        let json = self.to_json()?;
        let tokenizer =
            Tokenizer::from_bytes(&json).map_err(|e| bad(format!("cannot load the joined tokenizer.json: {e}")))?;
        Ok((tokenizer, LoadPath::StoredViaJson))
    }

    /// Builds the tokenizer around a [`MappedBpe`] that reads the vocabulary and merges in
    /// place from `file` (the parts must be views into it). `None` where only [`Self::build`]
    /// can: not a BPE model, options the mapped model does not take, or an added token that
    /// would get another id.
    pub fn build_mapped(&self, file: &Arc<ModelFile>) -> Result<Option<MappedTokenizer>> {
        super::guard::check_json("the skeleton tokenizer.json", self.skeleton)?;
        super::guard::guarded("building the stored tokenizer", || {
            let skeleton = self.skeleton()?;
            if skeleton.model.kind != "BPE" {
                return Ok(None);
            }
            let m = &skeleton.model;
            let options = BpeOptions {
                dropout: m.dropout,
                unk_token: m.unk_token.clone(),
                continuing_subword_prefix: m.continuing_subword_prefix.clone(),
                end_of_word_suffix: m.end_of_word_suffix.clone(),
                fuse_unk: m.fuse_unk.unwrap_or(false),
                byte_fallback: m.byte_fallback.unwrap_or(false),
                ignore_merges: m.ignore_merges.unwrap_or(false),
            };
            match MappedBpe::new(file, self, options)? {
                Some(model) => assemble(skeleton, model),
                None => Ok(None),
            }
        })
    }

    fn skeleton(&self) -> Result<Skeleton> {
        let skeleton: Skeleton =
            serde_json::from_slice(self.skeleton).map_err(|e| bad(format!("the skeleton tokenizer.json: {e}")))?;
        if skeleton.version != "1.0" {
            return Err(bad(format!("unknown tokenizer.json version '{}'", skeleton.version)));
        }
        Ok(skeleton)
    }

    /// The BPE model of the skeleton's options, the vocabulary and the merges.
    fn bpe(&self, model: &SkeletonModel, strings: &[&str]) -> Result<ModelWrapper> {
        let pairs = self.merge_pairs(strings.len())?;
        // The two big inputs of `BpeBuilder` take about as long as each other: build them on
        // two threads. The builder itself (reverse map, merge map) is single-threaded.
        let (vocab, merges) = std::thread::scope(|scope| {
            let merges = scope.spawn(|| merge_strings(strings, &pairs));
            let vocab = vocab_map(strings);
            (
                vocab,
                merges.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            )
        });
        if vocab.len() != strings.len() {
            return Err(bad(format!(
                "the vocabulary holds {} strings but only {} distinct ones",
                strings.len(),
                vocab.len()
            )));
        }
        let mut builder = BPE::builder().vocab_and_merges(vocab, merges);
        // As the JSON path does: only options present and not null reach the builder.
        if let Some(p) = model.dropout {
            builder = builder.dropout(p);
        }
        if let Some(unk) = &model.unk_token {
            builder = builder.unk_token(unk.clone());
        }
        if let Some(prefix) = &model.continuing_subword_prefix {
            builder = builder.continuing_subword_prefix(prefix.clone());
        }
        if let Some(suffix) = &model.end_of_word_suffix {
            builder = builder.end_of_word_suffix(suffix.clone());
        }
        if let Some(fuse) = model.fuse_unk {
            builder = builder.fuse_unk(fuse);
        }
        if let Some(fallback) = model.byte_fallback {
            builder = builder.byte_fallback(fallback);
        }
        if let Some(ignore) = model.ignore_merges {
            builder = builder.ignore_merges(ignore);
        }
        let bpe = builder
            .build()
            .map_err(|e| bad(format!("cannot build the BPE model: {e}")))?;
        Ok(ModelWrapper::from(bpe))
    }

    /// Joins the parts back into a complete `tokenizer.json`: the skeleton with the vocabulary
    /// as a `{string: id}` object and the merges as `[[a, b], ...]` string pairs.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let strings = self.strings()?;
        let pairs = self.merge_pairs(strings.len())?;
        let mut skeleton: serde_json::Value =
            serde_json::from_slice(self.skeleton).map_err(|e| bad(format!("the skeleton tokenizer.json: {e}")))?;
        let model = skeleton
            .get_mut("model")
            .and_then(|m| m.as_object_mut())
            .ok_or_else(|| bad("the skeleton has no model object".into()))?;
        let vocab: serde_json::Map<String, serde_json::Value> = strings
            .iter()
            .enumerate()
            .map(|(id, s)| (s.to_string(), id.into()))
            .collect();
        let merges: Vec<serde_json::Value> = pairs
            .iter()
            .map(|&(a, b)| serde_json::json!([strings[a], strings[b]]))
            .collect();
        let is_bpe = model.get("type").and_then(|t| t.as_str()) == Some("BPE");
        model.insert("vocab".into(), vocab.into());
        if is_bpe {
            model.insert("merges".into(), merges.into());
        }
        serde_json::to_vec(&skeleton).map_err(|e| bad(format!("cannot write the joined tokenizer.json: {e}")))
    }

    /// The vocabulary strings, checked: offsets start at 0, never decrease, end at the blob's
    /// end and fall on character boundaries of valid UTF-8.
    pub(super) fn strings(&self) -> Result<Vec<&'a str>> {
        let text = std::str::from_utf8(self.vocab).map_err(|e| bad(format!("the vocabulary is not UTF-8: {e}")))?;
        let (&first, &last) = match (self.offsets.first(), self.offsets.last()) {
            (Some(first), Some(last)) => (first, last),
            _ => return Err(bad("the vocabulary offsets are empty (they need n + 1 entries)".into())),
        };
        if first != 0 || usize::try_from(last).ok() != Some(text.len()) {
            return Err(bad(format!(
                "the vocabulary offsets run from {first} to {last}, not from 0 to {}",
                text.len()
            )));
        }
        let mut strings = Vec::with_capacity(self.offsets.len() - 1);
        for (id, window) in self.offsets.windows(2).enumerate() {
            let piece = usize::try_from(window[0])
                .ok()
                .zip(usize::try_from(window[1]).ok())
                .and_then(|(start, end)| text.get(start..end))
                .ok_or_else(|| {
                    bad(format!(
                        "vocabulary string {id} has bad offsets {}..{}",
                        window[0], window[1]
                    ))
                })?;
            strings.push(piece);
        }
        Ok(strings)
    }

    /// The merges as id pairs, checked against the vocabulary size `n`.
    pub(super) fn merge_pairs(&self, n: usize) -> Result<Vec<(usize, usize)>> {
        if !self.merges.len().is_multiple_of(2) {
            return Err(bad(format!("the merges hold {} ids, not pairs", self.merges.len())));
        }
        let id = |raw: i32, rank: usize| {
            usize::try_from(raw)
                .ok()
                .filter(|&i| i < n)
                .ok_or_else(|| bad(format!("merge {rank} names token {raw}, outside the vocabulary of {n}")))
        };
        self.merges
            .chunks_exact(2)
            .enumerate()
            .map(|(rank, pair)| Ok((id(pair[0], rank)?, id(pair[1], rank)?)))
            .collect()
    }
}

/// A tokenizer whose word model is `M`, with the `tokenizers` crate's pipeline around it.
pub type TokenizerWith<M> =
    TokenizerImpl<M, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// A tokenizer around a [`MappedBpe`].
pub type MappedTokenizer = TokenizerWith<MappedBpe>;

/// Puts `model` into the skeleton's pipeline (normalizer, pre-tokenizer, post-processor,
/// decoder) and adds the added tokens in file order, as the JSON path does. `None` if an added
/// token does not get the id the skeleton gives it.
fn assemble<M: Model>(skeleton: Skeleton, model: M) -> Result<Option<TokenizerWith<M>>> {
    let mut tokenizer: TokenizerWith<M> = TokenizerBuilder::new()
        .with_model(model)
        .with_normalizer(skeleton.normalizer)
        .with_pre_tokenizer(skeleton.pre_tokenizer)
        .with_post_processor(skeleton.post_processor)
        .with_decoder(skeleton.decoder)
        .build()
        .map_err(|e| bad(format!("cannot assemble the tokenizer: {e}")))?;
    let added: Vec<AddedToken> = skeleton.added_tokens.iter().map(AddedTokenWithId::token).collect();
    tokenizer.add_tokens(&added);
    let ids_match = skeleton
        .added_tokens
        .iter()
        .all(|t| tokenizer.token_to_id(&t.content) == Some(t.id));
    Ok(ids_match.then_some(tokenizer))
}

/// The length of a rank-1 tensor (0 if it has another rank: the typed read then says why).
fn rank1_len(file: &ModelFile, name: &str) -> Result<usize> {
    let view = file.tensor(name)?;
    Ok(if view.shape.len() == 1 { view.shape[0] } else { 0 })
}

fn vocab_map(strings: &[&str]) -> Vocab {
    let mut vocab = Vocab::with_capacity(strings.len());
    for (id, s) in strings.iter().enumerate() {
        vocab.insert((*s).to_owned(), id as u32);
    }
    vocab
}

fn merge_strings(strings: &[&str], pairs: &[(usize, usize)]) -> Merges {
    pairs
        .iter()
        .map(|&(a, b)| (strings[a].to_owned(), strings[b].to_owned()))
        .collect()
}

/// The WordPiece model of the skeleton's options and the vocabulary.
fn wordpiece(model: &SkeletonModel, strings: &[&str], merges: &[i32]) -> Result<ModelWrapper> {
    if !merges.is_empty() {
        return Err(bad("a WordPiece model has no merges, but the file stores some".into()));
    }
    let vocab = vocab_map(strings);
    check_distinct(&vocab, strings)?;
    let mut builder = WordPiece::builder().vocab(vocab);
    if let Some(unk) = &model.unk_token {
        builder = builder.unk_token(unk.clone());
    }
    if let Some(prefix) = &model.continuing_subword_prefix {
        builder = builder.continuing_subword_prefix(prefix.clone());
    }
    if let Some(max) = model.max_input_chars_per_word {
        builder = builder.max_input_chars_per_word(max);
    }
    let wordpiece = builder
        .build()
        .map_err(|e| bad(format!("cannot build the WordPiece model: {e}")))?;
    Ok(ModelWrapper::from(wordpiece))
}

/// Refuses a vocabulary with a repeated string (the map then holds fewer entries).
fn check_distinct(vocab: &Vocab, strings: &[&str]) -> Result<()> {
    if vocab.len() != strings.len() {
        return Err(bad(format!(
            "the vocabulary holds {} strings but only {} distinct ones",
            strings.len(),
            vocab.len()
        )));
    }
    Ok(())
}

fn bad(detail: String) -> Error {
    Error::Tokenizer(format!("stored tokenizer: {detail}"))
}

/// The skeleton `tokenizer.json`, with the fields the JSON path reads. Truncation and padding
/// are left out: the engine sets its own.
#[derive(Deserialize)]
struct Skeleton {
    version: String,
    #[serde(default)]
    added_tokens: Vec<AddedTokenWithId>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
    #[serde(default)]
    decoder: Option<DecoderWrapper>,
    model: SkeletonModel,
}

/// The skeleton's `model`: the BPE or WordPiece options, each optional as in the JSON path.
#[derive(Deserialize)]
struct SkeletonModel {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    dropout: Option<f32>,
    #[serde(default)]
    unk_token: Option<String>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    #[serde(default)]
    fuse_unk: Option<bool>,
    #[serde(default)]
    byte_fallback: Option<bool>,
    #[serde(default)]
    ignore_merges: Option<bool>,
    #[serde(default)]
    max_input_chars_per_word: Option<usize>,
}

/// One entry of `added_tokens`: every field is required, as in the JSON path.
#[derive(Deserialize)]
struct AddedTokenWithId {
    id: u32,
    content: String,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

impl AddedTokenWithId {
    fn token(&self) -> AddedToken {
        AddedToken {
            content: self.content.clone(),
            single_word: self.single_word,
            lstrip: self.lstrip,
            rstrip: self.rstrip,
            normalized: self.normalized,
            special: self.special,
        }
    }
}

/// Just enough of a `tokenizer.json` to tell a skeleton: everything else is skipped.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    model: Option<ProbeModel>,
}

#[derive(Deserialize)]
struct ProbeModel {
    #[serde(default)]
    vocab: Marker,
    #[serde(default)]
    merges: Option<Marker>,
}

/// A JSON string (a tensor name) or anything else (skipped, `None`).
#[derive(Default)]
struct Marker(Option<String>);

impl<'de> Deserialize<'de> for Marker {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Marker, D::Error> {
        deserializer.deserialize_any(MarkerVisitor)
    }
}

struct MarkerVisitor;

impl<'de> Visitor<'de> for MarkerVisitor {
    type Value = Marker;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Marker, E> {
        Ok(Marker(Some(v.to_string())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Marker, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Marker(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Marker, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Marker(None))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Marker, E> {
        Ok(Marker(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Marker, E> {
        Ok(Marker(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Marker, E> {
        Ok(Marker(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Marker, E> {
        Ok(Marker(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Marker, E> {
        Ok(Marker(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKELETON: &str = r#"{"version":"1.0","added_tokens":[{"id":0,"content":"<unk>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,"model":{"type":"BPE","unk_token":"<unk>","vocab":"v","merges":"m"}}"#;
    const VOCAB: &[u8] = b"<unk>ababc";
    const OFFSETS: &[i32] = &[0, 5, 6, 7, 9, 10];
    const MERGES: &[i32] = &[1, 2];

    fn parts<'a>(offsets: &'a [i32], merges: &'a [i32]) -> StoredTokenizer<'a> {
        StoredTokenizer {
            skeleton: SKELETON.as_bytes(),
            vocab: VOCAB,
            offsets,
            merges,
        }
    }

    #[test]
    fn a_skeleton_is_told_from_a_whole_file() {
        assert_eq!(
            stored_names(SKELETON.as_bytes()),
            Some(StoredNames {
                vocab: "v".into(),
                merges: Some("m".into())
            })
        );
        let wordpiece = r#"{"model":{"type":"WordPiece","vocab":"v"}}"#;
        assert_eq!(
            stored_names(wordpiece.as_bytes()),
            Some(StoredNames {
                vocab: "v".into(),
                merges: None
            })
        );
        let whole = r#"{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a","a"]]},"added_tokens":[]}"#;
        assert_eq!(stored_names(whole.as_bytes()), None);
        assert_eq!(stored_names(b"not json"), None);
        assert_eq!(stored_names(b"{}"), None);
    }

    #[test]
    fn builds_from_parts() {
        let (tokenizer, path) = parts(OFFSETS, MERGES).build().unwrap();
        assert_eq!(path, LoadPath::Stored);
        assert_eq!(tokenizer.encode_fast("abcx", false).unwrap().get_ids(), &[3, 4, 0]);
        let joined: serde_json::Value = serde_json::from_slice(&parts(OFFSETS, MERGES).to_json().unwrap()).unwrap();
        assert_eq!(
            joined["model"]["vocab"],
            serde_json::json!({"<unk>": 0, "a": 1, "b": 2, "ab": 3, "c": 4})
        );
        assert_eq!(joined["model"]["merges"], serde_json::json!([["a", "b"]]));
    }

    #[test]
    fn bad_parts_are_refused() {
        let cases: &[(&[i32], &[i32], &str)] = &[
            (&[], MERGES, "empty"),
            (&[1, 5, 6, 7, 9, 10], MERGES, "from 1"),
            (&[0, 5, 6, 7, 9, 11], MERGES, "to 11"),
            (&[0, 5, 4, 7, 9, 10], MERGES, "string 1"),
            (OFFSETS, &[1, 5], "outside the vocabulary"),
            (OFFSETS, &[1, -1], "outside the vocabulary"),
            (OFFSETS, &[1], "not pairs"),
            (&[0, 5, 6, 7, 8, 10], MERGES, "distinct"),
        ];
        for &(offsets, merges, expected) in cases {
            let err = parts(offsets, merges)
                .build()
                .err()
                .unwrap_or_else(|| panic!("{expected}: accepted"));
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
        // A merge whose result is not in the vocabulary: the BPE builder's own check.
        assert!(parts(OFFSETS, &[2, 4]).build().is_err());
    }

    #[test]
    fn builds_a_wordpiece_from_parts() {
        let skeleton = r###"{"version":"1.0","added_tokens":[{"id":0,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":"v"}}"###;
        let stored = StoredTokenizer {
            skeleton: skeleton.as_bytes(),
            vocab: b"[UNK]ab##ca",
            offsets: &[0, 5, 7, 10, 11],
            merges: &[],
        };
        let (tokenizer, path) = stored.build().unwrap();
        assert_eq!(path, LoadPath::Stored);
        let whole = Tokenizer::from_bytes(stored.to_json().unwrap()).unwrap();
        assert_eq!(tokenizer.to_string(false).unwrap(), whole.to_string(false).unwrap());
        for (text, ids) in [("abc", vec![1, 2]), ("a", vec![3]), ("xyz", vec![0])] {
            assert_eq!(
                tokenizer.encode_fast(text, false).unwrap().get_ids(),
                ids.as_slice(),
                "{text}"
            );
            assert_eq!(
                whole.encode_fast(text, false).unwrap().get_ids(),
                ids.as_slice(),
                "{text}"
            );
        }
        let with_merges = StoredTokenizer {
            merges: &[1, 2],
            ..stored
        };
        assert!(with_merges.build().unwrap_err().to_string().contains("no merges"));
    }

    #[test]
    fn an_added_token_with_another_id_goes_through_the_joined_json() {
        let skeleton = SKELETON.replace(r#""id":0"#, r#""id":7"#);
        let stored = StoredTokenizer {
            skeleton: skeleton.as_bytes(),
            vocab: VOCAB,
            offsets: OFFSETS,
            merges: MERGES,
        };
        let (tokenizer, path) = stored.build().unwrap();
        assert_eq!(path, LoadPath::StoredViaJson);
        let whole = Tokenizer::from_bytes(stored.to_json().unwrap()).unwrap();
        assert_eq!(tokenizer.to_string(false).unwrap(), whole.to_string(false).unwrap());
    }
}
