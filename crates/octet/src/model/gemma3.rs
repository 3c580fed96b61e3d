//! Gemma3 text encoders (EmbeddingGemma). Not implemented yet.

use super::{Encoder, PackedBatch};
use crate::error::{Error, Result};
use crate::format::ModelFile;

/// A bound Gemma3 encoder.
pub struct Gemma3 {
    _private: (),
}

impl Gemma3 {
    /// Binds a Gemma3 encoder.
    pub fn bind(_file: &ModelFile) -> Result<Gemma3> {
        Err(Error::model("gemma3", "the Gemma3 encoder is not implemented by this engine yet"))
    }
}

impl Encoder for Gemma3 {
    fn hidden_size(&self) -> usize {
        0
    }
    fn vocab_size(&self) -> usize {
        0
    }
    fn forward(&self, _batch: &PackedBatch) -> Result<Vec<f32>> {
        Err(Error::model("gemma3", "not implemented"))
    }
}
