//! Text to token ids, with the Hugging Face `tokenizers` crate on the tokenizer stored in the
//! model file, and the model's window enforced by a [`Truncation`] policy.
//!
//! A model file holds either a complete `tokenizer.json` or, for BPE tokenizers, a skeleton
//! with the vocabulary and merges in binary tensors ([`stored`]), which loads several times
//! faster. [`TextTokenizer::from_file`] takes either.

mod guard;
pub mod stored;

use crate::error::{Error, Result};
use crate::format::ModelFile;
use guard::{check_json, guarded};
use stored::{LoadPath, StoredTokenizer};
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

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
    inner: Tokenizer,
    window: usize,
    /// Ids at or above this have no embedding row (e.g. Gemma's `<image_soft_token>`).
    table_rows: u32,
    load_path: LoadPath,
}

impl TextTokenizer {
    /// Loads the tokenizer `file` stores (named by `meta.tokenizer`), complete or in parts;
    /// texts are cut to `window` tokens.
    pub fn from_file(file: &ModelFile, window: usize) -> Result<TextTokenizer> {
        let json = file.blob(&file.meta().tokenizer)?;
        match stored::stored_names(json) {
            Some(names) => TextTokenizer::from_stored(&StoredTokenizer::from_file(file, json, &names)?, window),
            None => TextTokenizer::from_json(json, window),
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
        Ok(TextTokenizer { inner, window, table_rows: u32::MAX, load_path })
    }

    /// How this tokenizer was loaded.
    pub fn load_path(&self) -> LoadPath {
        self.load_path
    }

    /// The tokenizer as the `tokenizers` crate serializes it: vocabulary in id order, merges in
    /// rank order, added tokens by id. Two tokenizers with the same canonical JSON are the same
    /// tokenizer (the converter checks a stored BPE tokenizer against its source this way).
    pub fn canonical_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(|e| Error::Tokenizer(format!("cannot serialize the tokenizer: {e}")))
    }

    /// The window in tokens, special tokens included.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The vocabulary size; `with_added`: counting the added tokens too.
    pub fn vocab_size(&self, with_added: bool) -> usize {
        self.inner.get_vocab_size(with_added)
    }

    /// Makes `encode` reject texts with ids of `rows` or more: the embedding table has only
    /// `rows` rows (tokenizers may define added tokens the encoder never learned).
    pub fn limit_ids(&mut self, rows: usize) {
        self.table_rows = u32::try_from(rows).unwrap_or(u32::MAX);
    }

    /// Tokenizes one text; `index` only labels the error.
    pub fn encode(&self, index: usize, text: &str, policy: Truncation) -> Result<Tokens> {
        let encoding = guarded(format_args!("tokenizing text {index}"), || {
            self.inner.encode_fast(text, true).map_err(|e| Error::Tokenizer(format!("text {index}: {e}")))
        })?;
        let truncated = !encoding.get_overflowing().is_empty();
        if truncated && policy == Truncation::Error {
            return Err(Error::TextTooLong { index, max: self.window });
        }
        if let Some(&id) = encoding.get_ids().iter().find(|&&id| id >= self.table_rows) {
            let token = self.inner.id_to_token(id).unwrap_or_default();
            return Err(Error::Tokenizer(format!("text {index} contains the token '{token}' (id {id}), which this model has no embedding for; remove it from the text")));
        }
        Ok(Tokens { ids: encoding.get_ids().to_vec(), truncated })
    }
}
