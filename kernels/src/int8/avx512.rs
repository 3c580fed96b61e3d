//! AVX-512 VNNI int8 kernel: `vpdpbusd` on u8 activations with column-sum correction.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so activations enter as `q + 128` (the
//! sign bit flipped at packing time, [`super::a_pack`]) and each group's i32 sum is corrected
//! by `- 128 * col_sum`. The sum is exact for every int8 weight, -128 included: products fit
//! in i32 without intermediate saturation.
//!
//! Register tile: [`MR`] = 12 rows x 2 panels (32 columns) = 24 zmm accumulators, plus two
//! zmm of weights per k-quad; activations are embedded-broadcast dword loads from the packed
//! row tile, each feeding two `vpdpbusd`. Per k-quad that is 24 `vpdpbusd` for 2 weight loads
//! and 12 broadcasts, within the load ports of one `vpdpbusd` per cycle. The whole k stays in
//! registers (no k blocking); the weight panels stream from L2 (the column blocks of the task
//! grid are sized to stay there) and the activation tile (12 x k bytes) stays in L1.
//! The epilogue (correction, scales, bias, activation, residual) runs on the accumulators.
//! A short last row tile runs 4 or 8 rows wide, and a layout with one activation scale per
//! token is a compile-time case (no separate float accumulators).

use super::centered;
use super::pack::{K_QUAD, NR};
use super::quantize::{group_factors, Q_MAX};
use super::{a_pack, Block, Int8Kernel};
use crate::activation;
use crate::Activation;
use std::arch::x86_64::*;

/// Rows per register tile: 12 x 2 accumulators + 2 weight registers leave 6 of 32 zmm for
/// the broadcast and the epilogue.
const MR: usize = 12;

/// How far ahead (in k-quads, 64 bytes each) the weight panels are prefetched into L1:
/// 8 iterations of about 12 cycles cover the L2 latency with margin.
const PREFETCH_QUADS: usize = 8;

pub(super) static KERNEL: Int8Kernel = Int8Kernel {
    name: "x86_64-u8i8-12x32-avx512vnni",
    mr: MR,
    block_rows: super::BLOCK_ROWS,
    sequential_block_rows: super::BLOCK_ROWS,
    quantize_row,
    quantize_row_centered,
    a_elem: 1,
    k_align: 1,
    pack_row: a_pack::pack_row_bytes::<MR, K_QUAD, 0x80>,
    block,
    delegate: None,
};

pub(super) fn quantize_row(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    assert!(q.len() >= x.len() && scales.len() * k_group == q.len());
    // SAFETY: this kernel is reachable only through `for_isa(Isa::Avx512)`, which checks that
    // the CPU supports AVX-512 F/BW/VL/VNNI; the lengths were checked above.
    unsafe { quantize_row_avx512(x, k_group, q, scales) }
}

fn block(b: &Block<'_>, out: &mut [&mut [f32]]) {
    // SAFETY: as in `quantize_row`; `Block` is built by `matmul_quantized`, which checked the
    // layout, the packed activations and the output rows it hands over.
    unsafe { block_avx512(b, out) }
}

/// Groups per batch of [`quantize_16_groups`]: one f32 lane of a zmm per group.
const BATCH: usize = 16;

/// # Safety
/// The CPU must support AVX-512 F and BW; `q.len() >= x.len()`, `scales.len() * k_group == q.len()`.
///
/// Small groups (16, 32, 48 or 64 values: 1 to 4 zmm) go 16 at a time through
/// [`quantize_16_groups`], which pays one transposed reduction and one vector of divisions per
/// 16 groups where [`quantize_groups_one_by_one`] pays a horizontal reduction and two scalar
/// divisions per group (wider groups amortize those). The groups left over (fewer than 16,
/// the short last one, other group sizes) go one by one. Both give the scalar bytes and scales.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row_avx512(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    let batched_groups = if matches!(k_group, 16 | 32 | 48 | 64) {
        x.len() / (BATCH * k_group) * BATCH
    } else {
        0
    };
    let batched_len = batched_groups * k_group;
    let (x_batched, x_rest) = x.split_at(batched_len);
    let (q_batched, q_rest) = q.split_at_mut(batched_len);
    let (scales_batched, scales_rest) = scales.split_at_mut(batched_groups);
    let batches = x_batched
        .chunks_exact(BATCH * k_group)
        .zip(q_batched.chunks_exact_mut(BATCH * k_group))
        .zip(scales_batched.chunks_exact_mut(BATCH));
    for ((xs, qs), ss) in batches {
        match k_group {
            16 => quantize_16_groups::<1>(xs, qs, ss),
            32 => quantize_16_groups::<2>(xs, qs, ss),
            48 => quantize_16_groups::<3>(xs, qs, ss),
            64 => quantize_16_groups::<4>(xs, qs, ss),
            _ => unreachable!("only these group sizes are batched"),
        }
    }
    // SAFETY: same target features; the rest keeps `q_rest.len() >= x_rest.len()` and
    // `scales_rest.len() * k_group == q_rest.len()` (whole groups were split off each).
    unsafe { quantize_groups_one_by_one(x_rest, k_group, q_rest, scales_rest) }
}

/// Quantizes 16 whole groups of `VECS` zmm (16 * `VECS` values) each: each group's lane-wise
/// max |x| in one zmm, [`transpose_max`] into one zmm of the 16 maxima, [`group_factors16`],
/// one store of the 16 scales, then each group's codes with its broadcast inverse scale.
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_16_groups<const VECS: usize>(x: &[f32], q: &mut [i8], scales: &mut [f32]) {
    const L: usize = 16;
    let k_group = VECS * L;
    debug_assert!(x.len() == BATCH * k_group && q.len() == x.len() && scales.len() == BATCH);
    let mut lane_max = [_mm512_setzero_ps(); BATCH];
    // Groups innermost: a short loop body, fully unrolled, so the 16 maxima stay in registers.
    for v in 0..VECS {
        for (j, m) in lane_max.iter_mut().enumerate() {
            // SAFETY: the 16 floats at (j * VECS + v) * 16 lie inside `x` (16 * VECS * 16 floats).
            let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add((j * VECS + v) * L)) };
            // max(|x|, m) returns m when x is NaN: NaN is skipped, as in the scalar form.
            *m = _mm512_max_ps(_mm512_abs_ps(xv), *m);
        }
    }
    let (inv, scale, quantizable) = group_factors16(transpose_max(lane_max));
    // SAFETY: `scales` holds 16 floats.
    unsafe { _mm512_storeu_ps(scales.as_mut_ptr(), scale) };
    let mut invs = [0f32; BATCH];
    // SAFETY: `invs` holds 16 floats.
    unsafe { _mm512_storeu_ps(invs.as_mut_ptr(), inv) };
    let groups = x.chunks_exact(k_group).zip(q.chunks_exact_mut(k_group));
    for (j, (xs, qs)) in groups.enumerate() {
        if quantizable & (1 << j) != 0 {
            quantize_codes(xs, invs[j], qs);
        } else {
            qs.fill(0);
        }
    }
}

/// Reduces 16 vectors to one whose lane j is the max over all lanes of `v[j]`, in four
/// levels of [`max_pairs`] (16 -> 8 -> 4 -> 2 -> 1 vectors, 15 steps). The lanes are
/// non-negative and never NaN, so the order of the maxima does not change the result.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_max(mut v: [__m512; 16]) -> __m512 {
    // After the level of distance d, vector i holds in the lanes with bit d of their index
    // clear the partial maxima of the group it held before, and in those with bit d set the
    // ones of vector i + n (n vectors remaining): lane j ends with group j.
    for i in 0..8 {
        v[i] = max_pairs::<8>(v[i], v[i + 8]);
    }
    for i in 0..4 {
        v[i] = max_pairs::<4>(v[i], v[i + 4]);
    }
    for i in 0..2 {
        v[i] = max_pairs::<2>(v[i], v[i + 2]);
    }
    max_pairs::<1>(v[0], v[1])
}

/// One level of [`transpose_max`] at lane distance `D` (8, 4, 2 or 1): the lanes whose index
/// has bit `D` clear get max(a[l], a[l + D]), those with it set max(b[l - D], b[l]). One
/// blend, one two-source permute and one max.
#[inline]
#[target_feature(enable = "avx512f")]
fn max_pairs<const D: i32>(a: __m512, b: __m512) -> __m512 {
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let upper = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(D));
    // The partner of a lower lane is lane l + D of `a`; of an upper lane, lane l - D of `b`
    // (permute indices 16..32 select `b`).
    let partner_lane = _mm512_mask_add_epi32(
        _mm512_add_epi32(lane, _mm512_set1_epi32(D)),
        upper,
        lane,
        _mm512_set1_epi32(16 - D),
    );
    let own = _mm512_mask_blend_ps(upper, a, b);
    _mm512_max_ps(own, _mm512_permutex2var_ps(a, partner_lane, b))
}

/// [`group_factors`] on 16 maxima at once: `(127 / maxabs, maxabs / 127, mask)` where the mask
/// marks the groups that quantize (maxabs and its inverse finite, as `is_finite`: |v| < inf,
/// false for NaN); the other lanes get scale 0. The same IEEE divisions as the scalar form.
#[inline]
#[target_feature(enable = "avx512f")]
fn group_factors16(maxabs: __m512) -> (__m512, __m512, __mmask16) {
    let q_max = _mm512_set1_ps(Q_MAX);
    let inf = _mm512_set1_ps(f32::INFINITY);
    let inv = _mm512_div_ps(q_max, maxabs);
    let finite_max = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(maxabs), inf);
    let quantizable = _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(finite_max, _mm512_abs_ps(inv), inf);
    (inv, _mm512_maskz_div_ps(quantizable, maxabs, q_max), quantizable)
}

/// # Safety
/// As [`quantize_row_avx512`].
///
/// Every group one at a time (the tests also compare the batched path's codes for NaN inputs,
/// which the scalar definition leaves unspecified, with this one). Two passes over the row:
/// every group's max |x| first (into `scales`: the groups' reductions are independent, so they
/// overlap in the pipeline instead of each waiting for the one before), then each group's
/// factors and codes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_groups_one_by_one(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    let k = x.len();
    q[k..].fill(0);
    let group = |g: usize| (g * k_group).min(k)..((g + 1) * k_group).min(k);
    for (g, maxabs) in scales.iter_mut().enumerate() {
        *maxabs = group_maxabs(&x[group(g)]);
    }
    for (g, scale) in scales.iter_mut().enumerate() {
        let range = group(g);
        let qs = &mut q[range.clone()];
        let Some((inv, s)) = group_factors(*scale) else {
            qs.fill(0);
            *scale = 0.0;
            continue;
        };
        *scale = s;
        quantize_codes(&x[range], inv, qs);
    }
}

/// max |x| over `xs` (0 when empty), NaN skipped.
#[target_feature(enable = "avx512f")]
fn group_maxabs(xs: &[f32]) -> f32 {
    const L: usize = 16;
    let tail = xs.len() % L;
    let tail_mask: __mmask16 = ((1u32 << tail) - 1) as __mmask16;
    let body = xs.len() - tail;
    // SAFETY: every load reads 16 floats inside `xs` (the tail under a mask).
    unsafe {
        // Four accumulators hide the latency of vmaxps.
        let mut m4 = [_mm512_setzero_ps(); 4];
        let wide = body / (4 * L) * (4 * L);
        for i in (0..wide).step_by(4 * L) {
            for (j, m) in m4.iter_mut().enumerate() {
                // max(|x|, m) returns m when x is NaN: NaN is skipped, as in the scalar form.
                *m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xs.as_ptr().add(i + j * L))), *m);
            }
        }
        let mut m = _mm512_max_ps(_mm512_max_ps(m4[0], m4[1]), _mm512_max_ps(m4[2], m4[3]));
        for i in (wide..body).step_by(L) {
            m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xs.as_ptr().add(i))), m);
        }
        if tail > 0 {
            m = _mm512_max_ps(
                _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask, xs.as_ptr().add(body))),
                m,
            );
        }
        _mm512_reduce_max_ps(m)
    }
}

/// Writes the codes of one group (`qs` as long as `xs`) given its inverse scale.
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_codes(xs: &[f32], inv: f32, qs: &mut [i8]) {
    const L: usize = 16;
    debug_assert_eq!(xs.len(), qs.len());
    let tail = xs.len() % L;
    let tail_mask: __mmask16 = ((1u32 << tail) - 1) as __mmask16;
    let body = xs.len() - tail;
    let vinv = _mm512_set1_ps(inv);
    let (lo_v, hi_v) = (_mm512_set1_ps(-Q_MAX), _mm512_set1_ps(Q_MAX));
    // Clamping before rounding equals rounding before clamping at the integer bounds;
    // the conversion rounds half to even (default MXCSR), as `round_ties_even`.
    // SAFETY: loads read 16 floats of `xs`, stores write 16 bytes of `qs` (tails masked).
    unsafe {
        for i in (0..body).step_by(L) {
            let v = quantize16(_mm512_loadu_ps(xs.as_ptr().add(i)), vinv, lo_v, hi_v);
            _mm_storeu_si128(qs.as_mut_ptr().add(i) as *mut __m128i, _mm512_cvtepi32_epi8(v));
        }
        if tail > 0 {
            let v = quantize16(
                _mm512_maskz_loadu_ps(tail_mask, xs.as_ptr().add(body)),
                vinv,
                lo_v,
                hi_v,
            );
            _mm512_mask_cvtepi32_storeu_epi8(qs.as_mut_ptr().add(body) as *mut _, tail_mask, v);
        }
    }
}

/// Scales, clamps and rounds 16 values to i32.
#[inline]
#[target_feature(enable = "avx512f")]
fn quantize16(v: __m512, inv: __m512, lo: __m512, hi: __m512) -> __m512i {
    _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi))
}

pub(super) fn quantize_row_centered(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    assert!(q.len() >= x.len() && scales.len() * k_group == q.len() && offsets.len() == scales.len());
    // SAFETY: as in `quantize_row`; the lengths were checked above.
    unsafe { quantize_row_centered_avx512(x, k_group, q, scales, offsets) }
}

/// # Safety
/// The CPU must support AVX-512 F and BW; lengths as [`quantize_row_centered`] checks.
///
/// The centered form of [`quantize_row_avx512`] (`centered`): groups of 16-64 values go 16 at a
/// time through [`centered_16_groups`], the rest one by one; both give the scalar bytes,
/// scales and offsets.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row_centered_avx512(
    x: &[f32],
    k_group: usize,
    q: &mut [i8],
    scales: &mut [f32],
    offsets: &mut [f32],
) {
    let batched_groups = if matches!(k_group, 16 | 32 | 48 | 64) {
        x.len() / (BATCH * k_group) * BATCH
    } else {
        0
    };
    let batched_len = batched_groups * k_group;
    let (x_batched, x_rest) = x.split_at(batched_len);
    let (q_batched, q_rest) = q.split_at_mut(batched_len);
    let (scales_batched, scales_rest) = scales.split_at_mut(batched_groups);
    let (offsets_batched, offsets_rest) = offsets.split_at_mut(batched_groups);
    let batches = x_batched
        .chunks_exact(BATCH * k_group)
        .zip(q_batched.chunks_exact_mut(BATCH * k_group))
        .zip(
            scales_batched
                .chunks_exact_mut(BATCH)
                .zip(offsets_batched.chunks_exact_mut(BATCH)),
        );
    for ((xs, qs), (ss, os)) in batches {
        match k_group {
            16 => centered_16_groups::<1>(xs, qs, ss, os),
            32 => centered_16_groups::<2>(xs, qs, ss, os),
            48 => centered_16_groups::<3>(xs, qs, ss, os),
            64 => centered_16_groups::<4>(xs, qs, ss, os),
            _ => unreachable!("only these group sizes are batched"),
        }
    }
    let k = x_rest.len();
    q_rest[k..].fill(0);
    for (g, (scale, offset)) in scales_rest.iter_mut().zip(offsets_rest.iter_mut()).enumerate() {
        let range = (g * k_group).min(k)..((g + 1) * k_group).min(k);
        let (lo, hi) = group_min_max(&x_rest[range.clone()]);
        let (lo, hi) = if lo > hi { (0.0, 0.0) } else { (lo, hi) };
        let (o, half) = centered::offset_and_half(lo, hi);
        *offset = o;
        let qs = &mut q_rest[range.clone()];
        match group_factors(half) {
            Some((inv, sc)) => {
                *scale = sc;
                quantize_codes_centered(&x_rest[range], o, inv, qs);
            }
            None => {
                *scale = 0.0;
                qs.fill(0);
            }
        }
    }
}

/// [`quantize_16_groups`] for centered groups: each group's lane-wise max and max of the
/// negated values, [`transpose_max`] on both, the 16 offsets and half ranges as in
/// [`centered::offset_and_half`], [`group_factors16`] on the half ranges, then the codes.
#[target_feature(enable = "avx512f,avx512bw")]
fn centered_16_groups<const VECS: usize>(x: &[f32], q: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    const L: usize = 16;
    let k_group = VECS * L;
    debug_assert!(x.len() == BATCH * k_group && q.len() == x.len() && scales.len() == BATCH);
    let mut lane_max = [_mm512_set1_ps(f32::NEG_INFINITY); BATCH];
    let mut lane_neg_min = [_mm512_set1_ps(f32::NEG_INFINITY); BATCH];
    let sign = _mm512_set1_ps(-0.0);
    for v in 0..VECS {
        for j in 0..BATCH {
            // SAFETY: the 16 floats at (j * VECS + v) * 16 lie inside `x`.
            let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add((j * VECS + v) * L)) };
            // max(x, m) returns m when x is NaN: NaN is skipped, as in the scalar form.
            lane_max[j] = _mm512_max_ps(xv, lane_max[j]);
            lane_neg_min[j] = _mm512_max_ps(negate(xv, sign), lane_neg_min[j]);
        }
    }
    let hi = transpose_max(lane_max);
    let lo = negate(transpose_max(lane_neg_min), sign);
    // No value (all NaN): lo = hi = 0.
    let empty = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(lo, hi);
    let (lo, hi) = (
        _mm512_mask_mov_ps(lo, empty, _mm512_setzero_ps()),
        _mm512_mask_mov_ps(hi, empty, _mm512_setzero_ps()),
    );
    let half_c = _mm512_set1_ps(0.5);
    let offset = _mm512_add_ps(_mm512_mul_ps(half_c, lo), _mm512_mul_ps(half_c, hi));
    let half = _mm512_sub_ps(_mm512_mul_ps(half_c, hi), _mm512_mul_ps(half_c, lo));
    let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(offset), _mm512_set1_ps(f32::INFINITY));
    let offset = _mm512_maskz_mov_ps(finite, offset);
    let (inv, scale, quantizable) = group_factors16(half);
    let (mut invs, mut offs) = ([0f32; BATCH], [0f32; BATCH]);
    // SAFETY: each destination holds 16 floats.
    unsafe {
        _mm512_storeu_ps(scales.as_mut_ptr(), scale);
        _mm512_storeu_ps(offsets.as_mut_ptr(), offset);
        _mm512_storeu_ps(invs.as_mut_ptr(), inv);
        _mm512_storeu_ps(offs.as_mut_ptr(), offset);
    }
    let groups = x.chunks_exact(k_group).zip(q.chunks_exact_mut(k_group));
    for (j, (xs, qs)) in groups.enumerate() {
        if quantizable & (1 << j) != 0 {
            quantize_codes_centered(xs, offs[j], invs[j], qs);
        } else {
            qs.fill(0);
        }
    }
}

/// -v (the sign bit flipped; `sign` is -0.0 in every lane).
#[inline]
#[target_feature(enable = "avx512f")]
fn negate(v: __m512, sign: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_castps_si512(sign)))
}

/// (min, max) over `xs`, NaN skipped; (inf, -inf) when there is no value.
#[target_feature(enable = "avx512f")]
fn group_min_max(xs: &[f32]) -> (f32, f32) {
    const L: usize = 16;
    let tail = xs.len() % L;
    let body = xs.len() - tail;
    let (mut lo, mut hi) = (_mm512_set1_ps(f32::INFINITY), _mm512_set1_ps(f32::NEG_INFINITY));
    // SAFETY: every load reads 16 floats inside `xs`.
    unsafe {
        for i in (0..body).step_by(L) {
            let xv = _mm512_loadu_ps(xs.as_ptr().add(i));
            // min/max(x, m) return m when x is NaN.
            lo = _mm512_min_ps(xv, lo);
            hi = _mm512_max_ps(xv, hi);
        }
    }
    xs[body..]
        .iter()
        .fold((_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi)), |(l, h), &v| {
            (l.min(v), h.max(v))
        })
}

/// Writes the codes of one centered group: `(x - offset) * inv`, clamped and rounded.
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_codes_centered(xs: &[f32], offset: f32, inv: f32, qs: &mut [i8]) {
    const L: usize = 16;
    debug_assert_eq!(xs.len(), qs.len());
    let tail = xs.len() % L;
    let tail_mask: __mmask16 = ((1u32 << tail) - 1) as __mmask16;
    let body = xs.len() - tail;
    let (voff, vinv) = (_mm512_set1_ps(offset), _mm512_set1_ps(inv));
    let (lo_v, hi_v) = (_mm512_set1_ps(-Q_MAX), _mm512_set1_ps(Q_MAX));
    // SAFETY: loads read 16 floats of `xs`, stores write 16 bytes of `qs` (tails masked).
    unsafe {
        for i in (0..body).step_by(L) {
            let d = _mm512_sub_ps(_mm512_loadu_ps(xs.as_ptr().add(i)), voff);
            let v = quantize16(d, vinv, lo_v, hi_v);
            _mm_storeu_si128(qs.as_mut_ptr().add(i) as *mut __m128i, _mm512_cvtepi32_epi8(v));
        }
        if tail > 0 {
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail_mask, xs.as_ptr().add(body)), voff);
            let v = quantize16(d, vinv, lo_v, hi_v);
            _mm512_mask_cvtepi32_storeu_epi8(qs.as_mut_ptr().add(body) as *mut _, tail_mask, v);
        }
    }
}

/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI; `b` and `out` must be consistent as
/// `matmul_quantized` builds them.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn block_avx512(b: &Block<'_>, out: &mut [&mut [f32]]) {
    let one_group = b.w.layout.groups == 1;
    for t in 0..b.rows.div_ceil(MR) {
        let a_tile = b.a_tile(b.row0 + t * MR, MR);
        let row0 = b.row0 + t * MR;
        let rows = &mut out[t * MR..(t * MR + MR).min(b.rows)];
        // SAFETY: same target features; `a_tile` is the packed tile of these rows.
        unsafe {
            match (one_group, rows.len()) {
                // A short last tile (a short text: 16 tokens are 12 + 4 rows) computes only
                // the rows it has, rounded up to 4 or 8, instead of all 12.
                (true, 0..=4) => panels::<true, 4>(b, a_tile, row0, rows),
                (true, 5..=8) => panels::<true, 8>(b, a_tile, row0, rows),
                (true, _) => panels::<true, MR>(b, a_tile, row0, rows),
                (false, 0..=4) => panels::<false, 4>(b, a_tile, row0, rows),
                (false, _) => panels::<false, GROUPED_ROWS>(b, a_tile, row0, rows),
            }
        }
    }
}

/// Rows per register tile of a grouped layout (several activation scales per row): its float
/// accumulators live beside the integer ones, and 6 x 2 of each (24 zmm) plus the weights fit
/// the 32 registers, where 12 x 2 of each would spill every group.
const GROUPED_ROWS: usize = 6;

/// Every panel of the block for one packed row tile, in register tiles of `ROWS` rows (the
/// last computed `ROWS` wide however few rows it holds).
///
/// # Safety
/// As [`tile`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn panels<const ONE_GROUP: bool, const ROWS: usize>(
    b: &Block<'_>,
    a_tile: &[u8],
    row0: usize,
    rows: &mut [&mut [f32]],
) {
    let mut p = 0;
    while p < b.panels {
        let two = b.panels - p >= 2;
        for (h, part) in rows.chunks_mut(ROWS).enumerate() {
            let off = h * ROWS;
            // SAFETY: same target features; the panel indices are in range; rows
            // `off .. off + ROWS` lie inside the packed tile of MR rows.
            unsafe {
                if two {
                    tile::<2, ONE_GROUP, ROWS>(b, a_tile, off, row0 + off, p, part)
                } else {
                    tile::<1, ONE_GROUP, ROWS>(b, a_tile, off, row0 + off, p, part)
                }
            }
        }
        p += if two { 2 } else { 1 };
    }
}

/// One register tile: rows `row0 ..` (`out.len()` of them, at most `ROWS`, computed `ROWS`
/// wide; they are rows `tile_row ..` of the packed tile) x panels `b.panel0 + p .. + NP`. `ONE_GROUP` is `layout.groups == 1` known at compile time: the
/// float accumulators are then just the one group's converted sums, so they take over the
/// integer accumulators' registers instead of living (zeroed, then spilled) beside them.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI; `a_tile` is the packed tile holding `row0` at
/// row `tile_row`, `tile_row + ROWS <= MR`; `p + NP <= b.panels`; `out[i]` covers the block's columns for row `row0 + i`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const NP: usize, const ONE_GROUP: bool, const ROWS: usize>(
    b: &Block<'_>,
    a_tile: &[u8],
    tile_row: usize,
    row0: usize,
    p: usize,
    out: &mut [&mut [f32]],
) {
    let l = b.w.layout;
    let panel = b.panel0 + p;
    let stride = l.panel_stride();
    let quads_per_group = l.k_group / K_QUAD;
    let rows = out.len();
    debug_assert!(rows <= ROWS && tile_row + ROWS <= MR && a_tile.len() == MR * l.k_pad);
    debug_assert!((panel + NP) * stride <= b.w.data.len());
    let w_base = b.w.data.as_ptr().wrapping_add(panel * stride);
    let a_base = a_tile.as_ptr().wrapping_add(tile_row * K_QUAD);

    debug_assert!(!ONE_GROUP || l.groups == 1);
    let groups = if ONE_GROUP { 1 } else { l.groups };
    let mut facc = [[_mm512_setzero_ps(); NP]; ROWS];
    // Centered rows (see `centered`; grouped layouts only) fold offset x column sum per group.
    let centered = !ONE_GROUP && b.offsets.is_some();
    for g in 0..groups {
        // The accumulators start at the group's correction, `-128 * col_sum` (exact: the
        // i32 sum is the same whichever end it starts from), so folding them is two steps.
        let mut acc = [[_mm512_setzero_si512(); NP]; ROWS];
        let mut col_sums = [_mm512_setzero_si512(); NP];
        for (j, sums_j) in col_sums.iter_mut().enumerate() {
            let sums = b.col_sums16(g, panel + j);
            // SAFETY: 16 i32 inside `sums`.
            *sums_j = unsafe { _mm512_loadu_si512(sums.as_ptr() as *const _) };
            let start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(*sums_j));
            for row in acc.iter_mut() {
                row[j] = start;
            }
        }
        for q in g * quads_per_group..(g + 1) * quads_per_group {
            // SAFETY: q < k_pad / 4, so each weight load reads 64 bytes inside panel
            // `panel + j`, and each broadcast reads 4 bytes inside the tile.
            unsafe {
                let wq = w_base.add(q * NR * K_QUAD);
                let w = [
                    _mm512_loadu_si512(wq as *const _),
                    _mm512_loadu_si512(wq.add(stride * (NP - 1)) as *const _),
                ];
                // Weights stream from L2: prefetch each panel PREFETCH_QUADS k-quads ahead
                // (a hint; addresses past the panel are harmless).
                _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(PREFETCH_QUADS * NR * K_QUAD));
                if NP == 2 {
                    _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(stride + PREFETCH_QUADS * NR * K_QUAD));
                }
                let aq = a_base.add(q * MR * K_QUAD);
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32((aq.add(i * K_QUAD) as *const i32).read_unaligned());
                    for (j, a) in acc_row.iter_mut().enumerate() {
                        *a = _mm512_dpbusd_epi32(*a, av, w[j]);
                    }
                }
            }
        }
        // Fold the group: exact i32 correction, then the float steps of the reference.
        let mut sa = [0f32; ROWS];
        for (i, s) in sa.iter_mut().enumerate() {
            *s = b.row_scale(row0 + i, g);
        }
        for j in 0..NP {
            for i in 0..ROWS {
                let sums = _mm512_cvtepi32_ps(acc[i][j]);
                facc[i][j] = if g == 0 {
                    _mm512_mul_ps(sums, _mm512_set1_ps(sa[i]))
                } else {
                    _mm512_fmadd_ps(sums, _mm512_set1_ps(sa[i]), facc[i][j])
                };
            }
        }
        if centered {
            let mut so = [0f32; ROWS];
            for (i, o) in so.iter_mut().enumerate() {
                *o = b.row_offset(row0 + i, g);
            }
            for (j, sums_j) in col_sums.iter().enumerate() {
                let col_sums_f = _mm512_cvtepi32_ps(*sums_j);
                for (f, &o) in facc.iter_mut().zip(&so) {
                    f[j] = _mm512_fmadd_ps(col_sums_f, _mm512_set1_ps(o), f[j]);
                }
            }
        }
    }

    let epi = b.epilogue;
    #[allow(clippy::needless_range_loop)] // [row][panel] register tile, unrolled.
    for j in 0..NP {
        let col0 = (panel + j) * NR;
        let valid = (l.n - col0).min(NR);
        let mask: __mmask16 = ((1u32 << valid) - 1) as __mmask16;
        // SAFETY: col_scales has n_pad entries; the bias (n entries) is read under the mask.
        let sw = unsafe { _mm512_loadu_ps(b.w.col_scales.as_ptr().add(col0)) };
        // A match, not `map`: intrinsics inside a closure would not inherit the target features.
        #[allow(clippy::manual_map)]
        let bias = match epi.bias {
            // SAFETY: as above.
            Some(bias) => Some(unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(col0)) }),
            None => None,
        };
        let local = (p + j) * NR;
        for (i, row) in out.iter_mut().enumerate() {
            debug_assert!(row.len() >= local + valid);
            let mut y = _mm512_mul_ps(facc[i][j], sw);
            if let Some(bias) = bias {
                y = _mm512_add_ps(y, bias);
            }
            y = match epi.activation {
                Activation::None => y,
                Activation::Relu => _mm512_max_ps(y, _mm512_setzero_ps()),
                // SAFETY: AVX-512F is enabled here.
                Activation::Gelu(form) => unsafe { activation::avx512::gelu(form, y) },
            };
            // SAFETY: `valid` columns from `local` lie inside the row; loads and stores are masked.
            unsafe {
                let dst = row.as_mut_ptr().add(local);
                if epi.accumulate {
                    y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), y);
                }
                _mm512_mask_storeu_ps(dst, mask, y);
            }
        }
    }
}
