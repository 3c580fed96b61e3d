//! Portable register tiles: `f32-scalar-4x16`, plain Rust on the same packed layouts.
//!
//! 4 rows × one 16-column panel: 64 accumulators, which the compiler keeps in (or near)
//! registers and may vectorize with the baseline SIMD of the target. Separate multiply and add
//! (no fused multiply-add, which is a slow library call without hardware FMA).

use super::driver::{Geometry, TileFn, TileJob};
use super::pack::NR;

/// Rows of the main tile: 4 × 16 accumulators is as many as stays register-friendly on SSE2.
const MR: usize = 4;

/// Applies the epilogue (if any) and stores one tile.
///
/// # Safety
/// `job.dst` must be valid for `ROWS` rows of 16 floats, and `finish.bias`, when not null,
/// for 16 floats.
unsafe fn store<const ROWS: usize>(job: &TileJob, acc: &[[f32; NR]; ROWS]) {
    for (r, row) in acc.iter().enumerate() {
        for (j, &sum) in row.iter().enumerate() {
            // SAFETY: within the tile the caller vouches for.
            unsafe {
                let dst = job.dst.add(r * job.dst_ld + j);
                *dst = match job.finish {
                    None => sum,
                    Some(f) => {
                        let with_bias = if f.bias.is_null() { sum } else { sum + *f.bias.add(j) };
                        let y = f.activation.apply(with_bias);
                        if f.accumulate {
                            *dst + y
                        } else {
                            y
                        }
                    }
                };
            }
        }
    }
}

/// A `ROWS × 16` tile.
///
/// # Safety
/// See [`TileFn`]; any CPU can run it.
unsafe fn tile<const ROWS: usize>(job: &TileJob) {
    let mut acc = [[0f32; NR]; ROWS];
    if !job.init.is_null() {
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: `init` holds ROWS rows of 16 floats, `init_ld` apart.
            row.copy_from_slice(unsafe { std::slice::from_raw_parts(job.init.add(r * job.init_ld), NR) });
        }
    }
    // SAFETY: the packed A micro-panel has `kc · ROWS` floats and the B panel `kc · 16`.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(job.a, job.kc * ROWS),
            std::slice::from_raw_parts(job.b, job.kc * NR),
        )
    };
    for (av, bv) in a.chunks_exact(ROWS).zip(b.chunks_exact(NR)) {
        // Fixed-size arrays, so the compiler unrolls and vectorizes the row updates.
        let bv: &[f32; NR] = bv.try_into().expect("chunk of NR");
        let av: &[f32; ROWS] = av.try_into().expect("chunk of ROWS");
        for (row, &x) in acc.iter_mut().zip(av) {
            for (s, &y) in row.iter_mut().zip(bv) {
                *s += x * y;
            }
        }
    }
    // The store loop is not unrolled; handing it a copy keeps `acc` itself in registers.
    let sums = std::hint::black_box(acc);
    // SAFETY: forwarded from the caller.
    unsafe { store::<ROWS>(job, &sums) }
}

static TILES_1: [TileFn; 1] = [tile::<1>];
static TILES_2: [TileFn; 1] = [tile::<2>];
static TILES_4: [TileFn; 1] = [tile::<MR>];

/// The scalar geometry: 4 × 16 main tile, 1- and 2-row tails.
pub(crate) static GEOMETRY: Geometry = Geometry {
    mr: MR,
    panels: 1,
    row_variants: &[1, 2, MR],
    tiles: &[&TILES_1, &TILES_2, &TILES_4],
};
