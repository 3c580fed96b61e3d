//! AVX-512 gather rows: 16 f32 lanes per step, the ragged end done with masked loads and
//! stores (AVX-512BW/VL for the byte and half-word masks), so there is no scalar tail.
//! Same operations in the same order as [`super::scalar`]: bit-exact.

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
