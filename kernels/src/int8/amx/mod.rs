//! AMX int8 kernel: `tdpbusd` on 16 x 64-byte tiles, 32 rows x 32 columns per register block.
//!
//! Like the VNNI kernel ([`super::avx512`]), activations enter as unsigned bytes `q + 128`
//! and each sum is corrected by `- 128 * col_sum`; the sums are exact for every int8 weight.
//! Here the correction costs nothing: each accumulator tile starts from it (a `tileloadd` of
//! one 64-byte row with row stride 0, from rows each task writes at its start) instead of
//! from zero.
//!
//! # Weights: the packed panels as they are
//! One B tile is 16 rows of 64 bytes; row q is k-quad q of a 16-column panel, the 64 bytes the
//! packed layout ([`super::pack`]) already stores contiguously. So 16 consecutive k-quads of a
//! panel, 1024 contiguous bytes, are one B tile (64 k values x 16 columns) loaded with a row
//! stride of 64, straight from the model file: no repacking.
//!
//! # Activations: [`MR`] = 32 rows in k-blocks of 64
//! A packed activation tile holds 32 rows; for each k-block of [`KB`] = 64, the 32 rows' 64
//! bytes in turn (2 KiB), so A tile h of k-block kb (rows 16h..16h+16) is 1 KiB at
//! `(kb * 32 + 16 h) * 64` with a row stride of 64:
//!
//! ```text
//! byte offset of row i, k-block kb, byte j = (kb * 32 + i) * 64 + j   holding k = start(kb) + j
//! ```
//!
//! # The k tail
//! When `k_pad` (a multiple of 8) is not a multiple of 64, the last k-block starts at
//! `k_pad - 64` instead of past the end: its B tile is the panel's last 16 k-quads (inside the
//! panel, never past the weight slice), and its A bytes for the k that the previous block
//! already covered are 0 (unsigned 0 adds nothing), so every k counts once. Below `k_pad` = 64
//! the tiles are configured narrower: A `k_pad` bytes wide, B `k_pad / 4` rows.
//!
//! # Groups
//! A grouped layout (several activation scales per row) whose groups are whole k-blocks
//! (`k_group` a multiple of 64: BERT's and Gemma's groups of 128) runs here too: its k-blocks
//! accumulate group by group, and each group's four accumulators are stored side by side with
//! those of the next groups, [`FOLD_GROUPS`] at a time. One vector pass then folds them into
//! each output's float sum in registers, with the groups' row scales (and, for centered rows,
//! their offsets), the VNNI kernel's float steps in its order, so the outputs stay
//! bit-identical; the float sums go to memory between passes only, and the last pass runs the
//! epilogue. (AMX tiles and the vector units barely overlap on Sapphire Rapids: a vector pass
//! costs its full time however it is interleaved with tile work, so what pays is fewer vector
//! instructions. Folding one group per pass, with a float load and store per group, was
//! 2.5-6% slower end to end.)
//! `k_pad` is then a multiple of 64, so no tail block overlaps a group boundary.
//!
//! # What it delegates
//! Groups that are not whole k-blocks (k_group = 32 would need a fold every half tile) run on
//! the VNNI kernel, as do calls with fewer than [`AMX_MIN_ROWS`] rows. The delegation happens
//! before packing (`Int8Kernel::delegate`).
//!
//! # Per task
//! Each task of the grid loads the tile configuration (`ldtilecfg`) and releases it
//! (`tilerelease`) at its end, so rayon workers shared with other code never see a
//! configured tile state they did not set up. Within a task: for each 32-row tile (a task of
//! a parallel call holds one, `AMX_BLOCK_ROWS`; a call on one thread makes one task per column
//! block with all rows), for each panel pair (the tile's activations stay in L1 while the
//! pairs pass), the k loop (2 A + 2 B tile loads, 4 `tdpbusd`, and a prefetch of the next
//! k-block's B tiles, which stream from L2). The four accumulators are stored to a 4 KiB
//! buffer and the AVX-512 epilogue (scales, bias, activation, residual), row by row, runs on
//! them (or on the folded float accumulators of a grouped layout) with the VNNI kernel's
//! float steps, so outputs are bit-identical to the reference.
//!
//! The packed activations start on a cache line ([`super::aligned`]): with the allocator's
//! 16-byte alignment every 64-byte tile row spanned two lines, and EmbeddingGemma's shapes
//! ran about 30% slower.

pub mod availability;
mod tiles;

use super::aligned::AlignedBytes;
use super::pack::{PackedI8Layout, K_QUAD, NR};
use super::{Block, Int8Kernel};
use crate::activation;
use crate::Activation;
use std::arch::x86_64::*;
use tiles::{Hardware, TileConfig, TileUnit, ROW_BYTES as TILE_ROW, TILE_BYTES};

pub use availability::{availability, AmxUnavailable};

/// Rows per packed activation tile: two A tiles of 16 rows.
pub(super) const MR: usize = 32;
/// k values per k-block: one A tile row of 64 bytes, one B tile of 16 k-quads.
pub(super) const KB: usize = 64;
/// Calls with fewer rows go to the VNNI kernel. A guess, not measured (the development
/// machine had no AMX): AMX computes at least 16 rows (one A tile) per tile block, VNNI 12, and
/// below about 16 rows both are bound by streaming the weights, where AMX's per-task
/// `ldtilecfg` / `tilerelease` and its 4 KiB round trip through memory before the epilogue
/// only add cost. Retune on an AMX machine: set this to 1, then compare the m = 16 and m = 128
/// points of `cargo bench -p octet-benches --bench kernels` under `OCTET_KERNEL=amx` and
/// `OCTET_KERNEL=avx512`.
pub(super) const AMX_MIN_ROWS: usize = 16;

pub(super) static KERNEL: Int8Kernel = Int8Kernel {
    name: "x86_64-u8i8-32x32-amx",
    mr: MR,
    block_rows: super::AMX_BLOCK_ROWS,
    sequential_block_rows: usize::MAX,
    a_elem: 1,
    k_align: KB,
    quantize_row: super::avx512::quantize_row,
    quantize_row_centered: super::avx512::quantize_row_centered,
    pack_row,
    block,
    delegate: Some(delegate_small_or_grouped),
};

/// The AMX kernel without the row threshold, so that tests run every m through the tiles.
#[cfg(test)]
pub(super) static EVERY_M: Int8Kernel = Int8Kernel {
    name: "x86_64-u8i8-32x32-amx (every m)",
    delegate: Some(delegate_grouped),
    ..KERNEL
};

/// The AMX kernel on emulated tiles ([`tiles::Emulated`]): runs on any AVX-512 VNNI CPU.
#[cfg(test)]
pub(super) static EMULATED: Int8Kernel = Int8Kernel {
    name: "x86_64-u8i8-32x32-amx (emulated tiles)",
    block: block_emulated,
    delegate: Some(delegate_grouped),
    ..KERNEL
};

fn delegate_small_or_grouped(m: usize, layout: &PackedI8Layout) -> Option<&'static Int8Kernel> {
    if m < AMX_MIN_ROWS {
        return Some(&super::avx512::KERNEL);
    }
    delegate_grouped(m, layout)
}

fn delegate_grouped(_m: usize, layout: &PackedI8Layout) -> Option<&'static Int8Kernel> {
    (!groups_are_whole_blocks(layout)).then_some(&super::avx512::KERNEL)
}

/// Whether the tiles can run `layout`: one group, or groups of whole k-blocks.
fn groups_are_whole_blocks(layout: &PackedI8Layout) -> bool {
    layout.groups == 1 || layout.k_group.is_multiple_of(KB)
}

/// Packs row `i` (`k_pad` quantized values) into its activation tile (`MR` rows x
/// `k_pad` rounded up to [`KB`]) as described in the module docs, flipping the sign bit. It
/// writes all 64 bytes of the row in every k-block (zeros where no k belongs), so a packed
/// tile never depends on what the buffer held before.
fn pack_row(row: &[i8], i: usize, tile: &mut [u8]) {
    let k_blocks = row.len().div_ceil(KB);
    assert!(i < MR && tile.len() == MR * k_blocks * KB);
    // SAFETY: this kernel is reachable only through `for_isa(Isa::Amx)`, which checks
    // AVX-512 F/BW (the tests that call it check them too).
    unsafe { pack_row_avx512(row, i, tile) }
}

/// [`pack_row`] with one masked 64-byte load, `xor` and store per k-block.
///
/// # Safety
/// The CPU must support AVX-512 F/BW; `i < MR` and `tile` is `MR * k_blocks * KB` bytes.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_row_avx512(row: &[i8], i: usize, tile: &mut [u8]) {
    let k_pad = row.len();
    for kb in 0..k_pad.div_ceil(KB) {
        let start = block_start(kb, k_pad);
        // Bytes j in lo..hi hold k = start + j; the rest are 0.
        let lo = kb * KB - start;
        let hi = (k_pad - start).min(KB);
        let mask: __mmask64 = (u64::MAX >> (64 - hi)) & (u64::MAX << lo);
        let dst = &mut tile[(kb * MR + i) * KB..][..KB];
        // SAFETY: the mask selects bytes start + lo .. start + hi <= k_pad of `row` (masked-off
        // bytes are not read); `dst` is 64 bytes.
        unsafe {
            let x = _mm512_maskz_loadu_epi8(mask, row.as_ptr().add(start));
            let v = _mm512_maskz_mov_epi8(mask, _mm512_xor_si512(x, _mm512_set1_epi8(i8::MIN)));
            _mm512_storeu_si512(dst.as_mut_ptr().cast(), v);
        }
    }
}

/// First k of k-block `kb`: `kb * 64`, except that the last block of a `k_pad` over 64 that
/// is not a multiple of 64 ends at `k_pad`.
#[inline]
fn block_start(kb: usize, k_pad: usize) -> usize {
    if k_pad > KB {
        (kb * KB).min(k_pad - KB)
    } else {
        0
    }
}

fn block(b: &Block<'_>, out: &mut [&mut [f32]]) {
    // SAFETY: this kernel is reachable only through `for_isa(Isa::Amx)`, which checks
    // AVX-512 F/BW/VL/VNNI, AMX-TILE and AMX-INT8 and that Linux granted the tile data
    // permission; `Block` is built by the driver, which checked the layout, the packed
    // activations and the output rows it hands over, and delegated groups of partial k-blocks.
    unsafe { block_tiles::<Hardware>(b, out) }
}

#[cfg(test)]
fn block_emulated(b: &Block<'_>, out: &mut [&mut [f32]]) {
    // SAFETY: as in `block`, but the tiles are modelled in software, so only AVX-512 VNNI is
    // needed (the tests list this kernel only then).
    unsafe { block_tiles::<tiles::Emulated>(b, out) }
}

/// Groups of a grouped layout whose sums one vector pass folds: their accumulators are stored
/// side by side ([`Accumulators`]), then each output row's float sum takes all of them in
/// registers, so the float accumulators are read and written once per [`FOLD_GROUPS`] groups
/// instead of once per group, and the last pass goes straight on to the epilogue.
const FOLD_GROUPS: usize = 3;

/// Ints per stored set of four accumulator tiles.
const SET: usize = 4 * TILE_BYTES / 4;

/// The accumulator tiles of up to [`FOLD_GROUPS`] groups, stored for the vector work: group
/// `c`'s tile `2 h + j` at `[SET * c + 256 * (2 h + j)..]`.
#[repr(C, align(64))]
struct Accumulators([i32; FOLD_GROUPS * SET]);

/// A grouped layout's float accumulators, laid out as one set of [`Accumulators`]: the sums of
/// the groups folded so far.
#[repr(C, align(64))]
struct FloatAccumulators([f32; SET]);

thread_local! {
    /// The rows the accumulators start from, for one task: `-128 col_sum` (the exact
    /// correction for the `+ 128` of the unsigned activations) of each group and panel,
    /// group-major, 64 bytes each. Written at the start of the task, long before a
    /// `tileloadd` reads them: a tile load right after the stores that wrote its bytes waits
    /// for them (measured: 20% slower at m = 128 than starting from zero).
    static CORRECTIONS: std::cell::RefCell<AlignedBytes> = std::cell::RefCell::new(AlignedBytes::default());
}

/// Fills `corr` with the correction rows of the block's panels (see [`CORRECTIONS`]).
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn fill_corrections(b: &Block<'_>, corr: &mut AlignedBytes) {
    let groups = b.w.layout.groups;
    corr.resize_zeroed(groups * b.panels * TILE_ROW);
    for g in 0..groups {
        for p in 0..b.panels {
            let dst = &mut corr[(g * b.panels + p) * TILE_ROW..][..TILE_ROW];
            // SAFETY: 16 column sums of the group inside the panel; 64 bytes of `dst`.
            unsafe {
                let col_sums = _mm512_loadu_si512(b.col_sums16(g, b.panel0 + p).as_ptr().cast());
                let c = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(col_sums));
                _mm512_storeu_si512(dst.as_mut_ptr().cast(), c);
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI and `T` must be usable (AMX available for
/// [`Hardware`]); `b` and `out` must be consistent as the driver builds them, with one group
/// or groups of whole k-blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn block_tiles<T: TileUnit>(b: &Block<'_>, out: &mut [&mut [f32]]) {
    let l = b.w.layout;
    assert!(
        groups_are_whole_blocks(&l),
        "groups of partial k-blocks are delegated to VNNI"
    );
    // Not zeroed: the tiles store every value the vector steps read, and a grouped layout's
    // first fold writes its float accumulators before any read.
    let mut acc = std::mem::MaybeUninit::<Accumulators>::uninit();
    let mut facc = std::mem::MaybeUninit::<FloatAccumulators>::uninit();
    let sums = Sums {
        acc: acc.as_mut_ptr().cast(),
        facc: facc.as_mut_ptr().cast(),
    };
    CORRECTIONS.with_borrow_mut(|corr| {
        // SAFETY: same features.
        unsafe { fill_corrections(b, corr) };
        // SAFETY: forwarded (caller); `corr` holds the block's correction rows.
        unsafe { block_tiles_from::<T>(b, out, sums, corr) }
    });
}

/// [`block_tiles`] once the correction rows (`corr`) are written.
///
/// # Safety
/// As [`block_tiles`]; `corr` was filled by [`fill_corrections`] for `b`; `sums` points at
/// writable [`Accumulators`] and [`FloatAccumulators`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn block_tiles_from<T: TileUnit>(b: &Block<'_>, out: &mut [&mut [f32]], sums: Sums, corr: &[u8]) {
    let l = b.w.layout;
    // SAFETY: AMX is available (caller); the configuration is valid for k_pad.
    unsafe { T::load_config(&TileConfig::new(l.k_pad.min(KB))) };
    // Row tiles outermost: a tile's activations stay in L1 while the block's panel pairs pass
    // (a task of a parallel call holds one row tile; one on a single thread, all of them).
    for t in 0..b.rows.div_ceil(MR) {
        let row0 = b.row0 + t * MR;
        let a_tile = b.a_tile(row0, MR);
        let rows = &mut out[t * MR..(t * MR + MR).min(b.rows)];
        let mut p = 0;
        while p < b.panels {
            let np = if b.panels - p >= 2 { 2 } else { 1 };
            // SAFETY: same features; the tile and panel indices are in range; the tiles are
            // configured on this thread; `sums` points at this frame's buffers.
            unsafe {
                match (rows.len() > MR / 2, np) {
                    (true, 2) => tile::<T, 2, 2>(b, a_tile, row0, p, rows, sums, corr),
                    (true, _) => tile::<T, 2, 1>(b, a_tile, row0, p, rows, sums, corr),
                    (false, 2) => tile::<T, 1, 2>(b, a_tile, row0, p, rows, sums, corr),
                    (false, _) => tile::<T, 1, 1>(b, a_tile, row0, p, rows, sums, corr),
                }
            }
            p += np;
        }
    }
    // SAFETY: as for `load_config`.
    unsafe { T::release() };
}

/// The buffers a register block's vector steps read and write: the stored accumulator tiles
/// ([`Accumulators`]) and a grouped layout's float accumulators ([`FloatAccumulators`]).
#[derive(Clone, Copy)]
struct Sums {
    acc: *mut i32,
    facc: *mut f32,
}

/// One register block: rows `row0 ..` (`out.len()` of them, at most 16 `MH`) x panels
/// `b.panel0 + p .. + NP`. Each group's accumulators start from the group's correction
/// rows (`corr`, see [`CORRECTIONS`]), so the stored sums are already `sum - 128 col_sum`. A
/// grouped layout stores up to [`FOLD_GROUPS`] groups' sums, then folds them
/// ([`fold_groups`]), the last pass with the epilogue.
///
/// # Safety
/// As [`block_tiles`], with the tiles configured; `a_tile` is the packed tile of `row0`;
/// `p + NP <= b.panels`; `out[i]` covers the block's columns for row `row0 + i`; `sums`
/// points at writable [`Accumulators`] and [`FloatAccumulators`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<T: TileUnit, const MH: usize, const NP: usize>(
    b: &Block<'_>,
    a_tile: &[u8],
    row0: usize,
    p: usize,
    out: &mut [&mut [f32]],
    sums: Sums,
    corr: &[u8],
) {
    let l = b.w.layout;
    let panel = b.panel0 + p;
    let stride = l.panel_stride();
    let k_blocks = l.k_pad.div_ceil(KB);
    let grouped = l.groups > 1;
    // Grouped: k_group and k_pad are multiples of KB (`groups_are_whole_blocks`).
    let blocks_per_group = if grouped { l.k_group / KB } else { k_blocks };
    debug_assert!(out.len() <= 16 * MH && a_tile.len() == MR * k_blocks * KB);
    debug_assert_eq!(blocks_per_group * l.groups, k_blocks);
    assert!((panel + NP) * stride <= b.w.data.len());
    let w_panel = b.w.data.as_ptr().cast::<u8>().wrapping_add(panel * stride);
    // Accumulates group `g` into the accumulator tiles and stores them as set `set`.
    let group = |g: usize, set: usize| {
        let corr_rows = &corr[(g * b.panels + p) * TILE_ROW..][..NP * TILE_ROW];
        // SAFETY: configured tiles (caller); `corr_rows` holds NP rows of 64 bytes. Block kb's A
        // tiles are rows kb * 32 .. + 32 of 64 bytes inside `a_tile`; its B tiles are k-quads
        // block_start / 4 .. + min(16, k_pad / 4) of panels `panel` and `panel + 1`, which end
        // at or before each panel's end (module docs), inside the weight slice (asserted
        // above); `sums.acc` has FOLD_GROUPS sets of 4 tiles (caller) and set < FOLD_GROUPS.
        unsafe {
            T::start_acc::<MH, NP>(corr_rows.as_ptr());
            for kb in g * blocks_per_group..(g + 1) * blocks_per_group {
                let b_ptr = w_panel.add(block_start(kb, l.k_pad) / K_QUAD * NR * K_QUAD);
                prefetch_next_b::<NP>(b, b_ptr, stride);
                T::step::<MH, NP>(a_tile.as_ptr().add(kb * MR * KB), b_ptr, stride);
            }
            T::store_acc::<MH, NP>(sums.acc.add(set * SET).cast());
        }
    };
    if !grouped {
        group(0, 0);
        // SAFETY: same features; the stored sums cover `out.len()` rows.
        unsafe { epilogue::<NP>(b, row0, p, out, sums) };
        return;
    }
    let mut g0 = 0;
    while g0 < l.groups {
        let count = FOLD_GROUPS.min(l.groups - g0);
        for set in 0..count {
            group(g0 + set, set);
        }
        // SAFETY: same features; `panel + NP` panels exist (asserted above); at most 32 rows,
        // each with a scale in every group; sets 0..count are stored for these rows.
        unsafe { fold_groups::<NP>(b, g0, count, p, row0, out, sums) };
        g0 += count;
    }
}

/// Prefetches into L1 the B tiles that follow those at `b_ptr` (the next k-block's, or past
/// the panel's end the next panel's first), up to the end of the weights: a tile load that
/// misses L1 holds up the tile unit, and the weights stream from L2. Measured on the AMX
/// machine, one thread: +4-8% on MiniLM's and EmbeddingGemma's per-token shapes, 0-5% on
/// grouped ones.
///
/// It also prefetches into L2 the tiles [`L2_AHEAD`] bytes further on: a model whose weights
/// do not fit the caches (EmbeddingGemma's 100 MB of layers) streams them from memory once per
/// call, and the first row tile to reach a panel otherwise waits for memory at every step.
#[inline]
#[target_feature(enable = "avx512f")]
fn prefetch_next_b<const NP: usize>(b: &Block<'_>, b_ptr: *const u8, stride: usize) {
    let end = b.w.data.as_ptr_range().end.cast::<u8>();
    let next = b_ptr.wrapping_add(TILE_BYTES);
    for j in 0..NP {
        // One bound check per tile (the weights end on a whole tile: module docs), so the
        // prefetches are 16 plain instructions.
        let tile = next.wrapping_add(j * stride);
        if tile.wrapping_add(TILE_BYTES) <= end {
            for line in 0..TILE_BYTES / 64 {
                _mm_prefetch::<_MM_HINT_T0>(tile.wrapping_add(line * 64).cast());
            }
        }
    }
    // Into L2, the tiles L2_AHEAD bytes further on in each panel's stream (past a panel's end:
    // the next pair's panel), for weights that come from memory.
    let offset = (b_ptr as usize - b.w.data.as_ptr() as usize) % stride;
    for j in 0..NP {
        let mut tile = b_ptr.wrapping_add(j * stride + L2_AHEAD);
        if offset + L2_AHEAD >= stride {
            tile = tile.wrapping_add((NP - 1) * stride);
        }
        if tile.wrapping_add(TILE_BYTES) <= end {
            for line in 0..TILE_BYTES / 64 {
                _mm_prefetch::<_MM_HINT_T1>(tile.wrapping_add(line * 64).cast());
            }
        }
    }
}

/// How far ahead in a panel's stream [`prefetch_next_b`] fetches into L2: 8 KiB (eight steps).
/// A/B on the AMX machine: EmbeddingGemma 1x128 0.956 (1 thread) and 0.951 (2 threads), 1x16
/// 0.977; MiniLM, whose weights stay in L2, and EmbeddingGemma 8x128 unchanged. 16 KiB gained
/// less (0.968).
const L2_AHEAD: usize = 8192;

/// Offset in [`Accumulators`] / [`FloatAccumulators`] of row `i` (of 32) of panel `j`'s tile.
#[inline]
fn tile_row(i: usize, j: usize) -> usize {
    (2 * (i / 16) + j) * (TILE_BYTES / 4) + (i % 16) * NR
}

/// Folds groups `g0 .. g0 + count` (stored as sets `0 .. count`, already `sum - 128
/// col_sum`; rows `0..out.len()`, panels `b.panel0 + p .. + NP`) with the VNNI kernel's float
/// steps in its order: for each group `sums * scale` (the first group of all) or `fma(sums,
/// scale, f)`, then for centered rows `fma(col_sum, offset, f)`. Between passes the float sums
/// wait in `sums.facc`; the last pass hands them to the epilogue ([`Finish`]).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI; `p + NP <= b.panels`, `out.len() <= 32`,
/// `1 <= count <= FOLD_GROUPS`, `g0 + count <= groups`, sets `0..count` of `sums.acc` stored
/// for these rows, and `out[i]` covers the block's columns.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn fold_groups<const NP: usize>(
    b: &Block<'_>,
    g0: usize,
    count: usize,
    p: usize,
    row0: usize,
    out: &mut [&mut [f32]],
    sums: Sums,
) {
    let last = g0 + count == b.w.layout.groups;
    // SAFETY: forwarded (caller).
    unsafe {
        match (g0 == 0, b.offsets.is_some(), last) {
            (true, true, true) => fold_rows::<NP, true, true, true>(b, g0, count, p, row0, out, sums),
            (true, true, false) => fold_rows::<NP, true, true, false>(b, g0, count, p, row0, out, sums),
            (true, false, true) => fold_rows::<NP, true, false, true>(b, g0, count, p, row0, out, sums),
            (true, false, false) => fold_rows::<NP, true, false, false>(b, g0, count, p, row0, out, sums),
            (false, true, true) => fold_rows::<NP, false, true, true>(b, g0, count, p, row0, out, sums),
            (false, true, false) => fold_rows::<NP, false, true, false>(b, g0, count, p, row0, out, sums),
            (false, false, true) => fold_rows::<NP, false, false, true>(b, g0, count, p, row0, out, sums),
            (false, false, false) => fold_rows::<NP, false, false, false>(b, g0, count, p, row0, out, sums),
        }
    }
}

/// [`fold_groups`] for the first pass or a later one, centered rows or symmetric ones, the last
/// pass or not.
///
/// # Safety
/// As [`fold_groups`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::needless_range_loop)] // j picks a panel's tile row, column sums and epilogue state
unsafe fn fold_rows<const NP: usize, const FIRST: bool, const CENTERED: bool, const LAST: bool>(
    b: &Block<'_>,
    g0: usize,
    count: usize,
    p: usize,
    row0: usize,
    out: &mut [&mut [f32]],
    sums: Sums,
) {
    let panel = b.panel0 + p;
    let mut col_sums_f = [[_mm512_setzero_ps(); NP]; FOLD_GROUPS];
    if CENTERED {
        for (c, col_sums_f) in col_sums_f.iter_mut().enumerate().take(count) {
            for (j, cs) in col_sums_f.iter_mut().enumerate() {
                // SAFETY: 16 i32 inside the group's column sums of this panel.
                *cs =
                    _mm512_cvtepi32_ps(unsafe { _mm512_loadu_si512(b.col_sums16(g0 + c, panel + j).as_ptr().cast()) });
            }
        }
    }
    // SAFETY: same features; panels `panel .. + NP` exist (caller).
    let finish = unsafe { Finish::<NP>::new(b, p) };
    for (i, row) in out.iter_mut().enumerate() {
        let mut scale = [_mm512_setzero_ps(); FOLD_GROUPS];
        let mut offset = [_mm512_setzero_ps(); FOLD_GROUPS];
        for c in 0..count {
            scale[c] = _mm512_set1_ps(b.row_scale(row0 + i, g0 + c));
            if CENTERED {
                offset[c] = _mm512_set1_ps(b.row_offset(row0 + i, g0 + c));
            }
        }
        for j in 0..NP {
            let at = tile_row(i, j);
            // SAFETY: 16 i32 / f32 of one row of one tile of each set of both buffers (at + 16
            // <= SET; sets below count are stored).
            unsafe {
                let sum = |c: usize| _mm512_cvtepi32_ps(_mm512_load_si512(sums.acc.add(c * SET + at).cast()));
                let mut f = if FIRST {
                    _mm512_mul_ps(sum(0), scale[0])
                } else {
                    _mm512_fmadd_ps(sum(0), scale[0], _mm512_load_ps(sums.facc.add(at)))
                };
                if CENTERED {
                    f = _mm512_fmadd_ps(col_sums_f[0][j], offset[0], f);
                }
                for c in 1..count {
                    f = _mm512_fmadd_ps(sum(c), scale[c], f);
                    if CENTERED {
                        f = _mm512_fmadd_ps(col_sums_f[c][j], offset[c], f);
                    }
                }
                if LAST {
                    finish.store(f, j, row);
                } else {
                    _mm512_store_ps(sums.facc.add(at), f);
                }
            }
        }
    }
}

/// The epilogue's per-column state for one register block (panels `b.panel0 + p .. + NP`):
/// column scales, bias and masks, and the steps after the sums, in the VNNI kernel's order:
/// `* col_scale`, bias, activation, residual, store.
struct Finish<'b, const NP: usize> {
    masks: [__mmask16; NP],
    sw: [__m512; NP],
    bias: Option<[__m512; NP]>,
    epilogue: &'b crate::Epilogue<'b>,
    local: usize,
}

impl<'b, const NP: usize> Finish<'b, NP> {
    /// # Safety
    /// AVX-512 F; `p + NP <= b.panels`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn new(b: &'b Block<'b>, p: usize) -> Self {
        let l = b.w.layout;
        let panel = b.panel0 + p;
        let mut masks = [0 as __mmask16; NP];
        let mut sw = [_mm512_setzero_ps(); NP];
        let mut bias = [_mm512_setzero_ps(); NP];
        for j in 0..NP {
            let col0 = (panel + j) * NR;
            let valid = (l.n - col0).min(NR);
            masks[j] = ((1u32 << valid) - 1) as __mmask16;
            // SAFETY: col_scales has n_pad entries; the bias (n entries) is read under the mask.
            unsafe {
                sw[j] = _mm512_loadu_ps(b.w.col_scales.as_ptr().add(col0));
                if let Some(bias_row) = b.epilogue.bias {
                    bias[j] = _mm512_maskz_loadu_ps(masks[j], bias_row.as_ptr().add(col0));
                }
            }
        }
        Finish {
            masks,
            sw,
            bias: b.epilogue.bias.map(|_| bias),
            epilogue: b.epilogue,
            local: p * NR,
        }
    }

    /// Finishes the float sums `f` of panel `j` of one output row and stores them.
    ///
    /// # Safety
    /// AVX-512 F; `row` covers the block's columns.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn store(&self, f: __m512, j: usize, row: &mut [f32]) {
        debug_assert!(row.len() >= self.local + j * NR + self.masks[j].count_ones() as usize);
        let mut y = _mm512_mul_ps(f, self.sw[j]);
        if let Some(bias) = &self.bias {
            y = _mm512_add_ps(y, bias[j]);
        }
        y = match self.epilogue.activation {
            Activation::None => y,
            Activation::Relu => _mm512_max_ps(y, _mm512_setzero_ps()),
            // SAFETY: AVX-512F is enabled here.
            Activation::Gelu(form) => unsafe { activation::avx512::gelu(form, y) },
        };
        // SAFETY: the valid columns of panel j lie inside the row; loads and stores are masked.
        unsafe {
            let dst = row.as_mut_ptr().add(self.local + j * NR);
            if self.epilogue.accumulate {
                y = _mm512_add_ps(_mm512_maskz_loadu_ps(self.masks[j], dst), y);
            }
            _mm512_mask_storeu_ps(dst, self.masks[j], y);
        }
    }
}

/// The epilogue of one register block of a one-group layout (rows `row0 ..`, `out.len()` of
/// them; panels `b.panel0 + p .. + NP`), row by row: the stored sums times the row's scale (the
/// VNNI kernel's `(sum - 128 col_sum) * sa`, the correction done), then [`Finish`].
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `p + NP <= b.panels`; `out[i]` covers the block's columns; set 0 of
/// `sums.acc` holds the block's stored sums for `out.len()` rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn epilogue<const NP: usize>(b: &Block<'_>, row0: usize, p: usize, out: &mut [&mut [f32]], sums: Sums) {
    // SAFETY: same features; `p + NP <= b.panels` (caller).
    let finish = unsafe { Finish::<NP>::new(b, p) };
    for (i, row) in out.iter_mut().enumerate() {
        let sa = _mm512_set1_ps(b.row_scale(row0 + i, 0));
        for j in 0..NP {
            // SAFETY: 16 i32 of one row of one stored accumulator tile; `row` covers the
            // block's columns (caller).
            unsafe {
                let f = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_load_si512(sums.acc.add(tile_row(i, j)).cast())),
                    sa,
                );
                finish.store(f, j, row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_blocks_cover_every_k_once_and_stay_in_the_panel() {
        for k_pad in (8..=400).step_by(8) {
            let mut seen = vec![0u32; k_pad];
            let k_blocks = k_pad.div_ceil(KB);
            for kb in 0..k_blocks {
                let start = block_start(kb, k_pad);
                let width = k_pad.min(KB);
                assert!(
                    start + width <= k_pad && start.is_multiple_of(K_QUAD),
                    "k_pad={k_pad} kb={kb}"
                );
                // The bytes pack_row fills with values: k in kb * 64 .. k_pad within the block.
                for count in &mut seen[start.max(kb * KB)..(start + width).min(k_pad)] {
                    *count += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "k_pad={k_pad}");
        }
    }

    #[test]
    fn pack_row_places_flipped_values_and_zero_overlap() {
        let k_pad = 72; // one full block, then a tail block starting at k = 8
        let row: Vec<i8> = (0..k_pad).map(|k| k as i8 - 30).collect();
        let mut tile = vec![0xAAu8; MR * 2 * KB];
        pack_row(&row, 3, &mut tile);
        let at = |kb: usize, j: usize| tile[(kb * MR + 3) * KB + j];
        assert_eq!(at(0, 0), (row[0] as u8) ^ 0x80);
        assert_eq!(at(0, 63), (row[63] as u8) ^ 0x80);
        assert!((0..56).all(|j| at(1, j) == 0)); // k = 8..64: already counted
        assert_eq!(at(1, 56), (row[64] as u8) ^ 0x80);
        assert_eq!(at(1, 63), (row[71] as u8) ^ 0x80);
        assert_eq!(tile[(2 * KB)..(3 * KB)], [0xAA; KB]); // row 2 untouched
    }
}
