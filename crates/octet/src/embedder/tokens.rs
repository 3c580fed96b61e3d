//! The two halves of `embed`, for callers that batch texts themselves (`octet serve`):
//! [`Embedder::tokenize`] turns texts into ids exactly as `embed` does (task prompt, window,
//! truncation policy), and [`Embedder::embed_ids`] runs already tokenized sequences through
//! the encoder (in passes bounded by the default token budget). `embed_ids(tokenize(texts))`
//! gives the vectors `embed` gives: a sequence's vector does not depend on the other sequences
//! of its pass.

use super::{rows_of, EmbedOptions, Embedder};
use crate::error::{Error, Result};
use crate::tokenize::{Tokens, Truncation};
use rayon::prelude::*;

impl Embedder {
    /// Tokenizes `texts` as [`Embedder::embed_with`] would: `prompt` names a stored task
    /// prompt (`None`: the model's default, `Some("")`: none), and texts over the window are
    /// cut or refused by `truncation`. Runs on the embedder's threads.
    pub fn tokenize<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        prompt: Option<&str>,
        truncation: Truncation,
    ) -> Result<Vec<Tokens>> {
        let prefix = self.prompt_prefix(prompt)?;
        self.pool.install(|| {
            texts
                .par_iter()
                .enumerate()
                .map(|(i, text)| {
                    let text = text.as_ref();
                    if prefix.is_empty() {
                        self.tokenizer.encode(i, text, truncation)
                    } else {
                        self.tokenizer.encode(i, &format!("{prefix}{text}"), truncation)
                    }
                })
                .collect()
        })
    }

    /// Rows of the token-embedding table: every id given to [`Embedder::embed_ids`] must be
    /// below this.
    pub fn vocab_rows(&self) -> Result<usize> {
        Ok(self.encoder.vocab_size())
    }

    /// Embeds token-id sequences (special tokens included, as [`Embedder::tokenize`] returns
    /// them) with the bound encoder, then truncates to `dims` and L2-normalizes per `normalize`
    /// (`None`: as the model does). Each sequence must hold 1 to `window()` ids, each below
    /// [`Embedder::vocab_rows`]; vectors come back in input order.
    pub fn embed_ids(
        &self,
        sequences: &[&[u32]],
        dims: Option<usize>,
        normalize: Option<bool>,
    ) -> Result<Vec<Vec<f32>>> {
        let width = self.output_width(dims)?;
        if sequences.is_empty() {
            return Ok(Vec::new());
        }
        let normalize = normalize.unwrap_or(self.file.meta().pooling.normalize);
        let rows = self.encoder.vocab_size();
        for (i, seq) in sequences.iter().enumerate() {
            if seq.is_empty() || seq.len() > self.window() {
                return Err(Error::Option(format!(
                    "sequence {i} has {} token ids; this model takes 1 to {}",
                    seq.len(),
                    self.window()
                )));
            }
            if let Some(&id) = seq.iter().find(|&&id| id as usize >= rows) {
                return Err(Error::Option(format!(
                    "sequence {i} has token id {id}, but this model's ids are 0 to {}",
                    rows - 1
                )));
            }
        }
        let mut flat = vec![0f32; sequences.len() * width];
        self.pool.install(|| {
            self.embed_sequences(
                sequences,
                usize::MAX,
                EmbedOptions::DEFAULT_MAX_BATCH_TOKENS,
                normalize,
                &mut flat,
            )
        })?;
        Ok(rows_of(&flat, width))
    }
}
