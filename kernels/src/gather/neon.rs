//! NEON gather rows: 8 values per step (two q registers of 4 f32 lanes), the last `len % 8`
//! done by the scalar reference. One kernel serves the neon, dotprod and i8mm levels.
//! Same operations in the same order as [`super::scalar`]: bit-exact.
//!
//! f16 -> f32 uses `fcvtl`/`fcvtl2` through `asm!`: they are baseline ARMv8 instructions, but
//! the intrinsics take `float16x4_t`, which stable Rust does not have.
//!
//! u6 rows unpack 8 values (two 3-byte groups) per step: the 6 bytes go into one register,
//! `tbl` copies group 0 (then group 1) into each of four 32-bit lanes (index 255 gives a zero
//! byte), `ushl` by `-6 * lane` shifts lane `i` right by `6 * i`, and a mask keeps 6 bits.
//! u7 rows unpack 8 values (one 7-byte group) per step: value `i` starts at bit `7i`, so `tbl`
//! copies bytes `7i / 8` and `7i / 8 + 1` into lane `i % 4` (values 0..4, then 4..8), `ushl`
//! by `-(7i % 8)` shifts it right, and a mask keeps 7 bits.

use super::scalar;
use super::u6::{two_groups, U6_GROUP_BYTES};
use super::u7::{self, U7_GROUP_BYTES};
use half::f16;
use std::arch::aarch64::*;
use std::arch::asm;

/// Values per step: 8 int8 / f16 values widen to two 4-lane f32 registers.
const STEP: usize = 8;

/// Stores `value` to `dst`, adding the previous contents when `ACCUMULATE`.
///
/// # Safety
/// `dst` must be valid for 4 floats.
#[inline(always)]
unsafe fn put<const ACCUMULATE: bool>(dst: *mut f32, value: float32x4_t) {
    // SAFETY: the caller guarantees 4 valid floats at `dst`; NEON is baseline on aarch64.
    unsafe {
        let value = if ACCUMULATE {
            vaddq_f32(vld1q_f32(dst), value)
        } else {
            value
        };
        vst1q_f32(dst, value);
    }
}

pub(super) fn i8_row(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    if accumulate {
        i8_steps::<true>(src, zero_point, row_scale, dst)
    } else {
        i8_steps::<false>(src, zero_point, row_scale, dst)
    }
    let done = src.len() / STEP * STEP;
    scalar::i8_row(&src[done..], zero_point, row_scale, &mut dst[done..], accumulate);
}

/// Full 8-value steps only.
fn i8_steps<const ACCUMULATE: bool>(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    for (s, d) in src.chunks_exact(STEP).zip(dst.chunks_exact_mut(STEP)) {
        // SAFETY: NEON is baseline on aarch64; each chunk holds exactly 8 values.
        unsafe {
            let zp = vdupq_n_s32(zero_point);
            let scale = vdupq_n_f32(row_scale);
            let q16 = vmovl_s8(vld1_s8(s.as_ptr()));
            let lo = vsubq_s32(vmovl_s16(vget_low_s16(q16)), zp);
            let hi = vsubq_s32(vmovl_high_s16(q16), zp);
            put::<ACCUMULATE>(d.as_mut_ptr(), vmulq_f32(vcvtq_f32_s32(lo), scale));
            put::<ACCUMULATE>(d.as_mut_ptr().add(4), vmulq_f32(vcvtq_f32_s32(hi), scale));
        }
    }
}

/// `tbl` indices for u6 unpacking: bytes 0, 1, 2 of the register (group 0) into each 32-bit
/// lane, the top byte zero (255 is out of range, which `tbl` turns into 0).
const U6_GROUP0: [u8; 16] = [0, 1, 2, 255, 0, 1, 2, 255, 0, 1, 2, 255, 0, 1, 2, 255];
/// The same for group 1 (bytes 3, 4, 5).
const U6_GROUP1: [u8; 16] = [3, 4, 5, 255, 3, 4, 5, 255, 3, 4, 5, 255, 3, 4, 5, 255];
/// Per-lane shifts: `ushl` by a negative amount shifts right, lane `j` by `6 * j`.
const U6_SHIFTS: [i32; 4] = [0, -6, -12, -18];

pub(super) fn u6_row(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), super::u6_row_bytes(dst.len()));
    if accumulate {
        u6_steps::<true>(src, zero_point, row_scale, dst)
    } else {
        u6_steps::<false>(src, zero_point, row_scale, dst)
    }
    let done = dst.len() / STEP * STEP;
    let done_bytes = done / 4 * U6_GROUP_BYTES;
    scalar::u6_row(&src[done_bytes..], zero_point, row_scale, &mut dst[done..], accumulate);
}

/// Full 8-value steps only (6 bytes each).
fn u6_steps<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u6_row_bytes(dst.len()));
    // `zip` stops at the shorter: a trailing group of 3 bytes without 8 values is left alone.
    for (s, d) in src.chunks_exact(2 * U6_GROUP_BYTES).zip(dst.chunks_exact_mut(STEP)) {
        // SAFETY: NEON is baseline on aarch64; the constant tables are 16 and 4 elements, and
        // each output chunk holds exactly 8 values.
        unsafe {
            let zp = vdupq_n_s32(zero_point);
            let scale = vdupq_n_f32(row_scale);
            let six_bits = vdupq_n_u32(63);
            let shifts = vld1q_s32(U6_SHIFTS.as_ptr());
            let bytes = vreinterpretq_u8_u64(vdupq_n_u64(two_groups(s)));
            for (half, indices) in [U6_GROUP0, U6_GROUP1].iter().enumerate() {
                let words = vreinterpretq_u32_u8(vqtbl1q_u8(bytes, vld1q_u8(indices.as_ptr())));
                let q = vandq_u32(vshlq_u32(words, shifts), six_bits);
                let centred = vsubq_s32(vreinterpretq_s32_u32(q), zp);
                put::<ACCUMULATE>(d.as_mut_ptr().add(4 * half), vmulq_f32(vcvtq_f32_s32(centred), scale));
            }
        }
    }
}

/// `tbl` indices for u7 unpacking of values 0..4 of a group: bytes `7i / 8` and the next into
/// the two low bytes of lane `i`, zeros above (255 is out of range: `tbl` gives 0).
const U7_LOW: [u8; 16] = [0, 1, 255, 255, 0, 1, 255, 255, 1, 2, 255, 255, 2, 3, 255, 255];
/// The same for values 4..8 (value 7 lies in byte 6 alone: the group has no byte 7).
const U7_HIGH: [u8; 16] = [3, 4, 255, 255, 4, 5, 255, 255, 5, 6, 255, 255, 6, 255, 255, 255];
/// Per-lane right shifts `7i % 8` (as negative `ushl` amounts) of values 0..4 and 4..8.
const U7_SHIFTS_LOW: [i32; 4] = [0, -7, -6, -5];
const U7_SHIFTS_HIGH: [i32; 4] = [-4, -3, -2, -1];

pub(super) fn u7_row(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    if accumulate {
        u7_steps::<true>(src, zero_point, row_scale, dst)
    } else {
        u7_steps::<false>(src, zero_point, row_scale, dst)
    }
    let done = dst.len() / STEP * STEP;
    let done_bytes = done / STEP * U7_GROUP_BYTES;
    scalar::u7_row(&src[done_bytes..], zero_point, row_scale, &mut dst[done..], accumulate);
}

/// Full 8-value steps only (one 7-byte group each).
fn u7_steps<const ACCUMULATE: bool>(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), super::u7_row_bytes(dst.len()));
    // `zip` stops at the shorter: a trailing group without 8 values is left alone.
    for (s, d) in src.chunks_exact(U7_GROUP_BYTES).zip(dst.chunks_exact_mut(STEP)) {
        // SAFETY: NEON is baseline on aarch64; the constant tables are 16 and 4 elements, and
        // each output chunk holds exactly 8 values.
        unsafe {
            let zp = vdupq_n_s32(zero_point);
            let scale = vdupq_n_f32(row_scale);
            let seven_bits = vdupq_n_u32(127);
            let bytes = vreinterpretq_u8_u64(vdupq_n_u64(u7::group_word(s)));
            let halves = [(U7_LOW, U7_SHIFTS_LOW), (U7_HIGH, U7_SHIFTS_HIGH)];
            for (half, (indices, shifts)) in halves.iter().enumerate() {
                let words = vreinterpretq_u32_u8(vqtbl1q_u8(bytes, vld1q_u8(indices.as_ptr())));
                let q = vandq_u32(vshlq_u32(words, vld1q_s32(shifts.as_ptr())), seven_bits);
                let centred = vsubq_s32(vreinterpretq_s32_u32(q), zp);
                put::<ACCUMULATE>(d.as_mut_ptr().add(4 * half), vmulq_f32(vcvtq_f32_s32(centred), scale));
            }
        }
    }
}

pub(super) fn f16_row(src: &[f16], multiplier: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    if accumulate {
        f16_steps::<true>(src, multiplier, dst)
    } else {
        f16_steps::<false>(src, multiplier, dst)
    }
    let done = src.len() / STEP * STEP;
    scalar::f16_row(&src[done..], multiplier, &mut dst[done..], accumulate);
}

/// Full 8-value steps only.
fn f16_steps<const ACCUMULATE: bool>(src: &[f16], multiplier: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    for (s, d) in src.chunks_exact(STEP).zip(dst.chunks_exact_mut(STEP)) {
        // SAFETY: NEON is baseline on aarch64; each chunk holds exactly 8 values and `f16`
        // is a transparent 16-bit value. `fcvtl`/`fcvtl2` only read and write registers.
        unsafe {
            let m = vdupq_n_f32(multiplier);
            let h = vld1q_u16(s.as_ptr().cast::<u16>());
            let lo: float32x4_t;
            let hi: float32x4_t;
            asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags),
            );
            put::<ACCUMULATE>(d.as_mut_ptr(), vmulq_f32(lo, m));
            put::<ACCUMULATE>(d.as_mut_ptr().add(4), vmulq_f32(hi, m));
        }
    }
}

pub(super) fn f32_row(src: &[f32], multiplier: f32, dst: &mut [f32], accumulate: bool) {
    assert_eq!(src.len(), dst.len());
    if accumulate {
        f32_steps::<true>(src, multiplier, dst)
    } else {
        f32_steps::<false>(src, multiplier, dst)
    }
    let done = src.len() / STEP * STEP;
    scalar::f32_row(&src[done..], multiplier, &mut dst[done..], accumulate);
}

/// Full 8-value steps only.
fn f32_steps<const ACCUMULATE: bool>(src: &[f32], multiplier: f32, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    for (s, d) in src.chunks_exact(STEP).zip(dst.chunks_exact_mut(STEP)) {
        // SAFETY: NEON is baseline on aarch64; each chunk holds exactly 8 values.
        unsafe {
            let m = vdupq_n_f32(multiplier);
            put::<ACCUMULATE>(d.as_mut_ptr(), vmulq_f32(vld1q_f32(s.as_ptr()), m));
            put::<ACCUMULATE>(d.as_mut_ptr().add(4), vmulq_f32(vld1q_f32(s.as_ptr().add(4)), m));
        }
    }
}
