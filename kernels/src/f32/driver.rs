//! The cache-blocked loop nest around the register tiles, edge handling, and the parallel split.
//!
//! Loop order for one task (a range of rows × a range of panels), GotoBLAS style with the k
//! loop inside the column loop:
//!
//! ```text
//! for ic in row blocks of MC rows:               pack A[ic.., all k] (MC × k, stays in L2)
//!   for each column tile (1 or 2 panels):
//!     for each k block of KC:                    B sliver (KC × tile width) stays in L1 ...
//!       for each micro-panel of MR rows:         ... while the A micro-panels stream from L2
//!         register tile: acc (+)= A·B over the k block; partial sums in a small scratch
//!         column (MC × tile width); on the last k block the epilogue, into `out`
//! ```
//!
//! Block sizes come from the cache sizes of the machines we target (48 KiB L1d, 2 MiB L2 per
//! core on Sapphire Rapids; similar or larger on Zen 4 and Neoverse):
//! - **KC**: the B sliver (`KC × tile width`) plus one A micro-panel (`KC × MR`) fit in
//!   [`L1_BUDGET_BYTES`], leaving room in L1 for the partial sums, the stack and prefetched
//!   lines. `k` is split into equal blocks of at most that size (AVX-512 12 × 32: KC <= 232, so
//!   k = 384 runs as 2 blocks of 192, k = 1536 as 7 blocks of about 220).
//! - **MC**: the packed A block (`MC × k`) fits in [`L2_BUDGET_BYTES`] = 1 MiB, half of L2, so
//!   B streaming through from L3 does not evict it (k = 384: MC = 672; k = 1536: MC = 168).
//! - No NC block: every B sliver is read once per row block and then reused from L1 by all
//!   micro-panels, so B needs about 128 / MC bytes per FMA cycle, which L3 easily serves.
//!
//! The partial sums of one column tile live in a per-thread scratch of `MC × tile width` floats
//! (L1 / L2 resident), so only the last k block touches `out`, and it applies the epilogue in
//! registers. Tiles that stick out of `out` (ragged rows or columns) compute into a stack tile
//! whose valid part is copied back.
//!
//! Determinism: the k blocks depend only on `k` and the kernel, and every output element is
//! summed by the same instruction sequence wherever its tile lies, so the result does not
//! depend on how the rows and columns are split between threads.

use super::pack::{pack_a_block, NR};
use super::PackedF32;
use crate::{Activation, Epilogue};
use rayon::prelude::*;
use std::cell::RefCell;

/// Budget for the B sliver plus an A micro-panel (of a 48 KiB L1d); see the module docs.
pub(crate) const L1_BUDGET_BYTES: usize = 40 * 1024;
/// Budget for the packed A block (of a 2 MiB L2); see the module docs.
pub(crate) const L2_BUDGET_BYTES: usize = 1024 * 1024;
/// Below this many multiply-adds the parallel entry point runs serially: splitting costs a few
/// microseconds, about what 2^20 FMAs take on one core.
const PARALLEL_MIN_FMAS: usize = 1 << 20;
/// Largest register tile (rows × columns) of any kernel, for the stack edge tiles.
const MAX_TILE: usize = 16 * 2 * NR;

/// What a register tile does after its last k block.
#[derive(Clone, Copy)]
pub(crate) struct TileFinish {
    /// Bias for the tile's columns (tile width values), or null.
    pub bias: *const f32,
    pub activation: Activation,
    /// Add into the existing `dst` values.
    pub accumulate: bool,
}

/// One register-tile call: `rows × (panels · 16)` outputs, where rows and panels are fixed by
/// the tile function chosen.
pub(crate) struct TileJob {
    /// Depth of this k block.
    pub kc: usize,
    /// Packed A micro-panel: `kc` groups of `rows` floats.
    pub a: *const f32,
    /// First panel of B at this k block: `kc` rows of 16 floats.
    pub b: *const f32,
    /// Floats from one panel to the next (`16 · k`); read by two-panel tiles only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub b_panel_stride: usize,
    /// Starting sums (`rows` rows of tile width, row stride `init_ld`), or null for zeros.
    pub init: *const f32,
    pub init_ld: usize,
    /// Where the tile goes (`rows` rows of tile width, row stride `dst_ld`).
    pub dst: *mut f32,
    pub dst_ld: usize,
    /// `None`: store the raw sums (an intermediate k block). `Some`: apply the epilogue.
    pub finish: Option<TileFinish>,
}

/// A register tile function.
///
/// # Safety
/// The CPU must support the tile's ISA, and every pointer in the job must be valid for the
/// reads and writes the job describes (a few floats past the A micro-panel may be read too;
/// the driver allocates slack for that).
pub(crate) type TileFn = unsafe fn(&TileJob);

/// The register tiles of one kernel. Only reachable through an [`super::F32Kernel`] static, and
/// those are only handed out for a supported ISA, so holding one proves the tiles may run.
pub(crate) struct Geometry {
    /// Rows of the main tile.
    pub mr: usize,
    /// Panels (of 16 columns) of the main tile.
    pub panels: usize,
    /// Row counts with a tile function, ascending; the last is `mr`.
    pub row_variants: &'static [usize],
    /// `tiles[v][p - 1]`: the tile for `row_variants[v]` rows and `p` panels.
    pub tiles: &'static [&'static [TileFn]],
}

impl Geometry {
    fn tile_width(&self) -> usize {
        self.panels * NR
    }

    /// Index of the smallest row variant with at least `rows` rows.
    fn variant_for(&self, rows: usize) -> usize {
        self.row_variants
            .iter()
            .position(|&v| v >= rows)
            .unwrap_or(self.row_variants.len() - 1)
    }

    /// The k blocks: `(count, nominal size)`; block `i` covers `i·size .. min(k, (i+1)·size)`.
    pub(crate) fn k_blocks(&self, k: usize) -> (usize, usize) {
        let kc_max = (L1_BUDGET_BYTES / ((self.mr + self.tile_width()) * 4)).max(1);
        let count = k.div_ceil(kc_max).max(1);
        (count, k.div_ceil(count))
    }

    /// Rows per row block, a multiple of `mr`, for depth `k`.
    fn mc(&self, k: usize) -> usize {
        ((L2_BUDGET_BYTES / (k.max(1) * 4)) / self.mr).max(1) * self.mr
    }
}

/// A raw output pointer shared by the tasks of one call; tasks write disjoint tiles.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub *mut f32);
// SAFETY: tasks of one call write disjoint regions of the output (see `run`), and the pointer
// is only used while the `&mut [f32]` it came from is borrowed by the call.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// A validated problem: every length has been checked by the public entry point.
pub(crate) struct Problem<'a> {
    pub a: &'a [f32],
    pub lda: usize,
    pub m: usize,
    pub b: &'a PackedF32<'a>,
    pub epilogue: &'a Epilogue<'a>,
    /// `out`, valid for `(m - 1) · ldo + n` floats.
    pub out: OutPtr,
    pub ldo: usize,
}

/// A rectangle of the output: rows `r0 .. r1`, panels `p0 .. p1`.
#[derive(Clone, Copy, Debug)]
struct Task {
    r0: usize,
    r1: usize,
    p0: usize,
    p1: usize,
}

/// Runs the problem, over rayon's current pool when `parallel` and the work is large enough.
pub(crate) fn run(g: &Geometry, p: &Problem, parallel: bool) {
    let layout = p.b.layout();
    if p.m == 0 || layout.n == 0 {
        return;
    }
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let tasks = plan(g, p.m, layout.panels(), threads, p.m * layout.n_pad * layout.k.max(1));
    if tasks.len() == 1 {
        run_task(g, p, tasks[0]);
    } else {
        tasks.par_iter().for_each(|&t| run_task(g, p, t));
    }
}

/// Splits the output into tasks for `threads` threads: whole rows when there are at least two
/// row tiles per thread (each thread then packs only its own rows of A), otherwise columns in
/// whole tiles. Boundaries split evenly by rows, not tiles, so that e.g. 128 rows on 2 threads
/// are 64 + 64, not 72 + 56.
fn plan(g: &Geometry, m: usize, panels: usize, threads: usize, fmas: usize) -> Vec<Task> {
    let whole = Task {
        r0: 0,
        r1: m,
        p0: 0,
        p1: panels,
    };
    if threads <= 1 || fmas < PARALLEL_MIN_FMAS {
        return vec![whole];
    }
    let row_tiles = m.div_ceil(g.mr);
    let col_tiles = panels.div_ceil(g.panels);
    if row_tiles >= 2 * threads {
        (0..threads)
            .map(|i| Task {
                r0: m * i / threads,
                r1: m * (i + 1) / threads,
                ..whole
            })
            .collect()
    } else {
        let parts = threads.min(col_tiles);
        (0..parts)
            .map(|i| Task {
                p0: (col_tiles * i / parts) * g.panels,
                p1: ((col_tiles * (i + 1) / parts) * g.panels).min(panels),
                ..whole
            })
            .collect()
    }
}

/// Per-thread buffers for packed A and partial sums, reused across calls.
struct Buffers {
    a: Vec<f32>,
    scratch: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const { RefCell::new(Buffers { a: Vec::new(), scratch: Vec::new() }) };
}

/// A 64-byte aligned window of `len` floats in `v`, growing it when needed.
fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    let need = len + 16;
    if v.len() < need {
        v.resize(need, 0.0);
    }
    let off = v.as_ptr().align_offset(64).min(16);
    &mut v[off..off + len]
}

fn run_task(g: &Geometry, p: &Problem, t: Task) {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let Buffers { a, scratch } = &mut *bufs;
            run_task_with(g, p, t, a, scratch)
        }
        // Re-entered on this thread (not expected): use fresh buffers.
        Err(_) => run_task_with(g, p, t, &mut Vec::new(), &mut Vec::new()),
    })
}

fn run_task_with(g: &Geometry, p: &Problem, t: Task, abuf: &mut Vec<f32>, sbuf: &mut Vec<f32>) {
    let layout = p.b.layout();
    let (n, k) = (layout.n, layout.k);
    let tw = g.tile_width();
    let col_tiles = (t.p1 - t.p0).div_ceil(g.panels);
    let (kblocks, kc_nom) = g.k_blocks(k);
    let mc = g.mc(k).min(t.r1 - t.r0);
    let mc_pad = mc.div_ceil(g.mr) * g.mr;
    // Slack of 16 floats: NEON tiles load A in whole q registers and may read past the panel.
    let apack = aligned(abuf, mc_pad * k + 16);
    // One raw base pointer for the scratch column: a tile's `init` and `dst` are the same
    // floats (it reads all of `init` before writing `dst`).
    let scratch = if kblocks > 1 {
        aligned(sbuf, mc_pad * tw).as_mut_ptr()
    } else {
        std::ptr::null_mut()
    };
    let bdata = p.b.data();
    let bias = p.epilogue.bias;

    for ic in (t.r0..t.r1).step_by(mc) {
        let rows = mc.min(t.r1 - ic);
        let full = rows / g.mr;
        let tail = rows % g.mr;
        let tail_v = g.variant_for(tail);
        let micro_panels = full + usize::from(tail > 0);
        pack_a_block(
            &p.a[ic * p.lda..],
            p.lda,
            rows,
            0,
            k,
            g.mr,
            g.row_variants[tail_v],
            apack,
        );
        for ct in 0..col_tiles {
            let panel = t.p0 + ct * g.panels;
            let np = g.panels.min(t.p1 - panel);
            let col0 = panel * NR;
            let cols = n.min(col0 + np * NR) - col0;
            for kb in 0..kblocks {
                let k0 = kb * kc_nom;
                let kc = kc_nom.min(k - k0.min(k));
                let (first, last) = (kb == 0, kb + 1 == kblocks);
                // SAFETY (pointer arithmetic): `panel < panels` and `k0 <= k`, so the offset is
                // within (or one past) the packed data.
                let b = unsafe { bdata.as_ptr().add(panel * NR * k + k0 * NR) };
                for i in 0..micro_panels {
                    let (v, valid_rows) = if i < full {
                        (g.row_variants.len() - 1, g.mr)
                    } else {
                        (tail_v, tail)
                    };
                    let tile = g.tiles[v][np - 1];
                    let vrows = g.row_variants[v];
                    let row0 = i * g.mr;
                    // SAFETY (pointer arithmetic): the scratch column holds `mc_pad` rows of `tw`
                    // whenever there is more than one k block.
                    let sc = if scratch.is_null() {
                        scratch
                    } else {
                        unsafe { scratch.add(row0 * tw) }
                    };
                    let mut job = TileJob {
                        kc,
                        // Micro-panel `i` holds `vrows × k` floats, k block `kb` from `k0 · vrows`.
                        a: apack[row0 * k + k0 * vrows..].as_ptr(),
                        b,
                        b_panel_stride: NR * k,
                        init: if first { std::ptr::null() } else { sc },
                        init_ld: tw,
                        dst: sc,
                        dst_ld: tw,
                        finish: None,
                    };
                    if !last {
                        // SAFETY: the Geometry came from a kernel for a supported ISA; A holds a
                        // whole micro-panel plus slack, B `kc` rows of `np` panels, and the
                        // scratch `vrows` rows of `tw` floats.
                        unsafe { tile(&job) };
                        continue;
                    }
                    let out_row = ic + row0;
                    // SAFETY (pointer arithmetic): `out_row < m` and `col0 < n`, inside `out`.
                    let out_ptr = unsafe { p.out.0.add(out_row * p.ldo + col0) };
                    let finish = TileFinish {
                        bias: std::ptr::null(),
                        activation: p.epilogue.activation,
                        accumulate: p.epilogue.accumulate,
                    };
                    if valid_rows == vrows && cols == np * NR {
                        job.dst = out_ptr;
                        job.dst_ld = p.ldo;
                        job.finish = Some(TileFinish {
                            bias: bias.map_or(std::ptr::null(), |b| b[col0..].as_ptr()),
                            ..finish
                        });
                        // SAFETY: as above, and the whole tile lies inside `out` (checked just
                        // now) and inside `bias` (length >= n >= col0 + np · 16).
                        unsafe { tile(&job) };
                    } else {
                        edge_tile(
                            tile,
                            &mut job,
                            finish,
                            bias,
                            out_ptr,
                            p.ldo,
                            valid_rows,
                            vrows,
                            col0,
                            cols,
                            np * NR,
                        );
                    }
                }
            }
        }
    }
}

/// Runs `tile`'s last k block for a tile that sticks out of `out` (`valid_rows` of its `vrows` rows,
/// `cols` of its `w` columns) through a stack tile, then copies the valid part to `out`.
#[allow(clippy::too_many_arguments)]
fn edge_tile(
    tile: TileFn,
    job: &mut TileJob,
    finish: TileFinish,
    bias: Option<&[f32]>,
    out_ptr: *mut f32,
    ldo: usize,
    valid_rows: usize,
    vrows: usize,
    col0: usize,
    cols: usize,
    w: usize,
) {
    let mut dst_tile = [0f32; MAX_TILE];
    let mut bias_tile = [0f32; 2 * NR];
    debug_assert!(vrows * w <= MAX_TILE && w <= 2 * NR);
    if finish.accumulate {
        for r in 0..valid_rows {
            // SAFETY: row `r` of the tile is a row of `out` and `col0 + cols <= n`.
            let src = unsafe { std::slice::from_raw_parts(out_ptr.add(r * ldo), cols) };
            dst_tile[r * w..r * w + cols].copy_from_slice(src);
        }
    }
    if let Some(b) = bias {
        bias_tile[..cols].copy_from_slice(&b[col0..col0 + cols]);
    }
    job.dst = dst_tile.as_mut_ptr();
    job.dst_ld = w;
    job.finish = Some(TileFinish {
        bias: if bias.is_some() {
            bias_tile.as_ptr()
        } else {
            std::ptr::null()
        },
        ..finish
    });
    // SAFETY: the job's A, B and init were set up by the caller for this tile; the stack tile
    // holds `vrows × w` floats and the bias tile `w`.
    unsafe { tile(job) };
    for r in 0..valid_rows {
        // SAFETY: as for the copy in.
        let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.add(r * ldo), cols) };
        dst.copy_from_slice(&dst_tile[r * w..r * w + cols]);
    }
}
