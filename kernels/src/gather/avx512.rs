//! AVX-512 gather rows: 16 f32 lanes per step, the ragged end done with masked loads and
//! stores (AVX-512BW/VL for the byte and half-word masks), so there is no scalar tail.
//! u6 rows unpack 16 values (four 3-byte groups, 12 bytes) per step: a masked 12-byte load,
//! broadcast to the four 128-bit blocks, `vpshufb` puts group `b` into the four 32-bit lanes
//! of block `b`, `vpsrlvd` shifts lane `i` right by `6 * (i % 4)`, and a mask keeps 6 bits.
//!
//! u7 rows have two forms. [`u7_row`] (AVX-512F/BW/VL) unpacks 16 values (two 7-byte groups,
//! 14 bytes) per step like u6: value `j` of group `g` starts at bit `7j` of the group, so
//! `vpshufb` copies bytes `7g + 7j / 8` and the next into its lane, `vpsrlvd` shifts right by
//! `7j % 8`, and a mask keeps 7 bits. [`u7_row_vbmi`] (AVX512_VBMI too) unpacks 64 values
//! (eight groups, 56 bytes) per step: a masked 56-byte load, `vpermb` moves group `g` into
//! bytes `8g .. 8g + 7` (qword `g`), `vpmultishiftqb` copies the 8 bits at offset `7j` of each
//! qword into its byte `j`, a mask keeps 7 bits, and each quarter of the 64 bytes widens to 16
//! i32 lanes (`vpmovzxbd`) and goes through the same subtract, convert and multiply.
//!
//! Same operations in the same order as [`super::scalar`]: bit-exact.

use super::u6::{U6_GROUP_BYTES, U6_GROUP_VALUES};
use super::u7::{U7_GROUP_BYTES, U7_GROUP_VALUES};
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

/// `vpshufb` control for u7 unpacking of 16 values (two groups): 32-bit lane `i` holds value
/// `j = i % 8` of group `g = i / 8`, so its two low bytes take bytes `7g + 7j / 8` and the next
/// one of the 14 loaded bytes (the next only where it is in the same group) and the rest is
/// zero (index bit 7 set). Lane `i` sits in 128-bit block `i / 4`, and every block holds the
/// same 16 bytes after the broadcast, so the within-block indices reach both groups.
const U7_SPREAD: [i8; 64] = {
    let mut control = [-128i8; 64];
    let mut lane = 0;
    while lane < 16 {
        let (g, j) = (lane / U7_GROUP_VALUES, lane % U7_GROUP_VALUES);
        let first = 7 * j / 8;
        control[4 * lane] = (U7_GROUP_BYTES * g + first) as i8;
        if first + 1 < U7_GROUP_BYTES {
            control[4 * lane + 1] = (U7_GROUP_BYTES * g + first + 1) as i8;
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
}

/// # Safety
/// AVX-512F/BW/VL must be available; `src.len() == u7_row_bytes(dst.len())`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn u7_row_impl<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    let zp = _mm512_set1_epi32(zero_point);
    let scale = _mm512_set1_ps(row_scale);
    let seven_bits = _mm512_set1_epi32(127);
    let shifts = _mm512_setr_epi32(0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1);
    // SAFETY: U7_SPREAD is 64 bytes; unaligned load.
    let spread = unsafe { _mm512_loadu_si512(U7_SPREAD.as_ptr().cast()) };
    let n = dst.len();
    let mut i = 0;
    while i < n {
        let values = (n - i).min(LANES);
        let mask = if values == LANES { u16::MAX } else { tail_mask(values) };
        // The groups holding those values; the last may be part padding.
        let bytes = values.div_ceil(U7_GROUP_VALUES) * U7_GROUP_BYTES;
        let byte_mask = ((1u32 << bytes) - 1) as u16;
        let at = i / U7_GROUP_VALUES * U7_GROUP_BYTES;
        debug_assert!(at + bytes <= src.len());
        // SAFETY: bytes at..at + bytes of `src` and values i..i + values of `dst` are in bounds
        // (src holds whole groups for all n values); masked loads and stores touch nothing else.
        unsafe {
            let raw = _mm_maskz_loadu_epi8(byte_mask, src.as_ptr().add(at).cast());
            let words = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(raw), spread);
            let q = _mm512_and_si512(_mm512_srlv_epi32(words, shifts), seven_bits);
            let centred = _mm512_sub_epi32(q, zp);
            let value = _mm512_mul_ps(_mm512_cvtepi32_ps(centred), scale);
            put::<ACCUMULATE>(dst.as_mut_ptr().add(i), mask, value);
        }
        i += LANES;
    }
}

/// Values per step of [`u7_row_vbmi`]: eight groups, one per qword of a zmm register.
const VBMI_STEP: usize = 8 * U7_GROUP_VALUES;

/// `vpermb` indices for [`u7_row_vbmi`]: byte `k` of qword `g` takes loaded byte `7g + k`, so
/// qword `g` holds group `g` in its low 7 bytes. Its top byte (the next group's first byte, or
/// zero past the load) only reaches bit 7 of value 7's byte, which the mask clears.
const U7_GROUPS_TO_QWORDS: [u8; 64] = {
    let mut index = [0u8; 64];
    let mut b = 0;
    while b < 64 {
        index[b] = (U7_GROUP_BYTES * (b / 8) + b % 8) as u8;
        b += 1;
    }
    index
};

/// `vpmultishiftqb` control for [`u7_row_vbmi`]: byte `j` of every qword takes the 8 bits at
/// offset `7j` of that qword (value `j` in its low 7 bits).
const U7_FIELD_OFFSETS: [u8; 64] = {
    let mut offset = [0u8; 64];
    let mut b = 0;
    while b < 64 {
        offset[b] = (7 * (b % 8)) as u8;
        b += 1;
    }
    offset
};

/// The u7 row of the VBMI kernel: only handed out (as `AVX512_VBMI`'s `u7_row`) where the CPU
/// has AVX512_VBMI as well as the AVX-512 level.
pub(super) fn u7_row_vbmi(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    // SAFETY: only reached through the AVX512_VBMI kernel, handed out after `Isa::Avx512`
    // (F, BW, VL) and AVX512_VBMI were detected; the slices hold `dst.len()` values in the u7
    // layout.
    unsafe {
        if accumulate {
            u7_row_vbmi_impl::<true>(src, zero_point, row_scale, dst)
        } else {
            u7_row_vbmi_impl::<false>(src, zero_point, row_scale, dst)
        }
    }
}

/// # Safety
/// AVX-512F/BW/VL and AVX512_VBMI must be available; `src.len() == u7_row_bytes(dst.len())`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn u7_row_vbmi_impl<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    let zp = _mm512_set1_epi32(zero_point);
    let scale = _mm512_set1_ps(row_scale);
    let seven_bits = _mm512_set1_epi8(127);
    // SAFETY: both tables are 64 bytes; unaligned loads.
    let (to_qwords, offsets) = unsafe {
        (
            _mm512_loadu_si512(U7_GROUPS_TO_QWORDS.as_ptr().cast()),
            _mm512_loadu_si512(U7_FIELD_OFFSETS.as_ptr().cast()),
        )
    };
    let n = dst.len();
    let mut i = 0;
    while i < n {
        let values = (n - i).min(VBMI_STEP);
        // The groups holding those values (at most 56 bytes); the last may be part padding.
        let bytes = values.div_ceil(U7_GROUP_VALUES) * U7_GROUP_BYTES;
        let byte_mask = (1u64 << bytes) - 1;
        let at = i / U7_GROUP_VALUES * U7_GROUP_BYTES;
        debug_assert!(at + bytes <= src.len());
        // SAFETY: bytes at..at + bytes of `src` are in bounds (src holds whole groups for all n
        // values); the masked load touches nothing else.
        let raw = unsafe { _mm512_maskz_loadu_epi8(byte_mask, src.as_ptr().add(at).cast()) };
        let qwords = _mm512_permutexvar_epi8(to_qwords, raw);
        let q = _mm512_and_si512(_mm512_multishift_epi64_epi8(offsets, qwords), seven_bits);
        let out = dst.as_mut_ptr();
        // SAFETY: quarter c stores values i + 16c .. i + 16c + min(values - 16c, 16), which are
        // in bounds of `dst` (i + values <= n); the masked stores touch nothing else.
        unsafe {
            u7_quarter::<ACCUMULATE>(_mm512_extracti32x4_epi32::<0>(q), zp, scale, out.add(i), values);
            if values > LANES {
                let rest = values - LANES;
                u7_quarter::<ACCUMULATE>(_mm512_extracti32x4_epi32::<1>(q), zp, scale, out.add(i + LANES), rest);
            }
            if values > 2 * LANES {
                let rest = values - 2 * LANES;
                let at = out.add(i + 2 * LANES);
                u7_quarter::<ACCUMULATE>(_mm512_extracti32x4_epi32::<2>(q), zp, scale, at, rest);
            }
            if values > 3 * LANES {
                let rest = values - 3 * LANES;
                let at = out.add(i + 3 * LANES);
                u7_quarter::<ACCUMULATE>(_mm512_extracti32x4_epi32::<3>(q), zp, scale, at, rest);
            }
        }
        i += VBMI_STEP;
    }
}

/// Dequantizes 16 unpacked u7 values (one byte each) and stores the first `min(values, 16)`
/// of them to `dst`.
///
/// # Safety
/// AVX-512F/BW/VL must be available; `dst` valid for `min(values, 16)` floats, `values >= 1`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn u7_quarter<const ACCUMULATE: bool>(q: __m128i, zp: __m512i, scale: __m512, dst: *mut f32, values: usize) {
    debug_assert!(values >= 1);
    let mask = if values >= LANES { u16::MAX } else { tail_mask(values) };
    let centred = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), zp);
    let value = _mm512_mul_ps(_mm512_cvtepi32_ps(centred), scale);
    // SAFETY: the caller guarantees the masked lanes of `dst`.
    unsafe { put::<ACCUMULATE>(dst, mask, value) }
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
