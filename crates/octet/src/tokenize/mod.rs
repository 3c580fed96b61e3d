//! Text to token ids, with the Hugging Face `tokenizers` crate on the tokenizer stored in the
//! model file, and the model's window enforced by a [`Truncation`] policy.
//!
//! A model file holds either a complete `tokenizer.json` or, for BPE tokenizers, a skeleton
//! with the vocabulary and merges in binary tensors ([`stored`]), which loads several times
//! faster. [`TextTokenizer::from_file`] takes either.

mod guard;
mod mapped_bpe;
pub mod stored;

use crate::error::{Error, Result};
use crate::format::ModelFile;
use guard::{check_json, guarded};
use std::sync::Arc;
use stored::{LoadPath, MappedTokenizer, StoredTokenizer, TokenizerWith};
use tokenizers::{Model, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// What to do with a text longer than the model's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Truncation {
    /// Keep the first tokens that fit (special tokens are kept), as sentence-transformers does.
    #[default]
    Truncate,
    /// Fail with [`Error::TextTooLong`].
    Error,
}

/// One tokenized text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// Token ids, special tokens included, at most the window long.
    pub ids: Vec<u32>,
    /// Whether tokens were dropped to fit the window.
    pub truncated: bool,
}

/// The model's tokenizer with the window applied.
pub struct TextTokenizer {
    inner: Inner,
    window: usize,
    /// Ids at or above this have no embedding row (e.g. Gemma's `<image_soft_token>`).
    table_rows: u32,
    load_path: LoadPath,
}

impl TextTokenizer {
    /// Loads the tokenizer `file` stores (named by `meta.tokenizer`), complete or in parts;
    /// texts are cut to `window` tokens. A BPE tokenizer in parts reads its vocabulary and
    /// merges in place from the file where it can ([`LoadPath::Mapped`]).
    pub fn from_file(file: &Arc<ModelFile>, window: usize) -> Result<TextTokenizer> {
        let json = file.blob(&file.meta().tokenizer)?;
        let Some(names) = stored::stored_names(json) else {
            return TextTokenizer::from_json(json, window);
        };
        let parts = StoredTokenizer::from_file(file, json, &names)?;
        match parts.build_mapped(file)? {
            Some(mut inner) => {
                set_window(&mut inner, window)?;
                Ok(TextTokenizer::new(
                    Inner::Mapped(Box::new(inner)),
                    window,
                    LoadPath::Mapped,
                ))
            }
            None => TextTokenizer::from_stored(&parts, window),
        }
    }

    /// Loads a tokenizer from complete `tokenizer.json` bytes; texts are cut to `window` tokens.
    pub fn from_json(bytes: &[u8], window: usize) -> Result<TextTokenizer> {
        check_json("tokenizer.json", bytes)?;
        let inner = guarded("loading tokenizer.json", || {
            Tokenizer::from_bytes(bytes).map_err(|e| {
                if stored::stored_names(bytes).is_some() {
                    Error::Tokenizer("this tokenizer.json keeps its vocabulary and merges in separate tensors of the model file; load it with TextTokenizer::from_file".into())
                } else {
                    Error::Tokenizer(format!("cannot load tokenizer.json: {e}"))
                }
            })
        })?;
        TextTokenizer::with_window(inner, window, LoadPath::Json)
    }

    /// Loads a tokenizer stored in parts (see [`stored`]); texts are cut to `window` tokens.
    pub fn from_stored(parts: &StoredTokenizer<'_>, window: usize) -> Result<TextTokenizer> {
        let (inner, path) = parts.build()?;
        TextTokenizer::with_window(inner, window, path)
    }

    fn with_window(mut inner: Tokenizer, window: usize, load_path: LoadPath) -> Result<TextTokenizer> {
        set_window(&mut inner, window)?;
        Ok(TextTokenizer::new(Inner::Library(Box::new(inner)), window, load_path))
    }

    fn new(inner: Inner, window: usize, load_path: LoadPath) -> TextTokenizer {
        TextTokenizer {
            inner,
            window,
            table_rows: u32::MAX,
            load_path,
        }
    }

    /// How this tokenizer was loaded.
    pub fn load_path(&self) -> LoadPath {
        self.load_path
    }

    /// The tokenizer as the `tokenizers` crate serializes it: vocabulary in id order, merges in
    /// rank order, added tokens by id. Two tokenizers with the same canonical JSON are the same
    /// tokenizer (the converter checks a stored BPE tokenizer against its source this way).
    pub fn canonical_json(&self) -> Result<String> {
        with_inner!(self.inner, t => t.to_string(false))
            .map_err(|e| Error::Tokenizer(format!("cannot serialize the tokenizer: {e}")))
    }

    /// The window in tokens, special tokens included.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The vocabulary size; `with_added`: counting the added tokens too.
    pub fn vocab_size(&self, with_added: bool) -> usize {
        with_inner!(self.inner, t => t.get_vocab_size(with_added))
    }

    /// Makes `encode` reject texts with ids of `rows` or more: the embedding table has only
    /// `rows` rows (tokenizers may define added tokens the encoder never learned).
    pub fn limit_ids(&mut self, rows: usize) {
        self.table_rows = u32::try_from(rows).unwrap_or(u32::MAX);
    }

    /// Tokenizes one text; `index` only labels the error.
    ///
    /// Memory stays bounded whatever the text's length: a long text is tokenized by growing
    /// prefixes (cut on a character boundary) until one yields at least twice the window, so the
    /// cut cannot reach the tokens kept, and at most [`MAX_BYTES_PER_TOKEN`] bytes per window
    /// token are ever tokenized: a text whose first window tokens span more than that (long runs
    /// of spaces or of characters the tokenizer drops) is cut there and counts as truncated.
    pub fn encode(&self, index: usize, text: &str, policy: Truncation) -> Result<Tokens> {
        let cap = self.window.saturating_mul(MAX_BYTES_PER_TOKEN);
        let mut limit = self.window.saturating_mul(FIRST_BYTES_PER_TOKEN).max(4096);
        let (encoding, cut) = loop {
            if text.len() <= limit {
                break (self.encode_raw(index, text)?, false);
            }
            let prefix = &text[..floor_char_boundary(text, limit)];
            let encoding = self.encode_raw(index, prefix)?;
            let beyond: usize = encoding.get_overflowing().iter().map(|e| e.get_ids().len()).sum();
            if beyond >= self.window || limit >= cap {
                break (encoding, true);
            }
            limit = limit.saturating_mul(4).min(cap);
        };
        let truncated = cut || !encoding.get_overflowing().is_empty();
        if truncated && policy == Truncation::Error {
            return Err(Error::TextTooLong {
                index,
                max: self.window,
            });
        }
        if let Some(&id) = encoding.get_ids().iter().find(|&&id| id >= self.table_rows) {
            let token = with_inner!(self.inner, t => t.id_to_token(id)).unwrap_or_default();
            return Err(Error::Tokenizer(format!("text {index} contains the token '{token}' (id {id}), which this model has no embedding for; remove it from the text")));
        }
        Ok(Tokens {
            ids: encoding.get_ids().to_vec(),
            truncated,
        })
    }

    fn encode_raw(&self, index: usize, text: &str) -> Result<tokenizers::Encoding> {
        guarded(format_args!("tokenizing text {index}"), || {
            with_inner!(self.inner, t => t.encode_fast(text, true))
                .map_err(|e| Error::Tokenizer(format!("text {index}: {e}")))
        })
    }
}

/// The `tokenizers` pipeline around the library's word model or octet's mapped BPE.
enum Inner {
    Library(Box<Tokenizer>),
    Mapped(Box<MappedTokenizer>),
}

/// Runs `$body` with `$t` bound to whichever tokenizer `$inner` holds.
macro_rules! with_inner {
    ($inner:expr, $t:ident => $body:expr) => {
        match &$inner {
            Inner::Library($t) => $body,
            Inner::Mapped($t) => $body,
        }
    };
}
use with_inner;

/// Cuts texts to `window` tokens (special tokens included) and turns padding off.
fn set_window<M: Model>(inner: &mut TokenizerWith<M>, window: usize) -> Result<()> {
    // The tokenizers crate subtracts these from the window without a check.
    let specials = inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
    if window < specials {
        return Err(Error::Tokenizer(format!(
            "a window of {window} tokens cannot hold the {specials} special tokens every text gets"
        )));
    }
    inner.with_padding(None);
    inner
        .with_truncation(Some(TruncationParams {
            max_length: window,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| Error::Tokenizer(format!("cannot set the window of {window} tokens: {e}")))?;
    Ok(())
}

/// Bytes per window token of the first prefix a long text is tokenized by (English averages
/// about 4 bytes per token, so this prefix almost always holds twice the window).
const FIRST_BYTES_PER_TOKEN: usize = 16;
/// Most bytes per window token ever tokenized (see [`TextTokenizer::encode`]).
pub const MAX_BYTES_PER_TOKEN: usize = 1024;

/// The largest index `<= at` on a character boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer over "a" and "b", split on whitespace, no special tokens.
    fn tiny(window: usize) -> TextTokenizer {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"[UNK]":0,"a":1,"b":2},"unk_token":"[UNK]"}}"#;
        TextTokenizer::from_json(json.as_bytes(), window).unwrap()
    }

    #[test]
    fn a_long_text_gives_the_tokens_of_the_whole_text() {
        let t = tiny(8);
        let text = "a b\u{e9} ".repeat(20_000);
        let whole = with_inner!(t.inner, inner => inner.encode_fast(text.as_str(), true)).unwrap();
        let tokens = t.encode(0, &text, Truncation::Truncate).unwrap();
        assert_eq!(tokens.ids, whole.get_ids());
        assert!(tokens.truncated);
        assert!(matches!(
            t.encode(0, &text, Truncation::Error),
            Err(Error::TextTooLong { .. })
        ));
        let short = t.encode(0, "a b", Truncation::Error).unwrap();
        assert_eq!((short.ids, short.truncated), (vec![1, 2], false));
    }

    #[test]
    fn a_text_of_mostly_spaces_is_cut_at_the_byte_cap() {
        let t = tiny(8);
        let text = format!("a{}b", " ".repeat(8 * MAX_BYTES_PER_TOKEN * 4));
        let tokens = t.encode(0, &text, Truncation::Truncate).unwrap();
        assert_eq!((tokens.ids, tokens.truncated), (vec![1], true));
        assert_eq!(floor_char_boundary("a\u{e9}", 2), 1);
    }
}
