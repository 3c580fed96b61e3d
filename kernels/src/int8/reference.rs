//! The scalar reference: the definition every int8 kernel is tested against.
//!
//! It works on *unpacked* weights `w[n][k]` (row-major int8, any value including -128) and
//! activations quantized by [`quantize_row`] (the definition in [`super::quantize`]). For row r,
//! column c and k-groups g:
//!
//! ```text
//! dot[g]  = sum over k in group g of qa[r][k] * w[c][k]        (exact i32)
//! acc     = dot[0] * sa[r][0]; acc = fma(dot[g], sa[r][g], acc) for g = 1, 2, ... (f32)
//! out     = epilogue(acc * sw[c])
//! ```
//!
//! Centered rows ([`super::centered`]) add each group's offset times the weights' column sum
//! over the group, after the group's product (see that module).
//!
//! The kernels evaluate the float steps in exactly this order, fused where the reference fuses, so
//! without a GELU their outputs are bit-identical to this reference; with GELU they differ by
//! the few ulp between the SIMD and scalar GELU (see [`crate::activation`]).

use super::centered::dequantize_centered;
use super::pack::PackedI8Layout;
use super::quantize::QuantizedRows;
pub use super::quantize::{quantize_group, quantize_row_scalar as quantize_row};
use crate::{check_len, Epilogue, KernelError};

/// Exact per-group dot products of one quantized activation row with one weight row
/// (`w_row.len() == k`), into `dots` (one per group).
pub fn dot_groups(qa_row: &[i8], w_row: &[i8], k_group: usize, dots: &mut [i32]) {
    dots.fill(0);
    for (kk, (&a, &w)) in qa_row.iter().zip(w_row).enumerate() {
        dots[kk / k_group] += a as i32 * w as i32;
    }
}

/// The dequantization of the module docs: per-group dots times row scales, summed left to
/// right, times the column scale.
#[inline]
pub fn dequantize(dots: &[i32], row_scales: &[f32], col_scale: f32) -> f32 {
    let mut acc = dots[0] as f32 * row_scales[0];
    for (&d, &s) in dots.iter().zip(row_scales).skip(1) {
        acc = (d as f32).mul_add(s, acc);
    }
    acc * col_scale
}

/// Reference product of quantized rows with unpacked weights `w[n][k]` and scales `w_scales[n]`.
pub fn gemm_quantized(
    qa: &QuantizedRows,
    w: &[i8],
    w_scales: &[f32],
    n: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let (m, k) = (qa.m, qa.k);
    check_len("int8 weights", w.len(), n * k)?;
    check_len("int8 column scales", w_scales.len(), n)?;
    epilogue.check(n)?;
    check_out(out, m, n, out_stride)?;
    let mut dots = vec![0i32; qa.groups];
    // Per column, the sum of its weights over each group (for centered rows only).
    let centered = m > 0 && qa.row_offsets(0).is_some();
    let col_sums: Vec<i32> = (0..if centered { n } else { 0 })
        .flat_map(|c| {
            w[c * k..(c + 1) * k]
                .chunks(qa.k_group)
                .map(|g| g.iter().map(|&v| i32::from(v)).sum::<i32>())
                .chain(std::iter::repeat(0))
                .take(qa.groups)
        })
        .collect();
    for r in 0..m {
        let row = &qa.row(r)[..k];
        for c in 0..n {
            dot_groups(row, &w[c * k..(c + 1) * k], qa.k_group, &mut dots);
            let acc = match qa.row_offsets(r) {
                None => dequantize(&dots, qa.row_scales(r), w_scales[c]),
                Some(offsets) => {
                    let sums = &col_sums[c * qa.groups..(c + 1) * qa.groups];
                    dequantize_centered(&dots, qa.row_scales(r), offsets, |g| sums[g], w_scales[c])
                }
            };
            let o = &mut out[r * out_stride + c];
            *o = epilogue.apply(c, acc, *o);
        }
    }
    Ok(())
}

/// Reference for the whole operation: quantize `a` (m rows of k, stride `a_stride`) with the
/// scalar quantizer, then [`gemm_quantized`].
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    a_stride: usize,
    m: usize,
    w: &[i8],
    w_scales: &[f32],
    n: usize,
    k: usize,
    k_group: Option<usize>,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let layout = PackedI8Layout::new(n, k, k_group)?;
    let qa = quantize_rows(a, a_stride, m, &layout)?;
    gemm_quantized(&qa, w, w_scales, n, epilogue, out, out_stride)
}

/// Reference for [`super::matmul_centered`]: [`matmul`] with the rows quantized centered.
#[allow(clippy::too_many_arguments)]
pub fn matmul_centered(
    a: &[f32],
    a_stride: usize,
    m: usize,
    w: &[i8],
    w_scales: &[f32],
    n: usize,
    k: usize,
    k_group: Option<usize>,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let scalar = super::for_isa(crate::Isa::Scalar);
    let qa = super::quantize::quantize_rows_centered(scalar, a, a_stride, m, &PackedI8Layout::new(n, k, k_group)?)?;
    gemm_quantized(&qa, w, w_scales, n, epilogue, out, out_stride)
}

/// Scalar quantization of `m` rows for weights of `layout`.
pub fn quantize_rows(
    a: &[f32],
    a_stride: usize,
    m: usize,
    layout: &PackedI8Layout,
) -> Result<QuantizedRows, KernelError> {
    super::quantize::quantize_rows(super::for_isa(crate::Isa::Scalar), a, a_stride, m, layout)
}

/// Checks an output of `m` rows of `n` with row stride `out_stride`.
pub(crate) fn check_out(out: &[f32], m: usize, n: usize, out_stride: usize) -> Result<(), KernelError> {
    if m == 0 {
        return Ok(());
    }
    if out_stride < n {
        return Err(KernelError::Invalid(format!(
            "output row stride {out_stride} is below n={n}"
        )));
    }
    check_len("int8 matmul output", out.len(), (m - 1) * out_stride + n)
}
