//! Centered activation groups: each group is quantized around the middle of its range instead
//! of around 0, for the layers whose inputs sit off-centre (a norm's output, shifted by its
//! bias, with a few outlier channels that push one end of a group far out). The codes then
//! span the group's range instead of twice its larger end: up to twice the resolution.
//!
//! Per row and group of `k_group` values (the last may be shorter), in f32:
//!
//! ```text
//! lo, hi = min x, max x                     (NaN skipped; no value: lo = hi = 0)
//! offset = 0.5 lo + 0.5 hi                  (0 when not finite)
//! half   = 0.5 hi - 0.5 lo
//! scale  = half / 127, q = round_half_even((x - offset) * (127 / half)) clamped to [-127, 127]
//!          (scale 0 and q = 0 where the symmetric quantizer would give them for max |x| = half:
//!          a constant group is then exactly its offset)
//! x     ~= scale q + offset
//! ```
//!
//! The codes are those of the symmetric quantizer ([`super::quantize`]) on `x - offset`, so
//! they stay in [-127, 127] and every kernel's integer sums stay exact. The product of row r
//! and weight column c adds each group's offset times the group's column sum (from the packed
//! weights), in this order (f32, the first group's product a plain multiply):
//!
//! ```text
//! acc = dot[0] * scale[0];  acc = fma(col_sum[0][c], offset[0], acc)
//! acc = fma(dot[g], scale[g], acc);  acc = fma(col_sum[g][c], offset[g], acc)   for g = 1, 2, ...
//! out = epilogue(acc * sw[c])
//! ```
//!
//! Column sums of int8 weights over a group are exact in f32 (|sum| <= 128 k_group < 2^24).
//! Only layouts with more than one group take centered rows (see [`super::matmul_centered`]).

use super::quantize::{group_factors, Q_MAX};

/// The offset and the half range of a group with extremes `lo` and `hi` (see the module docs).
#[inline]
pub(crate) fn offset_and_half(lo: f32, hi: f32) -> (f32, f32) {
    let offset = 0.5 * lo + 0.5 * hi;
    let half = 0.5 * hi - 0.5 * lo;
    (if offset.is_finite() { offset } else { 0.0 }, half)
}

/// Quantizes one group into `q` (as long as `x`); returns its (scale, offset).
pub fn quantize_group_centered(x: &[f32], q: &mut [i8]) -> (f32, f32) {
    debug_assert_eq!(x.len(), q.len());
    // min/max skip NaN: f32::min returns the other operand when one is NaN.
    let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo > hi { (0.0, 0.0) } else { (lo, hi) };
    let (offset, half) = offset_and_half(lo, hi);
    let Some((inv, scale)) = group_factors(half) else {
        q.fill(0);
        return (0.0, offset);
    };
    for (d, &v) in q.iter_mut().zip(x) {
        *d = ((v - offset) * inv).round_ties_even().clamp(-Q_MAX, Q_MAX) as i8;
    }
    (scale, offset)
}

/// Scalar centered row quantizer: `x` holds the k real values, `q` the `k_pad` outputs,
/// `scales` and `offsets` one per group.
pub fn quantize_row_centered_scalar(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    debug_assert!(q.len() >= x.len() && scales.len() * k_group == q.len() && offsets.len() == scales.len());
    q[x.len()..].fill(0);
    for (g, (scale, offset)) in scales.iter_mut().zip(offsets.iter_mut()).enumerate() {
        let lo = (g * k_group).min(x.len());
        let hi = ((g + 1) * k_group).min(x.len());
        (*scale, *offset) = quantize_group_centered(&x[lo..hi], &mut q[lo..hi]);
    }
}

/// The dequantization of the module docs for one row and column: per-group dots, the row's
/// scales and offsets, the column's per-group sums (`col_sum(g)`), the column scale.
#[inline]
pub fn dequantize_centered(
    dots: &[i32],
    row_scales: &[f32],
    row_offsets: &[f32],
    col_sum: impl Fn(usize) -> i32,
    col_scale: f32,
) -> f32 {
    let mut acc = dots[0] as f32 * row_scales[0];
    acc = (col_sum(0) as f32).mul_add(row_offsets[0], acc);
    for g in 1..dots.len() {
        acc = (dots[g] as f32).mul_add(row_scales[g], acc);
        acc = (col_sum(g) as f32).mul_add(row_offsets[g], acc);
    }
    acc * col_scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_span_the_range_around_its_middle() {
        let x = [1.0f32, 2.0, 3.0, 5.0];
        let mut q = [0i8; 4];
        let (scale, offset) = quantize_group_centered(&x, &mut q);
        assert_eq!(offset, 3.0);
        assert_eq!(scale, 2.0 / 127.0);
        assert_eq!(q, [-127, -64, 0, 127]);
        for (&v, &c) in x.iter().zip(&q) {
            assert!((scale * c as f32 + offset - v).abs() <= scale / 2.0 + 1e-6);
        }
    }

    #[test]
    fn constant_empty_and_nan_groups() {
        let mut q = [9i8; 3];
        assert_eq!(quantize_group_centered(&[4.5; 3], &mut q), (0.0, 4.5));
        assert_eq!(q, [0; 3]);
        assert_eq!(quantize_group_centered(&[], &mut []), (0.0, 0.0));
        let mut q = [9i8; 2];
        assert_eq!(quantize_group_centered(&[f32::NAN, f32::NAN], &mut q), (0.0, 0.0));
        // NaN is skipped for the range.
        let mut q = [0i8; 3];
        let (scale, offset) = quantize_group_centered(&[-1.0, f32::NAN, 1.0], &mut q);
        assert_eq!((scale, offset), (1.0 / 127.0, 0.0));
        assert_eq!((q[0], q[2]), (-127, 127));
        // An infinite end: nothing finite to centre on.
        let mut q = [9i8; 2];
        assert_eq!(quantize_group_centered(&[f32::INFINITY, 1.0], &mut q), (0.0, 0.0));
        assert_eq!(q, [0; 2]);
    }

    #[test]
    fn row_quantizer_pads_and_fills_every_group() {
        let x: Vec<f32> = (0..70).map(|i| (i as f32 * 0.3).sin() + 2.0).collect();
        let mut q = vec![5i8; 96];
        let (mut scales, mut offsets) = (vec![0f32; 3], vec![0f32; 3]);
        quantize_row_centered_scalar(&x, 32, &mut q, &mut scales, &mut offsets);
        assert!(q[70..].iter().all(|&v| v == 0));
        for g in 0..3 {
            let xs = &x[g * 32..((g + 1) * 32).min(70)];
            let mut want = vec![0i8; xs.len()];
            assert_eq!(quantize_group_centered(xs, &mut want), (scales[g], offsets[g]));
            assert_eq!(&q[g * 32..g * 32 + xs.len()], &want[..]);
        }
    }
}
