//! AVX-512F attention tiles, 16 f32 lanes per register.
//!
//! - Scores: 8 query rows x 32 keys (2 registers) = 16 accumulators; per head dimension, 2
//!   loads of transposed keys and 8 broadcasts of query values feed 16 FMAs. About 19 of the
//!   32 registers. A last 16-key strip (the key count is a multiple of 16) uses one register.
//! - P V: 8 query rows x 32 output columns = 16 accumulators; per key, 2 loads of the value
//!   row and 8 broadcasts of probabilities. Columns past the last 32-wide strip use one
//!   register (16 columns), then scalar code. Where 16 rows come at once (the bf16-scores
//!   kernel's groups on AMX), 16 rows x 16 columns instead: the same FMAs per key, half the
//!   value loads per row (the value rows, read in place, stream from L2 for long inputs:
//!   EmbeddingGemma at one thread +5-7%).
//!
//! Every function here is safe and sound only because it is reached through the AVX-512
//! kernel, which `for_isa` hands out after `Isa::Avx512` was detected.

// Tile functions take each slice with its stride and extent explicitly, as the f32 GEMM
// tiles do, rather than bundling them.
#![allow(clippy::too_many_arguments)]

use std::arch::x86_64::*;

/// f32 lanes per register.
const LANES: usize = 16;
/// Query rows per tile.
const ROWS: usize = 8;
/// Query rows of the narrow P V tile (one register of columns).
const WIDE_ROWS: usize = 16;

pub(super) fn scores(
    q: &[f32],
    q_stride: usize,
    rows: usize,
    keys_t: &[f32],
    k_stride: usize,
    cols: usize,
    head_dim: usize,
    scale: f32,
    scores: &mut [f32],
    s_stride: usize,
) {
    super::assert_scores_args(q, q_stride, rows, keys_t, k_stride, cols, head_dim, scores, s_stride);
    let mut r = 0;
    while r < rows {
        let n = (rows - r).min(ROWS);
        let (qp, sp) = (q[r * q_stride..].as_ptr(), scores[r * s_stride..].as_mut_ptr());
        let mut c = 0;
        while c < cols {
            let nv = if c + 2 * LANES <= cols { 2 } else { 1 };
            // SAFETY: AVX-512F detected (module docs); the tile reads rows r..r+n of q
            // (head_dim values each), columns c..c + 16 x nv of head_dim rows of keys_t, and writes
            // those columns of n rows of scores, all inside the slices checked above (cols is
            // a multiple of 16).
            unsafe {
                let (kp, out) = (keys_t.as_ptr().add(c), sp.add(c));
                if nv == 2 {
                    scores_dispatch::<2>(n, qp, q_stride, kp, k_stride, head_dim, scale, out, s_stride);
                } else {
                    scores_dispatch::<1>(n, qp, q_stride, kp, k_stride, head_dim, scale, out, s_stride);
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
#[target_feature(enable = "avx512f")]
unsafe fn scores_dispatch<const NV: usize>(
    n: usize,
    q: *const f32,
    q_stride: usize,
    kt: *const f32,
    k_stride: usize,
    head_dim: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        match n {
            8 => scores_tile::<8, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            7 => scores_tile::<7, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            6 => scores_tile::<6, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            5 => scores_tile::<5, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            4 => scores_tile::<4, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            3 => scores_tile::<3, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            2 => scores_tile::<2, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
            _ => scores_tile::<1, NV>(q, q_stride, kt, k_stride, head_dim, scale, s, s_stride),
        }
    }
}

/// R query rows x NV x 16 keys of scores.
///
/// # Safety
/// AVX-512F must be available; `q` must hold R rows of `head_dim` values `q_stride` apart,
/// `kt` `head_dim` rows of NV x 16 values `k_stride` apart, `s` R rows of NV x 16 values.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn scores_tile<const R: usize, const NV: usize>(
    q: *const f32,
    q_stride: usize,
    kt: *const f32,
    k_stride: usize,
    head_dim: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    // SAFETY: every offset stays inside the regions the caller guarantees.
    unsafe {
        for d in 0..head_dim {
            let mut k = [_mm512_setzero_ps(); NV];
            for (x, k) in k.iter_mut().enumerate() {
                *k = _mm512_loadu_ps(kt.add(d * k_stride + x * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(r * q_stride + d));
                for (a, &kx) in acc.iter_mut().zip(&k) {
                    *a = _mm512_fmadd_ps(qv, kx, *a);
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

pub(super) fn probs_values(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    keys: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
) {
    super::assert_probs_values_args(p, p_stride, v, v_stride, keys, head_dim, out, col);
    let mut r = 0;
    while r < out.len() {
        let n = if out.len() - r >= WIDE_ROWS {
            WIDE_ROWS
        } else {
            (out.len() - r).min(ROWS)
        };
        let mut o: [*mut f32; WIDE_ROWS] = [std::ptr::null_mut(); WIDE_ROWS];
        for (i, row) in out[r..r + n].iter_mut().enumerate() {
            o[i] = row[col..].as_mut_ptr();
        }
        let pp = p[r * p_stride..].as_ptr();
        let mut d = 0;
        // SAFETY: AVX-512F detected (module docs); the tiles read keys probabilities of
        // n rows and columns d.. of `keys` value rows, and write columns d.. of the n output
        // rows, all below head_dim and inside the slices checked above.
        unsafe {
            if n == WIDE_ROWS {
                while d + LANES <= head_dim {
                    pv_tile::<WIDE_ROWS, 1>(pp, p_stride, v.as_ptr().add(d), v_stride, keys, &o, d);
                    d += LANES;
                }
            }
            while d + 2 * LANES <= head_dim {
                pv_tile_dispatch::<2>(n, pp, p_stride, v.as_ptr().add(d), v_stride, keys, &o, d);
                d += 2 * LANES;
            }
            if d + LANES <= head_dim {
                pv_tile_dispatch::<1>(n, pp, p_stride, v.as_ptr().add(d), v_stride, keys, &o, d);
                d += LANES;
            }
        }
        for (i, row) in out[r..r + n].iter_mut().enumerate() {
            for dd in d..head_dim {
                row[col + dd] = (0..keys)
                    .map(|j| p[(r + i) * p_stride + j] * v[j * v_stride + dd])
                    .sum();
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
#[target_feature(enable = "avx512f")]
unsafe fn pv_tile_dispatch<const NV: usize>(
    n: usize,
    p: *const f32,
    p_stride: usize,
    v: *const f32,
    v_stride: usize,
    keys: usize,
    o: &[*mut f32; WIDE_ROWS],
    d: usize,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        match n {
            8 => pv_tile::<8, NV>(p, p_stride, v, v_stride, keys, o, d),
            7 => pv_tile::<7, NV>(p, p_stride, v, v_stride, keys, o, d),
            6 => pv_tile::<6, NV>(p, p_stride, v, v_stride, keys, o, d),
            5 => pv_tile::<5, NV>(p, p_stride, v, v_stride, keys, o, d),
            4 => pv_tile::<4, NV>(p, p_stride, v, v_stride, keys, o, d),
            3 => pv_tile::<3, NV>(p, p_stride, v, v_stride, keys, o, d),
            2 => pv_tile::<2, NV>(p, p_stride, v, v_stride, keys, o, d),
            _ => pv_tile::<1, NV>(p, p_stride, v, v_stride, keys, o, d),
        }
    }
}

/// R query rows x NV x 16 output columns: `o[r][d..] = Σ_j p[r][j] v[j][..]`.
///
/// # Safety
/// AVX-512F must be available; `p` must hold R rows of `keys` values `p_stride` apart,
/// `v` `keys` rows of NV x 16 values `v_stride` apart, and `o[r] + d` NV x 16 writable values
/// for r < R.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pv_tile<const R: usize, const NV: usize>(
    p: *const f32,
    p_stride: usize,
    v: *const f32,
    v_stride: usize,
    keys: usize,
    o: &[*mut f32; WIDE_ROWS],
    d: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    // SAFETY: every offset stays inside the regions the caller guarantees.
    unsafe {
        for j in 0..keys {
            let mut vv = [_mm512_setzero_ps(); NV];
            for (x, vv) in vv.iter_mut().enumerate() {
                *vv = _mm512_loadu_ps(v.add(j * v_stride + x * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let pr = _mm512_set1_ps(*p.add(r * p_stride + j));
                for (a, &vx) in acc.iter_mut().zip(&vv) {
                    *a = _mm512_fmadd_ps(pr, vx, *a);
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
