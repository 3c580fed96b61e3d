//! `aarch64-f32-6x16-neon`: NEON register tiles.
//!
//! 6 rows × one 16-column panel (four q registers per row): 24 accumulators + 4 B registers +
//! 2 registers holding 8 A values (6 used) of the 32 vector registers. Each FMA takes its A
//! value by lane (`fmla v.4s, v.4s, v.s[i]`), so A costs 2 loads per k step for 24 FMAs.
//! (8 × 16 would need 32 accumulators; 12 × 8 would read half panels.) 2- and 4-row variants
//! cover the row edges. NEON is baseline on aarch64, so no target feature is needed.

use super::driver::{Geometry, TileFn, TileJob};
use crate::activation::neon as act;
use crate::Activation;
use std::arch::aarch64::*;

/// Rows of the main tile; see the module docs.
const MR: usize = 6;

/// `acc + b · a[lane]`. `lane` is a constant after unrolling, so the match folds away.
#[inline(always)]
fn fma_lane(acc: float32x4_t, b: float32x4_t, a: float32x4_t, lane: usize) -> float32x4_t {
    // SAFETY: NEON is baseline on aarch64; register-only operations.
    unsafe {
        match lane {
            0 => vfmaq_laneq_f32::<0>(acc, b, a),
            1 => vfmaq_laneq_f32::<1>(acc, b, a),
            2 => vfmaq_laneq_f32::<2>(acc, b, a),
            _ => vfmaq_laneq_f32::<3>(acc, b, a),
        }
    }
}

/// Epilogue for one vector of 4 outputs at `dst`, then the store.
///
/// # Safety
/// `dst` valid for 4 floats, `bias` (when not null) for `col + 4`.
#[inline]
unsafe fn finish_store(job: &TileJob, v: float32x4_t, dst: *mut f32, col: usize) {
    // SAFETY: pointers as the caller vouches; NEON is baseline.
    unsafe {
        let v = match job.finish {
            None => v,
            Some(f) => {
                let v = if f.bias.is_null() {
                    v
                } else {
                    vaddq_f32(v, vld1q_f32(f.bias.add(col)))
                };
                let y = match f.activation {
                    Activation::None => v,
                    Activation::Relu => vmaxq_f32(v, vdupq_n_f32(0.0)),
                    Activation::Gelu(form) => act::gelu(form, v),
                };
                if f.accumulate {
                    vaddq_f32(vld1q_f32(dst), y)
                } else {
                    y
                }
            }
        };
        vst1q_f32(dst, v);
    }
}

/// A `ROWS × 16` tile (`ROWS <= 8`).
///
/// # Safety
/// See [`TileFn`]; the A micro-panel is read in whole q registers, up to 2 floats past its end.
unsafe fn tile<const ROWS: usize>(job: &TileJob) {
    // SAFETY: every pointer is valid for the tile as the caller vouches (TileFn contract).
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 4]; ROWS];
        if !job.init.is_null() {
            for (r, row) in acc.iter_mut().enumerate() {
                for (q, v) in row.iter_mut().enumerate() {
                    *v = vld1q_f32(job.init.add(r * job.init_ld + 4 * q));
                }
            }
        }
        let (mut a, mut b) = (job.a, job.b);
        for _ in 0..job.kc {
            let bv = [
                vld1q_f32(b),
                vld1q_f32(b.add(4)),
                vld1q_f32(b.add(8)),
                vld1q_f32(b.add(12)),
            ];
            let a_lo = vld1q_f32(a);
            let a_hi = if ROWS > 4 { vld1q_f32(a.add(4)) } else { a_lo };
            for (r, row) in acc.iter_mut().enumerate() {
                let av = if r < 4 { a_lo } else { a_hi };
                for (v, &bq) in row.iter_mut().zip(&bv) {
                    *v = fma_lane(*v, bq, av, r % 4);
                }
            }
            a = a.add(ROWS);
            b = b.add(16);
        }
        // Intermediate k blocks: plain stores, a loop the compiler unrolls completely.
        if job.finish.is_none() {
            for (r, row) in acc.iter().enumerate() {
                for (q, &v) in row.iter().enumerate() {
                    vst1q_f32(job.dst.add(r * job.dst_ld + 4 * q), v);
                }
            }
            return;
        }
        // The epilogue loop is too big to unroll; were it to index `acc`, the accumulators
        // would live in memory (stored on every k step). Spill them once instead.
        let mut sums = [[0f32; 16]; ROWS];
        for (row, out) in acc.iter().zip(sums.iter_mut()) {
            for (q, &v) in row.iter().enumerate() {
                vst1q_f32(out.as_mut_ptr().add(4 * q), v);
            }
        }
        for (r, row) in sums.iter().enumerate() {
            let dst = job.dst.add(r * job.dst_ld);
            for q in 0..4 {
                finish_store(job, vld1q_f32(row.as_ptr().add(4 * q)), dst.add(4 * q), 4 * q);
            }
        }
    }
}

static TILES_2: [TileFn; 1] = [tile::<2>];
static TILES_4: [TileFn; 1] = [tile::<4>];
static TILES_6: [TileFn; 1] = [tile::<MR>];

/// The NEON geometry: 6 × 16 main tile, 2- and 4-row tails.
pub(crate) static GEOMETRY: Geometry = Geometry {
    mr: MR,
    panels: 1,
    row_variants: &[2, 4, MR],
    tiles: &[&TILES_2, &TILES_4, &TILES_6],
};
