//! AVX2 + FMA attention tiles, 8 f32 lanes per register.
//!
//! - Scores: 4 query rows x 16 keys (2 registers) = 8 accumulators; per head dimension, 2
//!   loads of transposed keys and 4 broadcasts of query values feed 8 FMAs. 11 of the 16
//!   registers, leaving room for the compiler.
//! - P V: 4 query rows x 16 output columns = 8 accumulators; per key, 2 loads of the value
//!   row and 4 broadcasts of probabilities. Columns past the last 16-wide strip use one
//!   register (8 columns), then scalar code.
//!
//! Every function here is safe and sound only because it is reached through the AVX2
//! kernel, which `for_isa` hands out after `Isa::Avx2` (AVX2 and FMA) was detected.

// Tile functions take each slice with its stride and extent explicitly, as the f32 GEMM
// tiles do, rather than bundling them.
#![allow(clippy::too_many_arguments)]

use std::arch::x86_64::*;

/// f32 lanes per register.
const LANES: usize = 8;
/// Query rows per tile.
const ROWS: usize = 4;

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
        for c in (0..cols).step_by(2 * LANES) {
            // SAFETY: AVX2 and FMA detected (module docs); the tile reads rows r..r+n of q
            // (head_dim values each), columns c..c+16 of head_dim rows of keys_t, and writes
            // columns c..c+16 of n rows of scores, all inside the slices checked above
            // (cols is a multiple of 16).
            unsafe {
                let (kp, out) = (keys_t.as_ptr().add(c), sp.add(c));
                match n {
                    4 => scores_tile::<4>(qp, q_stride, kp, k_stride, head_dim, scale, out, s_stride),
                    3 => scores_tile::<3>(qp, q_stride, kp, k_stride, head_dim, scale, out, s_stride),
                    2 => scores_tile::<2>(qp, q_stride, kp, k_stride, head_dim, scale, out, s_stride),
                    _ => scores_tile::<1>(qp, q_stride, kp, k_stride, head_dim, scale, out, s_stride),
                }
            }
        }
        r += n;
    }
}

/// R query rows x 16 keys of scores.
///
/// # Safety
/// AVX2 and FMA must be available; `q` must hold R rows of `head_dim` values `q_stride`
/// apart, `kt` `head_dim` rows of 16 values `k_stride` apart, `s` R rows of 16 values.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_tile<const R: usize>(
    q: *const f32,
    q_stride: usize,
    kt: *const f32,
    k_stride: usize,
    head_dim: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    // SAFETY: every offset stays inside the regions the caller guarantees.
    unsafe {
        for d in 0..head_dim {
            let k0 = _mm256_loadu_ps(kt.add(d * k_stride));
            let k1 = _mm256_loadu_ps(kt.add(d * k_stride + LANES));
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = _mm256_broadcast_ss(&*q.add(r * q_stride + d));
                acc[0] = _mm256_fmadd_ps(qv, k0, acc[0]);
                acc[1] = _mm256_fmadd_ps(qv, k1, acc[1]);
            }
        }
        let scale = _mm256_set1_ps(scale);
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(s.add(r * s_stride), _mm256_mul_ps(acc[0], scale));
            _mm256_storeu_ps(s.add(r * s_stride + LANES), _mm256_mul_ps(acc[1], scale));
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
        let n = (out.len() - r).min(ROWS);
        let mut o: [*mut f32; ROWS] = [std::ptr::null_mut(); ROWS];
        for (i, row) in out[r..r + n].iter_mut().enumerate() {
            o[i] = row[col..].as_mut_ptr();
        }
        let pp = p[r * p_stride..].as_ptr();
        let mut d = 0;
        // SAFETY: AVX2 and FMA detected (module docs); the tiles read keys probabilities of
        // n rows and columns d.. of `keys` value rows, and write columns d.. of the n output
        // rows, all below head_dim and inside the slices checked above.
        unsafe {
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
#[target_feature(enable = "avx2,fma")]
unsafe fn pv_tile_dispatch<const NV: usize>(
    n: usize,
    p: *const f32,
    p_stride: usize,
    v: *const f32,
    v_stride: usize,
    keys: usize,
    o: &[*mut f32; ROWS],
    d: usize,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        match n {
            4 => pv_tile::<4, NV>(p, p_stride, v, v_stride, keys, o, d),
            3 => pv_tile::<3, NV>(p, p_stride, v, v_stride, keys, o, d),
            2 => pv_tile::<2, NV>(p, p_stride, v, v_stride, keys, o, d),
            _ => pv_tile::<1, NV>(p, p_stride, v, v_stride, keys, o, d),
        }
    }
}

/// R query rows x NV x 8 output columns: `o[r][d..] = Σ_j p[r][j] v[j][..]`.
///
/// # Safety
/// AVX2 and FMA must be available; `p` must hold R rows of `keys` values `p_stride` apart,
/// `v` `keys` rows of NV x 8 values `v_stride` apart, and `o[r] + d` NV x 8 writable values
/// for r < R.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pv_tile<const R: usize, const NV: usize>(
    p: *const f32,
    p_stride: usize,
    v: *const f32,
    v_stride: usize,
    keys: usize,
    o: &[*mut f32; ROWS],
    d: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    // SAFETY: every offset stays inside the regions the caller guarantees.
    unsafe {
        for j in 0..keys {
            let mut vv = [_mm256_setzero_ps(); NV];
            for (x, vv) in vv.iter_mut().enumerate() {
                *vv = _mm256_loadu_ps(v.add(j * v_stride + x * LANES));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let pr = _mm256_broadcast_ss(&*p.add(r * p_stride + j));
                for (a, &vx) in acc.iter_mut().zip(&vv) {
                    *a = _mm256_fmadd_ps(pr, vx, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (x, &a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o[r].add(d + x * LANES), a);
            }
        }
    }
}
