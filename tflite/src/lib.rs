//! Reading TFLite flatbuffers (`.tflite`) and recognising the encoder inside them, as
//! TensorFlow's converter or litert-torch (PyTorch -> TFLite) writes it.
//!
//! - [`schema`]: the handful of schema tables read, verified by the `flatbuffers` crate before
//!   any field is followed (the only `unsafe` of the importer, each use paired with a verified field).
//! - [`model`]: the main subgraph decoded into owned tensors and operators, with every index,
//!   shape and buffer length checked, and operators in execution order (no cycles); constants
//!   read as f32, int8, int4 or int32.
//! - [`graph`]: the operator graph with producer and consumer links, and the pattern steps
//!   the encoder walks share (constants behind DEQUANTIZE, linear layers, the token-table
//!   look-up, the attention projections' roles).
//! - [`bert`]: walks the operator graph from the token-id input to the engine's BERT tensors
//!   (the names in a converted file say little), or takes a user's mapping file.
//! - [`t5`]: the same for a T5 encoder with a fixed, padded input (the browser's embedding
//!   model's shape), including the inversion of the folded relative-position bias.
//! - [`metadata`]: the tokenizer a MediaPipe / TFLite Support file carries (the `TFLITE_METADATA`
//!   buffer names it; the vocab or SentencePiece model is in a zip archive after the flatbuffer).
//! - [`wordpiece`]: a BERT vocab from that metadata turned into a `tokenizer.json`.
//! - [`sentencepiece`]: a SentencePiece Unigram model from that metadata turned into one.
//! - [`testing`] (`feature = "test-util"`): small files built with the `flatbuffers` builder, for tests.
//!
//! The converter (`octet-tools`, `convert/tflite/`) plans the recognised tensors into an
//! octet file; this crate knows nothing of the command line.
//!
//! A malformed file is an error ([`TfliteError`]), never a panic.

pub mod bert;
pub mod error;
mod execution_order;
pub mod graph;
pub mod metadata;
pub mod model;
pub mod schema;
pub mod sentencepiece;
pub mod t5;
pub mod wordpiece;

pub use error::TfliteError;
pub use model::{Operator, Tensor, TensorType, TfliteModel};

/// True when `bytes` start like a TFLite flatbuffer (file identifier `TFL3` at offset 4).
pub fn looks_like_tflite(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[4..8] == model::FILE_IDENTIFIER
}

#[cfg(test)]
mod metadata_tests;
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
