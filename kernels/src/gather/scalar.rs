//! Scalar reference rows for the gather family: the definition in the parent module's docs,
//! written as plainly as possible. Every SIMD path must match these bit for bit.

use super::u6::{self, u6_row_bytes, U6_GROUP_BYTES, U6_GROUP_VALUES};
use super::u7::{self, u7_row_bytes, U7_GROUP_BYTES, U7_GROUP_VALUES};
use half::f16;

/// Stores `value` into `dst`, or adds it when `accumulate`.
#[inline(always)]
fn put(dst: &mut f32, value: f32, accumulate: bool) {
    *dst = if accumulate { *dst + value } else { value };
}

/// `dst = f32(src - zero_point) * row_scale` (or `dst += ...`).
pub(super) fn i8_row(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, &q) in dst.iter_mut().zip(src) {
        put(d, dequant_i8(q, zero_point, row_scale), accumulate);
    }
}

/// One int8 value dequantized.
#[inline(always)]
fn dequant_i8(q: i8, zero_point: i32, row_scale: f32) -> f32 {
    (q as i32).wrapping_sub(zero_point) as f32 * row_scale
}

/// `dst = f32(q - zero_point) * row_scale` (or `dst += ...`) for the `dst.len()` values `q`
/// packed in `src` (the u6 layout: `u6_row_bytes(dst.len())` bytes, four values per 3 bytes).
pub(super) fn u6_row(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    debug_assert_eq!(src.len(), u6_row_bytes(dst.len()));
    for (bytes, group) in src.chunks_exact(U6_GROUP_BYTES).zip(dst.chunks_mut(U6_GROUP_VALUES)) {
        let w = u6::group_word(bytes);
        for (j, d) in group.iter_mut().enumerate() {
            let q = ((w >> (6 * j)) & 63) as i32;
            put(d, q.wrapping_sub(zero_point) as f32 * row_scale, accumulate);
        }
    }
}

/// `dst = f32(q - zero_point) * row_scale` (or `dst += ...`) for the `dst.len()` values `q`
/// packed in `src` (the u7 layout: `u7_row_bytes(dst.len())` bytes, eight values per 7 bytes).
pub(super) fn u7_row(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    debug_assert_eq!(src.len(), u7_row_bytes(dst.len()));
    for (bytes, group) in src.chunks_exact(U7_GROUP_BYTES).zip(dst.chunks_mut(U7_GROUP_VALUES)) {
        let w = u7::group_word(bytes);
        for (j, d) in group.iter_mut().enumerate() {
            let q = ((w >> (7 * j)) & 127) as i32;
            put(d, q.wrapping_sub(zero_point) as f32 * row_scale, accumulate);
        }
    }
}

/// `dst = f32(src) * multiplier` (or `dst += ...`); the conversion is exact.
pub(super) fn f16_row(src: &[f16], multiplier: f32, dst: &mut [f32], accumulate: bool) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, &h) in dst.iter_mut().zip(src) {
        put(d, h.to_f32() * multiplier, accumulate);
    }
}

/// `dst = src * multiplier` (or `dst += ...`).
pub(super) fn f32_row(src: &[f32], multiplier: f32, dst: &mut [f32], accumulate: bool) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, &x) in dst.iter_mut().zip(src) {
        put(d, x * multiplier, accumulate);
    }
}
