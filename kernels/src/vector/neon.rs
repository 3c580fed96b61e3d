//! NEON row helpers: 4 f32 lanes per register, reductions over 4 partial sums (4 x 4 = 16
//! values per step; four independent add chains cover the FMA latency). The last `len % 4`
//! values of each pass are done with the scalar formulas. One kernel serves the neon,
//! dotprod and i8mm levels. NEON is part of the aarch64 baseline, so these are plain safe
//! functions.

use super::scalar;
use crate::activation::{neon as simd, GeluForm};
use std::arch::aarch64::*;

/// f32 lanes per register.
const LANES: usize = 4;
/// Values per unrolled reduction step: 4 partial sums of one register each.
const STEP: usize = 4 * LANES;

/// Folds a slice in whole 4-lane blocks with 4 partial accumulators: `acc = f(acc, a, b)` on
/// registers loaded from `a` and `b` (the same slice twice for one-input reductions).
/// Returns the 4 accumulators combined pairwise and the number of values covered.
#[inline(always)]
fn fold_blocks(
    a: &[f32],
    b: &[f32],
    init: float32x4_t,
    f: impl Fn(float32x4_t, float32x4_t, float32x4_t) -> float32x4_t,
    combine: impl Fn(float32x4_t, float32x4_t) -> float32x4_t,
) -> (float32x4_t, usize) {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [init; 4];
    let mut i = 0;
    // SAFETY: NEON is baseline; every load reads 4 values ending at or before n.
    unsafe {
        while i + STEP <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let o = i + j * LANES;
                *acc = f(*acc, vld1q_f32(pa.add(o)), vld1q_f32(pb.add(o)));
            }
            i += STEP;
        }
        while i + LANES <= n {
            acc[0] = f(acc[0], vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
            i += LANES;
        }
    }
    (combine(combine(acc[0], acc[1]), combine(acc[2], acc[3])), i)
}

/// Lane-wise add, as a closure-friendly safe function.
#[inline(always)]
fn add4(a: float32x4_t, b: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vaddq_f32(a, b) }
}

/// Lane-wise max, as a closure-friendly safe function.
#[inline(always)]
fn max4(a: float32x4_t, b: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vmaxq_f32(a, b) }
}

/// Sum of the 4 lanes.
#[inline(always)]
fn hsum(v: float32x4_t) -> f32 {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vaddvq_f32(v) }
}

/// Broadcast of one value.
#[inline(always)]
fn splat(v: f32) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vdupq_n_f32(v) }
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let fma = |acc, x, y| {
        // SAFETY: NEON is baseline on aarch64.
        unsafe { vfmaq_f32(acc, x, y) }
    };
    let (acc, done) = fold_blocks(a, b, splat(0.0), fma, add4);
    hsum(acc) + scalar::dot(&a[done..], &b[done..])
}

fn sum(x: &[f32]) -> f32 {
    let (acc, done) = fold_blocks(x, x, splat(0.0), |acc, v, _| add4(acc, v), add4);
    hsum(acc) + x[done..].iter().sum::<f32>()
}

fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let m = splat(mean);
    let (acc, done) = fold_blocks(
        x,
        x,
        splat(0.0),
        // SAFETY: NEON is baseline on aarch64.
        |acc, v, _| unsafe {
            let d = vsubq_f32(v, m);
            vfmaq_f32(acc, d, d)
        },
        add4,
    );
    hsum(acc) + x[done..].iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()
}

fn max(x: &[f32]) -> f32 {
    let (acc, done) = fold_blocks(x, x, splat(f32::NEG_INFINITY), |acc, v, _| max4(acc, v), max4);
    // SAFETY: NEON is baseline on aarch64.
    let simd_max = unsafe { vmaxvq_f32(acc) };
    x[done..].iter().fold(simd_max, |m, &v| m.max(v))
}

pub(super) fn layer_norm_row(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    assert!(gamma.len() == x.len() && beta.len() == x.len());
    let n = x.len();
    let mean = sum(x) / n as f32;
    let var = sum_sq_dev(x, mean) / n as f32;
    let rstd = 1.0 / (var + eps).sqrt();
    let (vmean, vrstd) = (splat(mean), splat(rstd));
    let blocks = n / LANES * LANES;
    for ((xs, g), b) in x
        .chunks_exact_mut(LANES)
        .zip(gamma.chunks_exact(LANES))
        .zip(beta.chunks_exact(LANES))
    {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe {
            let centred = vmulq_f32(vsubq_f32(vld1q_f32(xs.as_ptr()), vmean), vrstd);
            vst1q_f32(
                xs.as_mut_ptr(),
                vfmaq_f32(vld1q_f32(b.as_ptr()), centred, vld1q_f32(g.as_ptr())),
            );
        }
    }
    for ((v, &g), &b) in x[blocks..].iter_mut().zip(&gamma[blocks..]).zip(&beta[blocks..]) {
        *v = (*v - mean) * rstd * g + b;
    }
}

pub(super) fn rms_norm_row(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    assert_eq!(weight.len(), x.len());
    let n = x.len();
    let mean_square = dot(x, x) / n as f32;
    let rstd = 1.0 / (mean_square + eps).sqrt();
    let (vrstd, one) = (splat(rstd), splat(1.0));
    let blocks = n / LANES * LANES;
    for (xs, w) in x.chunks_exact_mut(LANES).zip(weight.chunks_exact(LANES)) {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe {
            let w = vld1q_f32(w.as_ptr());
            let w = if one_plus_weight { vaddq_f32(one, w) } else { w };
            vst1q_f32(xs.as_mut_ptr(), vmulq_f32(vmulq_f32(vld1q_f32(xs.as_ptr()), vrstd), w));
        }
    }
    for (v, &w) in x[blocks..].iter_mut().zip(&weight[blocks..]) {
        let w = if one_plus_weight { 1.0 + w } else { w };
        *v = *v * rstd * w;
    }
}

pub(super) fn softmax_row(x: &mut [f32]) {
    let max = max(x);
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let (vmax, floor) = (splat(max), splat(super::SOFTMAX_FLOOR));
    let mut acc = splat(0.0);
    let blocks = x.len() / LANES * LANES;
    for xs in x.chunks_exact_mut(LANES) {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe {
            let d = vsubq_f32(vld1q_f32(xs.as_ptr()), vmax);
            // Lanes at or above the floor keep e^d; the rest become 0.
            let keep = vcgeq_f32(d, floor);
            let e = vreinterpretq_f32_u32(vandq_u32(keep, vreinterpretq_u32_f32(simd::exp_softmax(d))));
            vst1q_f32(xs.as_mut_ptr(), e);
            acc = vaddq_f32(acc, e);
        }
    }
    let mut sum = hsum(acc);
    for v in &mut x[blocks..] {
        *v = scalar::softmax_exp(*v - max);
        sum += *v;
    }
    scale(x, 1.0 / sum);
}

pub(super) fn gelu(form: GeluForm, x: &mut [f32]) {
    let blocks = x.len() / LANES * LANES;
    for xs in x.chunks_exact_mut(LANES) {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe { vst1q_f32(xs.as_mut_ptr(), simd::gelu(form, vld1q_f32(xs.as_ptr()))) };
    }
    scalar::gelu(form, &mut x[blocks..]);
}

pub(super) fn gelu_mul(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && gate.len() == out.len());
    let blocks = gate.len() / LANES * LANES;
    for ((o, g), u) in out
        .chunks_exact_mut(LANES)
        .zip(gate.chunks_exact(LANES))
        .zip(up.chunks_exact(LANES))
    {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe {
            let y = vmulq_f32(simd::gelu(form, vld1q_f32(g.as_ptr())), vld1q_f32(u.as_ptr()));
            vst1q_f32(o.as_mut_ptr(), y);
        }
    }
    scalar::gelu_mul(form, &gate[blocks..], &up[blocks..], &mut out[blocks..]);
}

pub(super) fn add(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let blocks = dst.len() / LANES * LANES;
    for (d, s) in dst.chunks_exact_mut(LANES).zip(src.chunks_exact(LANES)) {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe { vst1q_f32(d.as_mut_ptr(), vaddq_f32(vld1q_f32(d.as_ptr()), vld1q_f32(s.as_ptr()))) };
    }
    scalar::add(&mut dst[blocks..], &src[blocks..]);
}

pub(super) fn scale(x: &mut [f32], s: f32) {
    let vs = splat(s);
    let blocks = x.len() / LANES * LANES;
    for xs in x.chunks_exact_mut(LANES) {
        // SAFETY: NEON is baseline; each chunk holds exactly 4 values.
        unsafe { vst1q_f32(xs.as_mut_ptr(), vmulq_f32(vld1q_f32(xs.as_ptr()), vs)) };
    }
    scalar::scale(&mut x[blocks..], s);
}
