//! `x86_64-f32-12x32-avx512`: AVX-512F register tiles.
//!
//! 12 rows × two 16-column panels: 24 zmm accumulators + 2 B registers + 1 broadcast A value
//! of the 32 zmm. Per k step: 2 B loads + 12 broadcast loads (`vbroadcastss`, load ports only)
//! for 24 FMAs, i.e. 12 cycles of two FMA ports against 14 loads on two load ports. 24
//! independent chains cover the 4-cycle FMA latency three times over. Why 12 rows rather than
//! 14 (28 accumulators): 12 divides the usual row counts better (m = 128 on two threads is
//! 2 × (5 × 12 + 4)), and the 4- and 8-row variants keep ragged tails cheap. One-panel
//! variants cover an odd panel count.

use super::driver::{Geometry, TileFn, TileJob};
use crate::activation::avx512 as act;
use crate::Activation;
use std::arch::x86_64::*;

/// Rows of the main tile; see the module docs.
const MR: usize = 12;

/// Epilogue for one vector of 16 outputs at `dst`, then the store.
///
/// # Safety
/// AVX-512F; `dst` valid for 16 floats, `bias` (when not null) for `col + 16`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn finish_store(job: &TileJob, v: __m512, dst: *mut f32, col: usize) {
    // SAFETY: pointers as the caller vouches; features enabled on this function.
    unsafe {
        let v = match job.finish {
            None => v,
            Some(f) => {
                let v = if f.bias.is_null() {
                    v
                } else {
                    _mm512_add_ps(v, _mm512_loadu_ps(f.bias.add(col)))
                };
                let y = match f.activation {
                    Activation::None => v,
                    Activation::Relu => _mm512_max_ps(v, _mm512_setzero_ps()),
                    Activation::Gelu(form) => act::gelu(form, v),
                };
                if f.accumulate {
                    _mm512_add_ps(_mm512_loadu_ps(dst), y)
                } else {
                    y
                }
            }
        };
        _mm512_storeu_ps(dst, v);
    }
}

/// A `ROWS × (16 · PANELS)` tile.
///
/// # Safety
/// AVX-512F; see [`TileFn`].
#[target_feature(enable = "avx512f")]
unsafe fn tile<const ROWS: usize, const PANELS: usize>(job: &TileJob) {
    let mut acc = [[_mm512_setzero_ps(); PANELS]; ROWS];
    // SAFETY: every pointer is valid for the tile as the caller vouches (TileFn contract).
    unsafe {
        if !job.init.is_null() {
            for (r, row) in acc.iter_mut().enumerate() {
                for (p, v) in row.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(job.init.add(r * job.init_ld + 16 * p));
                }
            }
        }
        let (mut a, mut b) = (job.a, job.b);
        let stride = job.b_panel_stride;
        for _ in 0..job.kc {
            let mut bv = [_mm512_setzero_ps(); PANELS];
            for (p, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(b.add(p * stride));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(r));
                for (v, &bp) in row.iter_mut().zip(&bv) {
                    *v = _mm512_fmadd_ps(x, bp, *v);
                }
            }
            a = a.add(ROWS);
            b = b.add(16);
        }
        // Intermediate k blocks: plain stores, a loop the compiler unrolls completely.
        if job.finish.is_none() {
            for (r, row) in acc.iter().enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    _mm512_storeu_ps(job.dst.add(r * job.dst_ld + 16 * p), v);
                }
            }
            return;
        }
        // The epilogue loop is too big to unroll; were it to index `acc`, the accumulators
        // would live in memory (stored on every k step). Spill them once instead.
        let mut sums = [[[0f32; 16]; PANELS]; ROWS];
        for (row, out) in acc.iter().zip(sums.iter_mut()) {
            for (&v, o) in row.iter().zip(out.iter_mut()) {
                _mm512_storeu_ps(o.as_mut_ptr(), v);
            }
        }
        for (r, row) in sums.iter().enumerate() {
            let dst = job.dst.add(r * job.dst_ld);
            for (p, v) in row.iter().enumerate() {
                finish_store(job, _mm512_loadu_ps(v.as_ptr()), dst.add(16 * p), 16 * p);
            }
        }
    }
}

static TILES_4: [TileFn; 2] = [tile::<4, 1>, tile::<4, 2>];
static TILES_8: [TileFn; 2] = [tile::<8, 1>, tile::<8, 2>];
static TILES_12: [TileFn; 2] = [tile::<MR, 1>, tile::<MR, 2>];

/// The AVX-512 geometry: 12 × 32 main tile, 4- and 8-row and one-panel variants.
pub(crate) static GEOMETRY: Geometry = Geometry {
    mr: MR,
    panels: 2,
    row_variants: &[4, 8, MR],
    tiles: &[&TILES_4, &TILES_8, &TILES_12],
};
