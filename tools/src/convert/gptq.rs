//! GPTQ rounding of int8 weights (Frantar et al. 2022, "GPTQ: Accurate Post-Training
//! Quantization for Generative Pre-trained Transformers"): the same int8 codes and per-channel
//! scales as round-to-nearest ([`int8::quantize_weights_per_channel`]), but each column's
//! rounding error is pushed onto the columns not yet rounded, weighted by how the layer's
//! inputs correlate, so that the layer's *outputs* on typical inputs move less.
//!
//! Given `H = sum_t x_t x_t^T` over calibration inputs (`calibrate`), the columns are
//! rounded in order; after column i, with `U` the upper Cholesky factor of `(H + damp I)^-1`:
//!
//! ```text
//! q_i  = round(w_i / s) (clamped to [-127, 127]);   e = (w_i - s q_i) / U[i][i]
//! w_j -= e U[i][j]   for every later column j
//! ```
//!
//! done in blocks of [`BLOCK`] columns (within a block column by column, then the rest of the
//! matrix in one product). The row scales `s` are round-to-nearest's (max |w| / 127 of each
//! output channel), so the file and the engine do not change: only which codes are chosen.
//!
//! `damp` is 1% of H's mean diagonal, as the paper's code. Inputs that never occur in the
//! calibration (a zero diagonal) keep their round-to-nearest codes and pass no error on. When
//! H cannot be factored (non-finite inputs), [`quantize`] returns `None` and the caller rounds
//! to nearest.
//!
//! On all-MiniLM-L6-v2 against sentence-transformers on the 400 Lee sentences (calibrated on
//! `tools/data/calibration-sentences.txt`): see `recipe`'s module docs.

use nalgebra::DMatrix;
use octet_kernels::int8;

/// Columns rounded one by one before the rest of the matrix is updated in one product.
const BLOCK: usize = 128;

/// Damping added to H's diagonal, as a share of its mean diagonal.
const DAMP: f64 = 0.01;

/// Largest int8 code (the symmetric range of the kernels).
const Q_MAX: f64 = 127.0;

/// GPTQ-rounds `w` ([n, k] row-major) given `h` ([k, k] row-major, sum of x x^T over the
/// calibration inputs). Returns the codes ([n, k]) and the per-channel scales, as
/// [`int8::quantize_weights_per_channel`] does, or `None` if H cannot be factored.
pub fn quantize(w: &[f32], n: usize, k: usize, h: &[f64]) -> Option<(Vec<i8>, Vec<f32>)> {
    assert_eq!(w.len(), n * k, "weight is not [n, k]");
    assert_eq!(h.len(), k * k, "H is not [k, k]");
    // Round-to-nearest gives the scales (and the codes of rows and inputs GPTQ leaves alone).
    let (nearest, scales) = int8::quantize_weights_per_channel(w, n, k);
    let upper = inverse_upper_factor(h, k)?;
    let live: Vec<bool> = (0..k).map(|i| h[i * k + i] > 0.0).collect();

    // Work on W column-major (nalgebra's order): column i holds input i's weights of every row.
    let mut work = DMatrix::<f64>::from_fn(n, k, |r, c| f64::from(w[r * k + c]));
    let mut q = nearest.clone();
    let scale: Vec<f64> = scales.iter().map(|&s| f64::from(s)).collect();
    // Rows that round-to-nearest left at zero (all-zero weights) have nothing to spread.
    let zero_row: Vec<bool> = (0..n)
        .map(|r| nearest[r * k..(r + 1) * k].iter().all(|&v| v == 0))
        .collect();
    for start in (0..k).step_by(BLOCK) {
        let end = (start + BLOCK).min(k);
        let mut errors = DMatrix::<f64>::zeros(n, end - start);
        for i in start..end {
            if !live[i] {
                continue;
            }
            let d = upper[(i, i)];
            for r in 0..n {
                if zero_row[r] {
                    continue;
                }
                let v = work[(r, i)];
                let code = (v / scale[r]).round_ties_even().clamp(-Q_MAX, Q_MAX);
                q[r * k + i] = code as i8;
                errors[(r, i - start)] = (v - code * scale[r]) / d;
            }
            // Pass the column's error on to the rest of the block (columns are contiguous).
            let error = errors.column(i - start).clone_owned();
            for j in i + 1..end {
                let u = upper[(i, j)];
                if u == 0.0 {
                    continue;
                }
                for (wv, &e) in work.column_mut(j).as_mut_slice().iter_mut().zip(error.as_slice()) {
                    *wv -= e * u;
                }
            }
        }
        if end < k {
            let rest = upper.view((start, end), (end - start, k - end));
            let mut tail = work.columns_mut(end, k - end);
            tail.gemm(-1.0, &errors, &rest, 1.0);
        }
    }
    Some((q, scales))
}

/// The upper Cholesky factor U of `(H + damp I)^-1` (so that the inverse is U^T U), with
/// never-seen inputs (zero diagonal) given a unit diagonal. `None` if the factorization fails.
///
/// With J the order reversal, J H J = C C^T (C lower) gives H = R R^T with R = J C J upper,
/// so H^-1 = (R^-1)^T R^-1 and U = R^-1 = J C^-1 J: one Cholesky factorization and one
/// triangular inverse (k^3 / 3 + k^3 / 6 multiply-adds) instead of an inverse and a second
/// factorization.
fn inverse_upper_factor(h: &[f64], k: usize) -> Option<DMatrix<f64>> {
    let mean_diag = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
    if !mean_diag.is_finite() {
        return None;
    }
    let damp = DAMP * mean_diag.max(f64::MIN_POSITIVE);
    let rev = |i: usize| k - 1 - i;
    let mut reversed = DMatrix::<f64>::from_fn(k, k, |i, j| h[rev(i) * k + rev(j)]);
    for i in 0..k {
        if reversed[(i, i)] <= 0.0 {
            // An input that is always 0 here: decouple it (its row and column are 0 already).
            reversed[(i, i)] = 1.0;
        }
        reversed[(i, i)] += damp;
    }
    let c = reversed.cholesky()?.unpack();
    let c_inv = lower_inverse(&c);
    Some(DMatrix::from_fn(k, k, |i, j| c_inv[(rev(i), rev(j))]))
}

/// The inverse of a lower-triangular matrix with a positive diagonal (lower too): column j is
/// the solution of C x = e_j, zero above row j, by column-oriented forward substitution.
fn lower_inverse(c: &DMatrix<f64>) -> DMatrix<f64> {
    let k = c.nrows();
    let mut inv = DMatrix::<f64>::zeros(k, k);
    let cs = c.as_slice();
    for (j, x) in inv.as_mut_slice().chunks_exact_mut(k).enumerate() {
        x[j] = 1.0;
        for p in j..k {
            let column = &cs[p * k..(p + 1) * k];
            let xp = x[p] / column[p];
            x[p] = xp;
            if xp != 0.0 {
                for (xi, &cp) in x[p + 1..].iter_mut().zip(&column[p + 1..]) {
                    *xi -= xp * cp;
                }
            }
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift) for test data.
    fn values(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// H = X^T X of `t` rows of `k` inputs, and the rows.
    fn gram(x: &[f32], t: usize, k: usize) -> Vec<f64> {
        let mut h = vec![0f64; k * k];
        for row in x.chunks_exact(k).take(t) {
            for i in 0..k {
                for j in 0..k {
                    h[i * k + j] += f64::from(row[i]) * f64::from(row[j]);
                }
            }
        }
        h
    }

    /// sum over the rows of x of |x (W - s q)^T|^2.
    fn output_error(w: &[f32], q: &[i8], scales: &[f32], x: &[f32], n: usize, k: usize) -> f64 {
        let mut total = 0.0;
        for row in x.chunks_exact(k) {
            for c in 0..n {
                let mut e = 0f64;
                for i in 0..k {
                    let deq = f64::from(scales[c]) * f64::from(q[c * k + i]);
                    e += f64::from(row[i]) * (f64::from(w[c * k + i]) - deq);
                }
                total += e * e;
            }
        }
        total
    }

    #[test]
    fn uncorrelated_inputs_give_round_to_nearest() {
        // H diagonal: no error is passed on, so the codes are round-to-nearest's.
        let (n, k) = (5, 300);
        let w = values(1, n * k);
        let mut h = vec![0f64; k * k];
        for i in 0..k {
            h[i * k + i] = 1.0 + i as f64;
        }
        let (q, scales) = quantize(&w, n, k, &h).unwrap();
        assert_eq!((q, scales), int8::quantize_weights_per_channel(&w, n, k));
    }

    #[test]
    fn correlated_inputs_lower_the_output_error() {
        // Inputs with a shared component (correlated columns), as a norm's outputs have.
        let (n, k, t) = (16, 160, 400);
        let w = values(2, n * k);
        let base = values(3, t * k);
        let common = values(4, t);
        let x: Vec<f32> = base
            .iter()
            .enumerate()
            .map(|(j, v)| 0.3 * v + common[j / k] * if j % k % 3 == 0 { 1.0 } else { -0.5 })
            .collect();
        let h = gram(&x, t, k);
        let (q, scales) = quantize(&w, n, k, &h).unwrap();
        let (rq, rscales) = int8::quantize_weights_per_channel(&w, n, k);
        assert_eq!(scales, rscales, "GPTQ keeps the per-channel scales");
        let gptq = output_error(&w, &q, &scales, &x, n, k);
        let nearest = output_error(&w, &rq, &rscales, &x, n, k);
        assert!(gptq < 0.7 * nearest, "GPTQ {gptq} vs round-to-nearest {nearest}");
        // And it is deterministic.
        assert_eq!(quantize(&w, n, k, &h).unwrap().0, q);
    }

    #[test]
    fn unseen_inputs_and_zero_rows_keep_their_nearest_codes() {
        let (n, k, t) = (4, 40, 100);
        let mut w = values(5, n * k);
        w[2 * k..3 * k].fill(0.0);
        let mut x = values(6, t * k);
        for row in x.chunks_exact_mut(k) {
            row[7] = 0.0;
        }
        let (q, _) = quantize(&w, n, k, &gram(&x, t, k)).unwrap();
        let (rq, _) = int8::quantize_weights_per_channel(&w, n, k);
        assert!(q[2 * k..3 * k].iter().all(|&v| v == 0), "an all-zero row stays zero");
        // Input 7 never occurs: it is decoupled in H, so it neither takes nor passes on error.
        for r in 0..n {
            assert_eq!(q[r * k + 7], rq[r * k + 7], "row {r}");
        }
        assert_ne!(q, rq, "the other inputs did pass errors on");
    }

    #[test]
    fn factor_is_the_upper_cholesky_factor_of_the_damped_inverse() {
        let (k, t) = (7, 30);
        let x = values(8, t * k);
        let h = gram(&x, t, k);
        let u = inverse_upper_factor(&h, k).unwrap();
        let mean_diag = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
        let damped = DMatrix::from_fn(k, k, |i, j| h[i * k + j] + if i == j { DAMP * mean_diag } else { 0.0 });
        let product = damped * (u.transpose() * &u);
        for i in 0..k {
            for j in 0..k {
                assert!(u[(i, j)] == 0.0 || j >= i, "U is upper");
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((product[(i, j)] - want).abs() < 1e-9, "({i}, {j}): {}", product[(i, j)]);
            }
        }
    }

    #[test]
    fn non_finite_h_is_refused() {
        let (n, k) = (2, 3);
        let w = values(7, n * k);
        let mut h = vec![0f64; k * k];
        h[0] = f64::NAN;
        assert!(quantize(&w, n, k, &h).is_none());
    }
}
