//! AVX-512 BF16 attention tiles: `vdpbf16ps` multiplies 16 lanes of bf16 pairs and adds both
//! products into f32 accumulators, 32 products per instruction. Layouts: [`super::bf16`].
//!
//! - Scores: 8 query rows x 32 keys (2 registers) = 16 accumulators; per pair of head
//!   dimensions, 2 loads of key pairs and 8 broadcasts of query pairs feed 16 `vdpbf16ps`.
//! - P V: 8 query rows x 32 output columns = 16 accumulators; per pair of keys, 2 loads of
//!   value pairs and 8 broadcasts of probability pairs. Columns past the last 32-wide strip
//!   use one register (16 columns), then scalar code.
//!
//! Every function here is safe and sound only because it is reached through the bf16 kernel,
//! which `bf16_for_isa` hands out after AVX-512 (F, BW, VL) and AVX-512 BF16 were detected.

// Tile functions take each slice with its stride and extent explicitly, as the f32 tiles do.
#![allow(clippy::too_many_arguments)]

use super::bf16::{dot2, to_bf16, Tiles};
use super::{assert_probs_values_args, assert_scores_args};
use std::arch::x86_64::*;

/// The tiles of this level.
pub(super) static TILES: Tiles = Tiles {
    scores,
    probs_values,
    round_pairs,
    interleave,
    softmax_pairs,
    group_rows: super::GROUP_ROWS,
    // Three `vdpbf16ps` per pair cost about what two f32 FMAs do: no split here.
    split: None,
};

/// The AVX-512 softmax's steps up to the sum ([`crate::vector::avx512::softmax_exps`]), then
/// its last step (times 1 / Σ, the same IEEE product) fused into [`round_pairs`].
pub(super) fn softmax_pairs(row: &mut [f32], dst: &mut [u32]) {
    assert!(dst.len() >= row.len().div_ceil(2));
    // SAFETY: AVX-512F detected (module docs).
    let inv = unsafe { crate::vector::avx512::softmax_exps(row) };
    // A row of -inf is zeros already and is not scaled, as the softmax leaves it.
    let inv = if inv == 0.0 { 1.0 } else { inv };
    let whole = row.len() / 32 * 32;
    // SAFETY: AVX-512 and BF16 detected (module docs); row holds `whole` values and dst
    // `whole / 2` words (checked above).
    unsafe { scale_round_pairs_simd(row.as_ptr(), whole, inv, dst.as_mut_ptr()) };
    for (w, two) in dst[whole / 2..].iter_mut().zip(row[whole..].chunks(2)) {
        let second = two.get(1).map_or(0.0, |&v| v * inv);
        *w = to_bf16(two[0] * inv) as u32 | (to_bf16(second) as u32) << 16;
    }
}

/// [`round_pairs_simd`] of `src x s` (each product rounded to f32 first).
///
/// # Safety
/// As [`round_pairs_simd`].
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn scale_round_pairs_simd(src: *const f32, whole: usize, s: f32, dst: *mut u32) {
    let vs = _mm512_set1_ps(s);
    // SAFETY: every offset stays below the caller's bounds.
    unsafe {
        for i in (0..whole).step_by(32) {
            let lo = _mm512_mul_ps(_mm512_loadu_ps(src.add(i)), vs);
            let hi = _mm512_mul_ps(_mm512_loadu_ps(src.add(i + 16)), vs);
            store_bf16(dst.add(i / 2), _mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

pub(super) fn round_pairs(src: &[f32], dst: &mut [u32]) {
    assert!(dst.len() >= src.len().div_ceil(2));
    let whole = src.len() / 32 * 32;
    // SAFETY: AVX-512 and BF16 detected (module docs); src holds `whole` values and dst
    // `whole / 2` words (checked above).
    unsafe { round_pairs_simd(src.as_ptr(), whole, dst.as_mut_ptr()) };
    for (w, two) in dst[whole / 2..].iter_mut().zip(src[whole..].chunks(2)) {
        *w = to_bf16(two[0]) as u32 | (to_bf16(two.get(1).copied().unwrap_or(0.0)) as u32) << 16;
    }
}

/// [`round_pairs`] on the first `whole` (a multiple of 32) values.
///
/// # Safety
/// AVX-512F and BF16 must be available; `src` must hold `whole` values and `dst` `whole / 2`
/// writable words.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_pairs_simd(src: *const f32, whole: usize, dst: *mut u32) {
    // SAFETY: every offset stays below the caller's bounds.
    unsafe {
        for i in (0..whole).step_by(32) {
            let lo = _mm512_loadu_ps(src.add(i));
            let hi = _mm512_loadu_ps(src.add(i + 16));
            store_bf16(dst.add(i / 2), _mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

pub(super) fn interleave(first: &[f32], second: Option<&[f32]>, dst: &mut [u32]) {
    let n = first.len();
    assert!(dst.len() >= n && second.is_none_or(|s| s.len() >= n));
    let whole = n / 16 * 16;
    // SAFETY: AVX-512 and BF16 detected (module docs); both rows hold `whole` values and dst
    // `whole` words (checked above).
    unsafe { interleave_simd(first.as_ptr(), second.map(<[f32]>::as_ptr), whole, dst.as_mut_ptr()) };
    for e in whole..n {
        let y = second.map_or(0.0, |s| s[e]);
        dst[e] = to_bf16(first[e]) as u32 | (to_bf16(y) as u32) << 16;
    }
}

/// [`interleave`] on the first `whole` (a multiple of 16) columns.
///
/// # Safety
/// AVX-512F and BF16 must be available; `first` (and `second`, if any) must hold `whole`
/// values and `dst` `whole` writable words.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn interleave_simd(first: *const f32, second: Option<*const f32>, whole: usize, dst: *mut u32) {
    // SAFETY: every offset stays below the caller's bounds.
    unsafe {
        for i in (0..whole).step_by(16) {
            let a = _mm512_cvtepu16_epi32(bf16_bits(_mm512_cvtneps_pbh(_mm512_loadu_ps(first.add(i)))));
            let words = match second {
                Some(second) => {
                    let b = bf16_bits(_mm512_cvtneps_pbh(_mm512_loadu_ps(second.add(i))));
                    _mm512_or_si512(a, _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(b)))
                }
                None => a,
            };
            _mm512_storeu_si512(dst.add(i).cast(), words);
        }
    }
}

/// Stores 32 bf16 values as 16 words.
///
/// # Safety
/// AVX-512F must be available and `dst` must point to 16 writable `u32`.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn store_bf16(dst: *mut u32, v: __m512bh) {
    // SAFETY: a reinterpretation of 64 bytes of plain bits, then a store the caller allows.
    unsafe { _mm512_storeu_si512(dst.cast(), std::mem::transmute::<__m512bh, __m512i>(v)) }
}

/// The 16 bf16 values of a half-width vector as plain 16-bit integers.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn bf16_bits(v: __m256bh) -> __m256i {
    // SAFETY: __m256bh and __m256i are both 32-byte vectors of plain bits.
    unsafe { std::mem::transmute::<__m256bh, __m256i>(v) }
}

/// f32 lanes per register.
const LANES: usize = 16;
/// Query rows per tile.
const ROWS: usize = 8;

/// 16 words of bf16 pairs from `p`, as the operand type of `vdpbf16ps`.
///
/// # Safety
/// AVX-512F must be available and `p` must point to 16 readable `u32`.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn load_pairs(p: *const u32) -> __m512bh {
    // SAFETY: 16 readable words (caller); __m512i and __m512bh are both 64-byte vectors of
    // plain bits, so reinterpreting one as the other is sound.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast())) }
}

/// One word of a bf16 pair in every lane.
///
/// # Safety
/// AVX-512F must be available.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn broadcast_pair(word: u32) -> __m512bh {
    // SAFETY: as in `load_pairs`, a reinterpretation of 64 bytes of plain bits.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(word as i32)) }
}

fn scores(
    q: &[u32],
    q_stride: usize,
    rows: usize,
    keys: &[u32],
    k_stride: usize,
    cols: usize,
    pairs: usize,
    scale: f32,
    scores: &mut [f32],
    s_stride: usize,
) {
    assert_scores_args(q, q_stride, rows, keys, k_stride, cols, pairs, scores, s_stride);
    let mut r = 0;
    while r < rows {
        let n = (rows - r).min(ROWS);
        let (qp, sp) = (q[r * q_stride..].as_ptr(), scores[r * s_stride..].as_mut_ptr());
        let mut c = 0;
        while c < cols {
            let nv = if c + 2 * LANES <= cols { 2 } else { 1 };
            // SAFETY: AVX-512 and BF16 detected (module docs); the tile reads rows r..r+n of q
            // (`pairs` words each), columns c..c + 16 x nv of `pairs` rows of keys, and writes
            // those columns of n rows of scores, all inside the slices checked above (cols is
            // a multiple of 16).
            unsafe {
                let (kp, out) = (keys.as_ptr().add(c), sp.add(c));
                if nv == 2 {
                    scores_dispatch::<2>(n, qp, q_stride, kp, k_stride, pairs, scale, out, s_stride);
                } else {
                    scores_dispatch::<1>(n, qp, q_stride, kp, k_stride, pairs, scale, out, s_stride);
                }
            }
            c += nv * LANES;
        }
        r += n;
    }
}

/// Runs the `n`-row form of [`scores_tile`].
///
/// # Safety
/// As [`scores_tile`], for `n <= ROWS` rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn scores_dispatch<const NV: usize>(
    n: usize,
    q: *const u32,
    q_stride: usize,
    kp: *const u32,
    k_stride: usize,
    pairs: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        match n {
            8 => scores_tile::<8, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            7 => scores_tile::<7, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            6 => scores_tile::<6, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            5 => scores_tile::<5, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            4 => scores_tile::<4, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            3 => scores_tile::<3, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            2 => scores_tile::<2, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
            _ => scores_tile::<1, NV>(q, q_stride, kp, k_stride, pairs, scale, s, s_stride),
        }
    }
}

/// R query rows x NV x 16 keys of scores.
///
/// # Safety
/// AVX-512F and BF16 must be available; `q` must hold R rows of `pairs` words `q_stride`
/// apart, `kp` `pairs` rows of NV x 16 words `k_stride` apart, `s` R rows of NV x 16 values.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn scores_tile<const R: usize, const NV: usize>(
    q: *const u32,
    q_stride: usize,
    kp: *const u32,
    k_stride: usize,
    pairs: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    // SAFETY: every offset stays inside the regions the caller guarantees.
    unsafe {
        for t in 0..pairs {
            let mut k = [broadcast_pair(0); NV];
            for (x, k) in k.iter_mut().enumerate() {
                *k = load_pairs(kp.add(t * k_stride + x * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = broadcast_pair(*q.add(r * q_stride + t));
                for (a, &kx) in acc.iter_mut().zip(&k) {
                    *a = _mm512_dpbf16_ps(*a, qv, kx);
                }
            }
        }
        let scale = _mm512_set1_ps(scale);
        for (r, acc) in acc.iter().enumerate() {
            for (x, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(s.add(r * s_stride + x * LANES), _mm512_mul_ps(a, scale));
            }
        }
    }
}

fn probs_values(
    p: &[u32],
    p_stride: usize,
    v: &[u32],
    v_stride: usize,
    key_pairs: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
) {
    assert_probs_values_args(p, p_stride, v, v_stride, key_pairs, head_dim, out, col);
    let mut r = 0;
    while r < out.len() {
        let n = (out.len() - r).min(ROWS);
        let mut o: [*mut f32; ROWS] = [std::ptr::null_mut(); ROWS];
        for (i, row) in out[r..r + n].iter_mut().enumerate() {
            o[i] = row[col..].as_mut_ptr();
        }
        let pp = p[r * p_stride..].as_ptr();
        let mut d = 0;
        // SAFETY: AVX-512 and BF16 detected (module docs); the tiles read `key_pairs` words of
        // n probability rows and columns d.. of `key_pairs` value rows, and write columns d..
        // of the n output rows, all below head_dim and inside the slices checked above.
        unsafe {
            while d + 2 * LANES <= head_dim {
                pv_tile_dispatch::<2>(n, pp, p_stride, v.as_ptr().add(d), v_stride, key_pairs, &o, d);
                d += 2 * LANES;
            }
            if d + LANES <= head_dim {
                pv_tile_dispatch::<1>(n, pp, p_stride, v.as_ptr().add(d), v_stride, key_pairs, &o, d);
                d += LANES;
            }
        }
        for (i, row) in out[r..r + n].iter_mut().enumerate() {
            for e in d..head_dim {
                row[col + e] =
                    (0..key_pairs).fold(0.0, |acc, t| dot2(acc, p[(r + i) * p_stride + t], v[t * v_stride + e]));
            }
        }
        r += n;
    }
}

/// Runs the `n`-row form of [`pv_tile`].
///
/// # Safety
/// As [`pv_tile`], for `n <= ROWS` rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pv_tile_dispatch<const NV: usize>(
    n: usize,
    p: *const u32,
    p_stride: usize,
    v: *const u32,
    v_stride: usize,
    key_pairs: usize,
    o: &[*mut f32; ROWS],
    d: usize,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        match n {
            8 => pv_tile::<8, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            7 => pv_tile::<7, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            6 => pv_tile::<6, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            5 => pv_tile::<5, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            4 => pv_tile::<4, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            3 => pv_tile::<3, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            2 => pv_tile::<2, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
            _ => pv_tile::<1, NV>(p, p_stride, v, v_stride, key_pairs, o, d),
        }
    }
}

/// R query rows x NV x 16 output columns: `o[r][d..] = Σ_t dot2(p[r][t], v[t][..])`.
///
/// # Safety
/// AVX-512F and BF16 must be available; `p` must hold R rows of `key_pairs` words
/// `p_stride` apart, `v` `key_pairs` rows of NV x 16 words `v_stride` apart, and `o[r] + d`
/// NV x 16 writable values for r < R.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pv_tile<const R: usize, const NV: usize>(
    p: *const u32,
    p_stride: usize,
    v: *const u32,
    v_stride: usize,
    key_pairs: usize,
    o: &[*mut f32; ROWS],
    d: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    // SAFETY: every offset stays inside the regions the caller guarantees.
    unsafe {
        for t in 0..key_pairs {
            let mut vv = [broadcast_pair(0); NV];
            for (x, vv) in vv.iter_mut().enumerate() {
                *vv = load_pairs(v.add(t * v_stride + x * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let pr = broadcast_pair(*p.add(r * p_stride + t));
                for (a, &vx) in acc.iter_mut().zip(&vv) {
                    *a = _mm512_dpbf16_ps(*a, pr, vx);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (x, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(o[r].add(d + x * LANES), a);
            }
        }
    }
}
