//! Elementwise math shared by epilogues and vector helpers: `exp`, `erf`, `tanh` and the two
//! GELU forms, in scalar form and as register-level SIMD functions for AVX2, AVX-512 and NEON.
//!
//! All forms evaluate the same formulas in the same order, so SIMD and scalar agree to a few
//! ulp (FMA contraction and the division are the only differences; GELU and `exp_softmax` are
//! bit-identical). Accuracy against the exact functions:
//! - `exp`: range reduction by ln 2 and a degree-6 Taylor polynomial on |r| <= ln2/2;
//!   relative error below 3e-7 for inputs in [-87, 88]. Inputs are clamped to that range.
//! - `exp_softmax`: e^d for the softmax's d = x - max in [-87, 0] only, in 9 operations
//!   instead of `exp`'s 17: e^d = 2^n x 2^f with n = round(d log2 e), f = d log2 e - n in one
//!   fused multiply-add, and 2^f from a degree-5 polynomial fitted on |f| <= 1/2 (relative
//!   error 1.7e-7 in f32 arithmetic, 1 exactly at f = 0). The one-step reduction adds
//!   |d| x 1.9e-8 (log2 e rounded to f32) to the relative error: below 1.2e-6 at d = -87 and
//!   3e-7 at d = -10, where e^d is already too small to matter beside the row's maximum.
//!   No SIMD form rounds differently from the scalar one: every step is one IEEE operation.
//! - `erf`: Abramowitz & Stegun 7.1.26, absolute error below 5e-7 (1.5e-7 in exact arithmetic,
//!   the rest is f32 rounding in 1 - poly x e^-x²).
//! - `tanh`: (e^2x - 1) / (e^2x + 1) with |x| clamped to 9; absolute error below 3e-7.
//!
//! - GELU, erf form (BERT), is x Phi(x) with Phi from a table of 32 degree-4 polynomials on
//!   [-5.6, 5.6] (`gelu_table.rs`, written by `scripts/reference/make_gelu_tables.py`): t =
//!   x / h + 15.5 clamped to [-1/2, 31.49], piece round(t), f = t - round(t), Phi = Horner in
//!   f. About 16 operations and no division (`erf` above costs 30 and one). Within 1e-7 x
//!   (1 + |x|) of PyTorch's exact `gelu`; every SIMD form rounds each step as the scalar form
//!   does, so they are bit-identical (AVX-512 picks the coefficients with `vpermt2ps`, AVX2
//!   gathers them, NEON loads them lane by lane).
//! - GELU, tanh form (EmbeddingGemma, T5 v1.1), is 0.5 x (1 + tanh(...)) on `tanh` above, within
//!   5e-7 x (1 + |x|) of `gelu_pytorch_tanh`. A table for it (error 1.1e-7 x (1 + |x|)) made it
//!   2x faster as a vector op, but moved EmbeddingGemma's int8 fixture text special_tokens_02
//!   from a min cosine against f32 of 0.99560 to 0.99494, under the test's 0.995: that text's
//!   int8 rounding is sensitive to any change of that size, so the tanh form keeps its formula.

/// Which GELU a layer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluForm {
    /// 0.5 x (1 + erf(x / sqrt 2)): BERT.
    Erf,
    /// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): Gemma (`gelu_pytorch_tanh`), T5 v1.1.
    Tanh,
}

use crate::gelu_table;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
const EXP_MIN: f32 = -87.0;
const EXP_MAX: f32 = 88.0;
// 1/n! for n = 2..=6, the Taylor coefficients of e^r after 1 + r.
const C2: f32 = 0.5;
const C3: f32 = 1.0 / 6.0;
const C4: f32 = 1.0 / 24.0;
const C5: f32 = 1.0 / 120.0;
const C6: f32 = 1.0 / 720.0;
// Abramowitz & Stegun 7.1.26.
const ERF_P: f32 = 0.327_591_1;
const ERF_A1: f32 = 0.254_829_6;
const ERF_A2: f32 = -0.284_496_74;
const ERF_A3: f32 = 1.421_413_7;
const ERF_A4: f32 = -1.453_152_1;
const ERF_A5: f32 = 1.061_405_4;
// 2^f ~ 1 + f (E1 + f (E2 + f (E3 + f (E4 + f E5)))) on |f| <= 1/2: a relative-error fit
// (iteratively reweighted least squares on Chebyshev nodes) with the constant held at 1.
// A fitted value three ulps below ln 2 in f32, not an approximation of it.
#[allow(clippy::approx_constant)]
const E1: f32 = 0.693_147;
const E2: f32 = 0.240_222_42;
const E3: f32 = 0.055_507_336;
const E4: f32 = 0.009_671_513;
const E5: f32 = 0.001_326_472_7;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_TANH_C: f32 = 0.044_715;
const TANH_CLAMP: f32 = 9.0;

/// e^x, see the module docs for accuracy.
#[inline]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((C6 * r + C5) * r + C4) * r + C3) * r + C2) * r;
    let p = p * r + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// e^d for `d` in [-87, 0] (a softmax entry minus its row's maximum), see the module docs
/// for accuracy. Outside that range the result is unspecified (callers mask it).
#[inline]
pub fn exp_softmax(d: f32) -> f32 {
    let n = (d * LOG2E).round_ties_even();
    let f = d.mul_add(LOG2E, -n);
    let p = E5
        .mul_add(f, E4)
        .mul_add(f, E3)
        .mul_add(f, E2)
        .mul_add(f, E1)
        .mul_add(f, 1.0);
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// erf(x), see the module docs for accuracy.
#[inline]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let poly = ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// tanh(x), see the module docs for accuracy.
#[inline]
pub fn tanh(x: f32) -> f32 {
    let e = exp(2.0 * x.clamp(-TANH_CLAMP, TANH_CLAMP));
    (e - 1.0) / (e + 1.0)
}

/// GELU in its erf form, from its piecewise polynomial (module docs).
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    gelu_pieces(&gelu_table::ERF, x)
}

/// GELU in its tanh form, from [`tanh`] (module docs).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
    0.5 * x * (1.0 + tanh(inner))
}

/// x Phi(x), Phi from `gelu_table`'s piecewise polynomials: t = x / h + OFFSET clamped
/// to [-1/2, T_MAX], piece round(t) (read from the low bits of t + MAGIC), f = t - round(t).
/// Every SIMD form does these same IEEE operations in this order.
#[inline]
fn gelu_pieces(table: &[[f32; 32]; 5], x: f32) -> f32 {
    let t = x
        .mul_add(gelu_table::INV_H, gelu_table::OFFSET)
        .clamp(-0.5, gelu_table::T_MAX);
    let m = t + gelu_table::MAGIC;
    let f = t - (m - gelu_table::MAGIC);
    let i = (m.to_bits() & 31) as usize;
    let p = table[4][i]
        .mul_add(f, table[3][i])
        .mul_add(f, table[2][i])
        .mul_add(f, table[1][i])
        .mul_add(f, table[0][i]);
    x * p
}

/// GELU of the given form.
#[inline]
pub fn gelu(form: GeluForm, x: f32) -> f32 {
    match form {
        GeluForm::Erf => gelu_erf(x),
        GeluForm::Tanh => gelu_tanh(x),
    }
}

/// AVX2 + FMA forms over 8 lanes. Callers must be `#[target_feature(enable = "avx2,fma")]`
/// (or run on a CPU with AVX2 and FMA) for these to be sound and to inline.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// e^x on 8 lanes.
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)), _mm256_set1_ps(EXP_MAX));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(LOG2E),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_fmadd_ps(_mm256_set1_ps(C6), r, _mm256_set1_ps(C5));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C4));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C2));
        p = _mm256_mul_ps(p, r);
        p = _mm256_fmadd_ps(p, r, r);
        p = _mm256_add_ps(p, _mm256_set1_ps(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
        _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
    }

    /// [`super::exp_softmax`] on 8 lanes, rounding as the scalar form does.
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_softmax(d: __m256) -> __m256 {
        let log2e = _mm256_set1_ps(LOG2E);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(d, log2e));
        let f = _mm256_fmsub_ps(d, log2e, n);
        let mut p = _mm256_fmadd_ps(_mm256_set1_ps(E5), f, _mm256_set1_ps(E4));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(E3));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(E2));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(E1));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
        _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
    }

    /// erf(x) on 8 lanes.
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn erf(x: __m256) -> __m256 {
        let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
        let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        let one = _mm256_set1_ps(1.0);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(ERF_P), a, one));
        let mut poly = _mm256_fmadd_ps(_mm256_set1_ps(ERF_A5), t, _mm256_set1_ps(ERF_A4));
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(ERF_A3));
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(ERF_A2));
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(ERF_A1));
        poly = _mm256_mul_ps(poly, t);
        // SAFETY: same target features as this function.
        let e = unsafe { exp(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a))) };
        let y = _mm256_fnmadd_ps(poly, e, one);
        _mm256_or_ps(y, sign)
    }

    /// tanh(x) on 8 lanes.
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tanh(x: __m256) -> __m256 {
        let c = _mm256_set1_ps(TANH_CLAMP);
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_sub_ps(_mm256_setzero_ps(), c)), c);
        // SAFETY: same target features as this function.
        let e = unsafe { exp(_mm256_add_ps(x, x)) };
        let one = _mm256_set1_ps(1.0);
        _mm256_div_ps(_mm256_sub_ps(e, one), _mm256_add_ps(e, one))
    }

    /// GELU of the given form on 8 lanes: the erf form as [`super::gelu_pieces`] (the
    /// coefficients gathered), the tanh form from [`tanh`].
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu(form: GeluForm, x: __m256) -> __m256 {
        if form == GeluForm::Tanh {
            let half_x = _mm256_mul_ps(_mm256_set1_ps(0.5), x);
            let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
            let u = _mm256_mul_ps(
                _mm256_set1_ps(SQRT_2_OVER_PI),
                _mm256_fmadd_ps(_mm256_set1_ps(GELU_TANH_C), x3, x),
            );
            // SAFETY: same target features as this function.
            let inner = unsafe { tanh(u) };
            return _mm256_fmadd_ps(half_x, inner, half_x);
        }
        let table = &gelu_table::ERF;
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(gelu_table::INV_H), _mm256_set1_ps(gelu_table::OFFSET));
        let t = _mm256_min_ps(
            _mm256_max_ps(t, _mm256_set1_ps(-0.5)),
            _mm256_set1_ps(gelu_table::T_MAX),
        );
        let magic = _mm256_set1_ps(gelu_table::MAGIC);
        let m = _mm256_add_ps(t, magic);
        let f = _mm256_sub_ps(t, _mm256_sub_ps(m, magic));
        let i = _mm256_and_si256(_mm256_castps_si256(m), _mm256_set1_epi32(31));
        // SAFETY: every index is masked to 0..32, inside each 32-value row of the table.
        let c = |k: usize| unsafe { _mm256_i32gather_ps::<4>(table[k].as_ptr(), i) };
        let mut p = _mm256_fmadd_ps(c(4), f, c(3));
        p = _mm256_fmadd_ps(p, f, c(2));
        p = _mm256_fmadd_ps(p, f, c(1));
        p = _mm256_fmadd_ps(p, f, c(0));
        _mm256_mul_ps(x, p)
    }
}

/// AVX-512F forms over 16 lanes. Callers must be `#[target_feature(enable = "avx512f")]`.
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// e^x on 16 lanes.
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)), _mm512_set1_ps(EXP_MAX));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            x,
            _mm512_set1_ps(LOG2E),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_fmadd_ps(_mm512_set1_ps(C6), r, _mm512_set1_ps(C5));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C4));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C2));
        p = _mm512_mul_ps(p, r);
        p = _mm512_fmadd_ps(p, r, r);
        p = _mm512_add_ps(p, _mm512_set1_ps(1.0));
        let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)));
        _mm512_mul_ps(p, _mm512_castsi512_ps(bits))
    }

    /// [`super::exp_softmax`] on 16 lanes, rounding as the scalar form does (`vscalefps`
    /// multiplies by 2^n exactly as the scalar's exponent-bits multiply does).
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_softmax(d: __m512) -> __m512 {
        let log2e = _mm512_set1_ps(LOG2E);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(d, log2e));
        let f = _mm512_fmsub_ps(d, log2e, n);
        let mut p = _mm512_fmadd_ps(_mm512_set1_ps(E5), f, _mm512_set1_ps(E4));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(E3));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(E2));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(E1));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0));
        _mm512_scalef_ps(p, n)
    }

    /// erf(x) on 16 lanes.
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn erf(x: __m512) -> __m512 {
        let sign_mask = _mm512_set1_epi32(i32::MIN);
        let xi = _mm512_castps_si512(x);
        let sign = _mm512_and_si512(xi, sign_mask);
        let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign_mask, xi));
        let one = _mm512_set1_ps(1.0);
        let t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(ERF_P), a, one));
        let mut poly = _mm512_fmadd_ps(_mm512_set1_ps(ERF_A5), t, _mm512_set1_ps(ERF_A4));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(ERF_A3));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(ERF_A2));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(ERF_A1));
        poly = _mm512_mul_ps(poly, t);
        // SAFETY: same target features as this function.
        let e = unsafe { exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a))) };
        let y = _mm512_fnmadd_ps(poly, e, one);
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), sign))
    }

    /// tanh(x) on 16 lanes.
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tanh(x: __m512) -> __m512 {
        let c = _mm512_set1_ps(TANH_CLAMP);
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
        // SAFETY: same target features as this function.
        let e = unsafe { exp(_mm512_add_ps(x, x)) };
        let one = _mm512_set1_ps(1.0);
        _mm512_div_ps(_mm512_sub_ps(e, one), _mm512_add_ps(e, one))
    }

    /// GELU of the given form on 16 lanes: the erf form as [`super::gelu_pieces`] (each
    /// coefficient picked from its 32 values, two registers, by `vpermt2ps`), the tanh form
    /// from [`tanh`].
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gelu(form: GeluForm, x: __m512) -> __m512 {
        if form == GeluForm::Tanh {
            let half_x = _mm512_mul_ps(_mm512_set1_ps(0.5), x);
            let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
            let u = _mm512_mul_ps(
                _mm512_set1_ps(SQRT_2_OVER_PI),
                _mm512_fmadd_ps(_mm512_set1_ps(GELU_TANH_C), x3, x),
            );
            // SAFETY: same target features as this function.
            let inner = unsafe { tanh(u) };
            return _mm512_fmadd_ps(half_x, inner, half_x);
        }
        let table = &gelu_table::ERF;
        let t = _mm512_fmadd_ps(x, _mm512_set1_ps(gelu_table::INV_H), _mm512_set1_ps(gelu_table::OFFSET));
        let t = _mm512_min_ps(
            _mm512_max_ps(t, _mm512_set1_ps(-0.5)),
            _mm512_set1_ps(gelu_table::T_MAX),
        );
        let magic = _mm512_set1_ps(gelu_table::MAGIC);
        let m = _mm512_add_ps(t, magic);
        let f = _mm512_sub_ps(t, _mm512_sub_ps(m, magic));
        let i = _mm512_castps_si512(m);
        // SAFETY: each row of the table holds 32 values, two 16-lane loads; the permute reads
        // only the low 5 bits of each index lane.
        let c = |k: usize| unsafe {
            let row = table[k].as_ptr();
            _mm512_permutex2var_ps(_mm512_loadu_ps(row), i, _mm512_loadu_ps(row.add(16)))
        };
        let mut p = _mm512_fmadd_ps(c(4), f, c(3));
        p = _mm512_fmadd_ps(p, f, c(2));
        p = _mm512_fmadd_ps(p, f, c(1));
        p = _mm512_fmadd_ps(p, f, c(0));
        _mm512_mul_ps(x, p)
    }
}

/// NEON forms over 4 lanes. NEON is baseline on aarch64, so these are safe to call there.
#[cfg(target_arch = "aarch64")]
pub mod neon {
    use super::*;
    use std::arch::aarch64::*;

    /// e^x on 4 lanes.
    #[inline]
    pub fn exp(x: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe {
            let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(EXP_MIN)), vdupq_n_f32(EXP_MAX));
            let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
            let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
            let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
            let mut p = vfmaq_f32(vdupq_n_f32(C5), vdupq_n_f32(C6), r);
            p = vfmaq_f32(vdupq_n_f32(C4), p, r);
            p = vfmaq_f32(vdupq_n_f32(C3), p, r);
            p = vfmaq_f32(vdupq_n_f32(C2), p, r);
            p = vmulq_f32(p, r);
            p = vfmaq_f32(r, p, r);
            p = vaddq_f32(p, vdupq_n_f32(1.0));
            let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)));
            vmulq_f32(p, vreinterpretq_f32_s32(bits))
        }
    }

    /// [`super::exp_softmax`] on 4 lanes, rounding as the scalar form does.
    #[inline]
    pub fn exp_softmax(d: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe {
            let log2e = vdupq_n_f32(LOG2E);
            let n = vrndnq_f32(vmulq_f32(d, log2e));
            // f = d log2e - n in one rounding: fma(-n, 1, d log2e) would round twice.
            let f = vfmaq_f32(vnegq_f32(n), d, log2e);
            let mut p = vfmaq_f32(vdupq_n_f32(E4), vdupq_n_f32(E5), f);
            p = vfmaq_f32(vdupq_n_f32(E3), p, f);
            p = vfmaq_f32(vdupq_n_f32(E2), p, f);
            p = vfmaq_f32(vdupq_n_f32(E1), p, f);
            p = vfmaq_f32(vdupq_n_f32(1.0), p, f);
            let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)));
            vmulq_f32(p, vreinterpretq_f32_s32(bits))
        }
    }

    /// erf(x) on 4 lanes.
    #[inline]
    pub fn erf(x: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe {
            let a = vabsq_f32(x);
            let one = vdupq_n_f32(1.0);
            let t = vdivq_f32(one, vfmaq_f32(one, vdupq_n_f32(ERF_P), a));
            let mut poly = vfmaq_f32(vdupq_n_f32(ERF_A4), vdupq_n_f32(ERF_A5), t);
            poly = vfmaq_f32(vdupq_n_f32(ERF_A3), poly, t);
            poly = vfmaq_f32(vdupq_n_f32(ERF_A2), poly, t);
            poly = vfmaq_f32(vdupq_n_f32(ERF_A1), poly, t);
            poly = vmulq_f32(poly, t);
            let e = exp(vnegq_f32(vmulq_f32(a, a)));
            let y = vfmsq_f32(one, poly, e);
            let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
            vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(y), sign))
        }
    }

    /// tanh(x) on 4 lanes.
    #[inline]
    pub fn tanh(x: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe {
            let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-TANH_CLAMP)), vdupq_n_f32(TANH_CLAMP));
            let e = exp(vaddq_f32(x, x));
            let one = vdupq_n_f32(1.0);
            vdivq_f32(vsubq_f32(e, one), vaddq_f32(e, one))
        }
    }

    /// GELU of the given form on 4 lanes: the erf form as [`super::gelu_pieces`] (the
    /// coefficients loaded lane by lane), the tanh form from [`tanh`].
    #[inline]
    pub fn gelu(form: GeluForm, x: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe {
            if form == GeluForm::Tanh {
                let half_x = vmulq_f32(vdupq_n_f32(0.5), x);
                let x3 = vmulq_f32(vmulq_f32(x, x), x);
                let inner = tanh(vmulq_f32(
                    vdupq_n_f32(SQRT_2_OVER_PI),
                    vfmaq_f32(x, vdupq_n_f32(GELU_TANH_C), x3),
                ));
                return vfmaq_f32(half_x, half_x, inner);
            }
            let table = &gelu_table::ERF;
            let t = vfmaq_f32(vdupq_n_f32(gelu_table::OFFSET), x, vdupq_n_f32(gelu_table::INV_H));
            let t = vminq_f32(vmaxq_f32(t, vdupq_n_f32(-0.5)), vdupq_n_f32(gelu_table::T_MAX));
            let magic = vdupq_n_f32(gelu_table::MAGIC);
            let m = vaddq_f32(t, magic);
            let f = vsubq_f32(t, vsubq_f32(m, magic));
            let mut idx = [0u32; 4];
            vst1q_u32(idx.as_mut_ptr(), vandq_u32(vreinterpretq_u32_f32(m), vdupq_n_u32(31)));
            let c = |k: usize| {
                let row = &table[k];
                let lanes = [
                    row[idx[0] as usize],
                    row[idx[1] as usize],
                    row[idx[2] as usize],
                    row[idx[3] as usize],
                ];
                vld1q_f32(lanes.as_ptr())
            };
            let mut p = vfmaq_f32(c(3), c(4), f);
            p = vfmaq_f32(c(2), p, f);
            p = vfmaq_f32(c(1), p, f);
            p = vfmaq_f32(c(0), p, f);
            vmulq_f32(x, p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-2000..=2000).map(|i| i as f32 * 0.005)
    }

    #[test]
    fn scalar_forms_match_exact_functions() {
        // Tolerances from the module docs, with a little f32 rounding on top.
        for x in (-8700..=8800).map(|i| i as f32 * 0.01) {
            let exact = (x as f64).exp();
            let rel = ((exp(x) as f64 - exact) / exact).abs();
            assert!(rel < 4e-7, "exp({x}): rel err {rel}");
        }
        for x in grid() {
            assert!(
                (erf(x) as f64 - libm::erf(x as f64)).abs() < 5e-7,
                "erf({x}): {}",
                erf(x) as f64 - libm::erf(x as f64)
            );
            assert!((tanh(x) as f64 - (x as f64).tanh()).abs() < 4e-7, "tanh({x})");
        }
        // GELU: 1e-7 x (1 + |x|) for the erf form's table, 5e-7 x (1 + |x|) for the tanh form
        // (module docs), over and past the table's range.
        for x in (-1200..=1200)
            .map(|i| i as f32 * 0.01)
            .chain([-100.0, 100.0, -1e-30, 0.0])
        {
            let xd = x as f64;
            let exact_erf = 0.5 * xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
            let inner = (2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd * xd * xd);
            let exact_tanh = 0.5 * xd * (1.0 + inner.tanh());
            let bound = 1.5e-7 * (1.0 + xd.abs());
            assert!((gelu_erf(x) as f64 - exact_erf).abs() < bound, "gelu_erf({x})");
            assert!(
                (gelu_tanh(x) as f64 - exact_tanh).abs() < 5e-7 * (1.0 + xd.abs()),
                "gelu_tanh({x})"
            );
        }
        assert_eq!(gelu_erf(0.0), 0.0);
        assert!(gelu_erf(f32::NAN).is_nan() && gelu_tanh(f32::NAN).is_nan());
        assert!(erf(0.0).abs() < 5e-7);
        assert_eq!(tanh(100.0), 1.0);
        assert!(exp(-1000.0) >= 0.0 && exp(1000.0).is_finite());
    }

    /// Every f32 from -87 to 0 at a stride of 1,021 ulps (about a million values) and a few
    /// edge values, cut to whole vectors of 16.
    fn softmax_inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..)
            .map(|i| -f32::from_bits(i * 1021))
            .take_while(|x| *x >= -87.0)
            .collect();
        xs.extend([-87.0, -86.999, -0.0, 0.0, -1e-30, -0.5 / LOG2E, -1.5 / LOG2E]);
        let whole = xs.len() / 16 * 16;
        xs.truncate(whole);
        xs
    }

    #[test]
    fn exp_softmax_matches_exact_exp_on_its_range() {
        // Module docs: 1.7e-7 from the polynomial plus |d| x 1.9e-8 from the reduction,
        // with one more f32 rounding on top.
        for d in softmax_inputs() {
            let exact = (d as f64).exp();
            let rel = ((exp_softmax(d) as f64 - exact) / exact).abs();
            assert!(rel < 2.5e-7 + 2e-8 * d.abs() as f64, "exp_softmax({d}): rel err {rel}");
        }
        assert_eq!(exp_softmax(0.0), 1.0);
        assert_eq!(exp_softmax(-0.0), 1.0);
    }

    /// The SIMD forms of `exp_softmax` round every step as the scalar one does: bit-identical.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_exp_softmax_is_bit_identical_to_scalar() {
        use std::arch::x86_64::*;
        let xs = softmax_inputs();
        let want: Vec<u32> = xs.iter().map(|&d| exp_softmax(d).to_bits()).collect();
        if crate::Isa::Avx2.is_supported() {
            for (chunk, want) in xs.chunks_exact(8).zip(want.chunks_exact(8)) {
                let mut out = [0f32; 8];
                // SAFETY: AVX2 and FMA were detected above; the arrays hold 8 lanes.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), avx2::exp_softmax(_mm256_loadu_ps(chunk.as_ptr()))) };
                assert_eq!(out.map(f32::to_bits), want, "avx2 at {chunk:?}");
            }
        }
        if crate::Isa::Avx512.is_supported() {
            for (chunk, want) in xs.chunks_exact(16).zip(want.chunks_exact(16)) {
                let mut out = [0f32; 16];
                // SAFETY: AVX-512F was detected above; the arrays hold 16 lanes.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), avx512::exp_softmax(_mm512_loadu_ps(chunk.as_ptr()))) };
                assert_eq!(out.map(f32::to_bits), want, "avx512 at {chunk:?}");
            }
        }
    }

    /// As [`x86_exp_softmax_is_bit_identical_to_scalar`], for NEON.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_exp_softmax_is_bit_identical_to_scalar() {
        use std::arch::aarch64::*;
        let xs = softmax_inputs();
        for chunk in xs.chunks_exact(4) {
            let mut out = [0f32; 4];
            // SAFETY: NEON is baseline on aarch64; the arrays hold 4 lanes.
            unsafe { vst1q_f32(out.as_mut_ptr(), neon::exp_softmax(vld1q_f32(chunk.as_ptr()))) };
            let want: Vec<u32> = chunk.iter().map(|&d| exp_softmax(d).to_bits()).collect();
            assert_eq!(out.map(f32::to_bits).to_vec(), want, "neon at {chunk:?}");
        }
    }

    /// SIMD and scalar evaluate the same formula; FMA contraction and the division make them
    /// differ by a few ulp, so the bound is 2e-6 relative (or absolute near zero). The erf
    /// GELU rounds every step alike and must be bit-identical.
    fn close(simd: f32, scalar: f32) -> bool {
        (simd - scalar).abs() <= 2e-6 * scalar.abs().max(1.0)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_forms_match_scalar() {
        use std::arch::x86_64::*;
        let xs: Vec<f32> = grid().chain([-100.0, 100.0, -0.0, 1e-30]).collect();
        if crate::Isa::Avx2.is_supported() {
            for chunk in xs.chunks_exact(8) {
                let mut out = [0f32; 8];
                for (which, f) in [
                    (0, exp as fn(f32) -> f32),
                    (1, erf),
                    (2, tanh),
                    (3, gelu_erf),
                    (4, gelu_tanh),
                ] {
                    // SAFETY: AVX2 and FMA were detected above; the arrays hold 8 lanes.
                    unsafe {
                        let v = _mm256_loadu_ps(chunk.as_ptr());
                        let r = match which {
                            0 => avx2::exp(v),
                            1 => avx2::erf(v),
                            2 => avx2::tanh(v),
                            3 => avx2::gelu(GeluForm::Erf, v),
                            _ => avx2::gelu(GeluForm::Tanh, v),
                        };
                        _mm256_storeu_ps(out.as_mut_ptr(), r);
                    }
                    for (x, y) in chunk.iter().zip(out) {
                        if which == 3 {
                            assert_eq!(y.to_bits(), f(*x).to_bits(), "avx2 gelu {which} at {x}");
                        } else {
                            assert!(close(y, f(*x)), "avx2 form {which} at {x}: {y} vs {}", f(*x));
                        }
                    }
                }
            }
        }
        if crate::Isa::Avx512.is_supported() {
            for chunk in xs.chunks_exact(16) {
                let mut out = [0f32; 16];
                for (which, f) in [
                    (0, exp as fn(f32) -> f32),
                    (1, erf),
                    (2, tanh),
                    (3, gelu_erf),
                    (4, gelu_tanh),
                ] {
                    // SAFETY: AVX-512F was detected above; the arrays hold 16 lanes.
                    unsafe {
                        let v = _mm512_loadu_ps(chunk.as_ptr());
                        let r = match which {
                            0 => avx512::exp(v),
                            1 => avx512::erf(v),
                            2 => avx512::tanh(v),
                            3 => avx512::gelu(GeluForm::Erf, v),
                            _ => avx512::gelu(GeluForm::Tanh, v),
                        };
                        _mm512_storeu_ps(out.as_mut_ptr(), r);
                    }
                    for (x, y) in chunk.iter().zip(out) {
                        if which == 3 {
                            assert_eq!(y.to_bits(), f(*x).to_bits(), "avx512 gelu {which} at {x}");
                        } else {
                            assert!(close(y, f(*x)), "avx512 form {which} at {x}: {y} vs {}", f(*x));
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_forms_match_scalar() {
        use std::arch::aarch64::*;
        let xs: Vec<f32> = grid().chain([-100.0, 100.0, -0.0, 1e-30]).collect();
        for chunk in xs.chunks_exact(4) {
            let mut out = [0f32; 4];
            for (which, f) in [
                (0, exp as fn(f32) -> f32),
                (1, erf),
                (2, tanh),
                (3, gelu_erf),
                (4, gelu_tanh),
            ] {
                // SAFETY: NEON is baseline on aarch64; the arrays hold 4 lanes.
                unsafe {
                    let v = vld1q_f32(chunk.as_ptr());
                    let r = match which {
                        0 => neon::exp(v),
                        1 => neon::erf(v),
                        2 => neon::tanh(v),
                        3 => neon::gelu(GeluForm::Erf, v),
                        _ => neon::gelu(GeluForm::Tanh, v),
                    };
                    vst1q_f32(out.as_mut_ptr(), r);
                }
                for (x, y) in chunk.iter().zip(out) {
                    if which == 3 {
                        assert_eq!(y.to_bits(), f(*x).to_bits(), "neon gelu {which} at {x}");
                    } else {
                        assert!(close(y, f(*x)), "neon form {which} at {x}: {y} vs {}", f(*x));
                    }
                }
            }
        }
    }
}
