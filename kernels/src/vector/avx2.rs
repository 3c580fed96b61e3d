//! AVX2 + FMA row helpers: 8 f32 lanes per register, reductions over 4 partial sums (4 x 8 =
//! 32 values per step; four independent add chains cover the 4-cycle FMA latency). The last
//! `len % 8` values of each pass are done with the scalar formulas (AVX2 has masked loads,
//! but no masked arithmetic, so a scalar tail is simpler and no slower at these lengths).
//!
//! Every public function here is safe and sound only because it is reached through the AVX2
//! kernel, which `for_isa` hands out after `Isa::Avx2` (AVX2 and FMA) was detected.

use super::scalar;
use crate::activation::{avx2 as simd, GeluForm};
use std::arch::x86_64::*;

/// f32 lanes per register.
const LANES: usize = 8;
/// Values per unrolled reduction step: 4 partial sums of one register each.
const STEP: usize = 4 * LANES;

/// Sum of the 8 lanes.
///
/// # Safety
/// AVX must be available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}

/// Maximum of the 8 lanes.
///
/// # Safety
/// AVX must be available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hmax(v: __m256) -> f32 {
    let quad = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_max_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_max_ss(pair, _mm_movehdup_ps(pair)))
}

/// Σ a·b over the whole 8-lane blocks; returns the sum and how many values it covered.
///
/// # Safety
/// AVX2 and FMA must be available; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_blocks(a: &[f32], b: &[f32]) -> (f32, usize) {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 values ending at or before n.
    unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let o = i + j * LANES;
                *acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)), *acc);
            }
            i += STEP;
        }
        while i + LANES <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += LANES;
        }
        (
            hsum(_mm256_add_ps(
                _mm256_add_ps(acc[0], acc[1]),
                _mm256_add_ps(acc[2], acc[3]),
            )),
            i,
        )
    }
}

/// Σa·b including the scalar tail.
///
/// # Safety
/// AVX2 and FMA must be available; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: same target features and precondition.
    let (sum, done) = unsafe { dot_blocks(a, b) };
    sum + scalar::dot(&a[done..], &b[done..])
}

/// Σx including the scalar tail.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
unsafe fn sum_impl(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 values ending at or before n.
    let simd_sum = unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_add_ps(_mm256_loadu_ps(p.add(i + j * LANES)), *acc);
            }
            i += STEP;
        }
        while i + LANES <= n {
            acc[0] = _mm256_add_ps(_mm256_loadu_ps(p.add(i)), acc[0]);
            i += LANES;
        }
        hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    };
    simd_sum + x[i..].iter().sum::<f32>()
}

/// Σ(x - mean)² including the scalar tail.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_sq_dev_impl(x: &[f32], mean: f32) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let m = _mm256_set1_ps(mean);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 values ending at or before n.
    let simd_sum = unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(i + j * LANES)), m);
                *acc = _mm256_fmadd_ps(d, d, *acc);
            }
            i += STEP;
        }
        while i + LANES <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m);
            acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
            i += LANES;
        }
        hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    };
    simd_sum + x[i..].iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()
}

/// max x including the scalar tail; -inf for an empty slice.
///
/// # Safety
/// AVX must be available.
#[target_feature(enable = "avx2")]
unsafe fn max_impl(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let mut acc = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
    let mut i = 0;
    // SAFETY: every load reads 8 values ending at or before n.
    let simd_max = unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_max_ps(_mm256_loadu_ps(p.add(i + j * LANES)), *acc);
            }
            i += STEP;
        }
        while i + LANES <= n {
            acc[0] = _mm256_max_ps(_mm256_loadu_ps(p.add(i)), acc[0]);
            i += LANES;
        }
        hmax(_mm256_max_ps(
            _mm256_max_ps(acc[0], acc[1]),
            _mm256_max_ps(acc[2], acc[3]),
        ))
    };
    x[i..].iter().fold(simd_max, |m, &v| m.max(v))
}

pub(super) fn layer_norm_row(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    assert!(gamma.len() == x.len() && beta.len() == x.len());
    // SAFETY: AVX2 and FMA detected (module docs); the lengths are equal.
    unsafe { layer_norm_impl(x, gamma, beta, eps) }
}

/// # Safety
/// AVX2 and FMA must be available; all three slices have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn layer_norm_impl(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    // SAFETY: same target features.
    let mean = unsafe { sum_impl(x) } / n as f32;
    // SAFETY: same target features.
    let var = unsafe { sum_sq_dev_impl(x, mean) } / n as f32;
    let rstd = 1.0 / (var + eps).sqrt();
    let (vmean, vrstd) = (_mm256_set1_ps(mean), _mm256_set1_ps(rstd));
    let blocks = n / LANES * LANES;
    for ((xs, g), b) in x
        .chunks_exact_mut(LANES)
        .zip(gamma.chunks_exact(LANES))
        .zip(beta.chunks_exact(LANES))
    {
        // SAFETY: each chunk holds exactly 8 values.
        unsafe {
            let centred = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xs.as_ptr()), vmean), vrstd);
            let y = _mm256_fmadd_ps(centred, _mm256_loadu_ps(g.as_ptr()), _mm256_loadu_ps(b.as_ptr()));
            _mm256_storeu_ps(xs.as_mut_ptr(), y);
        }
    }
    for ((v, &g), &b) in x[blocks..].iter_mut().zip(&gamma[blocks..]).zip(&beta[blocks..]) {
        *v = (*v - mean) * rstd * g + b;
    }
}

pub(super) fn rms_norm_row(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    assert_eq!(weight.len(), x.len());
    // SAFETY: AVX2 and FMA detected (module docs); the lengths are equal.
    unsafe { rms_norm_impl(x, weight, eps, one_plus_weight) }
}

/// # Safety
/// AVX2 and FMA must be available; `weight.len() == x.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn rms_norm_impl(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    let n = x.len();
    // SAFETY: same target features; same slice twice.
    let mean_square = unsafe { dot_impl(x, x) } / n as f32;
    let rstd = 1.0 / (mean_square + eps).sqrt();
    let vrstd = _mm256_set1_ps(rstd);
    let one = _mm256_set1_ps(1.0);
    let blocks = n / LANES * LANES;
    for (xs, w) in x.chunks_exact_mut(LANES).zip(weight.chunks_exact(LANES)) {
        // SAFETY: each chunk holds exactly 8 values.
        unsafe {
            let w = _mm256_loadu_ps(w.as_ptr());
            let w = if one_plus_weight { _mm256_add_ps(one, w) } else { w };
            let y = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr()), vrstd), w);
            _mm256_storeu_ps(xs.as_mut_ptr(), y);
        }
    }
    for (v, &w) in x[blocks..].iter_mut().zip(&weight[blocks..]) {
        let w = if one_plus_weight { 1.0 + w } else { w };
        *v = *v * rstd * w;
    }
}

pub(super) fn softmax_row(x: &mut [f32]) {
    // SAFETY: AVX2 and FMA detected (module docs).
    unsafe { softmax_impl(x) }
}

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_impl(x: &mut [f32]) {
    // SAFETY: same target features.
    let max = unsafe { max_impl(x) };
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let vmax = _mm256_set1_ps(max);
    let floor = _mm256_set1_ps(super::SOFTMAX_FLOOR);
    let mut acc = _mm256_setzero_ps();
    let blocks = x.len() / LANES * LANES;
    for xs in x.chunks_exact_mut(LANES) {
        // SAFETY: each chunk holds exactly 8 values; `simd::exp` needs AVX2 and FMA.
        unsafe {
            let d = _mm256_sub_ps(_mm256_loadu_ps(xs.as_ptr()), vmax);
            // Lanes at or above the floor keep e^d; the rest become 0.
            let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(d, floor);
            let e = _mm256_and_ps(keep, simd::exp_softmax(d));
            _mm256_storeu_ps(xs.as_mut_ptr(), e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    // SAFETY: same target features.
    let mut sum = unsafe { hsum(acc) };
    for v in &mut x[blocks..] {
        *v = scalar::softmax_exp(*v - max);
        sum += *v;
    }
    // SAFETY: same target features.
    unsafe { scale_impl(x, 1.0 / sum) }
}

pub(super) fn gelu(form: GeluForm, x: &mut [f32]) {
    // SAFETY: AVX2 and FMA detected (module docs).
    unsafe { gelu_impl(form, x) }
}

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_impl(form: GeluForm, x: &mut [f32]) {
    let blocks = x.len() / LANES * LANES;
    for xs in x.chunks_exact_mut(LANES) {
        // SAFETY: each chunk holds exactly 8 values; `simd::gelu` needs AVX2 and FMA.
        unsafe { _mm256_storeu_ps(xs.as_mut_ptr(), simd::gelu(form, _mm256_loadu_ps(xs.as_ptr()))) };
    }
    scalar::gelu(form, &mut x[blocks..]);
}

pub(super) fn gelu_mul(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && gate.len() == out.len());
    // SAFETY: AVX2 and FMA detected (module docs); the lengths are equal.
    unsafe { gelu_mul_impl(form, gate, up, out) }
}

/// # Safety
/// AVX2 and FMA must be available; the three lengths are equal.
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_mul_impl(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]) {
    let blocks = gate.len() / LANES * LANES;
    for i in (0..blocks).step_by(LANES) {
        // SAFETY: i + 8 <= blocks, inside all three slices; `simd::gelu` needs AVX2 and FMA.
        unsafe {
            let g = simd::gelu(form, _mm256_loadu_ps(gate.as_ptr().add(i)));
            _mm256_storeu_ps(
                out.as_mut_ptr().add(i),
                _mm256_mul_ps(g, _mm256_loadu_ps(up.as_ptr().add(i))),
            );
        }
    }
    scalar::gelu_mul(form, &gate[blocks..], &up[blocks..], &mut out[blocks..]);
}

pub(super) fn add(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: AVX2 detected (module docs); the lengths are equal.
    unsafe { add_impl(dst, src) }
}

/// # Safety
/// AVX2 must be available; `dst.len() == src.len()`.
#[target_feature(enable = "avx2")]
unsafe fn add_impl(dst: &mut [f32], src: &[f32]) {
    let blocks = dst.len() / LANES * LANES;
    for (d, s) in dst.chunks_exact_mut(LANES).zip(src.chunks_exact(LANES)) {
        // SAFETY: each chunk holds exactly 8 values.
        unsafe {
            _mm256_storeu_ps(
                d.as_mut_ptr(),
                _mm256_add_ps(_mm256_loadu_ps(d.as_ptr()), _mm256_loadu_ps(s.as_ptr())),
            )
        };
    }
    scalar::add(&mut dst[blocks..], &src[blocks..]);
}

pub(super) fn scale(x: &mut [f32], s: f32) {
    // SAFETY: AVX2 detected (module docs).
    unsafe { scale_impl(x, s) }
}

/// # Safety
/// AVX must be available.
#[target_feature(enable = "avx2")]
unsafe fn scale_impl(x: &mut [f32], s: f32) {
    let vs = _mm256_set1_ps(s);
    let blocks = x.len() / LANES * LANES;
    for xs in x.chunks_exact_mut(LANES) {
        // SAFETY: each chunk holds exactly 8 values.
        unsafe { _mm256_storeu_ps(xs.as_mut_ptr(), _mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr()), vs)) };
    }
    scalar::scale(&mut x[blocks..], s);
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: AVX2 and FMA detected (module docs); the lengths are equal.
    unsafe { dot_impl(a, b) }
}
