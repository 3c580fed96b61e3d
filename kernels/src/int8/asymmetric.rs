//! Asymmetric per-row activation quantization and the int8 product on such rows: what
//! TensorFlow Lite's hybrid (dynamic-range) FULLY_CONNECTED computes with
//! `asymmetric_quantize_inputs`, so that a layer imported from TFLite computes what the
//! interpreter computes.
//!
//! Per row of k activations (TFLite's `AsymmetricQuantizeFloats`, the zero point computed in
//! f64 where it is, the scale in f32):
//!
//! ```text
//! lo, hi = min(0, min x), max(0, max x)         (the range always holds 0)
//! scale  = (hi - lo) / 255                       (f32)
//! zp     = the zero point from the end with the smaller error, clamped to [-128, 127], rounded
//! q      = clamp(round_half_away(x * (1 / scale)) + zp, -128, 127)
//! ```
//!
//! The code is rounded before the zero point is added, as the interpreter does (found by
//! comparing its preserved tensors: rounding `zp + x / scale` differs on exact halves).
//!
//! A constant-zero row (or one with a non-finite end) gets scale 0, zero point 0 and q = 0.
//!
//! The product of row r and weight column c (scale `sw[c]`, column sum `colsum[c]`, both from
//! the packed weights) is `scale[r] x sw[c] x (sum_k q[r][k] w[c][k] - zp[r] x colsum[c])`.
//! [`matmul`] takes the integer sums from the symmetric kernels ([`super::matmul_quantized`]),
//! which need codes in [-127, 127]: a code of -128 (the low end of every row's range, often
//! many of them after GELU) is split into -127 plus -1, and a second product on the -1 codes
//! runs only when a row has one, so both sums add up exactly. The kernels run with unit column
//! scales, so they return the integer sums themselves (exact in f32 below 2^24: k x 128 x 127
//! reaches that only past k = 1032 with every product at its extreme). Then in TFLite's order:
//!
//! ```text
//! v   = f32(sum[r][c] - zp[r] x colsum[c])        (integers)
//! out = epilogue(bias[c] + v x (scale[r] x sw[c]))
//! ```
//!
//! [`reference`] is the scalar definition of the whole operation on unpacked weights and the
//! test oracle. [`for_isa`] hands out the row quantizer: every level uses the scalar one today
//! (a SIMD twin would be registered there; it is a small share of a layer's time).

use super::pack::{PackedI8, PackedI8Layout};
use super::quantize::QuantizedRows;
use super::Int8Kernel;
use crate::vector::{self, VectorKernel};
use crate::{check_len, Activation, Epilogue, Isa, KernelError};

/// The asymmetric row quantizer for one instruction-set level.
pub struct AsymmetricQuantizer {
    /// Name, e.g. `int8-asymmetric-rows-scalar`.
    pub name: &'static str,
    /// Quantizes one row: (k values, k codes) -> (scale, zero point).
    quantize_row: fn(&[f32], &mut [i8]) -> (f32, i32),
}

static SCALAR: AsymmetricQuantizer = AsymmetricQuantizer {
    name: "int8-asymmetric-rows-scalar",
    quantize_row: quantize_row_scalar,
};

/// The asymmetric row quantizer for `isa` (the scalar one on every level).
pub fn for_isa(_isa: Isa) -> &'static AsymmetricQuantizer {
    &SCALAR
}

impl AsymmetricQuantizer {
    /// Quantizes one row into `q` (same length as `x`); returns (scale, zero point).
    pub fn quantize_row(&self, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        (self.quantize_row)(x, q)
    }
}

/// Scalar row quantizer, the definition of the module docs: quantizes `x` into `q` (same
/// length) and returns (scale, zero point); a constant-zero row gets (0, 0).
pub fn quantize_row_scalar(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert_eq!(x.len(), q.len());
    let lo = x.iter().fold(0f32, |m, &v| m.min(v)) as f64;
    let hi = x.iter().fold(0f32, |m, &v| m.max(v)) as f64;
    if lo == hi || !(lo.is_finite() && hi.is_finite()) {
        q.fill(0);
        return (0.0, 0);
    }
    let (qmin, qmax) = (-128f64, 127f64);
    let scale = (hi - lo) / (qmax - qmin);
    let from_min = qmin - lo / scale;
    let from_max = qmax - hi / scale;
    let zero = if qmin.abs() + (lo / scale).abs() < qmax.abs() + (hi / scale).abs() {
        from_min
    } else {
        from_max
    };
    let zero_point = if zero <= qmin {
        -128
    } else if zero >= qmax {
        127
    } else {
        zero.round() as i32
    };
    // The scale in f32 from the f32 range; each code is the rounded x / scale plus the zero
    // point (module docs).
    let scale = (x.iter().fold(0f32, |m, &v| m.max(v)) - x.iter().fold(0f32, |m, &v| m.min(v))) / 255.0;
    let inv = 1.0f32 / scale;
    for (d, &v) in q.iter_mut().zip(x) {
        // Ties away from zero, as std::round: exact in f64 (an f32 plus 0.5 needs no rounding),
        // and a plain truncating conversion instead of a libm call per element.
        let t = (v * inv) as f64;
        let r = if t >= 0.0 { (t + 0.5) as i64 } else { (t - 0.5) as i64 };
        *d = (r + i64::from(zero_point)).clamp(-128, 127) as i8;
    }
    (scale, zero_point)
}

/// `m` rows quantized asymmetrically, in the form the symmetric kernels take.
struct AsymmetricRows {
    /// The codes clamped to [-127, 127], unit scales.
    codes: QuantizedRows,
    /// -1 where a code was -128, else 0; None when no code was.
    low: Option<QuantizedRows>,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

/// Quantizes `m` rows of `a` (row r at `a[r * a_stride..][..k]`) for weights of `layout`
/// (one k-group), on rayon's current pool.
fn quantize_rows(
    quantizer: &AsymmetricQuantizer,
    a: &[f32],
    a_stride: usize,
    m: usize,
    layout: &PackedI8Layout,
) -> Result<AsymmetricRows, KernelError> {
    use rayon::prelude::*;
    let (k, k_pad) = (layout.k, layout.k_pad);
    let mut codes = vec![0i8; m * k_pad];
    let mut scales = vec![0f32; m];
    let mut zero_points = vec![0i32; m];
    codes
        .par_chunks_mut(k_pad)
        .zip(scales.par_iter_mut().zip(zero_points.par_iter_mut()))
        .enumerate()
        .for_each(|(r, (q, (s, z)))| (*s, *z) = quantizer.quantize_row(&a[r * a_stride..][..k], &mut q[..k]));
    let low: Vec<i8> = codes.iter().map(|&c| if c == i8::MIN { -1 } else { 0 }).collect();
    let low = if low.contains(&-1) {
        Some(QuantizedRows::from_parts(layout, m, low, vec![1f32; m])?)
    } else {
        None
    };
    for c in codes.iter_mut() {
        *c = (*c).max(-127);
    }
    Ok(AsymmetricRows {
        codes: QuantizedRows::from_parts(layout, m, codes, vec![1f32; m])?,
        low,
        scales,
        zero_points,
    })
}

/// `out[r * out_stride + c]` for `r < m`, `c < n` = epilogue of the product of the f32 rows
/// `a[r * a_stride..][..k]`, quantized asymmetrically ([`AsymmetricQuantizer`]), with the
/// packed weights (one k-group: per-token scales). The integer sums come from `kernel`, a GELU
/// from `vector`'s (as the fused epilogues use). Runs on rayon's current pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    kernel: &Int8Kernel,
    quantizer: &AsymmetricQuantizer,
    vector: &VectorKernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    w: &PackedI8,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let (n, k) = (w.layout.n, w.layout.k);
    if w.layout.groups != 1 {
        return Err(KernelError::Invalid(
            "asymmetric activation rows need weights with one k-group".into(),
        ));
    }
    if m == 0 {
        return Ok(());
    }
    if a_stride < k || out_stride < n {
        return Err(KernelError::Invalid(format!(
            "row strides {a_stride} (activations) and {out_stride} (outputs) are below k={k} and n={n}"
        )));
    }
    check_len("int8 matmul activations", a.len(), (m - 1) * a_stride + k)?;
    check_len("int8 matmul outputs", out.len(), (m - 1) * out_stride + n)?;
    epilogue.check(n)?;
    let layout = PackedI8Layout::new(n, k, None)?;
    let rows = quantize_rows(quantizer, a, a_stride, m, &layout)?;
    let (col_scales, col_sums) = (w.col_scales(), w.col_sums());
    // Unit column scales: the kernels return the integer sums (module docs).
    let unit_scales = vec![1f32; w.layout.scales_len()];
    let unit = PackedI8::from_parts(w.layout, w.data(), &unit_scales, col_sums)?;
    let mut sums = vec![0f32; m * n];
    super::matmul_quantized(kernel, &rows.codes, &unit, &Epilogue::NONE, &mut sums, n)?;
    if let Some(low) = &rows.low {
        let accumulate = Epilogue {
            bias: None,
            activation: Activation::None,
            accumulate: true,
        };
        super::matmul_quantized(kernel, low, &unit, &accumulate, &mut sums, n)?;
    }
    for (r, row) in sums.chunks_exact_mut(n).enumerate() {
        let (z, s) = (i64::from(rows.zero_points[r]), rows.scales[r]);
        for (c, v) in row.iter_mut().enumerate() {
            let product = *v as i64 - z * i64::from(col_sums[c]);
            let scaled = product as f32 * (s * col_scales[c]);
            *v = epilogue.bias.map_or(scaled, |b| b[c] + scaled);
        }
    }
    for (r, row) in sums.chunks_exact(n).enumerate() {
        let dst = &mut out[r * out_stride..][..n];
        match (epilogue.activation, epilogue.accumulate) {
            (Activation::None, true) => dst.iter_mut().zip(row).for_each(|(o, v)| *o += v),
            (Activation::None, false) => dst.copy_from_slice(row),
            (Activation::Gelu(form), false) => {
                dst.copy_from_slice(row);
                vector::gelu(vector, form, dst);
            }
            (activation, accumulate) => {
                let rest = Epilogue {
                    bias: None,
                    activation,
                    accumulate,
                };
                for (c, v) in row.iter().enumerate() {
                    dst[c] = rest.apply(c, *v, dst[c]);
                }
            }
        }
    }
    Ok(())
}

/// The scalar definition of [`matmul`] on unpacked weights `w[n][k]` with scales
/// `w_scales[n]` (output stride n): each row quantized with [`quantize_row_scalar`], exact
/// integer sums, and the float steps of the module docs in [`matmul`]'s order (the -127 / -1
/// split included: its second product is added wherever any row has a -128 code), then the
/// scalar epilogue. Without a GELU, [`matmul`] matches it bit for bit on every kernel.
#[allow(clippy::too_many_arguments)]
pub fn reference(
    a: &[f32],
    m: usize,
    w: &[i8],
    w_scales: &[f32],
    n: usize,
    k: usize,
    epilogue: &Epilogue,
    out: &mut [f32],
) -> Result<(), KernelError> {
    check_len("activations", a.len(), m * k)?;
    check_len("int8 weights", w.len(), n * k)?;
    check_len("int8 column scales", w_scales.len(), n)?;
    check_len("outputs", out.len(), m * n)?;
    epilogue.check(n)?;
    let mut codes = vec![0i8; m * k];
    let mut rows = Vec::with_capacity(m);
    for (x, q) in a[..m * k].chunks_exact(k).zip(codes.chunks_exact_mut(k)) {
        rows.push(quantize_row_scalar(x, q));
    }
    let any_low = codes.contains(&i8::MIN);
    let rest = Epilogue {
        bias: None,
        ..*epilogue
    };
    for (r, &(scale, zero_point)) in rows.iter().enumerate() {
        let q = &codes[r * k..(r + 1) * k];
        for c in 0..n {
            let w_row = &w[c * k..(c + 1) * k];
            let (mut dot, mut dot_low) = (0i32, 0i32);
            for (&a, &b) in q.iter().zip(w_row) {
                dot += a.max(-127) as i32 * b as i32;
                dot_low += if a == i8::MIN { -(b as i32) } else { 0 };
            }
            let col_sum: i64 = w_row.iter().map(|&b| b as i64).sum();
            let sum = i64::from(dot) + if any_low { i64::from(dot_low) } else { 0 };
            let scaled = (sum - i64::from(zero_point) * col_sum) as f32 * (scale * w_scales[c]);
            let v = epilogue.bias.map_or(scaled, |b| b[c] + scaled);
            let o = &mut out[r * n + c];
            *o = rest.apply(c, v, *o);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::GeluForm;
    use crate::int8::{pack_weights, Int8Kernel};
    use crate::test_rng::TestRng;

    #[test]
    fn rows_follow_tflite() {
        // range [-1, 3]: scale 4/255, zero point round(-128 + 63.75) = -64 (the min end has the
        // smaller error), codes round(-64 + x * 63.75) with ties away from zero.
        let mut q = [0i8; 4];
        let (s, z) = quantize_row_scalar(&[-1.0, 0.0, 3.0, 0.5], &mut q);
        assert_eq!((s, z), (4.0f32 / 255.0, -64));
        assert_eq!(q, [-128, -64, 127, -32]);
        // All positive: the range is widened to 0, which maps to -128 exactly.
        let (s, z) = quantize_row_scalar(&[1.0, 2.0, 0.0, 0.25], &mut q);
        assert_eq!((s, z), (2.0f32 / 255.0, -128));
        assert_eq!(q, [-1, 127, -128, -96]); // 1.0 / (2 / 255) is 127.49999 in f32
                                             // The zero point is added after rounding: range 255/128 gives scale 2^-7 and zero point
                                             // -1, and 2^-8 -> round(0.5) - 1 = 0 (rounding -1 + 0.5 would give -1).
        let (s, z) = quantize_row_scalar(&[-127.0 / 128.0, 1.0, 1.0 / 256.0, 0.0], &mut q);
        assert_eq!((s, z), (1.0 / 128.0, -1));
        assert_eq!(q, [-128, 127, 0, -1]);
        // A zero row.
        assert_eq!(quantize_row_scalar(&[0.0; 4], &mut q), (0.0, 0));
        assert_eq!(q, [0; 4]);
    }

    /// Every level's quantizer gives the reference's codes, scale and zero point exactly.
    #[test]
    fn quantizers_agree_with_the_reference() {
        let mut rng = TestRng(7);
        for isa in Isa::supported() {
            let quantizer = for_isa(isa);
            for k in [1, 3, 16, 37, 384] {
                let x = rng.vec(k, 4.0);
                let (mut want, mut got) = (vec![0i8; k], vec![0i8; k]);
                assert_eq!(
                    quantizer.quantize_row(&x, &mut got),
                    quantize_row_scalar(&x, &mut want),
                    "{} k={k}",
                    quantizer.name
                );
                assert_eq!(got, want, "{} k={k}", quantizer.name);
            }
        }
    }

    fn kernels() -> Vec<&'static Int8Kernel> {
        Isa::supported().into_iter().map(crate::int8::for_isa).collect()
    }

    /// [`matmul`] on every kernel against [`reference`]: bit-exact without GELU (rows with and
    /// without -128 codes, shifted rows whose zero point is not -128, bias, residual add),
    /// within the SIMD GELU's tolerance with it.
    #[test]
    fn matmul_matches_the_reference() {
        let mut rng = TestRng(11);
        let bias: Vec<f32> = rng.vec(40, 1.0);
        let epilogues = [
            Epilogue::NONE,
            Epilogue {
                bias: Some(&bias),
                activation: Activation::None,
                accumulate: true,
            },
            Epilogue {
                bias: Some(&bias),
                activation: Activation::Relu,
                accumulate: false,
            },
            Epilogue {
                bias: Some(&bias),
                activation: Activation::Gelu(GeluForm::Erf),
                accumulate: false,
            },
        ];
        for (m, n, k) in [(1, 16, 8), (5, 40, 37), (13, 33, 64)] {
            let w: Vec<i8> = (0..n * k).map(|_| rng.i8()).collect();
            let w_scales: Vec<f32> = (0..n).map(|_| rng.unit().abs() * 0.05 + 0.001).collect();
            let packed = pack_weights(&w, n, k, &w_scales, None).unwrap();
            // Row 0 all positive (its 0 is code -128), row 1 constant zero, others shifted.
            let mut a = rng.vec(m * k, 2.0);
            for (r, row) in a.chunks_exact_mut(k).enumerate() {
                match r % 3 {
                    0 => row.iter_mut().for_each(|v| *v = v.abs()),
                    1 if r == 1 => row.fill(0.0),
                    _ => row.iter_mut().for_each(|v| *v += 0.7),
                }
            }
            for epilogue in &epilogues {
                let epilogue = Epilogue {
                    bias: epilogue.bias.map(|b| &b[..n]),
                    ..*epilogue
                };
                let init: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32 - 3.0).collect();
                let mut want = init.clone();
                reference(&a, m, &w, &w_scales, n, k, &epilogue, &mut want).unwrap();
                for kernel in kernels() {
                    let mut got = init.clone();
                    let quantizer = for_isa(Isa::Scalar);
                    let vector = crate::vector::for_isa(Isa::Scalar);
                    matmul(
                        kernel,
                        quantizer,
                        vector,
                        &a,
                        k,
                        m,
                        &packed.view(),
                        &epilogue,
                        &mut got,
                        n,
                    )
                    .unwrap();
                    let what = format!("{} m={m} n={n} k={k} {:?}", kernel.name, epilogue.activation);
                    if matches!(epilogue.activation, Activation::Gelu(_)) {
                        for (g, e) in got.iter().zip(&want) {
                            assert!((g - e).abs() <= 1e-5 * e.abs().max(1.0), "{what}: {g} vs {e}");
                        }
                    } else {
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&want), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn grouped_weights_are_refused() {
        let w = vec![1i8; 4 * 64];
        let packed = pack_weights(&w, 4, 64, &[1.0; 4], Some(32)).unwrap();
        let mut out = vec![0f32; 4];
        let err = matmul(
            crate::int8::for_isa(Isa::Scalar),
            for_isa(Isa::Scalar),
            crate::vector::for_isa(Isa::Scalar),
            &[0.5; 64],
            64,
            1,
            &packed.view(),
            &Epilogue::NONE,
            &mut out,
            4,
        );
        assert!(err.is_err());
    }
}
