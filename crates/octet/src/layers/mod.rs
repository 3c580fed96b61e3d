//! The building blocks every architecture wires together: [`Linear`], [`Embedding`], [`Norm`],
//! fused [`attention`] and the [`RopeTable`] ([`observe`] watches the linear layers' inputs for calibration), each bound once to a shared model file through
//! [`Stored`] views where it has weights.
//!
//! Binding looks up each tensor by name and checks its dtype and exact shape, so a file that
//! does not fit its architecture gets [`crate::Error::Model`] naming the tensor at open, never a
//! panic later. After that a layer only re-slices its views: no look-up, no parsing, no copy
//! (except f16 linear weights, widened and packed once at bind time).

pub mod attention;
pub mod embedding;
pub mod linear;
pub mod norm;
pub mod observe;
pub mod rope;
pub mod stored;
pub mod tflite_exact;

pub use attention::{attention, AttentionShape, ScoreBias};
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::Norm;
pub use rope::RopeTable;
pub use stored::{Stored, StoredParam};
