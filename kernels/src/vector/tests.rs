//! Vector tests: every kernel the host supports against the scalar reference, and the scalar
//! reference against f64 arithmetic. Each tolerance says where the difference comes from.

use super::*;
use crate::activation;
use crate::test_rng::TestRng;
use proptest::prelude::*;

/// Ragged lengths around every SIMD width and unroll step, plus model widths.
const LENGTHS: [usize; 12] = [1, 2, 3, 7, 8, 15, 16, 17, 63, 384, 768, 1000];

/// Unit roundoff of f32.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// The SIMD kernels of this host (every supported level above scalar).
fn simd_kernels() -> Vec<&'static VectorKernel> {
    Isa::supported()
        .into_iter()
        .filter(|&isa| isa != Isa::Scalar)
        .map(for_isa)
        .collect()
}

/// Asserts `|got - want| <= rel * max(|want|, floor)` element by element.
fn assert_close(got: &[f32], want: &[f32], rel: f32, floor: f32, what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(floor);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: {g} vs {w} (diff {}, tol {tol})",
            (g - w).abs()
        );
    }
}

/// LayerNorm outputs are O(|gamma| + |beta|) ~ 1 here. The SIMD paths sum mean and variance
/// in a different order (partial sums) and fuse the final multiply-add: for rows of <= 1000
/// values with mean no larger than the spread, that moves mean and 1/std by a few 1e-7
/// relative (errors grow like sqrt(n) u in practice), so 1e-5 of max(|y|, 1) has wide margin.
#[test]
fn layer_norm_matches_scalar() {
    let mut rng = TestRng(1);
    for dim in LENGTHS {
        let x = rng.vec_around(3 * dim, 2.0, 0.5);
        let gamma = rng.vec_around(dim, 1.0, 1.0);
        let beta = rng.vec_around(dim, 0.5, 0.0);
        let mut want = x.clone();
        layer_norm(&SCALAR, &mut want, dim, &gamma, &beta, 1e-12).unwrap();
        for k in simd_kernels() {
            let mut got = x.clone();
            layer_norm(k, &mut got, dim, &gamma, &beta, 1e-12).unwrap();
            assert_close(&got, &want, 1e-5, 1.0, &format!("{} layer_norm dim={dim}", k.name));
        }
    }
}

/// The scalar reference against f64: sequential f32 sums of <= 1000 terms are within
/// n u of exact in the worst case (6e-5 at n = 1000); in practice far less, so 2e-5.
#[test]
fn scalar_layer_norm_and_rms_norm_match_f64() {
    let mut rng = TestRng(2);
    for dim in LENGTHS {
        let x = rng.vec_around(dim, 3.0, -0.7);
        let w = rng.vec_around(dim, 1.0, 0.0);
        let b = rng.vec_around(dim, 1.0, 0.0);
        let eps = 1e-6;
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let n = dim as f64;
        let mean = x64.iter().sum::<f64>() / n;
        let var = x64.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let ms = x64.iter().map(|v| v * v).sum::<f64>() / n;
        let mut ln = x.clone();
        layer_norm(&SCALAR, &mut ln, dim, &w, &b, eps).unwrap();
        let mut rms = x.clone();
        rms_norm(&SCALAR, &mut rms, dim, &w, eps, true).unwrap();
        for i in 0..dim {
            let want_ln = (x64[i] - mean) / (var + eps as f64).sqrt() * w[i] as f64 + b[i] as f64;
            let want_rms = x64[i] / (ms + eps as f64).sqrt() * (1.0 + w[i] as f64);
            assert!(
                (ln[i] as f64 - want_ln).abs() <= 2e-5 * want_ln.abs().max(1.0),
                "ln dim={dim} i={i}"
            );
            assert!(
                (rms[i] as f64 - want_rms).abs() <= 2e-5 * want_rms.abs().max(1.0),
                "rms dim={dim} i={i}"
            );
        }
    }
}

#[test]
fn layer_norm_of_a_constant_row_is_beta() {
    for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
        for dim in LENGTHS {
            let gamma = vec![1.5f32; dim];
            let beta: Vec<f32> = (0..dim).map(|i| i as f32 * 0.25 - 3.0).collect();
            // 3.0 sums exactly in any order, so the mean is exact and every x - mean is 0.
            let mut x = vec![3.0f32; 2 * dim];
            layer_norm(k, &mut x, dim, &gamma, &beta, 1e-5).unwrap();
            assert_eq!(&x[..dim], &beta[..], "{} dim={dim}", k.name);
            assert_eq!(&x[dim..], &beta[..], "{} dim={dim}", k.name);
            // 0.1 does not: the mean is off by at most n u 0.1 (worst case), each x - mean is
            // at most that, 1/sqrt(var + eps) <= 1/sqrt(1e-5), times gamma 1.5; plus the
            // rounding of the final add to beta.
            let mut x = vec![0.1f32; dim];
            layer_norm(k, &mut x, dim, &gamma, &beta, 1e-5).unwrap();
            let bound = 0.1 * dim as f64 * U / 1e-5f64.sqrt() * 1.5;
            for (y, b) in x.iter().zip(&beta) {
                let tol = bound + 2.0 * U * b.abs() as f64;
                assert!(((y - b).abs() as f64) <= tol, "{} dim={dim}: {y} vs {b}", k.name);
            }
        }
    }
}

/// RMSNorm: same reasoning as LayerNorm, one sum instead of two.
#[test]
fn rms_norm_matches_scalar_in_both_weight_forms() {
    let mut rng = TestRng(3);
    for dim in LENGTHS {
        let x = rng.vec_around(2 * dim, 4.0, 0.0);
        let weight = rng.vec_around(dim, 0.5, 0.0);
        for one_plus_weight in [true, false] {
            let mut want = x.clone();
            rms_norm(&SCALAR, &mut want, dim, &weight, 1e-6, one_plus_weight).unwrap();
            for k in simd_kernels() {
                let mut got = x.clone();
                rms_norm(k, &mut got, dim, &weight, 1e-6, one_plus_weight).unwrap();
                let what = format!("{} rms_norm dim={dim} 1+w={one_plus_weight}", k.name);
                assert_close(&got, &want, 1e-5, 1.0, &what);
            }
        }
    }
}

/// Softmax outputs lie in [0, 1]. The SIMD `exp` differs from the scalar one by a few ulp
/// (FMA contraction, see activation.rs) and the row sum is taken in another order, so each
/// output moves by a few 1e-7 relative; 1e-5 relative (floor 1e-30 for the tiny tail values)
/// leaves margin.
#[test]
fn softmax_matches_scalar_including_large_and_masked_values() {
    let mut rng = TestRng(4);
    for dim in LENGTHS {
        for (case, spread) in [("unit", 1.0f32), ("scores", 12.0), ("large", 1e4)] {
            let mut x = rng.vec_around(3 * dim, spread, 0.0);
            // Mask every third entry of the first two rows; the third row is all -inf.
            for (i, v) in x.iter_mut().enumerate() {
                if i >= 2 * dim || i % 3 == 1 {
                    *v = f32::NEG_INFINITY;
                }
            }
            let mut want = x.clone();
            softmax(&SCALAR, &mut want, dim).unwrap();
            check_softmax_row_properties(&x, &want, dim);
            for k in simd_kernels() {
                let mut got = x.clone();
                softmax(k, &mut got, dim).unwrap();
                assert_close(
                    &got,
                    &want,
                    1e-5,
                    1e-30,
                    &format!("{} softmax {case} dim={dim}", k.name),
                );
                check_softmax_row_properties(&x, &got, dim);
            }
        }
    }
}

/// Rows sum to 1 (or are all zero when fully masked); masked entries are exactly 0.
fn check_softmax_row_properties(input: &[f32], output: &[f32], dim: usize) {
    for (xr, yr) in input.chunks(dim).zip(output.chunks(dim)) {
        assert!(yr.iter().all(|y| y.is_finite() && (0.0..=1.0).contains(y)));
        for (x, y) in xr.iter().zip(yr) {
            if *x == f32::NEG_INFINITY {
                assert_eq!(*y, 0.0);
            }
        }
        let total: f32 = yr.iter().sum();
        if xr.iter().all(|&x| x == f32::NEG_INFINITY) {
            assert_eq!(total, 0.0);
        } else {
            // Sum of <= 1000 values each off by a few ulp, summed in f32.
            assert!((total - 1.0).abs() < 1e-4, "row sums to {total}");
        }
    }
}

#[test]
fn softmax_of_equal_large_values_is_uniform() {
    for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
        let mut x = vec![1e4f32; 17];
        softmax(k, &mut x, 17).unwrap();
        assert_close(&x, &[1.0 / 17.0; 17], 1e-6, 0.0, k.name);
        let mut x = [-1e4f32, 1e4, 0.0];
        softmax(k, &mut x, 3).unwrap();
        assert_eq!(x, [0.0, 1.0, 0.0], "{}", k.name);
    }
}

/// GELU: same formula lane by lane; the SIMD forms are within 2e-6 relative of the scalar
/// ones (the bound activation.rs tests), absolute near zero.
#[test]
fn gelu_matches_scalar_in_both_forms() {
    let mut rng = TestRng(5);
    for dim in LENGTHS {
        let x = rng.vec_around(dim, 6.0, 0.0);
        for form in [GeluForm::Erf, GeluForm::Tanh] {
            let want: Vec<f32> = x.iter().map(|&v| activation::gelu(form, v)).collect();
            for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
                let mut got = x.clone();
                gelu(k, form, &mut got);
                assert_close(&got, &want, 2e-6, 1.0, &format!("{} gelu {form:?} n={dim}", k.name));
            }
        }
    }
}

/// Gated GELU: each kernel's `gelu_mul` is its own GELU then one IEEE product, bit for bit,
/// and within the GELU tolerance of the scalar form (the product keeps relative errors).
#[test]
fn gelu_mul_is_gelu_then_product() {
    let mut rng = TestRng(7);
    for dim in LENGTHS {
        let gate = rng.vec_around(dim, 6.0, 0.0);
        let up = rng.vec_around(dim, 3.0, 0.5);
        for form in [GeluForm::Erf, GeluForm::Tanh] {
            let want: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| activation::gelu(form, g) * u)
                .collect();
            for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
                let mut own = gate.clone();
                gelu(k, form, &mut own);
                let own: Vec<f32> = own.iter().zip(&up).map(|(g, u)| g * u).collect();
                let mut got = vec![f32::NAN; dim];
                gelu_mul(k, form, &gate, &up, &mut got).unwrap();
                assert_eq!(got, own, "{} gelu_mul {form:?} n={dim}", k.name);
                assert_close(&got, &want, 2e-6, 4.0, &format!("{} gelu_mul {form:?} n={dim}", k.name));
            }
        }
    }
    let k = &SCALAR;
    assert!(gelu_mul(k, GeluForm::Tanh, &[1.0; 3], &[1.0; 2], &mut [0.0; 3]).is_err());
    assert!(gelu_mul(k, GeluForm::Tanh, &[1.0; 3], &[1.0; 3], &mut [0.0; 4]).is_err());
}

/// The fused RMSNorm forms are their kernel's norm (then add) bit for bit, and check lengths.
#[test]
fn rms_norm_into_and_add_are_the_norm_then_add() {
    let mut rng = TestRng(8);
    for dim in LENGTHS {
        let rows = 3;
        let x = rng.vec_around(rows * dim, 4.0, 0.3);
        let weight = rng.vec_around(dim, 1.0, 0.0);
        let residual = rng.vec_around(rows * dim, 2.0, 0.0);
        for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
            for plus_one in [false, true] {
                let mut normed = x.clone();
                rms_norm(k, &mut normed, dim, &weight, 1e-6, plus_one).unwrap();
                let mut want_sum = residual.clone();
                add(k, &mut want_sum, &normed).unwrap();
                let mut into = vec![f32::NAN; x.len()];
                rms_norm_into(k, &x, &mut into, dim, &weight, 1e-6, plus_one).unwrap();
                assert_eq!(into, normed, "{} rms_norm_into n={dim}", k.name);
                let (mut x2, mut sum) = (x.clone(), residual.clone());
                rms_norm_add(k, &mut x2, &mut sum, dim, &weight, 1e-6, plus_one).unwrap();
                assert_eq!(sum, want_sum, "{} rms_norm_add n={dim}", k.name);
            }
        }
    }
    let k = &SCALAR;
    assert!(rms_norm_into(k, &[1.0; 4], &mut [0.0; 3], 2, &[1.0; 2], 1e-6, true).is_err());
    assert!(rms_norm_add(k, &mut [1.0; 4], &mut [0.0; 4], 2, &[1.0; 3], 1e-6, true).is_err());
}

/// One IEEE add or multiply per element: bit-exact.
#[test]
fn add_and_scale_are_bit_exact() {
    let mut rng = TestRng(6);
    for dim in LENGTHS {
        let a = rng.vec_around(dim, 5.0, 1.0);
        let b = rng.vec_around(dim, 5.0, -1.0);
        let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let scaled: Vec<f32> = a.iter().map(|x| x * 0.37).collect();
        for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
            let mut got = a.clone();
            add(k, &mut got, &b).unwrap();
            assert_eq!(got, sum, "{} add n={dim}", k.name);
            let mut got = a.clone();
            scale(k, &mut got, 0.37);
            assert_eq!(got, scaled, "{} scale n={dim}", k.name);
        }
    }
}

/// Dot products: any two summation orders of n products are each within n u Σ|a b| of the
/// exact value (FMA only removes roundings), so they differ by at most 2 n u Σ|a b|.
#[test]
fn dot_matches_scalar_within_the_summation_bound() {
    let mut rng = TestRng(7);
    for dim in LENGTHS {
        let a = rng.vec_around(dim, 3.0, 0.2);
        let b = rng.vec_around(dim, 3.0, -0.1);
        let want = dot(&SCALAR, &a, &b);
        let abs_sum: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs() as f64).sum();
        let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        assert!((want as f64 - exact).abs() <= dim as f64 * U * abs_sum);
        for k in simd_kernels() {
            let got = dot(k, &a, &b);
            assert!(
                (got - want).abs() as f64 <= 2.0 * dim as f64 * U * abs_sum,
                "{} dot n={dim}: {got} vs {want}",
                k.name
            );
        }
        // Different lengths: the common prefix.
        assert_eq!(
            dot(&SCALAR, &a, &b[..dim / 2]),
            dot(&SCALAR, &a[..dim / 2], &b[..dim / 2])
        );
    }
}

/// L2 normalization: the norm comes from a dot product (relative difference <= 2 n u between
/// orders, halved by the square root), then one multiply per element; 1e-6 + n u relative.
#[test]
fn l2_normalize_matches_scalar_and_keeps_zero_vectors() {
    let mut rng = TestRng(8);
    for dim in LENGTHS {
        let x = rng.vec_around(dim, 2.0, 0.3);
        let mut want = x.clone();
        l2_normalize(&SCALAR, &mut want);
        let norm: f64 = want.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
            let mut got = x.clone();
            l2_normalize(k, &mut got);
            let rel = (1e-6 + dim as f64 * U) as f32;
            assert_close(&got, &want, rel, 0.0, &format!("{} l2_normalize n={dim}", k.name));
            let mut zeros = vec![0.0f32; dim];
            l2_normalize(k, &mut zeros);
            assert!(zeros.iter().all(|&v| v == 0.0), "{}", k.name);
        }
    }
}

#[test]
fn bad_lengths_are_errors() {
    for k in std::iter::once(&SCALAR).chain(simd_kernels()) {
        let mut x = vec![1.0f32; 10];
        let p4 = [1.0f32; 4];
        let p5 = [1.0f32; 5];
        assert!(matches!(
            layer_norm(k, &mut x, 4, &p4, &p4, 1e-5),
            Err(KernelError::Invalid(_))
        ));
        assert!(matches!(
            layer_norm(k, &mut x, 0, &[], &[], 1e-5),
            Err(KernelError::Invalid(_))
        ));
        assert_eq!(
            layer_norm(k, &mut x, 5, &p4, &p5, 1e-5),
            Err(KernelError::Length {
                what: "layer_norm gamma",
                expected: 5,
                got: 4
            })
        );
        assert!(matches!(
            layer_norm(k, &mut x, 5, &p5, &p4, 1e-5),
            Err(KernelError::Length { .. })
        ));
        assert!(matches!(
            rms_norm(k, &mut x, 3, &[1.0; 3], 1e-6, true),
            Err(KernelError::Invalid(_))
        ));
        assert!(matches!(
            rms_norm(k, &mut x, 5, &p4, 1e-6, true),
            Err(KernelError::Length { .. })
        ));
        assert!(matches!(softmax(k, &mut x, 3), Err(KernelError::Invalid(_))));
        assert!(matches!(softmax(k, &mut x, 0), Err(KernelError::Invalid(_))));
        assert!(matches!(add(k, &mut x, &p4), Err(KernelError::Length { .. })));
        assert!(x.iter().all(|&v| v == 1.0), "a failed call wrote");
        // Empty inputs are fine.
        layer_norm(k, &mut [], 5, &p5, &p5, 1e-5).unwrap();
        softmax(k, &mut [], 5).unwrap();
        add(k, &mut [], &[]).unwrap();
        assert_eq!(dot(k, &[], &[]), 0.0);
    }
}

#[test]
fn kernels_are_named_per_isa() {
    for isa in Isa::supported() {
        let name = for_isa(isa).name;
        if isa != Isa::Scalar {
            assert_ne!(name, SCALAR.name, "{isa:?} fell back to scalar");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random lengths and rows through the row functions, same tolerances as above.
    #[test]
    fn ragged_rows_match_scalar(dim in 1usize..200, rows in 1usize..4, seed in any::<u64>()) {
        let mut rng = TestRng(seed);
        let x = rng.vec_around(rows * dim, 3.0, 0.1);
        let p = rng.vec_around(dim, 1.0, 0.5);
        let mut ln = x.clone();
        let mut rms = x.clone();
        let mut sm = x.clone();
        layer_norm(&SCALAR, &mut ln, dim, &p, &p, 1e-5).unwrap();
        rms_norm(&SCALAR, &mut rms, dim, &p, 1e-6, false).unwrap();
        softmax(&SCALAR, &mut sm, dim).unwrap();
        for k in simd_kernels() {
            let (mut a, mut b, mut c) = (x.clone(), x.clone(), x.clone());
            layer_norm(k, &mut a, dim, &p, &p, 1e-5).unwrap();
            rms_norm(k, &mut b, dim, &p, 1e-6, false).unwrap();
            softmax(k, &mut c, dim).unwrap();
            assert_close(&a, &ln, 1e-5, 1.0, k.name);
            assert_close(&b, &rms, 1e-5, 1.0, k.name);
            assert_close(&c, &sm, 1e-5, 1e-30, k.name);
        }
    }
}
