//! int8 x int8 -> i32 matrix multiply for linear layers, with a fused dequantize / bias /
//! activation / residual epilogue.
//!
//! `out[r][c] = epilogue(sum_g sa[r][g] * (sum_{k in g} qa[r][k] * w[c][k]) * sw[c])`, where the
//! weights `w` are int8 packed once by the converter ([`pack`], used in place from a memory
//! map) with per-column scales `sw`, and the activations `a` are f32 rows quantized on the fly
//! per row and k-group ([`quantize`]). The integer sums are exact for every int8 weight
//! (including -128) on every ISA; [`reference`] is the definition and test oracle.
//!
//! Flow of [`matmul`]: quantize the rows (vectorized, identical bytes on every ISA), pack them
//! into the kernel's row tiles ([`a_pack`]), then run the kernel over a fixed grid of
//! (row block x column block) tasks on rayon's current pool. The grid depends only on the
//! shape, and every output element is computed by the same instruction sequence wherever it
//! lies in the grid, so results do not depend on the thread count.
//!
//! [`matmul_to_quantized`] then [`matmul_quantized`] run two layers in a row (an FFN's up and
//! down projections): each task of the first product quantizes its own outputs for the second
//! while they are in L1/L2, so the intermediate is never written or read back as f32 rows, and
//! the results are bit-identical to [`matmul`] into f32 rows followed by [`matmul`] from them.
//!
//! [`asymmetric`] runs the same kernels on rows quantized with a zero point, as TFLite's hybrid
//! kernels do (for imported TFLite layers). [`matmul_centered`] quantizes each activation group
//! around the middle of its range instead of around 0 ([`centered`]), for layers whose inputs
//! sit off-centre; every kernel folds the groups' offsets in with the weights' column sums.
//!
//! Kernels ([`for_isa`]):
//! - `int8-scalar-1x16`: portable Rust, one row x one panel.
//! - `x86_64-i8-4x8-avx2`: `vpmovsxbw` + `vpmaddwd` on i16, exact for any int8 weight.
//! - `x86_64-u8i8-12x32-avx512vnni`: `vpdpbusd` on u8 activations (q + 128) with column-sum
//!   correction, 12 rows x 2 panels of i32 accumulators (24 of 32 zmm registers).
//! - `x86_64-u8i8-32x32-amx`: AMX `tdpbusd` with the same correction, 2 x 2 accumulator tiles
//!   (32 rows x 2 panels), B tiles read straight from the packed panels ([`amx`]). Per-row
//!   layouts with at least 16 rows; it hands grouped layouts and smaller m to the VNNI kernel.
//! - `aarch64-i8-2x16-neon`: `smull` + `smlal` + `sadalp`.
//! - `aarch64-i8-4x16-dotprod`: `sdot` (by element).
//! - `aarch64-i8-8x8-i8mm`: `smmla` on 2x8 row pairs and zipped column pairs.

pub mod a_pack;
mod aligned;
#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod asymmetric;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod centered;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod pack;
pub mod quantize;
pub mod reference;
mod scalar;
#[cfg(test)]
mod tests;

pub use pack::{pack_weights, unpack_weights, PackedI8, PackedI8Layout, PackedI8Owned, NR};
pub use quantize::{quantize_rows, quantize_weights_per_channel, QuantizedRows};

use crate::{check_len, Epilogue, Isa, KernelError};
use rayon::prelude::*;

/// A centered row quantizer: (k values, k_group, k_pad outputs, one scale and one offset per
/// group).
type CenteredRowQuantizer = fn(&[f32], usize, &mut [i8], &mut [f32], &mut [f32]);

/// The int8 implementation for one instruction-set level. Holding one proves the CPU runs it.
pub struct Int8Kernel {
    /// Kernel name with its register-tile geometry, e.g. `x86_64-u8i8-12x32-avx512vnni`.
    pub name: &'static str,
    /// Rows per register tile (and per packed activation tile).
    mr: usize,
    /// Rows per row block of the task grid before it is split for parallelism (rounded up to
    /// whole tiles): what keeps a block's activations in L1 beside a weight panel pair.
    block_rows: usize,
    /// Rows per row block when a call runs on one thread: `block_rows`, or all rows
    /// (`usize::MAX`) for a kernel whose task walks its row tiles one by one anyway (AMX),
    /// so a column block is one task and its per-task set-up is paid once.
    sequential_block_rows: usize,
    /// Bytes per packed activation value (1, or 2 for the AVX2 i16 form).
    a_elem: usize,
    /// Packed activation rows hold `k_pad` rounded up to a multiple of this (1, or 64 for the
    /// AMX tiles).
    k_align: usize,
    /// Quantizes one row: (k values, k_group, k_pad outputs, one scale per group).
    quantize_row: fn(&[f32], usize, &mut [i8], &mut [f32]),
    /// Quantizes one row centered ([`centered`]): as `quantize_row`, plus one offset per group.
    quantize_row_centered: CenteredRowQuantizer,
    /// Packs quantized row i (`k_pad` values) into its activation tile ([`a_pack`]), writing
    /// every byte of the row's place in the tile.
    pack_row: fn(&[i8], usize, &mut [u8]),
    /// Computes one task of the grid.
    block: fn(&Block<'_>, &mut [&mut [f32]]),
    /// For a kernel that serves only some calls: given m and the layout, the kernel that runs
    /// the call instead (chosen before the rows are packed), or `None` to run it here.
    delegate: Option<fn(usize, &PackedI8Layout) -> Option<&'static Int8Kernel>>,
}

impl Int8Kernel {
    /// The kernel that runs a call of `m` rows on `layout`: this one, or the one it delegates
    /// such calls to (the AMX kernel hands small m and grouped layouts to VNNI).
    pub fn for_call(&self, m: usize, layout: &PackedI8Layout) -> &Int8Kernel {
        self.delegate.and_then(|d| d(m, layout)).unwrap_or(self)
    }

    /// Bytes of one packed activation tile for `k_pad`.
    fn tile_bytes(&self, k_pad: usize) -> usize {
        self.mr * k_pad.next_multiple_of(self.k_align) * self.a_elem
    }
}

/// One task: rows `row0 .. row0 + rows` (row0 a multiple of the kernel's `mr`) times panels
/// `panel0 .. panel0 + panels`. `out[i]` is the output of row `row0 + i` for columns
/// `panel0 * 16 .. min((panel0 + panels) * 16, n)`.
pub(crate) struct Block<'a> {
    /// All activation tiles, `tile_bytes` each, as packed by the kernel's `pack_row`.
    pub packed_a: &'a [u8],
    pub tile_bytes: usize,
    /// Activation scales, `groups` per row, rows padded to whole tiles with scale 0.
    pub scales: &'a [f32],
    /// Centered rows' offsets, laid out as `scales` (padding rows 0); `None` for symmetric rows.
    pub offsets: Option<&'a [f32]>,
    pub row0: usize,
    pub rows: usize,
    pub w: &'a PackedI8<'a>,
    pub panel0: usize,
    pub panels: usize,
    pub epilogue: &'a Epilogue<'a>,
}

impl Block<'_> {
    /// The packed activation tile holding row `row` (a multiple of `mr`).
    #[inline]
    pub fn a_tile(&self, row: usize, mr: usize) -> &[u8] {
        debug_assert_eq!(row % mr, 0);
        &self.packed_a[row / mr * self.tile_bytes..][..self.tile_bytes]
    }

    /// The scale of row `row` (possibly a padding row: 0) in group `g`.
    #[inline]
    pub fn row_scale(&self, row: usize, g: usize) -> f32 {
        self.scales[row * self.w.layout.groups + g]
    }

    /// The offset of row `row` in group `g` (0 for symmetric rows and padding rows).
    #[inline]
    pub fn row_offset(&self, row: usize, g: usize) -> f32 {
        self.offsets.map_or(0.0, |o| o[row * self.w.layout.groups + g])
    }

    /// The column sums of group `g` for the 16 columns of panel `panel` (0 beyond n).
    #[inline]
    pub fn col_sums16(&self, g: usize, panel: usize) -> &[i32] {
        &self.w.col_sums[g * self.w.layout.n_pad + panel * NR..][..NR]
    }
}

static SCALAR: Int8Kernel = Int8Kernel {
    name: "int8-scalar-1x16",
    mr: scalar::MR,
    block_rows: BLOCK_ROWS,
    sequential_block_rows: BLOCK_ROWS,
    a_elem: 1,
    k_align: 1,
    quantize_row: quantize::quantize_row_scalar,
    quantize_row_centered: centered::quantize_row_centered_scalar,
    pack_row: a_pack::pack_row_bytes::<{ scalar::MR }, { pack::K_QUAD }, 0>,
    block: scalar::block,
    delegate: None,
};

/// The best int8 implementation at or below `isa` that this CPU supports (at worst scalar).
pub fn for_isa(isa: Isa) -> &'static Int8Kernel {
    if !isa.is_supported() {
        let below = match isa {
            Isa::Amx => Isa::Avx512,
            Isa::Avx512 => Isa::Avx2,
            Isa::I8mm => Isa::Dotprod,
            Isa::Dotprod => Isa::Neon,
            _ => Isa::Scalar,
        };
        return for_isa(below);
    }
    match isa {
        Isa::Scalar => &SCALAR,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &avx2::KERNEL,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &avx512::KERNEL,
        #[cfg(target_arch = "x86_64")]
        Isa::Amx => &amx::KERNEL,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => &neon::NEON,
        #[cfg(target_arch = "aarch64")]
        Isa::Dotprod => &neon::DOTPROD,
        #[cfg(target_arch = "aarch64")]
        Isa::I8mm => &neon::I8MM,
        #[allow(unreachable_patterns)]
        _ => &SCALAR,
    }
}

/// `out[r * out_stride + c]` for `r < m`, `c < n` = epilogue of the product of the f32 rows
/// `a[r * a_stride..][..k]` (quantized on the fly) with the packed weights. Runs in parallel on
/// rayon's current pool when the work is large enough; results do not depend on the pool size.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    kernel: &Int8Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    w: &PackedI8,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let rows = f32_rows(a, a_stride, m, w, false)?;
    run(kernel, m, rows, w, epilogue, Output::F32 { out, out_stride })
}

/// Like [`matmul`], with each activation group quantized around the middle of its range
/// ([`centered`]). Only for layouts with more than one group.
#[allow(clippy::too_many_arguments)]
pub fn matmul_centered(
    kernel: &Int8Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    w: &PackedI8,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let rows = f32_rows(a, a_stride, m, w, true)?;
    run(kernel, m, rows, w, epilogue, Output::F32 { out, out_stride })
}

/// `m` f32 rows of `a`, checked against the weights' k.
fn f32_rows<'a>(
    a: &'a [f32],
    a_stride: usize,
    m: usize,
    w: &PackedI8,
    centered: bool,
) -> Result<Rows<'a>, KernelError> {
    check_rows(a, a_stride, m, w.layout.k)?;
    Ok(Rows::F32 { a, a_stride, centered })
}

/// Checks that `a` holds `m` f32 rows of `k` values, `a_stride` apart.
fn check_rows(a: &[f32], a_stride: usize, m: usize, k: usize) -> Result<(), KernelError> {
    if m > 0 {
        if a_stride < k {
            return Err(KernelError::Invalid(format!(
                "activation row stride {a_stride} is below k={k}"
            )));
        }
        check_len("int8 matmul activations", a.len(), (m - 1) * a_stride + k)?;
    }
    Ok(())
}

/// Like [`matmul`], but the outputs are quantized for the next layer's weights `next` (whose k
/// is this layer's n) into `rows` (resized; reuse it across calls), as [`quantize_rows`] would
/// quantize the f32 outputs, bit for bit: each task quantizes its own tile of outputs for the
/// groups it holds (its columns start on a group boundary). Feed `rows` to
/// [`matmul_quantized`]. `epilogue` cannot accumulate. `centered`: this product's own inputs
/// are quantized as [`matmul_centered`] does; `next_centered`: the outputs are quantized for
/// `next` as [`quantize_rows_centered`] would (a layout with more than one group), else as
/// [`quantize_rows`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_to_quantized(
    kernel: &Int8Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    centered: bool,
    w: &PackedI8,
    epilogue: &Epilogue,
    next: &PackedI8Layout,
    next_centered: bool,
    rows: &mut QuantizedRows,
) -> Result<(), KernelError> {
    if next.k != w.layout.n {
        return Err(KernelError::Invalid(format!(
            "chained int8 layers: the second takes k={} inputs, the first gives n={}",
            next.k, w.layout.n
        )));
    }
    if epilogue.accumulate {
        return Err(KernelError::Invalid(
            "chained int8 layers: the first cannot accumulate into its output".into(),
        ));
    }
    if next_centered && next.groups < 2 {
        return Err(KernelError::Invalid(
            "centered activation rows need a layout with more than one k-group".into(),
        ));
    }
    let a_rows = f32_rows(a, a_stride, m, w, centered)?;
    rows.reset(next, m, next_centered);
    run(
        kernel,
        m,
        a_rows,
        w,
        epilogue,
        Output::Quantized {
            rows,
            next,
            centered: next_centered,
        },
    )
}

/// Like [`matmul`], on rows already quantized (by [`quantize_rows`] or wrapped with
/// [`QuantizedRows::from_parts`], e.g. with unit scales to check the integer sums exactly).
pub fn matmul_quantized(
    kernel: &Int8Kernel,
    qa: &QuantizedRows,
    w: &PackedI8,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    if !qa.matches(&w.layout) {
        return Err(KernelError::Invalid(
            "quantized activations were made for a different weight layout".into(),
        ));
    }
    run(
        kernel,
        qa.m,
        Rows::Quantized(qa),
        w,
        epilogue,
        Output::F32 { out, out_stride },
    )
}

/// Where the activation rows come from.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// f32 rows, quantized symmetric or `centered`.
    F32 {
        a: &'a [f32],
        a_stride: usize,
        centered: bool,
    },
    Quantized(&'a QuantizedRows),
}

impl Rows<'_> {
    /// Whether the rows are (to be) quantized centered ([`centered`]).
    fn centered(&self) -> bool {
        match self {
            Rows::F32 { centered, .. } => *centered,
            Rows::Quantized(qa) => !qa.offsets.is_empty(),
        }
    }
}

/// Where a product's outputs go.
enum Output<'a> {
    /// f32 rows: row r at `out[r * out_stride..][..n]`.
    F32 { out: &'a mut [f32], out_stride: usize },
    /// Quantized for the next layer's weights `next` (whose k is this product's n), in `rows`
    /// (already sized by [`QuantizedRows::reset`]); `centered` as [`quantize_rows_centered`].
    Quantized {
        rows: &'a mut QuantizedRows,
        next: &'a PackedI8Layout,
        centered: bool,
    },
}

/// One row's share of a quantized output: its columns' codes, its groups' scales and, for
/// centered rows, its groups' offsets (empty otherwise).
type CodesAndScales<'a> = (&'a mut [i8], &'a mut [f32], &'a mut [f32]);

thread_local! {
    /// A task's f32 outputs before they are quantized (rows x the task's columns), per worker.
    static TASK_TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Packed activation tiles and padded scales, reused across calls on the calling thread so
/// that large batches do not pay page faults for fresh buffers every time.
#[derive(Default)]
struct Scratch {
    packed_a: aligned::AlignedBytes,
    scales: Vec<f32>,
    /// Offsets of centered rows, laid out as `scales` (padding rows 0); for symmetric rows
    /// whatever an earlier call left (the blocks do not read them).
    offsets: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

fn run(
    kernel: &Int8Kernel,
    m: usize,
    rows: Rows<'_>,
    w: &PackedI8,
    epilogue: &Epilogue,
    output: Output<'_>,
) -> Result<(), KernelError> {
    let layout = w.layout;
    epilogue.check(layout.n)?;
    if let Output::F32 { out, out_stride } = &output {
        reference::check_out(out, m, layout.n, *out_stride)?;
    }
    let centered = rows.centered();
    if centered && layout.groups < 2 {
        return Err(KernelError::Invalid(
            "centered activation rows need a layout with more than one k-group".into(),
        ));
    }
    if m == 0 {
        return Ok(());
    }
    let kernel = kernel.for_call(m, &layout);
    let mut scratch = SCRATCH.with(|s| s.take());
    let parallel =
        m as u64 * layout.n_pad as u64 * layout.k_pad as u64 >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1;
    prepare_rows(kernel, m, rows, &layout, parallel, &mut scratch);
    // Quantized outputs: every column block holds whole groups of the next layer.
    let align = match &output {
        Output::F32 { .. } => 2,
        Output::Quantized { next, .. } => next.k_group.div_ceil(NR).next_multiple_of(2),
    };
    let block_rows = if parallel {
        kernel.block_rows
    } else {
        kernel.sequential_block_rows
    };
    let grid = Grid::new(m, &layout, kernel.mr, block_rows, align, parallel);
    let tile_bytes = kernel.tile_bytes(layout.k_pad);
    let block = |rb: usize, cb: usize, rows: usize| {
        let panel0 = cb * grid.panels_per_block;
        Block {
            packed_a: &scratch.packed_a[..],
            tile_bytes,
            scales: &scratch.scales,
            offsets: centered.then_some(&scratch.offsets[..]),
            row0: rb * grid.rows_per_block,
            rows,
            w,
            panel0,
            panels: grid.panels_per_block.min(layout.panels() - panel0),
            epilogue,
        }
    };
    let n = layout.n;
    let block_cols = |cb: usize| (n - cb * grid.panels_per_block * NR).min(grid.panels_per_block * NR);
    match output {
        Output::F32 { out, out_stride } => {
            // Hand each task its output rows, cut to its columns: disjoint mutable slices.
            let mut tasks = grid.tasks::<&mut [f32]>();
            for (r, row) in out.chunks_mut(out_stride).take(m).enumerate() {
                let mut rest = &mut row[..n];
                for cb in 0..grid.col_blocks {
                    let (mine, tail) = rest.split_at_mut(block_cols(cb));
                    tasks[grid.task_index(r / grid.rows_per_block, cb)].2.push(mine);
                    rest = tail;
                }
            }
            let run_task = |(rb, cb, mut rows): (usize, usize, Vec<&mut [f32]>)| {
                (kernel.block)(&block(rb, cb, rows.len()), &mut rows);
            };
            for_each_task(tasks, parallel, run_task);
        }
        Output::Quantized {
            rows: q,
            next,
            centered: out_centered,
        } => {
            // Each task gets, per row, its columns' codes and its groups' scales (and offsets):
            // column blocks start on group boundaries, and the last one runs to k_pad.
            let (k_group, k_pad, groups) = (next.k_group, next.k_pad, next.groups);
            let mut tasks = grid.tasks::<CodesAndScales<'_>>();
            // Symmetric rows have no offsets: every row gets an empty slice.
            let mut offset_rows = q.offsets.chunks_exact_mut(groups.max(1)).take(m);
            let rows = q.values.chunks_exact_mut(k_pad).zip(q.scales.chunks_exact_mut(groups));
            for (r, (codes, scales)) in rows.take(m).enumerate() {
                let offsets: &mut [f32] = if out_centered {
                    offset_rows.next().unwrap_or_default()
                } else {
                    &mut []
                };
                let (mut codes, mut scales, mut offsets) = (codes, scales, offsets);
                for cb in 0..grid.col_blocks {
                    let last = cb + 1 == grid.col_blocks;
                    let width = if last { codes.len() } else { block_cols(cb) };
                    let (my_codes, codes_tail) = codes.split_at_mut(width);
                    let (my_scales, scales_tail) = scales.split_at_mut(width / k_group);
                    let (my_offsets, offsets_tail) =
                        offsets.split_at_mut(if out_centered { width / k_group } else { 0 });
                    tasks[grid.task_index(r / grid.rows_per_block, cb)]
                        .2
                        .push((my_codes, my_scales, my_offsets));
                    (codes, scales, offsets) = (codes_tail, scales_tail, offsets_tail);
                }
            }
            let width = grid.panels_per_block * NR;
            let run_task = |(rb, cb, mut dst): (usize, usize, Vec<CodesAndScales<'_>>)| {
                let cols = block_cols(cb);
                TASK_TILE.with_borrow_mut(|tile| {
                    // Grown, never shrunk: the block writes every value the quantizer reads.
                    let need = dst.len() * width;
                    if tile.len() < need {
                        tile.resize(need, 0.0);
                    }
                    let mut out: Vec<&mut [f32]> = tile[..need].chunks_exact_mut(width).collect();
                    (kernel.block)(&block(rb, cb, dst.len()), &mut out);
                    for (y, (codes, scales, offsets)) in out.iter().zip(dst.iter_mut()) {
                        if out_centered {
                            (kernel.quantize_row_centered)(&y[..cols], k_group, codes, scales, offsets);
                        } else {
                            (kernel.quantize_row)(&y[..cols], k_group, codes, scales);
                        }
                    }
                });
            };
            for_each_task(tasks, parallel, run_task);
        }
    }
    SCRATCH.with(|s| s.set(scratch));
    Ok(())
}

/// Runs `run_task` on every task: on rayon's current pool when `parallel` and there is more
/// than one, else in order on this thread.
fn for_each_task<T: Send>(tasks: Vec<T>, parallel: bool, run_task: impl Fn(T) + Send + Sync) {
    if parallel && tasks.len() > 1 {
        tasks.into_par_iter().for_each(run_task);
    } else {
        tasks.into_iter().for_each(run_task);
    }
}

/// Quantizes (or copies) and packs every row into the kernel's activation tiles, with
/// padded per-row scales; in parallel over tiles when `parallel`.
fn prepare_rows(
    kernel: &Int8Kernel,
    m: usize,
    rows: Rows<'_>,
    layout: &PackedI8Layout,
    parallel: bool,
    scratch: &mut Scratch,
) {
    let (mr, k, k_pad, groups) = (kernel.mr, layout.k, layout.k_pad, layout.groups);
    let tiles = m.div_ceil(mr);
    let tile_bytes = kernel.tile_bytes(k_pad);
    let packed_len = tiles * tile_bytes;
    // Every kernel's `pack_row` writes every byte of its row in the tile (AMX's zeros past k_pad
    // too), and padding rows are packed from zeros, so a buffer left longer by an earlier call
    // is used as it is, not shrunk and zero-filled again.
    if scratch.packed_a.len() < packed_len {
        scratch.packed_a.resize_zeroed(packed_len);
    }
    scratch.scales.clear();
    scratch.scales.resize(tiles * mr * groups, 0.0);
    // Laid out as the scales. Centered rows write theirs over zeros (padding rows keep 0);
    // symmetric rows only need the buffer long enough to hand out (the blocks never read it),
    // so they do not pay for clearing it.
    if rows.centered() {
        scratch.offsets.clear();
    }
    if scratch.offsets.len() < tiles * mr * groups {
        scratch.offsets.resize(tiles * mr * groups, 0.0);
    }
    type TileParts<'b> = (usize, ((&'b mut [u8], &'b mut [f32]), &'b mut [f32]));
    let pack_tile = |row_buf: &mut Vec<i8>, (t, ((tile, scales), offsets)): TileParts<'_>| {
        row_buf.resize(k_pad, 0);
        for i in 0..mr {
            let r = t * mr + i;
            let group_range = i * groups..(i + 1) * groups;
            let row: &[i8] = if r >= m {
                row_buf.fill(0);
                row_buf
            } else {
                match rows {
                    Rows::F32 { a, a_stride, centered } => {
                        let x = &a[r * a_stride..r * a_stride + k];
                        let row_scales = &mut scales[group_range.clone()];
                        if centered {
                            let row_offsets = &mut offsets[group_range];
                            (kernel.quantize_row_centered)(x, layout.k_group, row_buf, row_scales, row_offsets);
                        } else {
                            (kernel.quantize_row)(x, layout.k_group, row_buf, row_scales);
                        }
                        row_buf
                    }
                    Rows::Quantized(qa) => {
                        scales[group_range.clone()].copy_from_slice(qa.row_scales(r));
                        if let Some(o) = qa.row_offsets(r) {
                            offsets[group_range].copy_from_slice(o);
                        }
                        qa.row(r)
                    }
                }
            };
            (kernel.pack_row)(row, i, tile);
        }
    };
    if parallel && tiles > 1 {
        scratch.packed_a[..packed_len]
            .par_chunks_exact_mut(tile_bytes)
            .zip(scratch.scales.par_chunks_exact_mut(mr * groups))
            .zip(scratch.offsets[..tiles * mr * groups].par_chunks_exact_mut(mr * groups))
            .enumerate()
            .for_each_init(Vec::new, pack_tile);
    } else {
        let mut row_buf = Vec::new();
        let tiles_iter = scratch.packed_a[..packed_len]
            .chunks_exact_mut(tile_bytes)
            .zip(scratch.scales.chunks_exact_mut(mr * groups))
            .zip(scratch.offsets[..tiles * mr * groups].chunks_exact_mut(mr * groups));
        tiles_iter.enumerate().for_each(|item| pack_tile(&mut row_buf, item));
    }
}

/// Below this many multiply-adds (about 10 us on one core) the pool's overhead outweighs a
/// second thread.
const PARALLEL_MIN_MACS: u64 = 1 << 21;
/// Packed weight bytes of one column block: a quarter of the 2 MiB L2 of current x86 and ARM
/// server cores, so a block stays in L2 next to the activations, outputs and prefetch streams
/// while all row tiles pass it (measured at m=4096, k=384, n=1536: 1 MiB blocks gave 223
/// GOPS, 512 KiB 295 GOPS on one Sapphire Rapids core).
const BLOCK_WEIGHT_BYTES: usize = 1 << 19;
/// Rows per row block before splitting for parallelism (`Int8Kernel::block_rows` of the
/// register-tile kernels).
pub(super) const BLOCK_ROWS: usize = 96;
/// Rows per row block of the 32-row AMX kernel: one row tile, so that its activations (12 KiB
/// at k = 384) and a panel pair's weights stay in L1 while the block's panel pairs pass (kernel
/// bench on one Sapphire Rapids-class core, MiniLM QKV with groups of 128 at m = 4096: 64- and
/// 96-row blocks gave 360-395 GOPS, 32-row blocks 800-940; at k = 1536 no block size helped).
#[cfg(target_arch = "x86_64")]
pub(super) const AMX_BLOCK_ROWS: usize = 32;
/// Tasks to aim for when the work is large: small enough that a worker that joins late (a
/// sleeping vCPU takes tens of microseconds to wake) still gets an equal share. A/B on a 2-core
/// Zen 4 VM, MiniLM int8 at 2 threads: 32 tasks instead of 8 gave 1x128 -7.5%, 1x256 -7.4%,
/// 32x128 -3.3%, with 1 thread unchanged; EmbeddingGemma's wider layers were already split
/// finer by columns (unchanged).
const MIN_TASKS: usize = 32;
/// Tasks of a short input's column split (each streams its share of the weights once); more
/// tasks did not help one 16-token text.
const SMALL_M_TASKS: usize = 8;
/// Up to this many row tiles (24 rows of the 12-row kernel), parallel work is split by
/// columns only.
const SMALL_M_TILES: usize = 2;

/// The task grid: a function of the shape and of whether the call runs in parallel. The outputs
/// never depend on it: each output is computed whole, with the same steps, by one task.
#[derive(Debug)]
struct Grid {
    rows_per_block: usize,
    row_blocks: usize,
    panels_per_block: usize,
    col_blocks: usize,
    /// Task order: column blocks outermost (a call on one thread), else row blocks.
    columns_outermost: bool,
}

impl Grid {
    /// The grid for `m` rows on `layout` with `mr`-row tiles in row blocks of about
    /// `block_rows`; every column block but the last holds a multiple of `align` panels (even).
    /// A call that runs in `parallel` is split further, into tasks that balance across
    /// threads; one that does not keeps the fewest tasks (each costs some set-up, AMX's tile
    /// configuration among it).
    fn new(m: usize, layout: &PackedI8Layout, mr: usize, block_rows: usize, align: usize, parallel: bool) -> Grid {
        let panels = layout.panels();
        let tiles = m.div_ceil(mr);
        let max_panels = (BLOCK_WEIGHT_BYTES / layout.panel_stride()).max(2) & !1;
        let mut col_blocks = panels.div_ceil(max_panels);
        // Row blocks of near-equal size (11 tiles: 6 + 5, not 8 + 3), so equal tasks balance.
        let mut tiles_per_block = tiles.div_ceil(tiles.div_ceil(block_rows.div_ceil(mr)));
        if parallel && tiles <= SMALL_M_TILES {
            // A short input (one short text): every task takes all rows and a share of the
            // columns, so each weight panel is streamed once, by one core, and the tasks are
            // equal (a 12-row and a 4-row task over the same panels are not).
            col_blocks = SMALL_M_TASKS.min(panels.div_ceil(2)).max(col_blocks);
        } else if parallel {
            let want_row_blocks = MIN_TASKS.div_ceil(col_blocks);
            if tiles.div_ceil(tiles_per_block) < want_row_blocks {
                tiles_per_block = tiles.div_ceil(want_row_blocks).max(1);
            }
            let row_blocks = tiles.div_ceil(tiles_per_block);
            if row_blocks * col_blocks < MIN_TASKS {
                col_blocks = MIN_TASKS.div_ceil(row_blocks).min(panels.div_ceil(2)).max(col_blocks);
            }
        }
        // Even panel counts per block, so two-panel kernels never see a lone panel mid-matrix.
        let panels_per_block = panels.div_ceil(col_blocks).next_multiple_of(align);
        Grid {
            rows_per_block: tiles_per_block * mr,
            row_blocks: tiles.div_ceil(tiles_per_block),
            panels_per_block,
            col_blocks: panels.div_ceil(panels_per_block),
            columns_outermost: !parallel,
        }
    }

    /// One empty task per (row block, column block), for the caller to fill with each row's
    /// share. On one thread column blocks are outermost, so each column block's weights stay
    /// in L2 while every row block passes (EmbeddingGemma 1 x 128 at 1 thread: +6%). A parallel
    /// call keeps row blocks outermost, so each thread's half of the list holds its own rows
    /// (MiniLM at 2 threads lost 6-10% with columns outermost).
    fn tasks<T>(&self) -> Vec<(usize, usize, Vec<T>)> {
        let mut tasks: Vec<_> = (0..self.row_blocks * self.col_blocks)
            .map(|_| (0, 0, Vec::new()))
            .collect();
        for rb in 0..self.row_blocks {
            for cb in 0..self.col_blocks {
                tasks[self.task_index(rb, cb)] = (rb, cb, Vec::with_capacity(self.rows_per_block));
            }
        }
        tasks
    }

    /// The index in [`Grid::tasks`] of row block `rb`'s task in column block `cb`.
    fn task_index(&self, rb: usize, cb: usize) -> usize {
        if self.columns_outermost {
            cb * self.row_blocks + rb
        } else {
            rb * self.col_blocks + cb
        }
    }
}
