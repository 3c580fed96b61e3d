//! TFLite's builtin float kernels, reproduced operation for operation, for BERT models
//! imported with `octet convert --tflite-exact` (config flag `tflite_exact`).
//!
//! An int8 TFLite encoder quantizes every activation row on the fly. One float that differs
//! from the interpreter's by one ulp can move a value across a rounding boundary, the code
//! differs by one, and the difference spreads through the following layers: octet's own fast
//! kernels (fused LayerNorm, vectorized softmax and GELU) agree with LiteRT only to a mean
//! cosine of about 0.9993. These functions compute what the interpreter's builtin kernels
//! compute (measured tensor by tensor against LiteRT's preserved intermediates), in the same
//! order of float operations, never with fused multiply-adds:
//!
//! - [`lane_sum`]: the sum of TFLite's MEAN: eight running lanes over blocks of eight values,
//!   then the lanes folded in halves (4 + 4, 2 + 2, 1 + 1). The softmax denominator
//!   ([`softmax_row_sum`]) is Eigen's reduction, which also depends on the row's alignment.
//! - [`layer_norm`]: the converter's LayerNorm lowering, MEAN, SQUARED_DIFFERENCE, MEAN,
//!   ADD eps, RSQRT (as 1 / sqrt), SUB, MUL; gamma and beta stay folded in the projections.
//! - [`attention`]: BATCH_MATMUL (a running sum over the head dimension from 0), MUL by the
//!   scale, SOFTMAX (Eigen's: max, exp of the difference with Eigen's float `exp`, the row sum,
//!   times its reciprocal), BATCH_MATMUL with V (a running sum over the keys).
//! - [`gelu`]: `0.5 x * erfc(-x / sqrt 2)` with Eigen's float `erfc` (the erf form of GELU).
//!
//! They are scalar loops with rayon across rows or heads: slower than the fused kernels (the
//! int8 matmuls, most of the work, are shared), which is why the fast path stays the default.
//! Padding the interpreter computes and octet does not (a fixed-length input with a mask) only
//! adds exact zeros to these sums, so the unpadded run gives the same values once each
//! softmax row is laid out as the interpreter lays it out (the `fixed_length` of
//! [`attention`]).

use super::attention::AttentionShape;
use crate::batch::Span;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Width of the running sums in [`lane_sum`]: one AVX register of f32.
const LANES: usize = 8;

/// Sum of `x` as TFLite's reductions add it: eight running sums over blocks of eight values
/// (a short last block padded with zeros), then folded in halves.
pub fn lane_sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    for block in x.chunks(LANES) {
        for (l, &v) in lanes.iter_mut().zip(block) {
            *l += v;
        }
    }
    let quad = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    let pair = [quad[0] + quad[2], quad[1] + quad[3]];
    pair[0] + pair[1]
}

/// `(x - mean) / sqrt(var + eps)` for each row of `dim` values of `x`, in place, as the
/// converter's LayerNorm lowering computes it (gamma and beta are applied elsewhere).
pub fn layer_norm(x: &mut [f32], dim: usize, eps: f32) {
    let n = dim as f32;
    x.par_chunks_mut(dim).for_each(|row| {
        let mean = lane_sum(row) / n;
        let mut squares = [0f32; LANES];
        // The squared differences, summed as `lane_sum` would sum them, without a buffer.
        for block in row.chunks(LANES) {
            for (l, &v) in squares.iter_mut().zip(block) {
                let d = v - mean;
                *l += d * d;
            }
        }
        let quad = [
            squares[0] + squares[4],
            squares[1] + squares[5],
            squares[2] + squares[6],
            squares[3] + squares[7],
        ];
        let var = ((quad[0] + quad[2]) + (quad[1] + quad[3])) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for v in row.iter_mut() {
            *v = (*v - mean) * inv;
        }
    });
}

/// Eigen's float `exp` (the packet version TFLite's softmax and `erfc` use): a Cephes-style
/// range reduction by ln 2 in two parts and a degree-6 polynomial, scaled by 2^m. The
/// constants are Eigen's, as written there.
#[allow(clippy::excessive_precision)]
pub fn eigen_exp(x: f32) -> f32 {
    if x < -104.0 {
        return 0.0;
    }
    let xc = x.min(88.723);
    let m = (xc * std::f32::consts::LOG2_E + 0.5).floor();
    let r = m * -0.693359375 + xc;
    let r = m * 2.12194440e-4 + r;
    let r2 = r * r;
    let even = r2 * 1.37449637986719608306884765625e-3 + 4.166965186595916748046875e-2;
    let odd = r2 * 8.36894474923610687255859375e-3 + 0.16666518151760101318359375;
    let even = r2 * even + 0.49999988079071044921875;
    let low = r + 1.0;
    let y = r * odd + even;
    let y = r2 * y + low;
    // 2^m * y with one rounding (exact unless the result is subnormal).
    let scaled = (f64::from(y) * 2f64.powi(m as i32)) as f32;
    scaled.max(x)
}

/// Horner's rule as Eigen's `ppolevl`: `((c0 x + c1) x + c2) ...`.
fn polevl(x: f32, coeffs: &[f32]) -> f32 {
    coeffs[1..].iter().fold(coeffs[0], |p, &c| p * x + c)
}

/// Eigen's float `erfc`: `1 + x S(x^2)` for |x| <= 1, else `exp(-x^2) P(1/x^2) / (x Q(1/x^2))`
/// (plus 2 for negative x), with exp(-x^2) corrected by the rounding error of x^2. The
/// coefficients are Eigen's, as written there.
#[allow(clippy::excessive_precision)]
pub fn eigen_erfc(x: f32) -> f32 {
    const SMALL: [f32; 6] = [
        5.61802298761904239654541015625e-04,
        -4.91381669417023658752441406250e-03,
        2.67075151205062866210937500000e-02,
        -1.12800106406211853027343750000e-01,
        3.76122951507568359375000000000e-01,
        -1.12837910652160644531250000000e+00,
    ];
    const NUM: [f32; 4] = [
        1.0208116471767425537109375e-01,
        4.2920666933059692382812500e-01,
        3.2379078865051269531250000e-01,
        5.3971976041793823242187500e-02,
    ];
    const DEN: [f32; 5] = [
        1.7251677811145782470703125e-02,
        3.9137163758277893066406250e-01,
        1.0,
        6.2173241376876831054687500e-01,
        9.5662862062454223632812500e-02,
    ];
    let x = x.clamp(-11.0, 11.0);
    let x2 = x * x;
    if x2 <= 1.0 {
        return x * polevl(x2, &SMALL) + 1.0;
    }
    // The low part of x * x (exact in f64: a product of two f32 has 48 significant bits).
    let x2_lo = (f64::from(x) * f64::from(x) - f64::from(x2)) as f32;
    let e = eigen_exp(-x2);
    let z = e - e * x2_lo;
    let q2 = 1.0 / x2;
    let r = polevl(q2, &NUM) / (x * polevl(q2, &DEN));
    z * r + if x < 0.0 { 2.0 } else { 0.0 }
}

/// GELU (the erf form) in place, as TFLite's float GELU: `(0.5 x) * erfc(x * -1/sqrt 2)`.
pub fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|chunk| {
        for v in chunk {
            *v = (0.5 * *v) * eigen_erfc(*v * -std::f32::consts::FRAC_1_SQRT_2);
        }
    });
}

/// The sum of one softmax row as the interpreter's Eigen reduction adds it: `offset` is the
/// row's place in the score buffer (in values) and decides how many leading values are left
/// out of the packets to reach 16-byte alignment. Then eight running lanes over blocks of
/// eight, folded to four, plus one block of four if at least four values remain, folded in
/// halves; then the leading values and the last few, one at a time. A row too short for a
/// block is summed in order.
pub fn softmax_row_sum(x: &[f32], offset: usize) -> f32 {
    let n = x.len();
    let start = ((4 - offset % 4) % 4).min(n);
    let full = (n - start) / LANES * LANES;
    let mut end = start + full;
    if full == 0 && n - end < 4 {
        return x.iter().skip(1).fold(x.first().copied().unwrap_or(0.0), |s, &v| s + v);
    }
    let mut quad: Option<[f32; 4]> = None;
    if full > 0 {
        let mut lanes = [0f32; LANES];
        lanes.copy_from_slice(&x[start..start + LANES]);
        for block in x[start + LANES..end].chunks_exact(LANES) {
            for (l, &v) in lanes.iter_mut().zip(block) {
                *l += v;
            }
        }
        quad = Some([
            lanes[0] + lanes[4],
            lanes[1] + lanes[5],
            lanes[2] + lanes[6],
            lanes[3] + lanes[7],
        ]);
    }
    if n - end >= 4 {
        let half = &x[end..end + 4];
        quad = Some(match quad {
            None => [half[0], half[1], half[2], half[3]],
            Some(q) => [q[0] + half[0], q[1] + half[1], q[2] + half[2], q[3] + half[3]],
        });
        end += 4;
    }
    let q = quad.unwrap_or([0.0; 4]);
    let mut sum = (q[0] + q[2]) + (q[1] + q[3]);
    for &v in x[..start].iter().chain(&x[end..]) {
        sum += v;
    }
    sum
}

/// Multi-head self-attention over each span of fused QKV rows (`[t, 3 h]`, heads side by side
/// in each of Q, K and V) into `out` (`[t, h]`), as TFLite's BATCH_MATMUL, MUL, SOFTMAX,
/// BATCH_MATMUL compute it. No grouped heads, window or score bias (BERT). `fixed_length`: the
/// interpreter runs every input padded to this length (masked exports), so each softmax row
/// holds that many scores, the padded ones exactly 0 after the exp; None: it runs at the
/// text's length. Either decides the rows' places in its score buffer, which its sum depends
/// on ([`softmax_row_sum`]).
pub fn attention(
    qkv: &[f32],
    spans: &[Span],
    shape: &AttentionShape,
    fixed_length: Option<usize>,
    out: &mut [f32],
) -> Result<()> {
    let (heads, hd) = (shape.heads, shape.head_dim);
    let (qkv_w, out_w) = (shape.qkv_width(), shape.out_width());
    let t = spans.iter().map(|s| s.start + s.len).max().unwrap_or(0);
    let too_long = spans.iter().any(|s| fixed_length.is_some_and(|l| s.len > l));
    if shape.kv_heads != heads || shape.window.is_some() || too_long || qkv.len() < t * qkv_w || out.len() < t * out_w {
        return Err(Error::Internal(format!(
            "exact attention: {} qkv and {} output values for {t} rows, {heads} heads of {hd}, fixed length {fixed_length:?}",
            qkv.len(),
            out.len()
        )));
    }
    // One task per (span, head); each writes its own head's columns of its own rows.
    let tasks: Vec<(Span, usize)> = spans.iter().flat_map(|s| (0..heads).map(move |h| (*s, h))).collect();
    let results: Vec<(Span, usize, Vec<f32>)> = tasks
        .par_iter()
        .map(|&(span, h)| (span, h, attend_one_head(qkv, span, h, shape, fixed_length)))
        .collect();
    for (span, h, rows) in results {
        for i in 0..span.len {
            let dst = (span.start + i) * out_w + h * hd;
            out[dst..dst + hd].copy_from_slice(&rows[i * hd..(i + 1) * hd]);
        }
    }
    Ok(())
}

/// The context rows (`[len, head_dim]`) of head `h` over one span.
fn attend_one_head(qkv: &[f32], span: Span, h: usize, shape: &AttentionShape, fixed_length: Option<usize>) -> Vec<f32> {
    let (heads, hd, w) = (shape.heads, shape.head_dim, shape.qkv_width());
    let row = |i: usize, part: usize| {
        let at = (span.start + i) * w + part * heads * hd + h * hd;
        &qkv[at..at + hd]
    };
    let n = span.len;
    let width = fixed_length.unwrap_or(n);
    // The interpreter's exp runs over its whole [heads, width, width] score buffer in blocks of
    // eight; the last few values, past the last block, go through the C library's expf.
    let total = heads * width * width;
    let vector_end = total - total % LANES;
    let mut context = vec![0f32; n * hd];
    let mut scores = vec![0f32; width];
    for i in 0..n {
        let q = row(i, 0);
        for (j, s) in scores[..n].iter_mut().enumerate() {
            let dot = q.iter().zip(row(j, 1)).fold(0f32, |acc, (&a, &b)| acc + a * b);
            *s = dot * shape.scale;
        }
        let max = scores[..n].iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let at = (h * width + i) * width;
        for (j, s) in scores[..n].iter_mut().enumerate() {
            *s = if at + j < vector_end {
                eigen_exp(*s - max)
            } else {
                (*s - max).exp()
            };
        }
        let inv = 1.0 / softmax_row_sum(&scores, at);
        for s in scores[..n].iter_mut() {
            *s *= inv;
        }
        let dst = &mut context[i * hd..(i + 1) * hd];
        for (d, c) in dst.iter_mut().enumerate() {
            *c = scores[..n]
                .iter()
                .enumerate()
                .fold(0f32, |acc, (j, &p)| acc + p * row(j, 2)[d]);
        }
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_folds_eight_lanes_in_halves() {
        let x: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let mut lanes = [0f32; 8];
        for (i, v) in x.iter().enumerate() {
            lanes[i % 8] += v;
        }
        let want = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
        assert_eq!(lane_sum(&x), want);
    }

    #[test]
    fn softmax_row_sum_follows_alignment_blocks_and_halves() {
        let x: Vec<f32> = (0..17).map(|i| 1.0 / (i as f32 + 1.0)).collect();
        // Offset 0: lanes over 0..16, then one value.
        let mut lanes = [0f32; 8];
        for (i, v) in x[..16].iter().enumerate() {
            lanes[i % 8] += v;
        }
        let q = [
            lanes[0] + lanes[4],
            lanes[1] + lanes[5],
            lanes[2] + lanes[6],
            lanes[3] + lanes[7],
        ];
        assert_eq!(softmax_row_sum(&x, 0), (q[0] + q[2]) + (q[1] + q[3]) + x[16]);
        // Offset 1: three values lead, one block of eight, a half block of four, two trailing.
        let lanes: Vec<f32> = (0..8).map(|l| x[3 + l]).collect();
        let q = [
            lanes[0] + lanes[4] + x[11],
            lanes[1] + lanes[5] + x[12],
            lanes[2] + lanes[6] + x[13],
            lanes[3] + lanes[7] + x[14],
        ];
        let want = (q[0] + q[2]) + (q[1] + q[3]) + x[0] + x[1] + x[2] + x[15] + x[16];
        assert_eq!(softmax_row_sum(&x, 1), want);
        // Too short for a block: in order.
        assert_eq!(softmax_row_sum(&x[..3], 0), x[0] + x[1] + x[2]);
        // Aligned rows of a multiple of eight: the plain lane sum.
        assert_eq!(softmax_row_sum(&x[..16], 8), lane_sum(&x[..16]));
    }

    #[test]
    fn eigen_exp_and_erfc_are_close_to_the_true_functions() {
        // Normal results (below about -87 they are subnormal and lose precision).
        for i in -1740..=400 {
            let x = i as f32 * 0.05;
            let got = f64::from(eigen_exp(x));
            let want = f64::from(x).exp();
            assert!((got - want).abs() <= want * 4e-7, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(eigen_exp(-200.0), 0.0);
        // erfc against a few known values (|error| within a few ulp).
        for (x, want) in [
            (0.0f32, 1.0f64),
            (0.5, 0.479_500_122_186_953_5),
            (-1.5, 1.966_105_146_475_310_7),
            (3.0, 2.209_049_699_858_544e-5),
        ] {
            let got = f64::from(eigen_erfc(x));
            assert!(
                (got - want).abs() <= want.abs() * 1e-6,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance() {
        let mut x: Vec<f32> = (0..384).map(|i| ((i * 37) % 101) as f32 * 0.1 - 3.0).collect();
        layer_norm(&mut x, 384, 1e-12);
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / 384.0;
        let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / 384.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "mean {mean}, var {var}");
    }
}
