//! AVX-512 gather rows: 16 f32 lanes per step, the ragged end done with masked loads and
//! stores (AVX-512BW/VL for the byte and half-word masks), so there is no scalar tail.
//! u6 rows unpack 16 values (four 3-byte groups, 12 bytes) per step: a masked 12-byte load,
//! broadcast to the four 128-bit blocks, `vpshufb` puts group `b` into the four 32-bit lanes
//! of block `b`, `vpsrlvd` shifts lane `i` right by `6 * (i % 4)`, and a mask keeps 6 bits.
//! Same operations in the same order as [`super::scalar`]: bit-exact.

use super::u6::{U6_GROUP_BYTES, U6_GROUP_VALUES};
use half::f16;
use std::arch::x86_64::*;

/// f32 lanes per step: one zmm register.
const LANES: usize = 16;

/// Mask selecting the first `n < 16` lanes.
#[inline(always)]
fn tail_mask(n: usize) -> u16 {
    debug_assert!(n < LANES);
    ((1u32 << n) - 1) as u16
}

/// Stores `value` to `dst` under `mask`, adding the previous contents when `ACCUMULATE`.
///
/// # Safety
/// AVX-512F must be available and `dst` valid for the masked lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn put<const ACCUMULATE: bool>(dst: *mut f32, mask: u16, value: __m512) {
    // SAFETY: the caller guarantees the masked lanes of `dst` are valid; masked-off lanes
    // are neither read nor written.
    unsafe {
        let value = if ACCUMULATE {
            _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), value)
        } else {
            value
        };
        _mm512_mask_storeu_ps(dst, mask, value);
    }
}

pub(super) fn i8_row(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: only reached through the AVX512 kernel, handed out after `Isa::Avx512` was
    // detected (F, BW, VL); the lengths are equal.
    unsafe {
        if accumulate {
            i8_row_impl::<true>(src, zero_point, row_scale, dst)
        } else {
            i8_row_impl::<false>(src, zero_point, row_scale, dst)
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL must be available; `src.len() == dst.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn i8_row_impl<const ACCUMULATE: bool>(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let zp = _mm512_set1_epi32(zero_point);
    let scale = _mm512_set1_ps(row_scale);
    let n = src.len();
    let mut i = 0;
    while i < n {
        let mask = if n - i >= LANES { u16::MAX } else { tail_mask(n - i) };
        // SAFETY: lanes i..i + popcount(mask) are in bounds of both slices; masked loads and
        // stores touch nothing else.
        unsafe {
            let q = _mm_maskz_loadu_epi8(mask, src.as_ptr().add(i));
            let centred = _mm512_sub_epi32(_mm512_cvtepi8_epi32(q), zp);
            let value = _mm512_mul_ps(_mm512_cvtepi32_ps(centred), scale);
            put::<ACCUMULATE>(dst.as_mut_ptr().add(i), mask, value);
        }
        i += LANES;
    }
}

/// `vpshufb` control for u6 unpacking: byte `k` of 32-bit lane `i` takes byte
/// `3 * (i / 4) + k` of the 12 loaded bytes for `k < 3` and zero (index bit 7 set) for
/// `k == 3`. Lane `i` sits in 128-bit block `i / 4`, and every block holds the same 12 bytes
/// after the broadcast, so the within-block indices reach all four groups.
const U6_SPREAD: [i8; 64] = {
    let mut control = [0i8; 64];
    let mut b = 0;
    while b < 64 {
        let (lane, k) = (b / 4, b % 4);
        control[b] = if k == 3 { -128 } else { (3 * (lane / 4) + k) as i8 };
        b += 1;
    }
    control
};

pub(super) fn u6_row(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), super::u6_row_bytes(dst.len()));
    // SAFETY: as in `i8_row`; the slices hold `dst.len()` values in the u6 layout.
    unsafe {
        if accumulate {
            u6_row_impl::<true>(src, zero_point, row_scale, dst)
        } else {
            u6_row_impl::<false>(src, zero_point, row_scale, dst)
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL must be available; `src.len() == u6_row_bytes(dst.len())`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn u6_row_impl<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u6_row_bytes(dst.len()));
    let zp = _mm512_set1_epi32(zero_point);
    let scale = _mm512_set1_ps(row_scale);
    let six_bits = _mm512_set1_epi32(63);
    let shifts = _mm512_setr_epi32(0, 6, 12, 18, 0, 6, 12, 18, 0, 6, 12, 18, 0, 6, 12, 18);
    // SAFETY: U6_SPREAD is 64 bytes; unaligned load.
    let spread = unsafe { _mm512_loadu_si512(U6_SPREAD.as_ptr().cast()) };
    let n = dst.len();
    let mut i = 0;
    while i < n {
        let values = (n - i).min(LANES);
        let mask = if values == LANES { u16::MAX } else { tail_mask(values) };
        // The groups holding those values; the last may be part padding.
        let bytes = values.div_ceil(U6_GROUP_VALUES) * U6_GROUP_BYTES;
        let byte_mask = ((1u32 << bytes) - 1) as u16;
        let at = i / U6_GROUP_VALUES * U6_GROUP_BYTES;
        debug_assert!(at + bytes <= src.len());
        // SAFETY: bytes at..at + bytes of `src` and values i..i + values of `dst` are in bounds
        // (src holds whole groups for all n values); masked loads and stores touch nothing else.
        unsafe {
            let raw = _mm_maskz_loadu_epi8(byte_mask, src.as_ptr().add(at).cast());
            let words = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(raw), spread);
            let q = _mm512_and_si512(_mm512_srlv_epi32(words, shifts), six_bits);
            let centred = _mm512_sub_epi32(q, zp);
            let value = _mm512_mul_ps(_mm512_cvtepi32_ps(centred), scale);
            put::<ACCUMULATE>(dst.as_mut_ptr().add(i), mask, value);
        }
        i += LANES;
    }
}

pub(super) fn f16_row(src: &[f16], multiplier: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: as in `i8_row`.
    unsafe {
        if accumulate {
            f16_row_impl::<true>(src, multiplier, dst)
        } else {
            f16_row_impl::<false>(src, multiplier, dst)
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL must be available; `src.len() == dst.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn f16_row_impl<const ACCUMULATE: bool>(src: &[f16], multiplier: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let m = _mm512_set1_ps(multiplier);
    let n = src.len();
    let mut i = 0;
    while i < n {
        let mask = if n - i >= LANES { u16::MAX } else { tail_mask(n - i) };
        // SAFETY: as in `i8_row_impl`; `f16` is a transparent 16-bit value.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(mask, src.as_ptr().add(i).cast::<i16>());
            let value = _mm512_mul_ps(_mm512_cvtph_ps(h), m);
            put::<ACCUMULATE>(dst.as_mut_ptr().add(i), mask, value);
        }
        i += LANES;
    }
}

pub(super) fn f32_row(src: &[f32], multiplier: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: as in `i8_row`.
    unsafe {
        if accumulate {
            f32_row_impl::<true>(src, multiplier, dst)
        } else {
            f32_row_impl::<false>(src, multiplier, dst)
        }
    }
}

/// # Safety
/// AVX-512F must be available; `src.len() == dst.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn f32_row_impl<const ACCUMULATE: bool>(src: &[f32], multiplier: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let m = _mm512_set1_ps(multiplier);
    let n = src.len();
    let mut i = 0;
    while i < n {
        let mask = if n - i >= LANES { u16::MAX } else { tail_mask(n - i) };
        // SAFETY: as in `i8_row_impl`.
        unsafe {
            let value = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, src.as_ptr().add(i)), m);
            put::<ACCUMULATE>(dst.as_mut_ptr().add(i), mask, value);
        }
        i += LANES;
    }
}
