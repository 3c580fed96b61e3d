//! Scalar reference rows for the vector family: the definitions in the parent module's docs,
//! written as plainly as possible (sequential f32 sums, no fused multiply-adds). They are the
//! test oracle for every SIMD path.

use super::SOFTMAX_FLOOR;
use crate::activation::{self, GeluForm};

pub(super) fn layer_norm_row(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    debug_assert!(gamma.len() == x.len() && beta.len() == x.len());
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for ((v, &g), &b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * rstd * g + b;
    }
}

pub(super) fn rms_norm_row(x: &mut [f32], weight: &[f32], eps: f32, one_plus_weight: bool) {
    debug_assert_eq!(weight.len(), x.len());
    let mean_square = dot(x, x) / x.len() as f32;
    let rstd = 1.0 / (mean_square + eps).sqrt();
    for (v, &w) in x.iter_mut().zip(weight) {
        let w = if one_plus_weight { 1.0 + w } else { w };
        *v = *v * rstd * w;
    }
}

pub(super) fn softmax_row(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = softmax_exp(*v - max);
        sum += *v;
    }
    scale(x, 1.0 / sum);
}

/// e^d for a softmax entry `d` below the row maximum, exactly 0 below the floor. Shared with
/// the SIMD tails.
#[inline]
pub(super) fn softmax_exp(d: f32) -> f32 {
    if d < SOFTMAX_FLOOR {
        0.0
    } else {
        activation::exp_softmax(d)
    }
}

pub(super) fn gelu(form: GeluForm, x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = activation::gelu(form, *v);
    }
}

pub(super) fn gelu_mul(form: GeluForm, gate: &[f32], up: &[f32], out: &mut [f32]) {
    debug_assert!(gate.len() == up.len() && gate.len() == out.len());
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = activation::gelu(form, g) * u;
    }
}

pub(super) fn add(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

pub(super) fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}
