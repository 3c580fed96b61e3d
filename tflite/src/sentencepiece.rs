//! A SentencePiece model (the `.model` file TFLite Support metadata packs for T5 and ALBERT
//! style models) turned into a `tokenizer.json` for the `tokenizers` crate, giving the same ids.
//!
//! The file is a protobuf `ModelProto`; the few fields used are read by a small wire-format
//! reader ([`ProtoReader`]) that checks every length against the buffer, so a malformed file
//! is an error, never a panic:
//!
//! | message | field | used for |
//! |---|---|---|
//! | `ModelProto` | 1 `pieces`, 2 `trainer_spec`, 3 `normalizer_spec` | |
//! | `SentencePiece` | 1 `piece`, 2 `score`, 3 `type` | the vocabulary, in id order |
//! | `TrainerSpec` | 3 `model_type`, 35 `byte_fallback`, 40 `unk_id`, 42 `eos_id` | Unigram only; the unknown and end ids |
//! | `NormalizerSpec` | 2 `precompiled_charsmap`, 3 `add_dummy_prefix`, 4 `remove_extra_whitespaces` | the normalizer |
//!
//! The tokenizer is built the way Hugging Face's `SpmConverter` does it: a Unigram model over
//! the pieces and scores, the precompiled character map as a `Precompiled` normalizer, then
//! (when the model removes extra whitespace) a right strip and runs of spaces collapsed, and
//! `Metaspace` pre-tokenization (`▁`, prepended when `add_dummy_prefix`). The end-of-sequence
//! piece (`</s>`, T5's convention) is appended after each text, as T5's tokenizer does.

use crate::TfliteError;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{NormalizerWrapper, Tokenizer};

/// `SentencePiece.Type` values.
const PIECE_UNKNOWN: u64 = 2;
const PIECE_CONTROL: u64 = 3;
const PIECE_USER_DEFINED: u64 = 4;
/// `TrainerSpec.ModelType.UNIGRAM`.
const UNIGRAM: u64 = 1;

fn invalid(msg: impl Into<String>) -> TfliteError {
    TfliteError::Invalid(format!("SentencePiece model: {}", msg.into()))
}

/// One protobuf field: its number and its value (a varint, 4 or 8 fixed bytes, or bytes).
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

/// Reads the fields of one protobuf message in order, checking every length.
struct ProtoReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ProtoReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        ProtoReader { bytes, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, TfliteError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or_else(|| invalid("truncated varint"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(invalid("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TfliteError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| invalid(format!("a field of {n} bytes runs past the end")))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, TfliteError> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| invalid("length overflows"))?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(invalid(format!("unsupported wire type {w}"))),
        };
        Ok(Some((key >> 3, value)))
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    /// `SentencePiece.Type`: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte.
    pub kind: u64,
}

/// The parts of a `ModelProto` the conversion reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePieceModel {
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`: 1 Unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    pub unk_id: usize,
    /// `TrainerSpec.eos_id`; negative: none.
    pub eos_id: i64,
    pub byte_fallback: bool,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
}

impl SentencePieceModel {
    /// Reads a serialized `ModelProto`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TfliteError> {
        let mut m = SentencePieceModel {
            pieces: Vec::new(),
            model_type: UNIGRAM,
            unk_id: 0,
            eos_id: 2,
            byte_fallback: false,
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
        };
        let mut r = ProtoReader::new(bytes);
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => m.pieces.push(parse_piece(b)?),
                (2, Value::Bytes(b)) => {
                    let mut t = ProtoReader::new(b);
                    while let Some((f, v)) = t.next_field()? {
                        match (f, v) {
                            (3, Value::Varint(x)) => m.model_type = x,
                            (35, Value::Varint(x)) => m.byte_fallback = x != 0,
                            (40, Value::Varint(x)) => {
                                m.unk_id = usize::try_from(x).map_err(|_| invalid("unk_id out of range"))?
                            }
                            // int32 fields: negative values are 10-byte varints.
                            (42, Value::Varint(x)) => m.eos_id = x as i64 as i32 as i64,
                            _ => {}
                        }
                    }
                }
                (3, Value::Bytes(b)) => {
                    let mut n = ProtoReader::new(b);
                    while let Some((f, v)) = n.next_field()? {
                        match (f, v) {
                            (2, Value::Bytes(c)) => m.precompiled_charsmap = c.to_vec(),
                            (3, Value::Varint(x)) => m.add_dummy_prefix = x != 0,
                            (4, Value::Varint(x)) => m.remove_extra_whitespaces = x != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if m.pieces.is_empty() {
            return Err(invalid("no pieces"));
        }
        if m.unk_id >= m.pieces.len() || m.pieces[m.unk_id].kind != PIECE_UNKNOWN {
            return Err(invalid(format!("unk_id {} is not an unknown piece", m.unk_id)));
        }
        Ok(m)
    }

    /// The `tokenizer.json` that gives this model's ids (see the module docs).
    pub fn tokenizer_json(&self) -> Result<Vec<u8>, TfliteError> {
        if self.model_type != UNIGRAM {
            return Err(TfliteError::Unrecognised(format!(
                "SentencePiece model type {} (2 = BPE, 3 = word, 4 = char): only Unigram models are converted",
                self.model_type
            )));
        }
        if self.pieces.iter().any(|p| p.kind == PIECE_USER_DEFINED) {
            return Err(TfliteError::Unrecognised(
                "SentencePiece model with user-defined pieces: not converted yet".into(),
            ));
        }
        let fail = |what: &str, e: &dyn std::fmt::Display| invalid(format!("{what}: {e}"));
        // Control and unknown pieces (<s>, </s>, <pad>, <unk>) are never matched in text:
        // SentencePiece skips them, and a score no segmentation would choose keeps the Unigram
        // lattice off them too (an unknown character still becomes the unknown id).
        let vocab: Vec<(String, f64)> = self
            .pieces
            .iter()
            .map(|p| {
                let score = if matches!(p.kind, PIECE_CONTROL | PIECE_UNKNOWN) {
                    -1e9
                } else {
                    f64::from(p.score)
                };
                (p.piece.clone(), score)
            })
            .collect();
        let model = Unigram::from(vocab, Some(self.unk_id), self.byte_fallback).map_err(|e| fail("vocabulary", &e))?;
        let mut tokenizer = Tokenizer::new(model);
        let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
        if !self.precompiled_charsmap.is_empty() {
            let p = Precompiled::from(&self.precompiled_charsmap).map_err(|e| fail("precompiled_charsmap", &e))?;
            normalizers.push(p.into());
        }
        if self.remove_extra_whitespaces {
            normalizers.push(Strip::new(false, true).into());
            normalizers.push(
                Replace::new(
                    tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()),
                    "\u{2581}",
                )
                .map_err(|e| fail("normalizer", &e))?
                .into(),
            );
        }
        tokenizer.with_normalizer(Some(Sequence::new(normalizers)));
        let prepend = if self.add_dummy_prefix {
            PrependScheme::Always
        } else {
            PrependScheme::Never
        };
        tokenizer.with_pre_tokenizer(Some(Metaspace::new('\u{2581}', prepend, true)));
        tokenizer.with_decoder(Some(MetaspaceDecoder::new('\u{2581}', prepend, true)));
        if let Some(eos) = usize::try_from(self.eos_id)
            .ok()
            .and_then(|i| self.pieces.get(i).map(|p| (i, p)))
        {
            let (id, piece) = (eos.0 as u32, eos.1.piece.clone());
            let template = TemplateProcessing::builder()
                .try_single(format!("$A:0 {piece}:0"))
                .and_then(|b| b.try_pair(format!("$A:0 {piece}:0 $B:0 {piece}:0")))
                .map_err(|e| fail("post-processor", &e))?
                .special_tokens(vec![(piece, id)])
                .build()
                .map_err(|e| fail("post-processor", &e))?;
            tokenizer.with_post_processor(Some(template));
        }
        let json = tokenizer.to_string(false).map_err(|e| fail("tokenizer.json", &e))?;
        Ok(json.into_bytes())
    }
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, TfliteError> {
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: 1,
    };
    let mut r = ProtoReader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                p.piece = String::from_utf8(b.to_vec()).map_err(|_| invalid("a piece is not UTF-8"))?;
            }
            (2, Value::Fixed32(bits)) => p.score = f32::from_bits(bits),
            (3, Value::Varint(k)) => p.kind = k,
            (_, Value::Fixed64 | Value::Varint(_) | Value::Bytes(_) | Value::Fixed32(_)) => {}
        }
    }
    if p.piece.is_empty() {
        return Err(invalid("an empty piece"));
    }
    Ok(p)
}

#[cfg(test)]
#[path = "sentencepiece_tests.rs"]
mod tests;
