//! The `.octet` flat model file: one self-contained, memory-mappable file per model.
//!
//! Layout (the full specification is `FORMAT.md` next to this file):
//!
//! ```text
//! [0, 128)                 header: magic "OCTETMDL", version, flags, section offsets, file length,
//!                          sha256 over header + JSON                              (header.rs)
//! [128, 128 + json_len)    UTF-8 JSON: { "meta": {...}, "tensors": [...], "data_sha256": "..." }
//!                          (meta.rs, table.rs)
//! zero padding up to data_offset (a multiple of 64)
//! [data_offset, file_len)  data section; every tensor at a 64-byte aligned offset in it
//! ```
//!
//! [`ModelFile`] maps a file, validates all of it, and hands out zero-copy typed views;
//! [`ModelWriter`] builds files (converter and tests share it) and writes them atomically.
//! Everything that can go wrong is a [`FormatError`] that says what and how to fix it.

mod dtype;
mod error;
mod header;
mod meta;
mod reader;
mod table;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

pub use dtype::{Dtype, QuantParam};
pub use error::FormatError;
pub use header::{FLAG_CHANNEL_ORDER, HEADER_LEN, OPTIONAL_FLAGS_MASK, REQUIRED_FLAGS_MASK};
pub use meta::{
    Architecture, DenseLayer, ModelMeta, Pooling, PoolingMode, Provenance, Quantization, SourceFile,
    SUPPORTED_ARCHITECTURES,
};
pub use octet_kernels::f32::PackedF32Layout;
pub use octet_kernels::int8::PackedI8Layout;
pub use reader::{I8Quant, I8Tensor, ModelFile, PackedI8Parts, TensorView, U6Tensor, U7Tensor};
pub use table::{MAX_NAME_LEN, MAX_RANK};
pub use writer::ModelWriter;

// Tensors are reinterpreted in place and written with their in-memory bytes; the format is
// little-endian. Every platform octet targets (x86_64, aarch64) is.
#[cfg(target_endian = "big")]
compile_error!("the .octet format is little-endian and is read in place: big-endian targets are not supported");

/// The 8 bytes every `.octet` file starts with.
pub const MAGIC: [u8; 8] = *b"OCTETMDL";
/// The format major version this crate reads and writes. A reader rejects other majors.
pub const FORMAT_MAJOR: u16 = 1;
/// The format minor version this crate writes. A reader accepts any minor of its major.
/// 1.1 added the `u6` dtype (older 1.x readers reject it by name, asking for an upgrade); 1.2
/// the required flag [`FLAG_CHANNEL_ORDER`] and its tensor [`CHANNEL_ORDER_TENSOR`]; 1.3 the
/// `u7` dtype (rejected by name by older 1.x readers, like `u6`). Files of every older minor
/// read as before.
pub const FORMAT_MINOR: u16 = 3;
/// The i32 [hidden] tensor that gives the stored order of the encoder's hidden channels: stored
/// channel j is the source model's channel `order[j]` (FORMAT.md section 13). Present exactly
/// when the header sets [`FLAG_CHANNEL_ORDER`].
pub const CHANNEL_ORDER_TENSOR: &str = "encoder.channel_order";
/// Alignment of the data section and of every tensor in it: a cache line, and enough for any
/// SIMD load (AVX-512 is 64 bytes).
pub const ALIGN: u64 = 64;
/// Largest JSON document a reader accepts (256 MiB), so a hostile header cannot make it allocate
/// without bound. Real models need well under 1 MiB (the tokenizer is a tensor, not JSON).
pub const MAX_JSON_LEN: u64 = 256 << 20;
