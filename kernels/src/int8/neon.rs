//! aarch64 int8 kernels: plain NEON, SDOT (dotprod) and SMMLA (i8mm).
//!
//! All three read the shared packed layout ([`super::pack`]) and are exact for every int8
//! weight (activations are in [-127, 127]):
//! - `aarch64-i8-2x16-neon`: per k-octet, `smull` + `smlal` of two k-quads into i16 (at most
//!   2 x 127 x 128 = 32512, no overflow), then `sadalp` into i32 pairs; 2 rows x 16 columns
//!   = 16 accumulators, 8 weight and 4 activation registers of the 32.
//! - `aarch64-i8-4x16-dotprod`: `sdot` by element: one 16-byte weight register (4 columns x 4
//!   k) times one dword lane of the packed activations (4 rows x 4 k in one register);
//!   4 rows x 16 columns = 16 accumulators.
//! - `aarch64-i8-8x8-i8mm`: `smmla` multiplies a 2x8 row pair by an 8x2 column pair. The
//!   layout stores 4 k per column and k-quad, so two k-quads are zipped (`zip1`/`zip2` on 32-bit
//!   lanes) into column pairs; activations are packed in 8-byte chunks so each row pair is one
//!   16-byte load. 8 rows x 8 columns = 16 accumulators, 4 zips per 16 `smmla`.
//!
//! SDOT and SMMLA intrinsics are unstable, so those instructions are written with `asm!` in
//! functions compiled with the matching target feature. Float steps follow
//! [`super::reference`] exactly (no fused multiply-add).

use super::pack::{K_QUAD, NR};
use super::quantize::{group_factors, Q_MAX};
use super::{a_pack, Block, Int8Kernel};
use crate::activation;
use crate::Activation;
use std::arch::aarch64::*;
use std::arch::asm;

/// Plain NEON: 2 rows x 16 columns.
const NEON_MR: usize = 2;
/// SDOT: 4 rows (one register of packed activations) x 16 columns.
const DOT_MR: usize = 4;
/// SMMLA: 4 row pairs x 4 column pairs.
const MMLA_MR: usize = 8;
/// Columns per SMMLA tile.
const MMLA_NC: usize = 8;

pub(super) static NEON: Int8Kernel = Int8Kernel {
    name: "aarch64-i8-2x16-neon",
    mr: NEON_MR,
    block_rows: super::BLOCK_ROWS,
    sequential_block_rows: super::BLOCK_ROWS,
    quantize_row,
    quantize_row_centered: super::centered::quantize_row_centered_scalar,
    a_elem: 1,
    k_align: 1,
    pack_row: a_pack::pack_row_bytes::<NEON_MR, K_QUAD, 0>,
    block: block_neon,
    delegate: None,
};
pub(super) static DOTPROD: Int8Kernel = Int8Kernel {
    name: "aarch64-i8-4x16-dotprod",
    mr: DOT_MR,
    block_rows: super::BLOCK_ROWS,
    sequential_block_rows: super::BLOCK_ROWS,
    quantize_row,
    quantize_row_centered: super::centered::quantize_row_centered_scalar,
    a_elem: 1,
    k_align: 1,
    pack_row: a_pack::pack_row_bytes::<DOT_MR, K_QUAD, 0>,
    block: block_dot,
    delegate: None,
};
pub(super) static I8MM: Int8Kernel = Int8Kernel {
    name: "aarch64-i8-8x8-i8mm",
    mr: MMLA_MR,
    block_rows: super::BLOCK_ROWS,
    sequential_block_rows: super::BLOCK_ROWS,
    quantize_row,
    quantize_row_centered: super::centered::quantize_row_centered_scalar,
    a_elem: 1,
    k_align: 1,
    pack_row: a_pack::pack_row_bytes::<MMLA_MR, { 2 * K_QUAD }, 0>,
    block: block_mmla,
    delegate: None,
};

fn quantize_row(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    assert!(q.len() >= x.len() && scales.len() * k_group == q.len());
    let k = x.len();
    q[k..].fill(0);
    for (g, scale) in scales.iter_mut().enumerate() {
        let lo = (g * k_group).min(k);
        let hi = ((g + 1) * k_group).min(k);
        *scale = quantize_group_neon(&x[lo..hi], &mut q[lo..hi]);
    }
}

/// The quantizer of [`super::quantize`] on 8 lanes at a time.
fn quantize_group_neon(xs: &[f32], qs: &mut [i8]) -> f32 {
    const L: usize = 8;
    let body = xs.len() / L * L;
    // SAFETY: NEON is baseline on aarch64; loads read 8 floats of `xs`, stores write 8 bytes
    // of `qs` (`qs.len() == xs.len()`).
    unsafe {
        let mut m = vdupq_n_f32(0.0);
        for i in (0..body).step_by(L) {
            // maxnm skips NaN, as the scalar form does.
            m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(xs.as_ptr().add(i))));
            m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(xs.as_ptr().add(i + 4))));
        }
        let maxabs = xs[body..].iter().fold(vmaxnmvq_f32(m), |m, v| m.max(v.abs()));
        let Some((inv, s)) = group_factors(maxabs) else {
            qs.fill(0);
            return 0.0;
        };
        let (vinv, lo, hi) = (vdupq_n_f32(inv), vdupq_n_f32(-Q_MAX), vdupq_n_f32(Q_MAX));
        for i in (0..body).step_by(L) {
            let p = xs.as_ptr().add(i);
            // Clamp, then round half to even (FCVTNS), as the scalar form.
            let a = vcvtnq_s32_f32(vminq_f32(vmaxq_f32(vmulq_f32(vld1q_f32(p), vinv), lo), hi));
            let b = vcvtnq_s32_f32(vminq_f32(vmaxq_f32(vmulq_f32(vld1q_f32(p.add(4)), vinv), lo), hi));
            vst1_s8(
                qs.as_mut_ptr().add(i),
                vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))),
            );
        }
        for (d, &v) in qs[body..].iter_mut().zip(&xs[body..]) {
            *d = (v * inv).round_ties_even().clamp(-Q_MAX, Q_MAX) as i8;
        }
        s
    }
}

/// Folds one group's exact column sums into the float accumulators: `facc = sum * sa` (first
/// group) or `fma(sum, sa, facc)`, as the reference; centered rows then add `fma(col_sum,
/// offset, facc)` (see `centered`) for the tile's columns from global column `col0`.
#[inline(always)]
fn fold<const MR: usize, const NC4: usize>(
    facc: &mut [[float32x4_t; NC4]; MR],
    sums: &[[int32x4_t; NC4]; MR],
    b: &Block<'_>,
    row0: usize,
    g: usize,
    col0: usize,
) {
    let mut col_sums = [zero_f32(); NC4];
    if b.offsets.is_some() {
        let l = b.w.layout;
        let all = &b.w.col_sums[g * l.n_pad + col0..][..4 * NC4];
        for (j, c) in col_sums.iter_mut().enumerate() {
            // SAFETY: NEON is baseline; 4 i32 inside `all`.
            *c = unsafe { vcvtq_f32_s32(vld1q_s32(all.as_ptr().add(4 * j))) };
        }
    }
    for i in 0..MR {
        let sa = b.row_scale(row0 + i, g);
        for j in 0..NC4 {
            // SAFETY: NEON is baseline on aarch64.
            unsafe {
                let dots = vcvtq_f32_s32(sums[i][j]);
                facc[i][j] = if g == 0 {
                    vmulq_f32(dots, vdupq_n_f32(sa))
                } else {
                    vfmaq_f32(facc[i][j], dots, vdupq_n_f32(sa))
                };
            }
        }
        if b.offsets.is_some() {
            let offset = b.row_offset(row0 + i, g);
            for j in 0..NC4 {
                // SAFETY: NEON is baseline on aarch64.
                facc[i][j] = unsafe { vfmaq_f32(facc[i][j], col_sums[j], vdupq_n_f32(offset)) };
            }
        }
    }
}

/// The epilogue for a tile whose first column is global column `col0`, at offset `local` in
/// the output rows.
#[inline(always)]
fn finish<const MR: usize, const NC4: usize>(
    facc: &[[float32x4_t; NC4]; MR],
    b: &Block<'_>,
    col0: usize,
    local: usize,
    out: &mut [&mut [f32]],
) {
    let n = b.w.layout.n;
    let epi = b.epilogue;
    for j in 0..NC4 {
        let c = col0 + 4 * j;
        if c >= n {
            break;
        }
        let valid = (n - c).min(4);
        let mut bias4 = [0f32; 4];
        if let Some(bias) = epi.bias {
            bias4[..valid].copy_from_slice(&bias[c..c + valid]);
        }
        // SAFETY: NEON is baseline; col_scales has n_pad entries; the arrays hold 4 lanes.
        let (sw, bias4) = unsafe { (vld1q_f32(b.w.col_scales.as_ptr().add(c)), vld1q_f32(bias4.as_ptr())) };
        for (i, row) in out.iter_mut().enumerate() {
            let dst = &mut row[local + 4 * j..local + 4 * j + valid];
            // SAFETY: NEON is baseline; loads and stores use 4-lane arrays.
            unsafe {
                let mut y = vmulq_f32(facc[i][j], sw);
                if epi.bias.is_some() {
                    y = vaddq_f32(y, bias4);
                }
                y = match epi.activation {
                    Activation::None => y,
                    Activation::Relu => vmaxq_f32(y, vdupq_n_f32(0.0)),
                    Activation::Gelu(form) => activation::neon::gelu(form, y),
                };
                let mut lanes = [0f32; 4];
                if epi.accumulate {
                    lanes[..valid].copy_from_slice(dst);
                    y = vaddq_f32(vld1q_f32(lanes.as_ptr()), y);
                }
                vst1q_f32(lanes.as_mut_ptr(), y);
                dst.copy_from_slice(&lanes[..valid]);
            }
        }
    }
}

/// Runs `tile(a_tile, row0, p, rows)` over the row tiles and panels of a block.
#[inline(always)]
fn for_each_tile<const MR: usize>(
    b: &Block<'_>,
    out: &mut [&mut [f32]],
    mut tile: impl FnMut(&[u8], usize, usize, &mut [&mut [f32]]),
) {
    for t in 0..b.rows.div_ceil(MR) {
        let a_tile = b.a_tile(b.row0 + t * MR, MR);
        let rows = &mut out[t * MR..(t * MR + MR).min(b.rows)];
        for p in 0..b.panels {
            tile(a_tile, b.row0 + t * MR, p, rows);
        }
    }
}

fn block_neon(b: &Block<'_>, out: &mut [&mut [f32]]) {
    for_each_tile::<NEON_MR>(b, out, |a_tile, row0, p, rows| tile_neon(b, a_tile, row0, p, rows));
}

/// Plain NEON tile: 2 rows x one panel.
fn tile_neon(b: &Block<'_>, a_tile: &[u8], row0: usize, p: usize, out: &mut [&mut [f32]]) {
    const MR: usize = NEON_MR;
    let l = b.w.layout;
    let panel = b.panel0 + p;
    let quads_per_group = l.k_group / K_QUAD;
    debug_assert!(a_tile.len() == MR * l.k_pad && quads_per_group % 2 == 0);
    let wp = &b.w.data[panel * l.panel_stride()..][..l.panel_stride()];
    let mut facc = [[zero_f32(); 4]; MR];
    for g in 0..l.groups {
        // acc[i][2j] / [2j+1]: columns 4j, 4j+1 / 4j+2, 4j+3 as (k pair 0-1, k pair 2-3) lanes.
        let mut acc = [[zero_i32(); 8]; MR];
        for q in (g * quads_per_group..(g + 1) * quads_per_group).step_by(2) {
            let w0 = &wp[q * NR * K_QUAD..][..2 * NR * K_QUAD];
            let a0 = &a_tile[q * MR * K_QUAD..][..2 * MR * K_QUAD];
            // SAFETY: NEON is baseline; every load reads inside the slices above.
            unsafe {
                let mut w = [[vdupq_n_s8(0); 4]; 2];
                for (h, wh) in w.iter_mut().enumerate() {
                    for (j, wj) in wh.iter_mut().enumerate() {
                        *wj = vld1q_s8(w0.as_ptr().add(h * NR * K_QUAD + j * 16) as *const i8);
                    }
                }
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let x0 = vreinterpretq_s8_s32(vld1q_dup_s32(a0.as_ptr().add(i * K_QUAD) as *const i32));
                    let x1 = vreinterpretq_s8_s32(vld1q_dup_s32(a0.as_ptr().add((MR + i) * K_QUAD) as *const i32));
                    for j in 0..4 {
                        let lo = vmlal_s8(
                            vmull_s8(vget_low_s8(w[0][j]), vget_low_s8(x0)),
                            vget_low_s8(w[1][j]),
                            vget_low_s8(x1),
                        );
                        let hi = vmlal_high_s8(vmull_high_s8(w[0][j], x0), w[1][j], x1);
                        acc_row[2 * j] = vpadalq_s16(acc_row[2 * j], lo);
                        acc_row[2 * j + 1] = vpadalq_s16(acc_row[2 * j + 1], hi);
                    }
                }
            }
        }
        let mut sums = [[zero_i32(); 4]; MR];
        for i in 0..MR {
            for j in 0..4 {
                // SAFETY: NEON is baseline.
                sums[i][j] = unsafe { vpaddq_s32(acc[i][2 * j], acc[i][2 * j + 1]) };
            }
        }
        fold(&mut facc, &sums, b, row0, g, panel * NR);
    }
    finish(&facc, b, panel * NR, p * NR, out);
}

fn zero_i32() -> int32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vdupq_n_s32(0) }
}

fn zero_f32() -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vdupq_n_f32(0.0) }
}

fn block_dot(b: &Block<'_>, out: &mut [&mut [f32]]) {
    // SAFETY: reachable only through `for_isa(Isa::Dotprod)` or above, which checks the
    // dotprod feature; `b` and `out` come from `matmul_quantized`.
    for_each_tile::<DOT_MR>(b, out, |a_tile, row0, p, rows| unsafe {
        tile_dot(b, a_tile, row0, p, rows)
    });
}

/// `acc += w (4 columns x 4 k) . a.4b[lane] (one row's 4 k)`.
macro_rules! sdot_lane {
    ($acc:expr, $w:expr, $a:expr, $lane:literal) => {
        asm!(
            concat!("sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[", $lane, "]"),
            acc = inout(vreg) $acc,
            w = in(vreg) $w,
            a = in(vreg) $a,
            options(pure, nomem, nostack)
        )
    };
}

/// SDOT tile: 4 rows x one panel.
///
/// # Safety
/// The CPU must support dotprod.
#[target_feature(enable = "dotprod")]
unsafe fn tile_dot(b: &Block<'_>, a_tile: &[u8], row0: usize, p: usize, out: &mut [&mut [f32]]) {
    const MR: usize = DOT_MR;
    let l = b.w.layout;
    let panel = b.panel0 + p;
    let quads_per_group = l.k_group / K_QUAD;
    debug_assert!(a_tile.len() == MR * l.k_pad);
    let wp = &b.w.data[panel * l.panel_stride()..][..l.panel_stride()];
    let mut facc = [[zero_f32(); 4]; MR];
    for g in 0..l.groups {
        let mut acc = [[zero_i32(); 4]; MR];
        for q in g * quads_per_group..(g + 1) * quads_per_group {
            let wq = &wp[q * NR * K_QUAD..][..NR * K_QUAD];
            let aq = &a_tile[q * MR * K_QUAD..][..MR * K_QUAD];
            // SAFETY: loads read inside the slices above; sdot needs dotprod, enabled here.
            unsafe {
                let x = vld1q_s8(aq.as_ptr() as *const i8);
                for j in 0..4 {
                    let w = vld1q_s8(wq.as_ptr().add(16 * j) as *const i8);
                    sdot_lane!(acc[0][j], w, x, "0");
                    sdot_lane!(acc[1][j], w, x, "1");
                    sdot_lane!(acc[2][j], w, x, "2");
                    sdot_lane!(acc[3][j], w, x, "3");
                }
            }
        }
        fold(&mut facc, &acc, b, row0, g, panel * NR);
    }
    finish(&facc, b, panel * NR, p * NR, out);
}

fn block_mmla(b: &Block<'_>, out: &mut [&mut [f32]]) {
    let n = b.w.layout.n;
    // SAFETY: reachable only through `for_isa(Isa::I8mm)`, which checks the i8mm feature;
    // `b` and `out` come from `matmul_quantized`.
    for_each_tile::<MMLA_MR>(b, out, |a_tile, row0, p, rows| {
        for half in 0..NR / MMLA_NC {
            if (b.panel0 + p) * NR + half * MMLA_NC < n {
                unsafe { tile_mmla(b, a_tile, row0, p, half, rows) }
            }
        }
    });
}

/// SMMLA tile: 8 rows x columns `half * 8 .. + 8` of one panel.
///
/// # Safety
/// The CPU must support i8mm.
#[target_feature(enable = "i8mm")]
unsafe fn tile_mmla(b: &Block<'_>, a_tile: &[u8], row0: usize, p: usize, half: usize, out: &mut [&mut [f32]]) {
    const MR: usize = MMLA_MR;
    const PAIRS: usize = MR / 2;
    let l = b.w.layout;
    let panel = b.panel0 + p;
    let octets_per_group = l.k_group / (2 * K_QUAD);
    debug_assert!(a_tile.len() == MR * l.k_pad && l.k_group % (2 * K_QUAD) == 0);
    let wp = &b.w.data[panel * l.panel_stride()..][..l.panel_stride()];
    let mut facc = [[zero_f32(); 2]; MR];
    for g in 0..l.groups {
        // acc[rp][cp] = [C(2rp, c), C(2rp, c+1), C(2rp+1, c), C(2rp+1, c+1)], c = 2cp.
        let mut acc = [[zero_i32(); 4]; PAIRS];
        for o in g * octets_per_group..(g + 1) * octets_per_group {
            let wo = &wp[2 * o * NR * K_QUAD..][..2 * NR * K_QUAD];
            let ao = &a_tile[o * MR * 2 * K_QUAD..][..MR * 2 * K_QUAD];
            // SAFETY: loads read inside the slices above; smmla needs i8mm, enabled here.
            unsafe {
                let mut cols = [vdupq_n_s32(0); 4];
                for s in 0..2 {
                    let at = (half * MMLA_NC + 4 * s) * K_QUAD;
                    let lo = vreinterpretq_s32_s8(vld1q_s8(wo.as_ptr().add(at) as *const i8));
                    let hi = vreinterpretq_s32_s8(vld1q_s8(wo.as_ptr().add(NR * K_QUAD + at) as *const i8));
                    cols[2 * s] = vzip1q_s32(lo, hi);
                    cols[2 * s + 1] = vzip2q_s32(lo, hi);
                }
                for (rp, acc_pair) in acc.iter_mut().enumerate() {
                    let x = vld1q_s8(ao.as_ptr().add(rp * 16) as *const i8);
                    for (cp, a) in acc_pair.iter_mut().enumerate() {
                        asm!(
                            "smmla {acc:v}.4s, {x:v}.16b, {w:v}.16b",
                            acc = inout(vreg) *a,
                            x = in(vreg) x,
                            w = in(vreg) cols[cp],
                            options(pure, nomem, nostack)
                        );
                    }
                }
            }
        }
        let mut sums = [[zero_i32(); 2]; MR];
        for rp in 0..PAIRS {
            for s in 0..2 {
                // SAFETY: NEON is baseline.
                unsafe {
                    let x = vreinterpretq_s64_s32(acc[rp][2 * s]);
                    let y = vreinterpretq_s64_s32(acc[rp][2 * s + 1]);
                    sums[2 * rp][s] = vreinterpretq_s32_s64(vzip1q_s64(x, y));
                    sums[2 * rp + 1][s] = vreinterpretq_s32_s64(vzip2q_s64(x, y));
                }
            }
        }
        fold(&mut facc, &sums, b, row0, g, panel * NR + half * MMLA_NC);
    }
    finish(&facc, b, panel * NR + half * MMLA_NC, p * NR + half * MMLA_NC, out);
}
