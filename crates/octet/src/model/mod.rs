//! Encoder architectures, one file each, all behind the [`Encoder`] trait.
//!
//! An encoder is *bound* to an open [`ModelFile`]: binding looks up and validates every
//! tensor the architecture needs (name, dtype, exact shape) and keeps borrowed views into the
//! memory map. Binding is cheap (a few hundred map look-ups), so the embedder binds once at
//! open to validate, and again for each call, instead of storing self-referential views.

pub mod bert;
pub mod gemma3;
pub mod t5;

use crate::attention::Span;
use crate::error::{Error, Result};
use crate::format::{Architecture, ModelFile};

/// A batch of token sequences stored back to back, with no padding.
#[derive(Clone, Debug, Default)]
pub struct PackedBatch {
    /// The token ids of every sequence, concatenated.
    pub ids: Vec<u32>,
    /// Where each sequence sits in `ids`.
    pub spans: Vec<Span>,
}

impl PackedBatch {
    /// Packs the given sequences.
    pub fn new<'a>(seqs: impl IntoIterator<Item = &'a [u32]>) -> PackedBatch {
        let mut batch = PackedBatch::default();
        for seq in seqs {
            batch.spans.push(Span { start: batch.ids.len(), len: seq.len() });
            batch.ids.extend_from_slice(seq);
        }
        batch
    }

    /// Total number of tokens.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

/// A transformer encoder: token ids in, one hidden state per token out.
pub trait Encoder: Send + Sync {
    /// Width of the hidden states `forward` returns.
    fn hidden_size(&self) -> usize;
    /// The vocabulary size (rows of the token-embedding table).
    fn vocab_size(&self) -> usize;
    /// Hidden states [tokens, hidden_size] for a packed batch. Ids must be below `vocab_size`.
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>>;
}

/// Binds the encoder that the file's architecture names.
pub fn bind(file: &ModelFile) -> Result<Box<dyn Encoder + '_>> {
    let meta = file.meta();
    match meta.architecture {
        Architecture::Bert => Ok(Box::new(bert::Bert::bind(file)?)),
        Architecture::Gemma3 => Ok(Box::new(gemma3::Gemma3::bind(file)?)),
        Architecture::T5 => Ok(Box::new(t5::T5::bind(file)?)),
    }
}

/// Parses the architecture config stored in the file.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(file: &ModelFile, arch: &str) -> Result<T> {
    serde_json::from_value(file.meta().config.clone()).map_err(|e| Error::model(arch, format!("bad config: {e}")))
}
