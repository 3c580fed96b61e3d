//! Row helpers an encoder needs between its matrix multiplies: LayerNorm, RMSNorm, softmax,
//! GELU, residual add, scaling, dot product and L2 normalization.
//!
//! Definitions (per row of `dim` values where the function works on rows; `n` = row length):
//!
//! ```text
//! layer_norm:   mean = Σx / n;  var = Σ(x - mean)² / n          (two passes, biased variance)
//!               y = (x - mean) * (1 / sqrt(var + eps)) * gamma + beta
//! rms_norm:     ms = Σx² / n  (f32, as Gemma and T5 compute it)
//!               y = x * (1 / sqrt(ms + eps)) * w       with w = 1 + weight (Gemma) or weight (T5)
//! softmax:      m = max x;  e = exp(x - m), and exactly 0 where x - m < -87;  y = e * (1 / Σe)
//! rms_norm_into: dst = rms_norm(src), src unchanged (one pass fewer than a copy, then rms_norm)
//! rms_norm_add: residual += rms_norm(x) (x left unspecified)
//! gelu:         crate::activation::gelu, element by element
//! gelu_mul:     out = gelu(gate) * up, element by element (a gated GELU: two IEEE steps)
//! add:          dst = dst + src
//! scale:        x = x * s
//! dot:          Σ a * b
//! l2_normalize: x = x * (1 / max(sqrt(Σx²), 1e-12))      (PyTorch's F.normalize)
//! ```
//!
//! Special cases, by definition: a softmax row that is entirely -inf (every position masked)
//! becomes all zeros rather than NaN, and -inf entries of other rows become exactly 0 (so do
//! entries more than 87 below the row maximum, whose true value is below 1.7e-38). A row
//! holding +inf or NaN gives NaN (unspecified lanes). `l2_normalize` leaves a zero vector zero.
//!
//! Accuracy between implementations: `add` and `scale` are single IEEE operations per
//! element, so all implementations agree bit for bit. The rest differ from the scalar
//! reference only by summation order (SIMD keeps several partial sums), fused multiply-adds
//! and the few-ulp differences of the SIMD `exp`/`erf`/`tanh` forms; the tests state the
//! resulting tolerances.
//!
//! Files: [`scalar`] (reference), `avx2`, `avx512`, `neon` (one per ISA), `tests`.

mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

use crate::activation::GeluForm;
use crate::{Isa, KernelError};

/// The epsilon under the square root of [`l2_normalize`], as in PyTorch's `F.normalize`.
pub const L2_NORM_EPS: f32 = 1e-12;

/// Below this (relative to the row maximum) a softmax entry is stored as exactly 0.
/// It is the clamp floor of [`crate::activation::exp`]; e^-87 = 1.6e-38.
const SOFTMAX_FLOOR: f32 = -87.0;

/// A fused [`rms_norm_into`] row: (src, dst, weight, eps, one_plus_weight).
type RmsNormIntoRow = fn(&[f32], &mut [f32], &[f32], f32, bool);
/// A fused [`rms_norm_add`] row: (x, residual, weight, eps, one_plus_weight).
type RmsNormAddRow = fn(&mut [f32], &mut [f32], &[f32], f32, bool);

/// The vector implementation for one instruction-set level. Holding one proves the CPU
/// supports it: the statics are crate-private (the attention family reuses them) and handed
/// out only by [`for_isa`]. Each field works on one row (or one pair of equal-length slices,
/// which the public functions ensure).
pub struct VectorKernel {
    /// Kernel name with its geometry: architecture, f32 lanes x partial sums, ISA.
    pub name: &'static str,
    layer_norm_row: fn(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32),
    rms_norm_row: fn(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool),
    /// A fused [`rms_norm_into`] row, or `None`: a copy, then `rms_norm_row`.
    rms_norm_into_row: Option<RmsNormIntoRow>,
    /// A fused [`rms_norm_add`] row, or `None`: `rms_norm_row` in place, then `add`.
    rms_norm_add_row: Option<RmsNormAddRow>,
    softmax_row: fn(x: &mut [f32]),
    gelu: fn(form: GeluForm, x: &mut [f32]),
    gelu_mul: fn(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]),
    add: fn(dst: &mut [f32], src: &[f32]),
    scale: fn(x: &mut [f32], s: f32),
    dot: fn(a: &[f32], b: &[f32]) -> f32,
}

pub(crate) static SCALAR: VectorKernel = VectorKernel {
    name: "generic-vector-f32x1-scalar",
    layer_norm_row: scalar::layer_norm_row,
    rms_norm_row: scalar::rms_norm_row,
    rms_norm_into_row: None,
    rms_norm_add_row: None,
    softmax_row: scalar::softmax_row,
    gelu: scalar::gelu,
    gelu_mul: scalar::gelu_mul,
    add: scalar::add,
    scale: scalar::scale,
    dot: scalar::dot,
};

#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: VectorKernel = VectorKernel {
    name: "x86_64-vector-f32x8x4-avx2",
    layer_norm_row: avx2::layer_norm_row,
    rms_norm_row: avx2::rms_norm_row,
    rms_norm_into_row: None,
    rms_norm_add_row: None,
    softmax_row: avx2::softmax_row,
    gelu: avx2::gelu,
    gelu_mul: avx2::gelu_mul,
    add: avx2::add,
    scale: avx2::scale,
    dot: avx2::dot,
};

#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512: VectorKernel = VectorKernel {
    name: "x86_64-vector-f32x16x4-avx512",
    layer_norm_row: avx512::layer_norm_row,
    rms_norm_row: avx512::rms_norm_row,
    rms_norm_into_row: Some(avx512::rms_norm_into_row),
    rms_norm_add_row: Some(avx512::rms_norm_add_row),
    softmax_row: avx512::softmax_row,
    gelu: avx512::gelu,
    gelu_mul: avx512::gelu_mul,
    add: avx512::add,
    scale: avx512::scale,
    dot: avx512::dot,
};

#[cfg(target_arch = "aarch64")]
pub(crate) static NEON: VectorKernel = VectorKernel {
    name: "aarch64-vector-f32x4x4-neon",
    layer_norm_row: neon::layer_norm_row,
    rms_norm_row: neon::rms_norm_row,
    rms_norm_into_row: None,
    rms_norm_add_row: None,
    softmax_row: neon::softmax_row,
    gelu: neon::gelu,
    gelu_mul: neon::gelu_mul,
    add: neon::add,
    scale: neon::scale,
    dot: neon::dot,
};

/// The best vector implementation at or below `isa` that this CPU supports. The NEON kernel
/// serves the dotprod and i8mm levels too: these helpers are f32 only.
pub fn for_isa(isa: Isa) -> &'static VectorKernel {
    // The AMX level adds int8 tiles only: these helpers use AVX-512 there.
    let isa = if isa == Isa::Amx { Isa::Avx512 } else { isa };
    if !isa.is_supported() {
        return &SCALAR;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &AVX2,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::Dotprod | Isa::I8mm => &NEON,
        _ => &SCALAR,
    }
}

/// Checks that `len` splits into rows of `dim`.
fn check_rows(what: &'static str, len: usize, dim: usize) -> Result<(), KernelError> {
    if dim == 0 {
        return Err(KernelError::Invalid(format!("{what}: row length must be positive")));
    }
    if !len.is_multiple_of(dim) {
        return Err(KernelError::Invalid(format!(
            "{what}: {len} values do not split into rows of {dim}"
        )));
    }
    Ok(())
}

/// Checks that a per-feature parameter has exactly `dim` values.
fn check_exact(what: &'static str, got: usize, dim: usize) -> Result<(), KernelError> {
    if got != dim {
        Err(KernelError::Length {
            what,
            expected: dim,
            got,
        })
    } else {
        Ok(())
    }
}

/// LayerNorm in place over every row of `x` (`x.len()` a multiple of `dim`); `gamma` and
/// `beta` hold exactly `dim` values. See the module docs for the definition.
pub fn layer_norm(
    k: &VectorKernel,
    x: &mut [f32],
    dim: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<(), KernelError> {
    check_rows("layer_norm input", x.len(), dim)?;
    check_exact("layer_norm gamma", gamma.len(), dim)?;
    check_exact("layer_norm beta", beta.len(), dim)?;
    for row in x.chunks_exact_mut(dim) {
        (k.layer_norm_row)(row, gamma, beta, eps);
    }
    Ok(())
}

/// RMSNorm in place over every row of `x`: `x / rms * (1 + weight)` when `one_plus_weight`
/// (Gemma), else `x / rms * weight` (T5). The mean of squares is accumulated in f32, as both
/// reference implementations do. `weight` holds exactly `dim` values.
pub fn rms_norm(
    k: &VectorKernel,
    x: &mut [f32],
    dim: usize,
    weight: &[f32],
    eps: f32,
    one_plus_weight: bool,
) -> Result<(), KernelError> {
    check_rows("rms_norm input", x.len(), dim)?;
    check_exact("rms_norm weight", weight.len(), dim)?;
    for row in x.chunks_exact_mut(dim) {
        (k.rms_norm_row)(row, weight, eps, one_plus_weight);
    }
    Ok(())
}

/// `dst` = [`rms_norm`] of `src`, row by row, bit for bit; `src` is unchanged. The lengths must
/// be equal.
pub fn rms_norm_into(
    k: &VectorKernel,
    src: &[f32],
    dst: &mut [f32],
    dim: usize,
    weight: &[f32],
    eps: f32,
    one_plus_weight: bool,
) -> Result<(), KernelError> {
    check_rows("rms_norm_into input", src.len(), dim)?;
    check_exact("rms_norm_into output", dst.len(), src.len())?;
    check_exact("rms_norm_into weight", weight.len(), dim)?;
    for (s, d) in src.chunks_exact(dim).zip(dst.chunks_exact_mut(dim)) {
        match k.rms_norm_into_row {
            Some(fused) => fused(s, d, weight, eps, one_plus_weight),
            None => {
                d.copy_from_slice(s);
                (k.rms_norm_row)(d, weight, eps, one_plus_weight);
            }
        }
    }
    Ok(())
}

/// `residual += ` [`rms_norm`] of `x`, row by row, bit for bit as the norm then [`add`]; what
/// `x` holds afterwards is unspecified. The lengths must be equal.
pub fn rms_norm_add(
    k: &VectorKernel,
    x: &mut [f32],
    residual: &mut [f32],
    dim: usize,
    weight: &[f32],
    eps: f32,
    one_plus_weight: bool,
) -> Result<(), KernelError> {
    check_rows("rms_norm_add input", x.len(), dim)?;
    check_exact("rms_norm_add residual", residual.len(), x.len())?;
    check_exact("rms_norm_add weight", weight.len(), dim)?;
    for (x, r) in x.chunks_exact_mut(dim).zip(residual.chunks_exact_mut(dim)) {
        match k.rms_norm_add_row {
            Some(fused) => fused(x, r, weight, eps, one_plus_weight),
            None => {
                (k.rms_norm_row)(x, weight, eps, one_plus_weight);
                (k.add)(r, x);
            }
        }
    }
    Ok(())
}

/// Softmax in place over every row of `x`, subtracting the row maximum first. A row that is
/// entirely -inf becomes all zeros; see the module docs.
pub fn softmax(k: &VectorKernel, x: &mut [f32], dim: usize) -> Result<(), KernelError> {
    check_rows("softmax input", x.len(), dim)?;
    for row in x.chunks_exact_mut(dim) {
        (k.softmax_row)(row);
    }
    Ok(())
}

/// Softmax of one row in place, for the crate's attention (one row at a time: no length check).
pub(crate) fn softmax_one(k: &VectorKernel, row: &mut [f32]) {
    (k.softmax_row)(row)
}

/// GELU of the given form, in place, element by element.
pub fn gelu(k: &VectorKernel, form: GeluForm, x: &mut [f32]) {
    (k.gelu)(form, x)
}

/// Gated GELU: `out = gelu(gate) * up`, element by element (the GELU rounded to f32, then
/// the product), in one pass. The three lengths must be equal.
pub fn gelu_mul(
    k: &VectorKernel,
    form: GeluForm,
    gate: &[f32],
    up: &[f32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    check_exact("gelu_mul up", up.len(), gate.len())?;
    check_exact("gelu_mul output", out.len(), gate.len())?;
    (k.gelu_mul)(form, gate, up, out);
    Ok(())
}

/// Residual add: `dst += src`. The lengths must be equal.
pub fn add(k: &VectorKernel, dst: &mut [f32], src: &[f32]) -> Result<(), KernelError> {
    check_exact("add source", src.len(), dst.len())?;
    (k.add)(dst, src);
    Ok(())
}

/// `x *= s`, element by element.
pub fn scale(k: &VectorKernel, x: &mut [f32], s: f32) {
    (k.scale)(x, s)
}

/// Dot product. Slices of different lengths are not an error: the product runs over the
/// shorter length (the common prefix), so callers that care must compare lengths themselves.
pub fn dot(k: &VectorKernel, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    (k.dot)(&a[..n], &b[..n])
}

/// Scales `x` to unit L2 norm: `x / max(||x||, 1e-12)` as PyTorch's `F.normalize`, so a zero
/// vector stays zero. (Values beyond ~1e19 overflow the sum of squares and give zeros.)
pub fn l2_normalize(k: &VectorKernel, x: &mut [f32]) {
    let norm = (k.dot)(x, x).sqrt();
    (k.scale)(x, 1.0 / norm.max(L2_NORM_EPS))
}
