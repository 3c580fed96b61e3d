//! octet-kernels: the hand-written kernels under the octet engine.
//!
//! Families, one module each, every one with a scalar reference that is also its test oracle:
//! - [`int8`]: int8 x int8 -> i32 matrix multiply for linear layers (packed weights, per-row
//!   quantized activations) with a fused dequantize / bias / GELU epilogue.
//! - [`f32`]: the packed, cache-blocked, register-tiled f32 matrix multiply that is the float
//!   baseline, with the same epilogue.
//! - [`gather`]: gather-dequantize of int8 / 7-bit / 6-bit / f16 / f32 embedding tables.
//! - [`vector`]: LayerNorm, RMSNorm, softmax, GELU and friends over rows.
//! - [`attention`]: fused scaled dot-product attention (Q K^T, window, relative bias,
//!   softmax, P V) for a block of query rows, read straight from the fused QKV rows.
//!
//! [`dispatch`] picks one implementation per family once per process from the CPU's features
//! (overridable with `OCTET_KERNEL=scalar|avx2|avx512|amx|neon|dotprod|i8mm`), and
//! [`dispatch::describe`] reports what was chosen. Nothing is compiled with `target-cpu=native`:
//! SIMD code lives in `#[target_feature]` functions reached only after detection.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod activation;
pub mod attention;
pub mod dispatch;
pub mod epilogue;
pub mod f32;
pub mod gather;
mod gelu_table;
pub mod int8;
pub mod test_rng;
pub mod vector;

pub use dispatch::{describe, kernels, AttentionPrecision, Isa, Kernels};
pub use epilogue::{Activation, Epilogue};

/// Errors a kernel entry point reports instead of panicking on bad arguments.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KernelError {
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("token id {id} is out of range for an embedding table of {rows} rows")]
    IdOutOfRange { id: u32, rows: usize },
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// Checks that a slice has at least `expected` elements.
pub(crate) fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), KernelError> {
    if got < expected {
        Err(KernelError::Length { what, expected, got })
    } else {
        Ok(())
    }
}
