//! AVX-512 row helpers: 16 f32 lanes per register, reductions over 4 partial sums (4 x 16 =
//! 64 values per step; four independent add chains cover the 4-cycle FMA latency), ragged
//! ends done with masked loads and stores, so there is no scalar tail.
//!
//! Every public function here is safe and sound only because it is reached through the
//! AVX512 kernel, which `for_isa` hands out after `Isa::Avx512` (which includes AVX-512F) was
//! detected.

use super::SOFTMAX_FLOOR;
use crate::activation::{avx512 as simd, GeluForm};
use std::arch::x86_64::*;

/// f32 lanes per register.
const LANES: usize = 16;
/// Values per unrolled reduction step: 4 partial sums of one register each.
const STEP: usize = 4 * LANES;

/// Mask of the lanes still inside a slice with `remaining` values left.
#[inline(always)]
fn mask_for(remaining: usize) -> u16 {
    if remaining >= LANES {
        u16::MAX
    } else {
        ((1u32 << remaining) - 1) as u16
    }
}

/// Σ a·b with masked-off lanes contributing 0.
///
/// # Safety
/// AVX-512F must be available; `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: full steps read i..i + 64 < n; masked loads read only lanes below n.
    unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let o = i + j * LANES;
                *acc = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(o)), _mm512_loadu_ps(pb.add(o)), *acc);
            }
            i += STEP;
        }
        while i < n {
            let m = mask_for(n - i);
            acc[0] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
                acc[0],
            );
            i += LANES;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// Σx.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn sum_impl(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: as in `dot_impl`.
    unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_add_ps(_mm512_loadu_ps(p.add(i + j * LANES)), *acc);
            }
            i += STEP;
        }
        while i < n {
            acc[0] = _mm512_add_ps(_mm512_maskz_loadu_ps(mask_for(n - i), p.add(i)), acc[0]);
            i += LANES;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// Σ(x - mean)², the masked-off lanes zeroed after the subtraction.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn sum_sq_dev_impl(x: &[f32], mean: f32) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let m = _mm512_set1_ps(mean);
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: as in `dot_impl`.
    unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let d = _mm512_sub_ps(_mm512_loadu_ps(p.add(i + j * LANES)), m);
                *acc = _mm512_fmadd_ps(d, d, *acc);
            }
            i += STEP;
        }
        while i < n {
            let k = mask_for(n - i);
            let d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, p.add(i)), m);
            acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
            i += LANES;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// max x, -inf for an empty slice; masked-off lanes read as -inf.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn max_impl(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut acc = [neg_inf; 4];
    let mut i = 0;
    // SAFETY: as in `dot_impl`.
    unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_max_ps(_mm512_loadu_ps(p.add(i + j * LANES)), *acc);
            }
            i += STEP;
        }
        while i < n {
            acc[0] = _mm512_max_ps(_mm512_mask_loadu_ps(neg_inf, mask_for(n - i), p.add(i)), acc[0]);
            i += LANES;
        }
    }
    _mm512_reduce_max_ps(_mm512_max_ps(
        _mm512_max_ps(acc[0], acc[1]),
        _mm512_max_ps(acc[2], acc[3]),
    ))
}

pub(super) fn layer_norm_row(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    assert!(gamma.len() == x.len() && beta.len() == x.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { layer_norm_impl(x, gamma, beta, eps) }
}

/// # Safety
/// AVX-512F must be available; all three slices have the same length.
#[target_feature(enable = "avx512f")]
unsafe fn layer_norm_impl(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    // SAFETY: same target features.
    let mean = unsafe { sum_impl(x) } / n as f32;
    // SAFETY: same target features.
    let var = unsafe { sum_sq_dev_impl(x, mean) } / n as f32;
    let rstd = _mm512_set1_ps(1.0 / (var + eps).sqrt());
    let mean = _mm512_set1_ps(mean);
    let p = x.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n in all three slices.
        unsafe {
            let centred = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), mean), rstd);
            let g = _mm512_maskz_loadu_ps(k, gamma.as_ptr().add(i));
            let b = _mm512_maskz_loadu_ps(k, beta.as_ptr().add(i));
            _mm512_mask_storeu_ps(p.add(i), k, _mm512_fmadd_ps(centred, g, b));
        }
        i += LANES;
    }
}

pub(super) fn rms_norm_row(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    assert_eq!(weight.len(), x.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { rms_norm_impl(x, weight, eps, one_plus_weight) }
}

/// # Safety
/// AVX-512F must be available; `weight.len() == x.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn rms_norm_impl(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    let n = x.len();
    // SAFETY: same target features; same slice twice.
    let mean_square = unsafe { dot_impl(x, x) } / n as f32;
    let rstd = _mm512_set1_ps(1.0 / (mean_square + eps).sqrt());
    let offset = _mm512_set1_ps(if one_plus_weight { 1.0 } else { 0.0 });
    let p = x.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n in both slices.
        unsafe {
            let w = _mm512_maskz_loadu_ps(k, weight.as_ptr().add(i));
            // Adding 0.0 leaves w unchanged (T5), adding 1.0 is Gemma's 1 + w.
            let w = if one_plus_weight { _mm512_add_ps(offset, w) } else { w };
            let y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p.add(i)), rstd), w);
            _mm512_mask_storeu_ps(p.add(i), k, y);
        }
        i += LANES;
    }
}

pub(super) fn rms_norm_into_row(src: &[f32], dst: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    assert!(weight.len() == src.len() && dst.len() == src.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { rms_norm_to_impl::<false>(src, dst, weight, eps, one_plus_weight) }
}

pub(super) fn rms_norm_add_row(x: &mut [f32], residual: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    assert!(weight.len() == x.len() && residual.len() == x.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { rms_norm_to_impl::<true>(x, residual, weight, eps, one_plus_weight) }
}

/// [`rms_norm_impl`] reading `src` and writing `dst` (`ADD`: adding into it, as [`add_impl`]
/// after the norm would), with the same IEEE steps in the same order.
///
/// # Safety
/// AVX-512F must be available; `weight`, `src` and `dst` have equal lengths.
#[target_feature(enable = "avx512f")]
unsafe fn rms_norm_to_impl<const ADD: bool>(
    src: &[f32],
    dst: &mut [f32],
    weight: &[f32],
    eps: f32,
    one_plus_weight: bool,
) {
    let n = src.len();
    // SAFETY: same target features; same slice twice.
    let mean_square = unsafe { dot_impl(src, src) } / n as f32;
    let rstd = _mm512_set1_ps(1.0 / (mean_square + eps).sqrt());
    let offset = _mm512_set1_ps(if one_plus_weight { 1.0 } else { 0.0 });
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n in all three slices.
        unsafe {
            let w = _mm512_maskz_loadu_ps(k, weight.as_ptr().add(i));
            let w = if one_plus_weight { _mm512_add_ps(offset, w) } else { w };
            let mut y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, s.add(i)), rstd), w);
            if ADD {
                y = _mm512_add_ps(_mm512_maskz_loadu_ps(k, d.add(i)), y);
            }
            _mm512_mask_storeu_ps(d.add(i), k, y);
        }
        i += LANES;
    }
}

pub(super) fn softmax_row(x: &mut [f32]) {
    // SAFETY: AVX-512F detected (module docs).
    unsafe { softmax_impl(x) }
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_impl(x: &mut [f32]) {
    // SAFETY: same target features.
    let inv = unsafe { softmax_exps(x) };
    if inv != 0.0 {
        // SAFETY: same target features.
        unsafe { scale_impl(x, inv) }
    }
}

/// The steps of [`softmax_row`] before the last: `x` becomes `e^(x - max x)` (0 below the
/// floor), and the result is `1 / Σ`, the factor the row is then scaled by. A row of -inf (or
/// an empty one) becomes zeros and gives 0. For a caller that scales as it writes the row
/// elsewhere (bf16 attention rounds the probabilities to pairs in the same pass).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn softmax_exps(x: &mut [f32]) -> f32 {
    let n = x.len();
    // SAFETY: same target features.
    let max = unsafe { max_impl(x) };
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return 0.0;
    }
    let vmax = _mm512_set1_ps(max);
    let floor = _mm512_set1_ps(SOFTMAX_FLOOR);
    let p = x.as_mut_ptr();
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n; `simd::exp` needs only AVX-512F.
        unsafe {
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), vmax);
            // Lanes inside the slice and at or above the floor keep e^d; the rest are 0.
            let keep = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(k, d, floor);
            let e = _mm512_maskz_mov_ps(keep, simd::exp_softmax(d));
            _mm512_mask_storeu_ps(p.add(i), k, e);
            acc = _mm512_add_ps(acc, e);
        }
        i += LANES;
    }
    1.0 / _mm512_reduce_add_ps(acc)
}

pub(super) fn gelu(form: GeluForm, x: &mut [f32]) {
    // SAFETY: AVX-512F detected (module docs).
    unsafe { gelu_impl(form, x) }
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn gelu_impl(form: GeluForm, x: &mut [f32]) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n; `simd::gelu` needs only AVX-512F.
        unsafe { _mm512_mask_storeu_ps(p.add(i), k, simd::gelu(form, _mm512_maskz_loadu_ps(k, p.add(i)))) };
        i += LANES;
    }
}

pub(super) fn gelu_mul(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && gate.len() == out.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { gelu_mul_impl(form, gate, up, out) }
}

/// # Safety
/// AVX-512F must be available; the three lengths are equal.
#[target_feature(enable = "avx512f")]
unsafe fn gelu_mul_impl(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len();
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n in all three slices; `simd::gelu` needs only
        // AVX-512F.
        unsafe {
            let g = simd::gelu(form, _mm512_maskz_loadu_ps(k, gate.as_ptr().add(i)));
            let y = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(k, up.as_ptr().add(i)));
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), k, y);
        }
        i += LANES;
    }
}

pub(super) fn add(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { add_impl(dst, src) }
}

/// # Safety
/// AVX-512F must be available; `dst.len() == src.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn add_impl(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let p = dst.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n in both slices.
        unsafe {
            let sum = _mm512_add_ps(
                _mm512_maskz_loadu_ps(k, p.add(i)),
                _mm512_maskz_loadu_ps(k, src.as_ptr().add(i)),
            );
            _mm512_mask_storeu_ps(p.add(i), k, sum);
        }
        i += LANES;
    }
}

pub(super) fn scale(x: &mut [f32], s: f32) {
    // SAFETY: AVX-512F detected (module docs).
    unsafe { scale_impl(x, s) }
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn scale_impl(x: &mut [f32], s: f32) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let vs = _mm512_set1_ps(s);
    let mut i = 0;
    while i < n {
        let k = mask_for(n - i);
        // SAFETY: masked lanes lie below n.
        unsafe { _mm512_mask_storeu_ps(p.add(i), k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p.add(i)), vs)) };
        i += LANES;
    }
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: AVX-512F detected (module docs); the lengths are equal.
    unsafe { dot_impl(a, b) }
}
