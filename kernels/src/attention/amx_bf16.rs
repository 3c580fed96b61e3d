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
use super::bf16::Tiles;
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
        assert!((1..=MAX_ROWS).contains(&rows));
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            c[48 + t] = if t >= 5 { 16 } else { rows as u8 };
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
