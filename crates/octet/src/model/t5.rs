//! T5 encoders (original T5 with ReLU FFN, T5 v1.1 with gated GELU). Not implemented yet.

use super::{Encoder, PackedBatch};
use crate::error::{Error, Result};
use crate::format::ModelFile;

/// A bound T5 encoder.
pub struct T5 {
    _private: (),
}

impl T5 {
    /// Binds a T5 encoder.
    pub fn bind(_file: &ModelFile) -> Result<T5> {
        Err(Error::model("t5", "the T5 encoder is not implemented by this engine yet"))
    }
}

impl Encoder for T5 {
    fn hidden_size(&self) -> usize {
        0
    }
    fn vocab_size(&self) -> usize {
        0
    }
    fn forward(&self, _batch: &PackedBatch) -> Result<Vec<f32>> {
        Err(Error::model("t5", "not implemented"))
    }
}
