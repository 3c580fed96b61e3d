//! AVX2 gather rows: 8 f32 lanes per step (one ymm register), the last `len % 8` values done
//! by the scalar reference. f16 rows use F16C's `vcvtph2ps`, which `for_isa` checks for.
//! u6 rows unpack 8 values (two 3-byte groups) per step: the 6 bytes are broadcast to every
//! 64-bit lane, `vpshufb` copies group 0 into the four low 32-bit lanes and group 1 into the
//! four high ones, `vpsrlvd` shifts lane `i` right by `6 * (i % 4)`, and a mask keeps 6 bits.
//! u7 rows unpack 8 values (one 7-byte group) per step the same way: value `i` starts at bit
//! `7i`, so `vpshufb` copies bytes `7i / 8` and `7i / 8 + 1` into lane `i`, `vpsrlvd` shifts it
//! right by `7i % 8`, and a mask keeps 7 bits.
//! Same operations in the same order as [`super::scalar`]: bit-exact.

use super::scalar;
use super::u6::{two_groups, U6_GROUP_BYTES};
use super::u7::{self, U7_GROUP_BYTES};
use half::f16;
use std::arch::x86_64::*;

/// f32 lanes per step: one ymm register.
const LANES: usize = 8;

/// Stores `value` to `dst`, adding the previous contents when `ACCUMULATE`.
///
/// # Safety
/// AVX must be available and `dst` valid for 8 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn put<const ACCUMULATE: bool>(dst: *mut f32, value: __m256) {
    // SAFETY: the caller guarantees 8 valid floats at `dst`.
    unsafe {
        let value = if ACCUMULATE {
            _mm256_add_ps(_mm256_loadu_ps(dst), value)
        } else {
            value
        };
        _mm256_storeu_ps(dst, value);
    }
}

pub(super) fn i8_row(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: only reached through the AVX2 kernel, handed out after AVX2, FMA and F16C were
    // detected; the lengths are equal.
    unsafe {
        if accumulate {
            i8_row_impl::<true>(src, zero_point, row_scale, dst)
        } else {
            i8_row_impl::<false>(src, zero_point, row_scale, dst)
        }
    }
    let done = src.len() / LANES * LANES;
    scalar::i8_row(&src[done..], zero_point, row_scale, &mut dst[done..], accumulate);
}

/// Full 8-lane steps only.
/// # Safety
/// AVX2 must be available; `src.len() == dst.len()`.
#[target_feature(enable = "avx2")]
unsafe fn i8_row_impl<const ACCUMULATE: bool>(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let zp = _mm256_set1_epi32(zero_point);
    let scale = _mm256_set1_ps(row_scale);
    for (s, d) in src.chunks_exact(LANES).zip(dst.chunks_exact_mut(LANES)) {
        // SAFETY: each chunk holds exactly 8 values.
        unsafe {
            let q = _mm_loadl_epi64(s.as_ptr().cast::<__m128i>());
            let centred = _mm256_sub_epi32(_mm256_cvtepi8_epi32(q), zp);
            put::<ACCUMULATE>(d.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtepi32_ps(centred), scale));
        }
    }
}

/// `vpshufb` control for u6 unpacking: byte `k` of 32-bit lane `i` takes byte
/// `3 * (i / 4) + k` of the broadcast 6 bytes for `k < 3` and zero (index bit 7 set) for
/// `k == 3`. `vpshufb` indexes within each 128-bit half, and both halves hold the same 8
/// bytes after the broadcast, so the upper half (lanes 4..8) uses indices 3..6.
const U6_SPREAD: [i8; 32] = {
    let mut control = [0i8; 32];
    let mut b = 0;
    while b < 32 {
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
    let done = dst.len() / LANES * LANES;
    let done_bytes = done / 4 * U6_GROUP_BYTES;
    scalar::u6_row(&src[done_bytes..], zero_point, row_scale, &mut dst[done..], accumulate);
}

/// Full 8-value steps only (6 bytes each).
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
unsafe fn u6_row_impl<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u6_row_bytes(dst.len()));
    let zp = _mm256_set1_epi32(zero_point);
    let scale = _mm256_set1_ps(row_scale);
    let six_bits = _mm256_set1_epi32(63);
    let shifts = _mm256_setr_epi32(0, 6, 12, 18, 0, 6, 12, 18);
    // SAFETY: U6_SPREAD is 32 bytes; unaligned load.
    let spread = unsafe { _mm256_loadu_si256(U6_SPREAD.as_ptr().cast::<__m256i>()) };
    // `zip` stops at the shorter: a trailing group of 3 bytes without 8 values is left alone.
    for (s, d) in src.chunks_exact(2 * U6_GROUP_BYTES).zip(dst.chunks_exact_mut(LANES)) {
        let bytes = _mm256_set1_epi64x(two_groups(s) as i64);
        let words = _mm256_shuffle_epi8(bytes, spread);
        let q = _mm256_and_si256(_mm256_srlv_epi32(words, shifts), six_bits);
        let centred = _mm256_sub_epi32(q, zp);
        // SAFETY: each output chunk holds exactly 8 values.
        unsafe { put::<ACCUMULATE>(d.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtepi32_ps(centred), scale)) }
    }
}

/// `vpshufb` control for u7 unpacking: 32-bit lane `i` gets bytes `7i / 8` and `7i / 8 + 1`
/// of the broadcast group in its two low bytes (the second only where it is one of the 7
/// group bytes) and zeros above (index bit 7 set). Both 128-bit halves hold the same 8 bytes
/// after the broadcast, so the indices are the same in each.
const U7_SPREAD: [i8; 32] = {
    let mut control = [-128i8; 32];
    let mut lane = 0;
    while lane < 8 {
        let first = 7 * lane / 8;
        control[4 * lane] = first as i8;
        if first + 1 < U7_GROUP_BYTES {
            control[4 * lane + 1] = (first + 1) as i8;
        }
        lane += 1;
    }
    control
};

pub(super) fn u7_row(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    // SAFETY: as in `i8_row`; the slices hold `dst.len()` values in the u7 layout.
    unsafe {
        if accumulate {
            u7_row_impl::<true>(src, zero_point, row_scale, dst)
        } else {
            u7_row_impl::<false>(src, zero_point, row_scale, dst)
        }
    }
    let done = dst.len() / LANES * LANES;
    let done_bytes = done / LANES * U7_GROUP_BYTES;
    scalar::u7_row(&src[done_bytes..], zero_point, row_scale, &mut dst[done..], accumulate);
}

/// Full 8-value steps only (one 7-byte group each).
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
unsafe fn u7_row_impl<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    let zp = _mm256_set1_epi32(zero_point);
    let scale = _mm256_set1_ps(row_scale);
    let seven_bits = _mm256_set1_epi32(127);
    let shifts = _mm256_setr_epi32(0, 7, 6, 5, 4, 3, 2, 1);
    // SAFETY: U7_SPREAD is 32 bytes; unaligned load.
    let spread = unsafe { _mm256_loadu_si256(U7_SPREAD.as_ptr().cast::<__m256i>()) };
    // `zip` stops at the shorter: a trailing group without 8 values is left alone.
    for (s, d) in src.chunks_exact(U7_GROUP_BYTES).zip(dst.chunks_exact_mut(LANES)) {
        let bytes = _mm256_set1_epi64x(u7::group_word(s) as i64);
        let words = _mm256_shuffle_epi8(bytes, spread);
        let q = _mm256_and_si256(_mm256_srlv_epi32(words, shifts), seven_bits);
        let centred = _mm256_sub_epi32(q, zp);
        // SAFETY: each output chunk holds exactly 8 values.
        unsafe { put::<ACCUMULATE>(d.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtepi32_ps(centred), scale)) }
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
    let done = src.len() / LANES * LANES;
    scalar::f16_row(&src[done..], multiplier, &mut dst[done..], accumulate);
}

/// Full 8-lane steps only.
/// # Safety
/// AVX2 and F16C must be available; `src.len() == dst.len()`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_row_impl<const ACCUMULATE: bool>(src: &[f16], multiplier: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let m = _mm256_set1_ps(multiplier);
    for (s, d) in src.chunks_exact(LANES).zip(dst.chunks_exact_mut(LANES)) {
        // SAFETY: each chunk holds exactly 8 values; `f16` is a transparent 16-bit value.
        unsafe {
            let h = _mm_loadu_si128(s.as_ptr().cast::<__m128i>());
            put::<ACCUMULATE>(d.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtph_ps(h), m));
        }
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
    let done = src.len() / LANES * LANES;
    scalar::f32_row(&src[done..], multiplier, &mut dst[done..], accumulate);
}

/// Full 8-lane steps only.
/// # Safety
/// AVX2 must be available; `src.len() == dst.len()`.
#[target_feature(enable = "avx2")]
unsafe fn f32_row_impl<const ACCUMULATE: bool>(src: &[f32], multiplier: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let m = _mm256_set1_ps(multiplier);
    for (s, d) in src.chunks_exact(LANES).zip(dst.chunks_exact_mut(LANES)) {
        // SAFETY: each chunk holds exactly 8 values.
        unsafe { put::<ACCUMULATE>(d.as_mut_ptr(), _mm256_mul_ps(_mm256_loadu_ps(s.as_ptr()), m)) }
    }
}
