//! [`MappedBpe`]: a BPE model that reads its vocabulary and merges where the model file keeps
//! them (the stored parts of [`super::stored`]), so opening a model builds two small hash
//! indexes instead of `tokenizers`' string maps.
//!
//! EmbeddingGemma's tokenizer has 262,144 strings and 514,906 merges. `BpeBuilder` wants them
//! as owned `String`s and builds a `String -> id` map, an `id -> String` map and a merge map
//! from them: about 460 ms of one core and 60 MB of heap, most of the model's cold start.
//! Here the strings stay in the memory map; the indexes hold only `u32`s:
//!
//! - `vocab_index`: string -> id, a [`hashbrown::HashTable`] of ids whose keys are read back
//!   from the map;
//! - `merge_index`: (left id, right id) -> (rank, merged id), a table of those pairs of `u32`,
//!   keyed by the merge's pair in the map.
//!
//! Only the word model is octet's: normalizer, pre-tokenizer, added tokens and post-processor
//! stay the `tokenizers` crate's, which calls this model through its public
//! [`tokenizers::Model`] trait. [`MappedBpe::tokenize`] follows `tokenizers`' BPE step by step
//! (its `merge_word` and `Word::merge_all`: characters to ids, byte fallback, fused unknowns,
//! then merges lowest rank first, leftmost first among equal ranks), so the ids are the same;
//! `tests/tokenizer_fast.rs` checks that on real text and the canonical JSON of both.
//!
//! Options this model does not take (dropout, a continuing-subword prefix, an end-of-word
//! suffix) make [`MappedBpe::new`] return `None`, and the caller builds the library's model.

use super::stored::StoredTokenizer;
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::layers::Stored;
use hashbrown::HashTable;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::models::bpe::BpeTrainer;
use tokenizers::{Model, Token};

/// The BPE options of a skeleton `tokenizer.json` that [`MappedBpe`] takes.
#[derive(Clone, Debug, Default)]
pub struct BpeOptions {
    /// Dropout probability (only `None` is taken here).
    pub dropout: Option<f32>,
    /// The token for characters with no id (and no byte fallback).
    pub unk_token: Option<String>,
    /// Prefix of non-initial subwords (only `None` is taken here).
    pub continuing_subword_prefix: Option<String>,
    /// Suffix of word-final subwords (only `None` is taken here).
    pub end_of_word_suffix: Option<String>,
    /// Whether consecutive unknown characters become one unknown token.
    pub fuse_unk: bool,
    /// Whether an unknown character becomes its UTF-8 bytes' `<0xXX>` tokens.
    pub byte_fallback: bool,
    /// Whether a word that is itself in the vocabulary skips the merges.
    pub ignore_merges: bool,
}

/// A BPE model over a model file's stored vocabulary and merges (see the module docs).
pub struct MappedBpe {
    /// The vocabulary strings, back to back (checked UTF-8 at load).
    vocab: Stored<u8>,
    /// `n + 1` offsets into `vocab` (checked at load).
    offsets: Stored<i32>,
    /// `2 m` ids: merge `r` joins `merges[2r]` and `merges[2r + 1]` (checked at load).
    merges: Stored<i32>,
    /// Hashes strings and id pairs for both indexes.
    hasher: hashbrown::DefaultHashBuilder,
    /// String -> id.
    vocab_index: HashTable<u32>,
    /// (left, right) -> (rank, merged id); a pair listed twice keeps its last rank, as
    /// `tokenizers`' merge map does.
    merge_index: HashTable<(u32, u32)>,
    /// The id of `<0xXX>` for each byte, where the vocabulary has it.
    byte_ids: [Option<u32>; 256],
    /// The id of the unknown token, if the options name one that is in the vocabulary.
    unk_id: Option<u32>,
    options: BpeOptions,
}

impl MappedBpe {
    /// Indexes the stored parts of `file` (`parts` are views into it). `None` if `options` ask
    /// for something only the library's model does; an error if the parts are malformed or a
    /// merge makes a string the vocabulary does not hold.
    pub fn new(file: &Arc<ModelFile>, parts: &StoredTokenizer<'_>, options: BpeOptions) -> Result<Option<MappedBpe>> {
        if options.dropout.is_some()
            || options.continuing_subword_prefix.is_some()
            || options.end_of_word_suffix.is_some()
        {
            return Ok(None);
        }
        let strings = parts.strings()?;
        let pairs = parts.merge_pairs(strings.len())?;
        let hasher = hashbrown::DefaultHashBuilder::default();
        let mut vocab_index = HashTable::with_capacity(strings.len());
        for (id, s) in strings.iter().enumerate() {
            let hash = hasher.hash_one(s);
            match vocab_index.entry(
                hash,
                |&other: &u32| strings[other as usize] == *s,
                |&other: &u32| hasher.hash_one(strings[other as usize]),
            ) {
                hashbrown::hash_table::Entry::Occupied(_) => {
                    return Err(bad(format!(
                        "the vocabulary holds the string {s:?} twice (ids {} and {id})",
                        strings.iter().position(|t| t == s).unwrap_or(id)
                    )))
                }
                hashbrown::hash_table::Entry::Vacant(slot) => {
                    slot.insert(id as u32);
                }
            }
        }
        let find = |s: &str| -> Option<u32> {
            vocab_index
                .find(hasher.hash_one(s), |&id| strings[id as usize] == s)
                .copied()
        };
        let merged = merged_ids(&strings, &pairs, &find)?;
        let mut merge_index: HashTable<(u32, u32)> = HashTable::with_capacity(pairs.len());
        for (rank, (&(a, b), &merged)) in pairs.iter().zip(&merged).enumerate() {
            let value = (rank as u32, merged);
            let at = |&(r, _): &(u32, u32)| pairs[r as usize] == (a, b);
            let rehash = |&(r, _): &(u32, u32)| {
                let (x, y) = pairs[r as usize];
                hasher.hash_one((x as u32, y as u32))
            };
            match merge_index.entry(hasher.hash_one((a as u32, b as u32)), at, rehash) {
                hashbrown::hash_table::Entry::Occupied(mut slot) => *slot.get_mut() = value,
                hashbrown::hash_table::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
            }
        }
        let mut byte_ids = [None; 256];
        for (byte, id) in byte_ids.iter_mut().enumerate() {
            *id = find(&format!("<{byte:#04X}>"));
        }
        let unk_id = options.unk_token.as_deref().and_then(find);
        Ok(Some(MappedBpe {
            vocab: Stored::of(file, parts.vocab)?,
            offsets: Stored::of(file, parts.offsets)?,
            merges: Stored::of(file, parts.merges)?,
            hasher,
            vocab_index,
            merge_index,
            byte_ids,
            unk_id,
            options,
        }))
    }

    /// Number of vocabulary strings.
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// String `id` (empty for an id out of range; the offsets were checked at load).
    fn string(&self, id: u32) -> &str {
        let offsets = self.offsets.get();
        let id = id as usize;
        let range = offsets
            .get(id)
            .zip(offsets.get(id + 1))
            .map(|(&s, &e)| s as usize..e as usize);
        range
            .and_then(|r| self.vocab.get().get(r))
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or("")
    }

    /// The id of string `s`.
    fn id(&self, s: &str) -> Option<u32> {
        self.vocab_index
            .find(self.hasher.hash_one(s), |&id| self.string(id) == s)
            .copied()
    }

    /// The (rank, merged id) of the pair (`left`, `right`), if they merge.
    fn merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let merges = self.merges.get();
        self.merge_index
            .find(self.hasher.hash_one((left, right)), |&(rank, _)| {
                let r = rank as usize * 2;
                merges.get(r..r + 2) == Some(&[left as i32, right as i32][..])
            })
            .copied()
    }

    /// The word's symbols before merging: one per character, a character with no id as its
    /// bytes' `<0xXX>` tokens or as the unknown token, exactly as `tokenizers` does it.
    fn symbols(&self, word: &str) -> tokenizers::Result<Vec<Symbol>> {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let mut unk: Option<(u32, usize)> = None;
        for (start, c) in word.char_indices() {
            let piece = &word[start..start + c.len_utf8()];
            if let Some(id) = self.id(piece) {
                if let Some((unk_id, unk_len)) = unk.take() {
                    push(&mut symbols, unk_id, unk_len);
                }
                push(&mut symbols, id, piece.len());
                continue;
            }
            if self.options.byte_fallback {
                let bytes: Option<Vec<u32>> = piece.bytes().map(|b| self.byte_ids[b as usize]).collect();
                if let Some(bytes) = bytes {
                    // As in `tokenizers`: a pending unknown token is not flushed here.
                    for id in bytes {
                        push(&mut symbols, id, 1);
                    }
                    continue;
                }
            }
            if let Some(token) = &self.options.unk_token {
                let unk_id = self
                    .unk_id
                    .ok_or_else(|| format!("the unknown token {token:?} is not in the vocabulary"))?;
                unk = match unk {
                    Some((id, len)) if self.options.fuse_unk => Some((id, len + piece.len())),
                    Some((id, len)) => {
                        push(&mut symbols, id, len);
                        Some((unk_id, piece.len()))
                    }
                    None => Some((unk_id, piece.len())),
                };
            }
        }
        if let Some((unk_id, unk_len)) = unk {
            push(&mut symbols, unk_id, unk_len);
        }
        Ok(symbols)
    }

    /// Applies the merges to `symbols` in `tokenizers`' order: the lowest rank first, the
    /// leftmost first among equal ranks, skipping queue entries that went stale.
    fn merge_all(&self, symbols: &mut Vec<Symbol>) {
        let mut queue: BinaryHeap<Candidate> = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| {
                self.merge(w[0].id, w[1].id)
                    .map(|(rank, merged)| Candidate { rank, pos, merged })
            })
            .collect();
        while let Some(top) = queue.pop() {
            let left = symbols[top.pos];
            if left.len == 0 || left.next < 0 {
                continue;
            }
            let next = left.next as usize;
            let right = symbols[next];
            if self.merge(left.id, right.id).map(|(_, merged)| merged) != Some(top.merged) {
                continue;
            }
            symbols[top.pos].id = top.merged;
            symbols[top.pos].len += right.len;
            symbols[top.pos].next = right.next;
            symbols[next].len = 0;
            if right.next >= 0 && (right.next as usize) < symbols.len() {
                symbols[right.next as usize].prev = top.pos as isize;
            }
            let current = symbols[top.pos];
            if current.prev >= 0 {
                let prev = current.prev as usize;
                if let Some((rank, merged)) = self.merge(symbols[prev].id, current.id) {
                    queue.push(Candidate {
                        rank,
                        pos: prev,
                        merged,
                    });
                }
            }
            if current.next >= 0 && (current.next as usize) < symbols.len() {
                if let Some((rank, merged)) = self.merge(current.id, symbols[current.next as usize].id) {
                    queue.push(Candidate {
                        rank,
                        pos: top.pos,
                        merged,
                    });
                }
            }
        }
        symbols.retain(|s| s.len != 0);
    }
}

/// The id of each merge's joined string, looked up on all cores: half a million look-ups of
/// strings scattered over the map are most of the time it takes to open EmbeddingGemma.
fn merged_ids(
    strings: &[&str],
    pairs: &[(usize, usize)],
    find: &(dyn Fn(&str) -> Option<u32> + Sync),
) -> Result<Vec<u32>> {
    let lookup = |first: usize, chunk: &[(usize, usize)]| -> Result<Vec<u32>> {
        let mut joined = String::new();
        let mut ids = Vec::with_capacity(chunk.len());
        for (i, &(a, b)) in chunk.iter().enumerate() {
            joined.clear();
            joined.push_str(strings[a]);
            joined.push_str(strings[b]);
            ids.push(find(&joined).ok_or_else(|| {
                bad(format!(
                    "merge {} joins {:?} and {:?} into {joined:?}, which is not in the vocabulary",
                    first + i,
                    strings[a],
                    strings[b]
                ))
            })?);
        }
        Ok(ids)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let size = pairs.len().div_ceil(threads).max(1 << 14);
    let parts: Vec<Result<Vec<u32>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .chunks(size)
            .enumerate()
            .map(|(i, chunk)| scope.spawn(move || lookup(i * size, chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut ids = Vec::with_capacity(pairs.len());
    for part in parts {
        ids.extend(part?);
    }
    Ok(ids)
}

/// One symbol of a word being merged: a doubly linked list in a `Vec`, as in `tokenizers`.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: u32,
    prev: isize,
    next: isize,
    /// Bytes of the word it covers; 0 once merged into its left neighbour.
    len: usize,
}

fn push(symbols: &mut Vec<Symbol>, id: u32, len: usize) {
    let at = symbols.len() as isize;
    if let Some(last) = symbols.last_mut() {
        last.next = at;
    }
    symbols.push(Symbol {
        id,
        prev: at - 1,
        next: -1,
        len,
    });
}

/// A merge waiting in the queue. The heap pops the lowest rank, then the lowest position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    rank: u32,
    pos: usize,
    merged: u32,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.rank.cmp(&self.rank).then(other.pos.cmp(&self.pos))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Model for MappedBpe {
    type Trainer = BpeTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        if sequence.is_empty() {
            return Ok(Vec::new());
        }
        if self.options.ignore_merges {
            if let Some(id) = self.id(sequence) {
                return Ok(vec![Token::new(id, sequence.to_string(), (0, sequence.len()))]);
            }
        }
        let mut symbols = self.symbols(sequence)?;
        self.merge_all(&mut symbols);
        let mut start = 0;
        Ok(symbols
            .iter()
            .map(|s| {
                let token = Token::new(s.id, self.string(s.id).to_string(), (start, start + s.len));
                start += s.len;
                token
            })
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        ((id as usize) < self.len()).then(|| self.string(id).to_string())
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        (0..self.len() as u32)
            .map(|id| (self.string(id).to_string(), id))
            .collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("octet's mapped BPE model is not saved on its own; serialize the whole tokenizer".into())
    }

    fn get_trainer(&self) -> BpeTrainer {
        BpeTrainer::default()
    }
}

/// The same JSON as `tokenizers`' `BPE`: options, the vocabulary in id order, the merges in
/// rank order (a pair listed twice once, at its last rank).
impl Serialize for MappedBpe {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let o = &self.options;
        let mut model = serializer.serialize_struct("BPE", 10)?;
        model.serialize_field("type", "BPE")?;
        model.serialize_field("dropout", &o.dropout)?;
        model.serialize_field("unk_token", &o.unk_token)?;
        model.serialize_field("continuing_subword_prefix", &o.continuing_subword_prefix)?;
        model.serialize_field("end_of_word_suffix", &o.end_of_word_suffix)?;
        model.serialize_field("fuse_unk", &o.fuse_unk)?;
        model.serialize_field("byte_fallback", &o.byte_fallback)?;
        model.serialize_field("ignore_merges", &o.ignore_merges)?;
        model.serialize_field("vocab", &VocabInOrder(self))?;
        model.serialize_field("merges", &MergesInOrder(self))?;
        model.end()
    }
}

struct VocabInOrder<'a>(&'a MappedBpe);

impl Serialize for VocabInOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for id in 0..self.0.len() as u32 {
            map.serialize_entry(self.0.string(id), &id)?;
        }
        map.end()
    }
}

struct MergesInOrder<'a>(&'a MappedBpe);

impl Serialize for MergesInOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let bpe = self.0;
        let merges = bpe.merges.get();
        let mut seq = serializer.serialize_seq(None)?;
        for (rank, pair) in merges.chunks_exact(2).enumerate() {
            let (a, b) = (pair[0] as u32, pair[1] as u32);
            if bpe.merge(a, b).map(|(r, _)| r as usize) == Some(rank) {
                seq.serialize_element(&(bpe.string(a), bpe.string(b)))?;
            }
        }
        seq.end()
    }
}

fn bad(detail: String) -> Error {
    Error::Tokenizer(format!("stored tokenizer: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::super::stored::{stored_names, StoredTokenizer};
    use super::*;
    use crate::format::{ModelMeta, ModelWriter};
    use tokenizers::Tokenizer;

    /// A small BPE vocabulary with byte tokens, an unknown token, merges that chain
    /// ("a a" -> "aa", "aa a" -> "aaa", ...), a pair listed twice, and equal-rank ties.
    const STRINGS: &[&str] = &[
        "<unk>",
        "<0x41>",
        "<0xC3>",
        "<0xA9>",
        "a",
        "b",
        "c",
        "\u{2581}",
        "aa",
        "ab",
        "aaa",
        "abc",
        "\u{2581}a",
        "bc",
        "aab",
    ];
    /// Merges as string pairs, in rank order ("a b" twice: the second rank wins).
    const MERGES: &[(&str, &str)] = &[
        ("a", "a"),
        ("a", "b"),
        ("b", "c"),
        ("aa", "a"),
        ("ab", "c"),
        ("\u{2581}", "a"),
        ("a", "b"),
        ("aa", "b"),
    ];

    fn skeleton(byte_fallback: bool, fuse_unk: bool, ignore_merges: bool) -> String {
        serde_json::json!({
            "version": "1.0",
            "added_tokens": [{"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
            "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": fuse_unk, "byte_fallback": byte_fallback,
                "ignore_merges": ignore_merges, "vocab": "v", "merges": "m"}
        })
        .to_string()
    }

    fn whole(skeleton: &str) -> Tokenizer {
        let mut value: serde_json::Value = serde_json::from_str(skeleton).unwrap();
        let vocab: serde_json::Map<String, serde_json::Value> = STRINGS
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i.into()))
            .collect();
        value["model"]["vocab"] = vocab.into();
        value["model"]["merges"] = serde_json::json!(MERGES);
        Tokenizer::from_bytes(serde_json::to_vec(&value).unwrap()).unwrap()
    }

    fn file(skeleton: &str, offsets: &[i32], merges: &[i32]) -> Arc<ModelFile> {
        let meta: ModelMeta = serde_json::from_value(serde_json::json!({
            "architecture": "gemma3", "config": {}, "tokenizer": "tokenizer.json",
            "pooling": {"mode": "mean", "normalize": true}, "max_seq_len": 64,
            "quantization": {"recipe": "f32"}, "provenance": {"converter": "mapped_bpe tests", "sources": []}
        }))
        .unwrap();
        let mut writer = ModelWriter::new(meta);
        writer.add_blob("tokenizer.json", skeleton.as_bytes()).unwrap();
        writer.add_blob("v", STRINGS.concat().as_bytes()).unwrap();
        writer.add_i32("v.offsets", &[offsets.len()], offsets).unwrap();
        writer.add_i32("m", &[merges.len() / 2, 2], merges).unwrap();
        Arc::new(ModelFile::from_bytes(writer.to_bytes().unwrap()).unwrap())
    }

    fn offsets() -> Vec<i32> {
        let mut offsets = vec![0];
        for s in STRINGS {
            offsets.push(offsets.last().unwrap() + s.len() as i32);
        }
        offsets
    }

    fn merge_ids() -> Vec<i32> {
        let id = |s: &str| STRINGS.iter().position(|t| *t == s).unwrap() as i32;
        MERGES.iter().flat_map(|&(a, b)| [id(a), id(b)]).collect()
    }

    fn mapped(file: &Arc<ModelFile>) -> Result<Option<MappedTokenizer>> {
        let json = file.blob("tokenizer.json")?;
        let names = stored_names(json).expect("a skeleton");
        StoredTokenizer::from_file(file, json, &names)?.build_mapped(file)
    }

    use super::super::stored::MappedTokenizer;

    #[test]
    fn gives_the_library_ids_and_json() {
        let texts = [
            "",
            "a",
            "aaaa",
            "aaaaab",
            "abc abc",
            " a aab",
            "é",
            "éaé",
            "xyz",
            "axxb",
            "xéx",
            "AxA",
            "ab ab abc aaab",
        ];
        for flags in [
            (true, true, false),
            (false, true, false),
            (false, false, false),
            (true, false, true),
        ] {
            let skeleton = skeleton(flags.0, flags.1, flags.2);
            let reference = whole(&skeleton);
            let file = file(&skeleton, &offsets(), &merge_ids());
            let tokenizer = mapped(&file).unwrap().expect("these options are taken");
            assert_eq!(
                tokenizer.to_string(false).unwrap(),
                reference.to_string(false).unwrap(),
                "{flags:?}"
            );
            for text in texts {
                let expected = reference.encode_fast(text, true).unwrap();
                let got = tokenizer.encode_fast(text, true).unwrap();
                assert_eq!(got.get_ids(), expected.get_ids(), "{flags:?} {text:?}");
                assert_eq!(got.get_offsets(), expected.get_offsets(), "{flags:?} {text:?}");
                assert_eq!(got.get_tokens(), expected.get_tokens(), "{flags:?} {text:?}");
            }
        }
    }

    #[test]
    fn options_it_does_not_take_fall_back() {
        let skeleton = skeleton(true, true, false).replace("\"dropout\":null", "\"dropout\":0.1");
        assert!(skeleton.contains("0.1"));
        assert!(mapped(&file(&skeleton, &offsets(), &merge_ids())).unwrap().is_none());
        let skeleton = skeleton.replace("\"dropout\":0.1", "\"dropout\":null").replace(
            "\"continuing_subword_prefix\":null",
            "\"continuing_subword_prefix\":\"##\"",
        );
        assert!(mapped(&file(&skeleton, &offsets(), &merge_ids())).unwrap().is_none());
    }

    #[test]
    fn bad_parts_are_refused() {
        let skeleton = skeleton(true, true, false);
        let good = offsets();
        let mut backwards = good.clone();
        backwards.swap(2, 3);
        let mut duplicate = good.clone();
        duplicate[2] = duplicate[1];
        duplicate[3] = duplicate[1];
        let cases: Vec<(Vec<i32>, Vec<i32>, &str)> = vec![
            (good.clone(), vec![1, 99], "outside the vocabulary"),
            (good.clone(), vec![1, -1], "outside the vocabulary"),
            (good.clone(), vec![5, 4], "not in the vocabulary"),
            (backwards, merge_ids(), "bad offsets"),
            (duplicate, vec![], "twice"),
            (good[..good.len() - 1].to_vec(), merge_ids(), "not from 0 to"),
        ];
        for (offsets, merges, expected) in cases {
            let err = mapped(&file(&skeleton, &offsets, &merges))
                .err()
                .unwrap_or_else(|| panic!("{expected}: accepted"));
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
