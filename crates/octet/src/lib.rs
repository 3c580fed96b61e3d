//! octet: the engine library. Opens a `.octet` model file, tokenizes, runs the encoder with the
//! octet-kernels, pools, normalizes and truncates. See `ARCHITECTURE.md` at the repository root.
//!
//! ```no_run
//! let embedder = octet::Embedder::open("all-MiniLM-L6-v2-int8.octet")?;
//! let vectors = embedder.embed(&["The cat sat on the mat.", "A dog barked."])?;
//! assert_eq!(vectors[0].len(), embedder.dim());
//! # Ok::<(), octet::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod batch;
pub mod embedder;
pub mod error;
pub mod format;
pub mod layers;
pub mod model;
pub mod pooling;
pub mod scratch;
pub mod similarity;
pub mod tokenize;

pub use embedder::{EmbedOptions, Embedder, Embeddings};
pub use error::{Error, Result};
pub use tokenize::Truncation;
