//! AVX2 int8 kernel, exact for every int8 weight: weights sign-extended to i16 (`vpmovsxbw`)
//! and multiplied by i16 activations with `vpmaddwd` (i16 x i16 pairs summed into i32).
//!
//! `vpmaddubsw` would do 32 products per instruction instead of 16, but it saturates its
//! i16 pair sums; the sign trick (`|a|` times `sign(a) * w`) avoids that only while no weight
//! is -128. `vpmaddwd` needs no such condition, and it is nearly as fast here: per k-quad and
//! per 8 columns, two `vpmovsxbw` are shared by all rows of the tile, and each row then costs
//! one `vpmaddwd` + one `vpaddd` per 4 columns (16 products), against 4 instructions per 8
//! columns (32 products) for the sign trick; both are bound by the two vector ALU ports.
//!
//! Register tile: [`MR`] = 4 rows x 8 columns (half a panel). Each accumulator holds 4 columns
//! x 2 partial sums (k pairs 0-1 and 2-3 of every quad), reduced with `vphaddd` at the end of a
//! group: 8 accumulators + 2 weight registers + 1 broadcast of the 16 ymm registers.

use super::pack::{K_QUAD, NR};
use super::quantize::{group_factors, Q_MAX};
use super::{a_pack, Block, Int8Kernel};
use crate::activation;
use crate::Activation;
use std::arch::x86_64::*;

/// Rows per register tile: 4 rows x 2 accumulators leave room for the weights and epilogue.
const MR: usize = 4;
/// Columns per register tile: one 32-byte half of a 64-byte panel k-quad.
const NC: usize = 8;

pub(super) static KERNEL: Int8Kernel = Int8Kernel {
    name: "x86_64-i8-4x8-avx2",
    mr: MR,
    block_rows: super::BLOCK_ROWS,
    sequential_block_rows: super::BLOCK_ROWS,
    quantize_row,
    quantize_row_centered: super::centered::quantize_row_centered_scalar,
    a_elem: 2,
    k_align: 1,
    pack_row: a_pack::pack_row_i16::<MR>,
    block,
    delegate: None,
};

fn quantize_row(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    assert!(q.len() >= x.len() && scales.len() * k_group == q.len());
    // SAFETY: reachable only through `for_isa(Isa::Avx2)` or above, which checks AVX2 + FMA;
    // lengths checked above.
    unsafe { quantize_row_avx2(x, k_group, q, scales) }
}

fn block(b: &Block<'_>, out: &mut [&mut [f32]]) {
    // SAFETY: as in `quantize_row`; `b` and `out` come from `matmul_quantized`.
    unsafe { block_avx2(b, out) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `q.len() >= x.len()`, `scales.len() * k_group == q.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    const L: usize = 8;
    let k = x.len();
    q[k..].fill(0);
    for (g, scale) in scales.iter_mut().enumerate() {
        let lo = (g * k_group).min(k);
        let hi = ((g + 1) * k_group).min(k);
        let xs = &x[lo..hi];
        let qs = &mut q[lo..hi];
        let body = xs.len() / L * L;
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
        let mut m = _mm256_setzero_ps();
        for i in (0..body).step_by(L) {
            // SAFETY: 8 floats inside `xs`. max(|x|, m) returns m when x is NaN (skipped).
            m = _mm256_max_ps(
                _mm256_and_ps(unsafe { _mm256_loadu_ps(xs.as_ptr().add(i)) }, abs_mask),
                m,
            );
        }
        let mut lanes = [0f32; L];
        // SAFETY: 8 floats into `lanes`.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        let maxabs = lanes.iter().chain(&xs[body..]).fold(0f32, |m, v| m.max(v.abs()));
        let Some((inv, s)) = group_factors(maxabs) else {
            qs.fill(0);
            *scale = 0.0;
            continue;
        };
        *scale = s;
        let vinv = _mm256_set1_ps(inv);
        let (lo_v, hi_v) = (_mm256_set1_ps(-Q_MAX), _mm256_set1_ps(Q_MAX));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let wide = xs.len() / 32 * 32;
        for i in (0..wide).step_by(32) {
            // SAFETY: 32 floats of `xs` and 32 bytes of `qs` from i.
            unsafe {
                let p = xs.as_ptr().add(i);
                let v0 = quantize8(_mm256_loadu_ps(p), vinv, lo_v, hi_v);
                let v1 = quantize8(_mm256_loadu_ps(p.add(8)), vinv, lo_v, hi_v);
                let v2 = quantize8(_mm256_loadu_ps(p.add(16)), vinv, lo_v, hi_v);
                let v3 = quantize8(_mm256_loadu_ps(p.add(24)), vinv, lo_v, hi_v);
                // packs interleave 128-bit lanes; the permute restores element order.
                let bytes = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
                _mm256_storeu_si256(
                    qs.as_mut_ptr().add(i) as *mut __m256i,
                    _mm256_permutevar8x32_epi32(bytes, order),
                );
            }
        }
        // The tail with the scalar form of the same operations (identical results).
        for (d, &v) in qs[wide..].iter_mut().zip(&xs[wide..]) {
            *d = (v * inv).round_ties_even().clamp(-Q_MAX, Q_MAX) as i8;
        }
    }
}

/// Scales, clamps and rounds 8 values to i32.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn quantize8(v: __m256, inv: __m256, lo: __m256, hi: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inv), lo), hi))
}

/// # Safety
/// The CPU must support AVX2 and FMA; `b` and `out` as `matmul_quantized` builds them.
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(b: &Block<'_>, out: &mut [&mut [f32]]) {
    for t in 0..b.rows.div_ceil(MR) {
        let a_tile = b.a_tile(b.row0 + t * MR, MR);
        let rows = &mut out[t * MR..(t * MR + MR).min(b.rows)];
        for p in 0..b.panels {
            for half in 0..NR / NC {
                if (b.panel0 + p) * NR + half * NC >= b.w.layout.n {
                    break;
                }
                // SAFETY: same target features; indices in range.
                unsafe { tile(b, a_tile, b.row0 + t * MR, p, half, rows) };
            }
        }
    }
}

/// One register tile: rows `row0 ..` (`out.len()` of them, at most MR) x columns
/// `half * 8 .. + 8` of panel `b.panel0 + p`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a_tile` is the packed i16 tile of `row0`; `p < b.panels`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(b: &Block<'_>, a_tile: &[u8], row0: usize, p: usize, half: usize, out: &mut [&mut [f32]]) {
    let l = b.w.layout;
    let panel = b.panel0 + p;
    let quads_per_group = l.k_group / K_QUAD;
    let rows = out.len();
    debug_assert!(rows <= MR && a_tile.len() == MR * l.k_pad * 2);
    debug_assert!((panel + 1) * l.panel_stride() <= b.w.data.len());
    let w_base =
        b.w.data
            .as_ptr()
            .wrapping_add(panel * l.panel_stride() + half * NC * K_QUAD);
    let a_base = a_tile.as_ptr();

    let mut facc = [_mm256_setzero_ps(); MR];
    for g in 0..l.groups {
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        for q in g * quads_per_group..(g + 1) * quads_per_group {
            // SAFETY: q < k_pad / 4: the weight loads read 32 bytes of this panel's k-quad,
            // the broadcasts 8 bytes of the tile.
            unsafe {
                let wq = w_base.add(q * NR * K_QUAD);
                let w = [
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(wq as *const __m128i)),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(wq.add(16) as *const __m128i)),
                ];
                let aq = a_base.add(q * MR * K_QUAD * 2);
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_epi64x((aq.add(i * K_QUAD * 2) as *const i64).read_unaligned());
                    acc_row[0] = _mm256_add_epi32(acc_row[0], _mm256_madd_epi16(w[0], av));
                    acc_row[1] = _mm256_add_epi32(acc_row[1], _mm256_madd_epi16(w[1], av));
                }
            }
        }
        // Centered rows add offset x column sum per group (see `centered`).
        let col_sums = b.offsets.map(|_| {
            let sums = &b.col_sums16(g, panel)[half * NC..][..NC];
            // SAFETY: 8 i32 inside `sums`.
            _mm256_cvtepi32_ps(unsafe { _mm256_loadu_si256(sums.as_ptr() as *const __m256i) })
        });
        for (i, f) in facc.iter_mut().enumerate() {
            // [c0 c0' c1 c1' c2 c2' c3 c3'] and the same for c4..c7: vphaddd gives
            // [c0 c1 c4 c5 | c2 c3 c6 c7]; the 64-bit permute restores column order.
            let sums = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc[i][0], acc[i][1]));
            let sa = b.row_scale(row0 + i, g);
            let sums = _mm256_cvtepi32_ps(sums);
            *f = if g == 0 {
                _mm256_mul_ps(sums, _mm256_set1_ps(sa))
            } else {
                _mm256_fmadd_ps(sums, _mm256_set1_ps(sa), *f)
            };
            if let Some(col_sums) = col_sums {
                *f = _mm256_fmadd_ps(col_sums, _mm256_set1_ps(b.row_offset(row0 + i, g)), *f);
            }
        }
    }

    let epi = b.epilogue;
    let col0 = panel * NR + half * NC;
    let valid = (l.n - col0).min(NC);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid as i32), lane);
    // SAFETY: col_scales has n_pad entries; the bias (n entries) is read under the mask.
    let sw = unsafe { _mm256_loadu_ps(b.w.col_scales.as_ptr().add(col0)) };
    // A match, not `map`: intrinsics inside a closure would not inherit the target features.
    #[allow(clippy::manual_map)]
    let bias = match epi.bias {
        // SAFETY: as above.
        Some(bias) => Some(unsafe { _mm256_maskload_ps(bias.as_ptr().add(col0), mask) }),
        None => None,
    };
    let local = p * NR + half * NC;
    for (i, row) in out.iter_mut().enumerate() {
        debug_assert!(row.len() >= local + valid);
        let mut y = _mm256_mul_ps(facc[i], sw);
        if let Some(bias) = bias {
            y = _mm256_add_ps(y, bias);
        }
        y = match epi.activation {
            Activation::None => y,
            Activation::Relu => _mm256_max_ps(y, _mm256_setzero_ps()),
            // SAFETY: AVX2 and FMA are enabled here.
            Activation::Gelu(form) => unsafe { activation::avx2::gelu(form, y) },
        };
        // SAFETY: `valid` columns from `local` lie inside the row; loads and stores are masked.
        unsafe {
            let dst = row.as_mut_ptr().add(local);
            if epi.accumulate {
                y = _mm256_add_ps(_mm256_maskload_ps(dst, mask), y);
            }
            _mm256_maskstore_ps(dst, mask, y);
        }
    }
}
