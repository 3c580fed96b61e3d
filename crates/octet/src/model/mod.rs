//! Encoder architectures, one file each, all behind the [`Encoder`] trait. Each file wires the
//! [`crate::layers`] together; it reads its config and binds its tensors once, at open.
//!
//! An encoder is *bound* to a shared [`ModelFile`]: binding parses the architecture's config,
//! looks up and validates every tensor it needs (name, dtype, exact shape) and keeps
//! [`crate::layers::Stored`] views into the map. The embedder binds once, at open, and reuses
//! the bound encoder for every call.

pub mod bert;
pub mod config;
pub mod gemma3;
pub mod t5;

pub use config::ModelConfig;

pub use crate::batch::PackedBatch;
use crate::error::Result;
use crate::format::ModelFile;
use crate::scratch::Scratch;
use std::sync::Arc;

/// A transformer encoder: token ids in, one hidden state per token out.
pub trait Encoder: Send + Sync {
    /// Width of the hidden states `forward` returns.
    fn hidden_size(&self) -> usize;
    /// The vocabulary size (rows of the token-embedding table).
    fn vocab_size(&self) -> usize;
    /// Hidden states [tokens, hidden_size] for a packed batch, computed in (and returned from)
    /// the buffers of `scratch`. Ids must be below `vocab_size`.
    fn forward<'s>(&self, batch: &PackedBatch, scratch: &'s mut Scratch) -> Result<&'s [f32]>;
}

/// Binds the encoder that the file's architecture names (parsing its config).
pub fn bind(file: &Arc<ModelFile>) -> Result<Box<dyn Encoder>> {
    bind_with(file, &ModelConfig::of(file.meta())?)
}

/// Binds the encoder that `config` (the file's, parsed) describes.
pub fn bind_with(file: &Arc<ModelFile>, config: &ModelConfig) -> Result<Box<dyn Encoder>> {
    Ok(match config.clone() {
        ModelConfig::Bert(c) => Box::new(bert::Bert::bind(file, c)?),
        ModelConfig::Gemma3(c) => Box::new(gemma3::Gemma3::bind(file, c)?),
        ModelConfig::T5(c) => Box::new(t5::T5::bind(file, c)?),
    })
}
