//! AMX-BF16 attention tiles: `tdpbf16ps` multiplies a tile of up to 16 rows of 16 bf16 pairs
//! by a tile of 16 pairs x 16 columns and adds both products of each pair into 16 x 16 f32
//! accumulators. The layouts are those of the AVX-512 BF16 tiles ([`super::bf16`]): 16 pairs
//! of a query (or probability) row are one 64-byte A tile row, and 16 consecutive rows of key
//! pairs (or value pairs), 16 columns each, are one B tile with the layout's row stride.
//!
//! - Scores: up to 16 query rows x 64 keys (4 accumulator tiles) per pass; per 16 pairs of
//!   head dimensions, one A load and one B load per 16 keys. Then `* scale`, as the other tiles
//!   do. A head width that is not a multiple of 32 (16 pairs) runs the AVX-512 BF16 tile.
//!   So do calls with fewer than [`MIN_KEYS`] keys, where the tile set-up costs more than it
//!   saves.
//! - P V: up to 16 rows x 64 output columns per pass; the key pairs in whole blocks of 16 go
//!   through the tiles, the last `key_pairs % 16` are added with `vdpbf16ps` before the store.
//!   A head width that is not a multiple of 16 runs the AVX-512 BF16 tile.
//! - Split-value P V (the scores-only kernel's, [`super::bf16`]): the same passes with three
//!   products per block, `p_hi v_hi`, `p_lo v_hi` and `p_hi v_lo`: `tmm4` and `tmm5` hold the
//!   `hi` and `lo` probability tiles, `tmm6` and `tmm7` a strip's `hi` and `lo` value tiles.
//!
//! Each call loads the tile configuration and releases it at its end, as the int8 AMX kernel
//! does, so rayon workers shared with other code never see a tile state they did not set up.
//! Register roles: `tmm0..tmm3` accumulators, `tmm4` the A tile, `tmm5..tmm7` B tiles.
//!
//! Sums: each `tdpbf16ps` adds a pair's two products to its accumulator with bf16 inputs, as
//! `vdpbf16ps` does, so the difference from the scalar reference is the order of the f32
//! additions (tests.rs states the tolerance). Denormal inputs and results are flushed to zero,
//! as with `vdpbf16ps`.
//!
//! Every function here is safe and sound only because it is reached through the AMX bf16
//! kernel, which `bf16_for_isa` hands out after AVX-512 BF16, AMX-BF16 and the tile data
//! permission were detected ([`available`]).

// Tile functions take each slice with its stride and extent explicitly, as the f32 tiles do.
#![allow(clippy::too_many_arguments)]

use super::avx512_bf16;
use super::bf16::{bf16_residual, to_bf16, SplitTiles, Tiles};
use super::{assert_probs_values_args, assert_scores_args};
use std::arch::x86_64::*;

/// The tiles of this level: the two products on AMX, the conversions of AVX-512 BF16.
pub(super) static TILES: Tiles = Tiles {
    scores,
    probs_values,
    round_pairs: avx512_bf16::round_pairs,
    interleave: avx512_bf16::interleave,
    softmax_pairs: avx512_bf16::softmax_pairs,
    group_rows: MAX_ROWS,
    split: Some(&SPLIT),
};

/// Split-value P V ([`super::bf16`]'s module docs) on the tiles, for the scores-only kernel.
static SPLIT: SplitTiles = SplitTiles {
    probs_values: probs_values_split,
    split_pairs,
    interleave: interleave_split,
    min_key_pairs: MIN_KEYS / 2,
};

/// f32 lanes (and bf16 pairs) per tile row.
const LANES: usize = 16;
/// Most rows of a tile.
const MAX_ROWS: usize = 16;
/// Fewer keys than this (scores) or key pairs (P V) run the AVX-512 BF16 tile: each call's
/// tile configuration and release cost about 100 ns, more than the tiles save on a short
/// text (MiniLM 1 x 16 at one thread was 3% slower on the tiles).
const MIN_KEYS: usize = 64;

/// Whether the AMX bf16 tiles can run here: the int8 AMX kernel's checks (CPU, OS tile state,
/// the tile data permission), AVX-512 BF16 for the tails and conversions, and AMX-BF16.
pub(super) fn available() -> bool {
    crate::Isa::Amx.is_supported()
        && std::is_x86_feature_detected!("avx512bf16")
        && crate::int8::amx::availability::cpu_has_amx_bf16()
}

/// The 64-byte `ldtilecfg` operand for tiles of `rows` rows (at most 16): accumulators and
/// the A tile `rows` x 64 bytes, B tiles 16 x 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

impl Config {
    fn new(rows: usize) -> Config {
        Config::with_b_from(rows, 5)
    }

    /// For the split-value passes: the accumulators and both probability tiles (`tmm0..tmm5`)
    /// `rows` x 64 bytes, the value tiles (`tmm6`, `tmm7`) 16 x 64 bytes. (A `tdpbf16ps` whose
    /// A tile has other rows than its accumulator is an invalid instruction.)
    fn split(rows: usize) -> Config {
        Config::with_b_from(rows, 6)
    }

    /// Tiles below `first_b` have `rows` rows, the rest 16.
    fn with_b_from(rows: usize, first_b: usize) -> Config {
        assert!((1..=MAX_ROWS).contains(&rows));
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            c[48 + t] = if t >= first_b { 16 } else { rows as u8 };
        }
        Config(c)
    }
}

/// # Safety
/// AMX must be available to this process; `cfg` is a valid configuration.
#[inline]
unsafe fn load_config(cfg: &Config) {
    // SAFETY: as the caller guarantees.
    unsafe { core::arch::asm!("ldtilecfg [{0}]", in(reg) cfg as *const Config, options(nostack, readonly)) };
}

/// # Safety
/// AMX must be available to this process.
#[inline]
unsafe fn release() {
    // SAFETY: as the caller guarantees; register-only.
    unsafe { core::arch::asm!("tilerelease", options(nostack, nomem)) };
}

/// `tilezero tmm{C}`.
///
/// # Safety
/// A configuration is loaded on this thread.
#[inline(always)]
unsafe fn zero<const C: u8>() {
    // SAFETY: as the caller guarantees; register-only.
    unsafe { core::arch::asm!("tilezero tmm{c}", c = const C, options(nostack, nomem)) };
}

/// Zeroes the first `NS` (1 to 4) accumulators, `tmm0 ..`.
///
/// # Safety
/// A configuration is loaded on this thread.
#[inline(always)]
unsafe fn zero_first<const NS: usize>() {
    // SAFETY: as the caller guarantees.
    unsafe {
        zero::<0>();
        if NS > 1 {
            zero::<1>();
        }
        if NS > 2 {
            zero::<2>();
        }
        if NS > 3 {
            zero::<3>();
        }
    }
}

/// Loads the A tile (`tmm4`) from `a`, rows `stride` bytes apart.
///
/// # Safety
/// A configuration is loaded; every row of 64 bytes it reads is readable.
#[inline(always)]
unsafe fn load_a(a: *const u32, stride: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        core::arch::asm!("tileloadd tmm4, [{p} + {s}*1]", p = in(reg) a, s = in(reg) stride, options(nostack, readonly));
    }
}

/// Loads B tile `tmm{B}` (16 rows of 64 bytes, `stride` bytes apart) from `b` and adds its
/// products with the A tile into accumulator `tmm{C}`.
///
/// # Safety
/// A configuration is loaded and the A tile holds data; the 16 rows are readable.
#[inline(always)]
unsafe fn strip<const C: u8, const B: u8>(b: *const u32, stride: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        core::arch::asm!(
            "tileloadd tmm{bt}, [{p} + {s}*1]",
            "tdpbf16ps tmm{ct}, tmm4, tmm{bt}",
            bt = const B, ct = const C, p = in(reg) b, s = in(reg) stride,
            options(nostack, readonly),
        );
    }
}

/// Stores accumulator `tmm{C}` to `out`, rows `stride` bytes apart.
///
/// # Safety
/// A configuration is loaded; every row of 64 bytes it writes is writable.
#[inline(always)]
unsafe fn store<const C: u8>(out: *mut f32, stride: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        core::arch::asm!("tilestored [{p} + {s}*1], tmm{c}", c = const C, p = in(reg) out, s = in(reg) stride, options(nostack));
    }
}

/// `NS` (1 to 4) accumulators of 16 columns each: zero them, then for each block of 16 pairs
/// load the A tile from `a + t` and add the products with the B tiles at
/// `b + t * b_stride + 16 s`; `steps` blocks of 16 pairs. Strides are in words.
///
/// # Safety
/// Tiles configured; the A rows (`a_stride` apart) and B rows lie in readable memory.
#[inline(always)]
unsafe fn products<const NS: usize>(a: *const u32, a_stride: usize, b: *const u32, b_stride: usize, steps: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        zero_first::<NS>();
        for step in 0..steps {
            let t = step * LANES;
            load_a(a.add(t), a_stride * 4);
            let bt = b.add(t * b_stride);
            strip::<0, 5>(bt, b_stride * 4);
            if NS > 1 {
                strip::<1, 6>(bt.add(LANES), b_stride * 4);
            }
            if NS > 2 {
                strip::<2, 7>(bt.add(2 * LANES), b_stride * 4);
            }
            if NS > 3 {
                strip::<3, 5>(bt.add(3 * LANES), b_stride * 4);
            }
        }
    }
}

/// Stores the first `NS` accumulators, accumulator s to `out + s * step`, rows `stride`
/// values apart.
///
/// # Safety
/// Tiles configured; the rows written are writable.
#[inline(always)]
unsafe fn store_all<const NS: usize>(out: *mut f32, step: usize, stride: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        store::<0>(out, stride * 4);
        if NS > 1 {
            store::<1>(out.add(step), stride * 4);
        }
        if NS > 2 {
            store::<2>(out.add(2 * step), stride * 4);
        }
        if NS > 3 {
            store::<3>(out.add(3 * step), stride * 4);
        }
    }
}

fn scores(
    q: &[u32],
    q_stride: usize,
    rows: usize,
    keys: &[u32],
    k_stride: usize,
    cols: usize,
    pairs: usize,
    scale: f32,
    scores: &mut [f32],
    s_stride: usize,
) {
    assert_scores_args(q, q_stride, rows, keys, k_stride, cols, pairs, scores, s_stride);
    if rows == 0 || cols == 0 {
        return;
    }
    if rows > MAX_ROWS || cols < MIN_KEYS || !pairs.is_multiple_of(LANES) {
        return (avx512_bf16::TILES.scores)(q, q_stride, rows, keys, k_stride, cols, pairs, scale, scores, s_stride);
    }
    // SAFETY: AMX-BF16 and AVX-512 available (module docs). The A tiles read `rows` rows of q
    // (`pairs` words each, whole blocks of 16), the B tiles `pairs` rows of keys, columns
    // below `cols` (a multiple of 16), and the stores write those columns of `rows` rows of
    // scores: all inside the slices checked above.
    unsafe {
        load_config(&Config::new(rows));
        let (qp, kp, sp) = (q.as_ptr(), keys.as_ptr(), scores.as_mut_ptr());
        let steps = pairs / LANES;
        let mut c = 0;
        while c < cols {
            let ns = ((cols - c) / LANES).min(4);
            let (kc, sc) = (kp.add(c), sp.add(c));
            match ns {
                4 => {
                    products::<4>(qp, q_stride, kc, k_stride, steps);
                    store_all::<4>(sc, LANES, s_stride);
                }
                3 => {
                    products::<3>(qp, q_stride, kc, k_stride, steps);
                    store_all::<3>(sc, LANES, s_stride);
                }
                2 => {
                    products::<2>(qp, q_stride, kc, k_stride, steps);
                    store_all::<2>(sc, LANES, s_stride);
                }
                _ => {
                    products::<1>(qp, q_stride, kc, k_stride, steps);
                    store_all::<1>(sc, LANES, s_stride);
                }
            }
            c += ns * LANES;
        }
        release();
        scale_rows(sp, s_stride, rows, cols, scale);
    }
}

/// `s[r * stride + c] *= scale` for `r < rows`, `c < cols` (a multiple of 16).
///
/// # Safety
/// AVX-512F available; the rows are writable.
#[target_feature(enable = "avx512f")]
unsafe fn scale_rows(s: *mut f32, stride: usize, rows: usize, cols: usize, scale: f32) {
    let scale = _mm512_set1_ps(scale);
    for r in 0..rows {
        for c in (0..cols).step_by(LANES) {
            // SAFETY: inside the rows the caller guarantees.
            unsafe {
                let at = s.add(r * stride + c);
                _mm512_storeu_ps(at, _mm512_mul_ps(_mm512_loadu_ps(at), scale));
            }
        }
    }
}

fn probs_values(
    p: &[u32],
    p_stride: usize,
    v: &[u32],
    v_stride: usize,
    key_pairs: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
) {
    assert_probs_values_args(p, p_stride, v, v_stride, key_pairs, head_dim, out, col);
    let rows = out.len();
    if rows > MAX_ROWS || 2 * key_pairs < MIN_KEYS || !head_dim.is_multiple_of(LANES) {
        return (avx512_bf16::TILES.probs_values)(p, p_stride, v, v_stride, key_pairs, head_dim, out, col);
    }
    if rows == 0 {
        return;
    }
    let steps = key_pairs / LANES;
    // The accumulators of one pass, stored: strip s, row r at [(s * 16 + r) * 16].
    let mut buf = Stored([0.0; 4 * MAX_ROWS * LANES]);
    let bp = buf.0.as_mut_ptr();
    // SAFETY: AMX-BF16 and AVX-512 available (module docs). The A tiles read `rows` rows of p
    // (the first steps x 16 pairs of each), the B tiles those pair rows of v, columns below
    // head_dim; the stores write inside `buf`; the tails and the output rows stay inside the
    // slices checked above.
    unsafe {
        load_config(&Config::new(rows));
        let mut e = 0;
        while e < head_dim {
            let ns = ((head_dim - e) / LANES).min(4);
            let ve = v.as_ptr().add(e);
            match ns {
                4 => {
                    products::<4>(p.as_ptr(), p_stride, ve, v_stride, steps);
                    store_all::<4>(bp, MAX_ROWS * LANES, LANES);
                }
                3 => {
                    products::<3>(p.as_ptr(), p_stride, ve, v_stride, steps);
                    store_all::<3>(bp, MAX_ROWS * LANES, LANES);
                }
                2 => {
                    products::<2>(p.as_ptr(), p_stride, ve, v_stride, steps);
                    store_all::<2>(bp, MAX_ROWS * LANES, LANES);
                }
                _ => {
                    products::<1>(p.as_ptr(), p_stride, ve, v_stride, steps);
                    store_all::<1>(bp, MAX_ROWS * LANES, LANES);
                }
            }
            finish_rows(
                bp,
                ns,
                p,
                p_stride,
                v,
                v_stride,
                steps * LANES..key_pairs,
                out,
                col + e,
                e,
            );
            e += ns * LANES;
        }
        release();
    }
}

/// A pass's stored accumulators.
#[repr(C, align(64))]
struct Stored([f32; 4 * MAX_ROWS * LANES]);

/// Adds the tail key pairs `tail` to the stored sums of `ns` strips (columns `e ..` of v) and
/// writes each output row's columns `at ..`.
///
/// # Safety
/// AVX-512F and BF16 available; `buf` holds the strips' sums for `out.len()` rows; the tail
/// pairs lie inside p's rows and v; `at + 16 ns` columns lie inside every output row.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn finish_rows(
    buf: *const f32,
    ns: usize,
    p: &[u32],
    p_stride: usize,
    v: &[u32],
    v_stride: usize,
    tail: std::ops::Range<usize>,
    out: &mut [&mut [f32]],
    at: usize,
    e: usize,
) {
    for (r, row) in out.iter_mut().enumerate() {
        for s in 0..ns {
            // SAFETY: inside `buf`, v and the row, as the caller guarantees.
            unsafe {
                let mut acc = _mm512_loadu_ps(buf.add((s * MAX_ROWS + r) * LANES));
                for t in tail.clone() {
                    let pr = avx512_bf16::broadcast_pair(p[r * p_stride + t]);
                    let vv = avx512_bf16::load_pairs(v.as_ptr().add(t * v_stride + e + s * LANES));
                    acc = _mm512_dpbf16_ps(acc, pr, vv);
                }
                _mm512_storeu_ps(row.as_mut_ptr().add(at + s * LANES), acc);
            }
        }
    }
}

/// `tileloadd tmm{T}, [p + stride]`.
///
/// # Safety
/// A configuration is loaded; every row of 64 bytes it reads is readable.
#[inline(always)]
unsafe fn load<const T: u8>(p: *const u32, stride: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        core::arch::asm!("tileloadd tmm{t}, [{p} + {s}*1]", t = const T, p = in(reg) p, s = in(reg) stride, options(nostack, readonly));
    }
}

/// `tdpbf16ps tmm{C}, tmm{A}, tmm{B}`.
///
/// # Safety
/// A configuration is loaded and the three tiles hold data.
#[inline(always)]
unsafe fn dot<const C: u8, const A: u8, const B: u8>() {
    // SAFETY: as the caller guarantees; register-only.
    unsafe {
        core::arch::asm!("tdpbf16ps tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B, options(nostack, nomem))
    };
}

/// Two strips of a split pass, accumulators `tmm{C}` and `tmm{C + 1}`: their `hi` value tiles
/// at `hi` and `hi + 16`, `lo` tiles at `lo` and `lo + 16`, each multiplied by the
/// probability tiles (`tmm4` hi, `tmm5` lo) as `p_hi v_hi + p_lo v_hi + p_hi v_lo`, in an order
/// that alternates the two accumulators (a tile product waits for the previous one into the
/// same accumulator). With `TWO` false, the first strip alone.
///
/// # Safety
/// Tiles configured, `tmm4` and `tmm5` loaded; the 16 rows of each value tile are readable.
#[inline(always)]
unsafe fn split_strips<const C: u8, const D: u8, const TWO: bool>(hi: *const u32, lo: *const u32, stride: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        load::<6>(hi, stride);
        dot::<C, 4, 6>();
        if TWO {
            load::<7>(hi.add(LANES), stride);
            dot::<D, 4, 7>();
        }
        dot::<C, 5, 6>();
        if TWO {
            dot::<D, 5, 7>();
        }
        load::<6>(lo, stride);
        dot::<C, 4, 6>();
        if TWO {
            load::<7>(lo.add(LANES), stride);
            dot::<D, 4, 7>();
        }
    }
}

/// [`products`] on split pairs: `NS` accumulators of 16 columns, `steps` blocks of 16 pairs,
/// three products per block. Strides are in words.
///
/// # Safety
/// Tiles configured; the probability rows (`p_stride` apart) and value rows lie in readable
/// memory.
#[inline(always)]
unsafe fn products_split<const NS: usize>(
    p_hi: *const u32,
    p_lo: *const u32,
    p_stride: usize,
    v_hi: *const u32,
    v_lo: *const u32,
    v_stride: usize,
    steps: usize,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        zero_first::<NS>();
        for step in 0..steps {
            let t = step * LANES;
            load::<4>(p_hi.add(t), p_stride * 4);
            load::<5>(p_lo.add(t), p_stride * 4);
            let (hi, lo) = (v_hi.add(t * v_stride), v_lo.add(t * v_stride));
            match NS {
                1 => split_strips::<0, 1, false>(hi, lo, v_stride * 4),
                2 => split_strips::<0, 1, true>(hi, lo, v_stride * 4),
                3 => {
                    split_strips::<0, 1, true>(hi, lo, v_stride * 4);
                    split_strips::<2, 3, false>(hi.add(2 * LANES), lo.add(2 * LANES), v_stride * 4);
                }
                _ => {
                    split_strips::<0, 1, true>(hi, lo, v_stride * 4);
                    split_strips::<2, 3, true>(hi.add(2 * LANES), lo.add(2 * LANES), v_stride * 4);
                }
            }
        }
    }
}

fn probs_values_split(
    p_hi: &[u32],
    p_lo: &[u32],
    p_stride: usize,
    v_hi: &[u32],
    v_lo: &[u32],
    v_stride: usize,
    key_pairs: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
) {
    assert_probs_values_args(p_hi, p_stride, v_hi, v_stride, key_pairs, head_dim, out, col);
    assert_probs_values_args(p_lo, p_stride, v_lo, v_stride, key_pairs, head_dim, out, col);
    let rows = out.len();
    assert!(
        rows <= MAX_ROWS && head_dim.is_multiple_of(LANES),
        "split tiles: {rows} rows, head width {head_dim}"
    );
    if rows == 0 || key_pairs == 0 {
        for row in out.iter_mut() {
            row[col..col + head_dim].fill(0.0);
        }
        return;
    }
    let steps = key_pairs / LANES;
    let mut buf = Stored([0.0; 4 * MAX_ROWS * LANES]);
    let bp = buf.0.as_mut_ptr();
    let tail = steps * LANES..key_pairs;
    // SAFETY: AMX-BF16 and AVX-512 available (module docs). The A tiles read `rows` rows of
    // both probability halves (the first steps x 16 pairs of each), the B tiles those pair rows
    // of both value halves, columns below head_dim; the stores write inside `buf`; the tails
    // and the output rows stay inside the slices checked above.
    unsafe {
        load_config(&Config::split(rows));
        let mut e = 0;
        while e < head_dim {
            let ns = ((head_dim - e) / LANES).min(4);
            let (ph, pl, vh, vl) = (p_hi.as_ptr(), p_lo.as_ptr(), v_hi.as_ptr().add(e), v_lo.as_ptr().add(e));
            match ns {
                4 => {
                    products_split::<4>(ph, pl, p_stride, vh, vl, v_stride, steps);
                    store_all::<4>(bp, MAX_ROWS * LANES, LANES);
                }
                3 => {
                    products_split::<3>(ph, pl, p_stride, vh, vl, v_stride, steps);
                    store_all::<3>(bp, MAX_ROWS * LANES, LANES);
                }
                2 => {
                    products_split::<2>(ph, pl, p_stride, vh, vl, v_stride, steps);
                    store_all::<2>(bp, MAX_ROWS * LANES, LANES);
                }
                _ => {
                    products_split::<1>(ph, pl, p_stride, vh, vl, v_stride, steps);
                    store_all::<1>(bp, MAX_ROWS * LANES, LANES);
                }
            }
            finish_rows_split(
                bp,
                ns,
                [p_hi, p_lo],
                p_stride,
                [v_hi, v_lo],
                v_stride,
                tail.clone(),
                out,
                col + e,
                e,
            );
            e += ns * LANES;
        }
        release();
    }
}

/// [`finish_rows`] on split pairs: the tail pairs' three products per pair.
///
/// # Safety
/// As [`finish_rows`], for both halves.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn finish_rows_split(
    buf: *const f32,
    ns: usize,
    [p_hi, p_lo]: [&[u32]; 2],
    p_stride: usize,
    [v_hi, v_lo]: [&[u32]; 2],
    v_stride: usize,
    tail: std::ops::Range<usize>,
    out: &mut [&mut [f32]],
    at: usize,
    e: usize,
) {
    for (r, row) in out.iter_mut().enumerate() {
        for s in 0..ns {
            // SAFETY: inside `buf`, the value halves and the row, as the caller guarantees.
            unsafe {
                let mut acc = _mm512_loadu_ps(buf.add((s * MAX_ROWS + r) * LANES));
                for t in tail.clone() {
                    let (ph, pl) = (
                        avx512_bf16::broadcast_pair(p_hi[r * p_stride + t]),
                        avx512_bf16::broadcast_pair(p_lo[r * p_stride + t]),
                    );
                    let v = t * v_stride + e + s * LANES;
                    let vh = avx512_bf16::load_pairs(v_hi.as_ptr().add(v));
                    acc = _mm512_dpbf16_ps(acc, ph, vh);
                    acc = _mm512_dpbf16_ps(acc, pl, vh);
                    acc = _mm512_dpbf16_ps(acc, ph, avx512_bf16::load_pairs(v_lo.as_ptr().add(v)));
                }
                _mm512_storeu_ps(row.as_mut_ptr().add(at + s * LANES), acc);
            }
        }
    }
}

/// The bf16 bits of 16 values as the low halves of 16 lanes, and the values they stand for.
///
/// # Safety
/// AVX-512F and BF16 available.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn round16(x: __m512) -> (__m512i, __m512) {
    // SAFETY: __m256bh and __m256i are both 32-byte vectors of plain bits.
    let bits = _mm512_cvtepu16_epi32(unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x)) });
    (bits, _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits)))
}

fn split_pairs(src: &[f32], hi: &mut [u32], lo: &mut [u32]) {
    let words = src.len().div_ceil(2);
    assert!(hi.len() >= words && lo.len() >= words);
    let whole = src.len() / 32 * 32;
    // SAFETY: AVX-512 and BF16 available (module docs); `src` holds `whole` values and each
    // half `whole / 2` words (checked above).
    unsafe { split_pairs_simd(src.as_ptr(), whole, hi.as_mut_ptr(), lo.as_mut_ptr()) };
    for (i, two) in src[whole..].chunks(2).enumerate() {
        let (a, b) = (two[0], two.get(1).copied().unwrap_or(0.0));
        let w = whole / 2 + i;
        hi[w] = to_bf16(a) as u32 | (to_bf16(b) as u32) << 16;
        lo[w] = to_bf16(bf16_residual(a)) as u32 | (to_bf16(bf16_residual(b)) as u32) << 16;
    }
}

/// [`split_pairs`] on the first `whole` (a multiple of 32) values.
///
/// # Safety
/// AVX-512F and BF16 available; `src` holds `whole` values, `hi` and `lo` `whole / 2` writable
/// words each.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn split_pairs_simd(src: *const f32, whole: usize, hi: *mut u32, lo: *mut u32) {
    for i in (0..whole).step_by(32) {
        // SAFETY: every offset stays below the caller's bounds.
        unsafe {
            for half in 0..2 {
                let x = _mm512_loadu_ps(src.add(i + 16 * half));
                let (bits, value) = round16(x);
                let (rest_bits, _) = round16(_mm512_sub_ps(x, value));
                // 16 bf16 values = 8 words: the low halves of the lanes, packed.
                _mm256_storeu_si256(hi.add(i / 2 + 8 * half).cast(), _mm512_cvtepi32_epi16(bits));
                _mm256_storeu_si256(lo.add(i / 2 + 8 * half).cast(), _mm512_cvtepi32_epi16(rest_bits));
            }
        }
    }
}

fn interleave_split(first: &[f32], second: Option<&[f32]>, hi: &mut [u32], lo: &mut [u32]) {
    let n = first.len();
    assert!(hi.len() >= n && lo.len() >= n && second.is_none_or(|s| s.len() >= n));
    let whole = n / 16 * 16;
    // SAFETY: AVX-512 and BF16 available (module docs); both rows hold `whole` values and each
    // half `whole` words (checked above).
    unsafe {
        interleave_split_simd(
            first.as_ptr(),
            second.map(<[f32]>::as_ptr),
            whole,
            hi.as_mut_ptr(),
            lo.as_mut_ptr(),
        )
    };
    for e in whole..n {
        let (a, b) = (first[e], second.map_or(0.0, |s| s[e]));
        hi[e] = to_bf16(a) as u32 | (to_bf16(b) as u32) << 16;
        lo[e] = to_bf16(bf16_residual(a)) as u32 | (to_bf16(bf16_residual(b)) as u32) << 16;
    }
}

/// [`interleave_split`] on the first `whole` (a multiple of 16) columns.
///
/// # Safety
/// AVX-512F and BF16 available; `first` (and `second`, if any) hold `whole` values, `hi` and
/// `lo` `whole` writable words each.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn interleave_split_simd(
    first: *const f32,
    second: Option<*const f32>,
    whole: usize,
    hi: *mut u32,
    lo: *mut u32,
) {
    for i in (0..whole).step_by(16) {
        // SAFETY: every offset stays below the caller's bounds.
        unsafe {
            let x = _mm512_loadu_ps(first.add(i));
            let (xb, xv) = round16(x);
            let (xr, _) = round16(_mm512_sub_ps(x, xv));
            let (mut h, mut l) = (xb, xr);
            if let Some(second) = second {
                let y = _mm512_loadu_ps(second.add(i));
                let (yb, yv) = round16(y);
                let (yr, _) = round16(_mm512_sub_ps(y, yv));
                h = _mm512_or_si512(h, _mm512_slli_epi32::<16>(yb));
                l = _mm512_or_si512(l, _mm512_slli_epi32::<16>(yr));
            }
            _mm512_storeu_si512(hi.add(i).cast(), h);
            _mm512_storeu_si512(lo.add(i).cast(), l);
        }
    }
}
