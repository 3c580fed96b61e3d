//! `x86_64-f32-6x16-avx2`: AVX2 + FMA register tiles.
//!
//! 6 rows × one 16-column panel (two ymm per row): 12 accumulators + 2 B registers + 1
//! broadcast of the 16 ymm registers. Per k step: 2 B loads, 6 broadcasts and 12 FMAs, so the
//! two FMA ports stay busy (12 independent chains cover the 4-cycle FMA latency twice over)
//! while the loads stay under two per cycle.

use super::driver::{Geometry, TileFn, TileJob};
use crate::activation::avx2 as act;
use crate::Activation;
use std::arch::x86_64::*;

/// Rows of the main tile; see the module docs.
const MR: usize = 6;

/// Epilogue for one vector of 8 outputs at `dst`, then the store.
///
/// # Safety
/// AVX2 + FMA; `dst` valid for 8 floats, `bias` (when not null) for 8.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish_store(job: &TileJob, v: __m256, dst: *mut f32, col: usize) {
    // SAFETY: pointers as the caller vouches; features enabled on this function.
    unsafe {
        let v = match job.finish {
            None => v,
            Some(f) => {
                let v = if f.bias.is_null() {
                    v
                } else {
                    _mm256_add_ps(v, _mm256_loadu_ps(f.bias.add(col)))
                };
                let y = match f.activation {
                    Activation::None => v,
                    Activation::Relu => _mm256_max_ps(v, _mm256_setzero_ps()),
                    Activation::Gelu(form) => act::gelu(form, v),
                };
                if f.accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(dst), y)
                } else {
                    y
                }
            }
        };
        _mm256_storeu_ps(dst, v);
    }
}

/// A `ROWS × 16` tile.
///
/// # Safety
/// AVX2 + FMA; see [`TileFn`].
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const ROWS: usize>(job: &TileJob) {
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    // SAFETY: every pointer is valid for the tile as the caller vouches (TileFn contract).
    unsafe {
        if !job.init.is_null() {
            for (r, row) in acc.iter_mut().enumerate() {
                let src = job.init.add(r * job.init_ld);
                *row = [_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8))];
            }
        }
        let (mut a, mut b) = (job.a, job.b);
        for _ in 0..job.kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(r));
                row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                row[1] = _mm256_fmadd_ps(x, b1, row[1]);
            }
            a = a.add(ROWS);
            b = b.add(16);
        }
        // Intermediate k blocks: plain stores, a loop the compiler unrolls completely.
        if job.finish.is_none() {
            for (r, row) in acc.iter().enumerate() {
                _mm256_storeu_ps(job.dst.add(r * job.dst_ld), row[0]);
                _mm256_storeu_ps(job.dst.add(r * job.dst_ld + 8), row[1]);
            }
            return;
        }
        // The epilogue loop is too big to unroll; were it to index `acc`, the accumulators
        // would live in memory (stored on every k step). Spill them once instead.
        let mut sums = [[0f32; 16]; ROWS];
        for (row, out) in acc.iter().zip(sums.iter_mut()) {
            _mm256_storeu_ps(out.as_mut_ptr(), row[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), row[1]);
        }
        for (r, row) in sums.iter().enumerate() {
            let dst = job.dst.add(r * job.dst_ld);
            finish_store(job, _mm256_loadu_ps(row.as_ptr()), dst, 0);
            finish_store(job, _mm256_loadu_ps(row.as_ptr().add(8)), dst.add(8), 8);
        }
    }
}

static TILES_2: [TileFn; 1] = [tile::<2>];
static TILES_4: [TileFn; 1] = [tile::<4>];
static TILES_6: [TileFn; 1] = [tile::<MR>];

/// The AVX2 geometry: 6 × 16 main tile, 2- and 4-row tails.
pub(crate) static GEOMETRY: Geometry = Geometry {
    mr: MR,
    panels: 1,
    row_variants: &[2, 4, MR],
    tiles: &[&TILES_2, &TILES_4, &TILES_6],
};
