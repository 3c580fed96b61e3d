//! Scalar reference f32 matrix multiply on unpacked operands: the definition and test oracle.
//!
//! Dot products are accumulated in **f64** in k order and rounded to f32 once, then the scalar
//! [`Epilogue::apply`] runs in f32. The f64 sum is (for the shapes used here) the exactly
//! rounded dot product to within f32 precision, so the error of a kernel under test is its own
//! f32 summation error, bounded by about `k · eps_f32 · Σ|a||b|`.

use super::pack::check_matrix;
use crate::{Epilogue, KernelError};

/// How the reference reads `B`.
#[derive(Clone, Copy, Debug)]
pub enum RefB<'a> {
    /// `B[k][n]` row-major with row stride `ld` (attention's V).
    Kn { data: &'a [f32], ld: usize },
    /// `W[n][k]` row-major with row stride `ld`, `B = Wᵀ` (weights, attention's K).
    Nk { data: &'a [f32], ld: usize },
}

impl RefB<'_> {
    /// `B` as `n` contiguous columns of `k` values (a copy), so every dot product reads two
    /// contiguous slices.
    fn columns(&self, k: usize, n: usize) -> Vec<f32> {
        let mut cols = Vec::with_capacity(n * k);
        for c in 0..n {
            match *self {
                RefB::Kn { data, ld } => cols.extend((0..k).map(|kk| data[kk * ld + c])),
                RefB::Nk { data, ld } => cols.extend_from_slice(&data[c * ld..c * ld + k]),
            }
        }
        cols
    }

    fn check(&self, k: usize, n: usize) -> Result<(), KernelError> {
        match *self {
            RefB::Kn { data, ld } => check_matrix("B (k x n)", data.len(), k, n, ld),
            RefB::Nk { data, ld } => check_matrix("W (n x k)", data.len(), n, k, ld),
        }
    }
}

/// `out[r][c] = epilogue(Σ_kk a[r][kk] · B[kk][c])` for `r < m`, `c < n`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    a_stride: usize,
    m: usize,
    k: usize,
    b: RefB<'_>,
    n: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    check_matrix("A", a.len(), m, k, a_stride)?;
    b.check(k, n)?;
    check_matrix("out", out.len(), m, n, out_stride)?;
    epilogue.check(n)?;
    let cols = b.columns(k, n);
    for r in 0..m {
        let a_row = &a[r * a_stride..][..k];
        for c in 0..n {
            let sum: f64 = a_row
                .iter()
                .zip(&cols[c * k..][..k])
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum();
            let o = &mut out[r * out_stride + c];
            *o = epilogue.apply(c, sum as f32, *o);
        }
    }
    Ok(())
}

/// `Σ_kk |a[r][kk]| · |B[kk][c]|` for every `r < m`, `c < n` (row-major, `m × n`): the scale of
/// the rounding error of an f32 dot product summed in any order.
pub fn abs_dots(
    a: &[f32],
    a_stride: usize,
    m: usize,
    k: usize,
    b: RefB<'_>,
    n: usize,
) -> Result<Vec<f64>, KernelError> {
    check_matrix("A", a.len(), m, k, a_stride)?;
    b.check(k, n)?;
    let cols = b.columns(k, n);
    let mut scales = Vec::with_capacity(m * n);
    for r in 0..m {
        let a_row = &a[r * a_stride..][..k];
        for c in 0..n {
            scales.push(
                a_row
                    .iter()
                    .zip(&cols[c * k..][..k])
                    .map(|(&x, &y)| (x as f64 * y as f64).abs())
                    .sum(),
            );
        }
    }
    Ok(scales)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation;

    #[test]
    fn tiny_by_hand() {
        // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]] -> [[19, 22], [43, 50]].
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let bt = [5.0, 7.0, 6.0, 8.0];
        let bias = [1.0, -100.0];
        let e = Epilogue {
            bias: Some(&bias),
            activation: Activation::Relu,
            accumulate: false,
        };
        let mut out = [0.0; 4];
        matmul(&a, 2, 2, 2, RefB::Kn { data: &b, ld: 2 }, 2, &e, &mut out, 2).unwrap();
        assert_eq!(out, [20.0, 0.0, 44.0, 0.0]);
        let mut out2 = [0.0; 4];
        matmul(&a, 2, 2, 2, RefB::Nk { data: &bt, ld: 2 }, 2, &e, &mut out2, 2).unwrap();
        assert_eq!(out, out2);
        assert!(matmul(&a, 2, 2, 2, RefB::Kn { data: &b, ld: 2 }, 2, &e, &mut out[..3], 2).is_err());
    }
}
