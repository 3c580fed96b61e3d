//! octet: the engine library. Opens a `.octet` model file, tokenizes, runs the encoder with the
//! octet-kernels, pools, normalizes and truncates. See `ARCHITECTURE.md` at the repository root.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod format;
