//! bf16 attention: the steps of [`super::attend`] with Q, K, V and the probabilities P
//! rounded to bfloat16 (round to nearest even) and multiplied as pairs of bf16 products
//! summed in f32, as AVX-512 BF16's `vdpbf16ps` does: 32 products per instruction, twice
//! what an f32 fused multiply-add does. Scores, bias, softmax and outputs stay f32.
//!
//! Rounding to bf16 keeps 8 significant bits: each Q, K, V or P value moves by at most 2^-9
//! of itself. The products of two bf16 values are exact in f32, so the only other difference
//! from f32 attention on the rounded inputs is the order of the f32 sums.
//!
//! **Layouts.** Pairs of bf16 values live in `u32` words, the first of the pair in the low
//! half (the element `vdpbf16ps` multiplies first):
//! - keys `[head_dim / 2, padded]`: word `(d / 2, c)` holds `(k_c[d], k_c[d + 1])`, so one
//!   vector load reads a pair of dimensions of 16 consecutive keys;
//! - values `[ceil(keys / 2), head_dim]`: word `(j / 2, e)` holds `(v_j[e], v_{j + 1}[e])`
//!   (a missing last key is 0), so one load reads a pair of keys of 16 output columns;
//! - query rows `[rows, head_dim / 2]` and probability rows `[rows, keys / 2 + 1]`: a row's
//!   values in pairs, in place.
//!
//! Scores are computed and normalized exactly as in f32 attention (the same shared steps),
//! then each probability row is rounded to pairs starting at an even key, so that it lines up
//! with the value pairs; keys outside the row's window get probability 0.
//!
//! An odd `head_dim` has no pairs: such a block runs the f32 steps of the same kernel.
//!
//! **Scores only.** A kernel without `bf16_values` rounds only Q and K: the scores come from
//! the bf16 tiles, and P V runs the kernel's f32 tile on the f32 probabilities and the value
//! rows in place, as f32 attention does. Half the products are bf16, and the probabilities and
//! values keep f32's precision (EmbeddingGemma's cosine moves with P and V, not with Q and K:
//! see `octet::model::gemma3`).
//!
//! **Split values.** Where the level has tiles for it ([`SplitTiles`]: AMX-BF16), such a kernel
//! runs P V on bf16 pairs after all, with f32's precision kept by splitting each probability
//! and value into two bf16 parts, `x = hi + lo` with `hi = bf16(x)` and `lo = bf16(x - hi)`,
//! and summing three products per pair: `p_hi v_hi + p_hi v_lo + p_lo v_hi`. What this leaves
//! out is `p_lo v_lo` and the rounding of the `lo` parts, each at most 2^-18 of `|p v|`, so
//! the output is within about 3 x 2^-18 (1.2e-5) of `Σ |p| |v|` of f32's (tests.rs checks
//! this against f64), against 2^-8 for rounded P and V. Three tile products cost less than a
//! third of f32's vector ones. The value pairs `[ceil(keys / 2), head_dim]` and probability
//! pairs are then written twice, `hi` and `lo` words, in the layouts above.

// Tile functions take each slice with its stride and extent explicitly, as the f32 tiles do.
#![allow(clippy::too_many_arguments)]

use super::{padded, prefetch_span, probabilities, visible_keys, AttentionBlock, AttentionKernel, KEY_ALIGN};
use crate::{vector, KernelError};
use std::ops::Range;

/// Scores tile on pairs: `scores[r * s_stride + c] = scale * Σ_{t < pairs} dot2(q[r * q_stride + t], keys[t * k_stride + c])`
/// for `r < rows`, `c < cols` (`cols` a multiple of [`KEY_ALIGN`]).
pub(super) type ScoresFn = fn(
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
);

/// Output tile on pairs: `out[r][col + e] = Σ_{t < key_pairs} dot2(p[r * p_stride + t], v[t * v_stride + e])`
/// for `r < out.len()`, `e < head_dim`.
pub(super) type ProbsValuesFn = fn(
    p: &[u32],
    p_stride: usize,
    v: &[u32],
    v_stride: usize,
    key_pairs: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
);

/// Rounds `src` to bf16 pairs: `dst[i] = (src[2i], src[2i + 1])`, the second of an odd
/// last pair 0; `dst` holds `ceil(src.len() / 2)` words.
pub(super) type RoundPairsFn = fn(src: &[f32], dst: &mut [u32]);

/// Interleaves two rows as bf16 pairs: `dst[e] = (first[e], second[e])` (second 0 if absent),
/// for `e < first.len()`.
pub(super) type InterleaveFn = fn(first: &[f32], second: Option<&[f32]>, dst: &mut [u32]);

/// A row's softmax (the vector family's, at the kernel's level) rounded to bf16 pairs in `dst`
/// (`ceil(row.len() / 2)` words), as the softmax then [`RoundPairsFn`] give, bit for bit;
/// `row` is left holding intermediate values. One pass fewer: the last softmax step (scaling
/// by 1 / Σ) is done as the pairs are written.
pub(super) type SoftmaxPairsFn = fn(row: &mut [f32], dst: &mut [u32]);

/// Split-value P V on pairs ([module docs](self)): `out[r][col + e] = Σ_{t < key_pairs}
/// dot2(p_hi, v_hi) + dot2(p_hi, v_lo) + dot2(p_lo, v_hi)` at `(r * p_stride + t)` and
/// `(t * v_stride + e)`, for `r < out.len()` (at most 16), `e < head_dim` (a multiple of 16).
pub(super) type ProbsValuesSplitFn = fn(
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
);

/// [`RoundPairsFn`] into `hi`, and the same of `src - hi` into `lo`.
pub(super) type SplitPairsFn = fn(src: &[f32], hi: &mut [u32], lo: &mut [u32]);

/// [`InterleaveFn`] into `hi`, and the same of the rows minus their `hi` values into `lo`.
pub(super) type InterleaveSplitFn = fn(first: &[f32], second: Option<&[f32]>, hi: &mut [u32], lo: &mut [u32]);

/// A level's split-value P V ([module docs](self)), used by the scores-only kernels.
// Only the AMX-BF16 level (x86_64) has split tiles.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct SplitTiles {
    pub(super) probs_values: ProbsValuesSplitFn,
    pub(super) split_pairs: SplitPairsFn,
    pub(super) interleave: InterleaveSplitFn,
    /// Fewer key pairs than this run P V in f32: the tiles' set-up costs more than they save.
    pub(super) min_key_pairs: usize,
}

/// The bf16 tiles and conversions of one instruction-set level.
pub(super) struct Tiles {
    pub(super) scores: ScoresFn,
    pub(super) probs_values: ProbsValuesFn,
    pub(super) round_pairs: RoundPairsFn,
    pub(super) interleave: InterleaveFn,
    pub(super) softmax_pairs: SoftmaxPairsFn,
    /// Query rows whose scores are held at once ([`super::GROUP_ROWS`], or 16 for the AMX
    /// tiles: one tile of rows, so each tile instruction does twice the work).
    pub(super) group_rows: usize,
    /// Split-value P V for the scores-only kernels, where the level has it.
    pub(super) split: Option<&'static SplitTiles>,
}

/// The scalar reference tiles: the same sums in plain f32 loops.
pub(super) static SCALAR_TILES: Tiles = Tiles {
    scores: scalar_scores,
    probs_values: scalar_probs_values,
    round_pairs: scalar_round_pairs,
    interleave: scalar_interleave,
    softmax_pairs: scalar_softmax_pairs,
    group_rows: super::GROUP_ROWS,
    split: None,
};

/// The scalar forms of [`SplitTiles`], which the tests compare the hardware ones with (the
/// reference kernels keep P V in f32).
#[cfg(test)]
pub(super) static SCALAR_SPLIT: SplitTiles = SplitTiles {
    probs_values: scalar_probs_values_split,
    split_pairs: scalar_split_pairs,
    interleave: scalar_interleave_split,
    min_key_pairs: 0,
};

/// `x - bf16(x)`: the part of `x` its bf16 rounding leaves out.
// Only the AMX-BF16 level (x86_64) has split tiles.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn bf16_residual(x: f32) -> f32 {
    x - from_bf16(to_bf16(x))
}

#[cfg(test)]
fn scalar_split_pairs(src: &[f32], hi: &mut [u32], lo: &mut [u32]) {
    scalar_round_pairs(src, hi);
    let rest: Vec<f32> = src.iter().map(|&x| bf16_residual(x)).collect();
    scalar_round_pairs(&rest, lo);
}

#[cfg(test)]
fn scalar_interleave_split(first: &[f32], second: Option<&[f32]>, hi: &mut [u32], lo: &mut [u32]) {
    scalar_interleave(first, second, hi);
    let rest = |row: &[f32]| row.iter().map(|&x| bf16_residual(x)).collect::<Vec<f32>>();
    let second_rest = second.map(rest);
    scalar_interleave(&rest(first), second_rest.as_deref(), lo);
}

#[cfg(test)]
fn scalar_probs_values_split(
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
    for (r, out_row) in out.iter_mut().enumerate() {
        for e in 0..head_dim {
            let mut acc = 0.0;
            for t in 0..key_pairs {
                let (p, v) = (r * p_stride + t, t * v_stride + e);
                acc = dot2(acc, p_hi[p], v_hi[v]);
                acc = dot2(acc, p_hi[p], v_lo[v]);
                acc = dot2(acc, p_lo[p], v_hi[v]);
            }
            out_row[col + e] = acc;
        }
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits; a NaN stays a quiet NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

fn scalar_round_pairs(src: &[f32], dst: &mut [u32]) {
    for (w, two) in dst.iter_mut().zip(src.chunks(2)) {
        *w = pair(two[0], two.get(1).copied().unwrap_or(0.0));
    }
}

fn scalar_softmax_pairs(row: &mut [f32], dst: &mut [u32]) {
    vector::softmax_one(&vector::SCALAR, row);
    scalar_round_pairs(row, dst);
}

fn scalar_interleave(first: &[f32], second: Option<&[f32]>, dst: &mut [u32]) {
    match second {
        Some(second) => {
            for ((w, &x), &y) in dst.iter_mut().zip(first).zip(second) {
                *w = pair(x, y);
            }
        }
        None => {
            for (w, &x) in dst.iter_mut().zip(first) {
                *w = pair(x, 0.0);
            }
        }
    }
}

/// The f32 value of bf16 bits.
pub fn from_bf16(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// `(first, second)` rounded to bf16 in one word, `first` in the low half.
fn pair(first: f32, second: f32) -> u32 {
    (to_bf16(first) as u32) | ((to_bf16(second) as u32) << 16)
}

/// The sum of the two products of the pairs in `a` and `b`, in `vdpbf16ps`'s order (second
/// halves first).
pub(super) fn dot2(acc: f32, a: u32, b: u32) -> f32 {
    let (a0, a1) = (from_bf16(a as u16), from_bf16((a >> 16) as u16));
    let (b0, b1) = (from_bf16(b as u16), from_bf16((b >> 16) as u16));
    (acc + a1 * b1) + a0 * b0
}

fn scalar_scores(
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
    for r in 0..rows {
        let q_row = &q[r * q_stride..][..pairs];
        for c in 0..cols {
            let mut acc = 0.0;
            for (t, &qw) in q_row.iter().enumerate() {
                acc = dot2(acc, qw, keys[t * k_stride + c]);
            }
            scores[r * s_stride + c] = acc * scale;
        }
    }
}

fn scalar_probs_values(
    p: &[u32],
    p_stride: usize,
    v: &[u32],
    v_stride: usize,
    key_pairs: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
) {
    for (r, out_row) in out.iter_mut().enumerate() {
        for e in 0..head_dim {
            let mut acc = 0.0;
            for t in 0..key_pairs {
                acc = dot2(acc, p[r * p_stride + t], v[t * v_stride + e]);
            }
            out_row[col + e] = acc;
        }
    }
}

/// [`super::attend`] for a kernel with bf16 tiles; the block was checked by the caller and
/// `head_dim` is even.
pub(super) fn attend(
    kernel: &AttentionKernel,
    tiles: &Tiles,
    b: &AttentionBlock<'_>,
    scratch: &mut [f32],
    out: &mut [&mut [f32]],
) -> Result<(), KernelError> {
    if b.rows.is_empty() {
        return Ok(());
    }
    let hd = b.head_dim;
    let half = hd / 2;
    let keys = visible_keys(&b.rows, b.len, b.window);
    let n = keys.len();
    let k_stride = padded(n);
    let p_stride = k_stride / 2 + 1;
    let group_rows = tiles.group_rows;
    let (scores, rest) = scratch.split_at_mut(group_rows * k_stride);
    let words: &mut [u32] = bytemuck::cast_slice_mut(rest);
    let (keys_p, rest) = words.split_at_mut(half * k_stride);
    let (values_p, rest) = rest.split_at_mut(n.div_ceil(2) * hd);
    let (q_p, rest) = rest.split_at_mut(group_rows * half);
    let (p_p, rest) = rest.split_at_mut(group_rows * p_stride);
    let (row_words, rest) = rest.split_at_mut(KEYS_AT_ONCE * half);
    // Split values (scores-only kernels with split tiles): the `lo` parts of the value and
    // probability pairs; `values_p` and `p_p` hold the `hi` parts.
    let split = tiles
        .split
        .filter(|_| !kernel.bf16_values && hd.is_multiple_of(SPLIT_COLUMNS) && group_rows <= SPLIT_ROWS);
    let (values_lo, rest) = rest.split_at_mut(if split.is_some() { n.div_ceil(2) * hd } else { 0 });
    let p_lo = &mut rest[..if split.is_some() { group_rows * p_stride } else { 0 }];
    let mut values_split = false;
    pack_keys(tiles, b, &keys, k_stride, row_words, keys_p);
    let round_values = kernel.bf16_values;
    if round_values {
        pack_values(tiles, b, &keys, values_p);
    }
    // Without a window or a bias each probability row is a plain softmax of its scores, which
    // `softmax_pairs` writes as pairs in one pass fewer.
    let whole_rows = b.window.is_none() && b.bias.is_none();

    let mut r0 = b.rows.start;
    while r0 < b.rows.end {
        let r1 = (r0 + group_rows).min(b.rows.end);
        let group = r0..r1;
        let union = visible_keys(&group, b.len, b.window);
        let (u0, u1) = (union.start - keys.start, union.end - keys.start);
        let a0 = u0 / KEY_ALIGN * KEY_ALIGN;
        let a1 = padded(u1).min(k_stride);
        // The probability pairs start at an even key so they line up with the value pairs.
        let e0 = u0 & !1;
        let key_pairs = (u1 - e0).div_ceil(2);
        let out_rows = &mut out[r0 - b.rows.start..r1 - b.rows.start];
        // The next group's query rows, all heads of the block: their first touch is a cache miss.
        for r in r1..(r1 + group_rows).min(b.rows.end) {
            prefetch_span(&b.qkv[r * b.stride + b.q_col..][..b.heads * hd]);
        }
        for g in 0..b.heads {
            for (r, words) in q_p.chunks_exact_mut(half).take(group.len()).enumerate() {
                (tiles.round_pairs)(&b.qkv[(r0 + r) * b.stride + b.q_col + g * hd..][..hd], words);
            }
            (tiles.scores)(
                q_p,
                half,
                group.len(),
                &keys_p[a0..],
                k_stride,
                a1 - a0,
                half,
                b.scale,
                scores,
                k_stride,
            );
            if !round_values {
                // Scores only: P V in f32 on the probabilities and V rows in place, as f32
                // attention does, or on split pairs.
                for (r, row) in scores.chunks_exact_mut(k_stride).take(group.len()).enumerate() {
                    probabilities(kernel, b, g, r0 + r, &union, keys.start + a0, row)?;
                }
                if let Some(split) = split.filter(|s| key_pairs >= s.min_key_pairs) {
                    if !values_split {
                        pack_values_split(split, b, &keys, values_p, values_lo);
                        values_split = true;
                    }
                    for (r, row) in scores.chunks_exact_mut(k_stride).take(group.len()).enumerate() {
                        // Key e0 = u0 - 1 (when u0 is odd) is outside the union: probability 0.
                        row[e0 - a0..u0 - a0].fill(0.0);
                        let (hi, lo) = (
                            &mut p_p[r * p_stride..][..key_pairs],
                            &mut p_lo[r * p_stride..][..key_pairs],
                        );
                        (split.split_pairs)(&row[e0 - a0..u1 - a0], hi, lo);
                    }
                    (split.probs_values)(
                        p_p,
                        p_lo,
                        p_stride,
                        &values_p[e0 / 2 * hd..],
                        &values_lo[e0 / 2 * hd..],
                        hd,
                        key_pairs,
                        hd,
                        out_rows,
                        g * hd,
                    );
                    continue;
                }
                let v = &b.qkv[union.start * b.stride + b.v_col..];
                (kernel.probs_values)(&scores[u0 - a0..], k_stride, v, b.stride, u1 - u0, hd, out_rows, g * hd);
                continue;
            }
            for (r, row) in scores.chunks_exact_mut(k_stride).take(group.len()).enumerate() {
                let pairs = &mut p_p[r * p_stride..][..key_pairs];
                if whole_rows {
                    // Every row sees every key (u0 = a0 = e0 = 0) and has no bias.
                    (tiles.softmax_pairs)(&mut row[..u1], pairs);
                    continue;
                }
                probabilities(kernel, b, g, r0 + r, &union, keys.start + a0, row)?;
                // Key e0 = u0 - 1 (when u0 is odd) is outside the union: probability 0.
                row[e0 - a0..u0 - a0].fill(0.0);
                (tiles.round_pairs)(&row[e0 - a0..u1 - a0], pairs);
            }
            (tiles.probs_values)(
                p_p,
                p_stride,
                &values_p[e0 / 2 * hd..],
                hd,
                key_pairs,
                hd,
                out_rows,
                g * hd,
            );
        }
        r0 = r1;
    }
    Ok(())
}

/// Keys rounded at a time by [`pack_keys`] before their words are transposed.
const KEYS_AT_ONCE: usize = 8;

/// Writes the visible keys in pairs of dimensions (module docs), zero in the padding columns:
/// eight keys' rows are rounded to words in `row_words`, then written out a pair of
/// dimensions at a time (eight consecutive words per store run).
fn pack_keys(
    tiles: &Tiles,
    b: &AttentionBlock<'_>,
    keys: &Range<usize>,
    k_stride: usize,
    row_words: &mut [u32],
    keys_p: &mut [u32],
) {
    let hd = b.head_dim;
    let half = hd / 2;
    let n = keys.len();
    let mut c0 = 0;
    while c0 < n {
        let count = (n - c0).min(KEYS_AT_ONCE);
        for j in c0 + KEYS_AT_ONCE..(c0 + 2 * KEYS_AT_ONCE).min(n) {
            prefetch_span(&b.qkv[(keys.start + j) * b.stride + b.k_col..][..hd]);
        }
        for (j, words) in row_words.chunks_exact_mut(half).take(count).enumerate() {
            (tiles.round_pairs)(&b.qkv[(keys.start + c0 + j) * b.stride + b.k_col..][..hd], words);
        }
        for t in 0..half {
            let dst = &mut keys_p[t * k_stride + c0..][..count];
            for (j, w) in dst.iter_mut().enumerate() {
                *w = row_words[j * half + t];
            }
        }
        c0 += count;
    }
    if n < k_stride {
        for t in 0..half {
            keys_p[t * k_stride + n..(t + 1) * k_stride].fill(0);
        }
    }
}

/// Head widths the split tiles take: whole tiles of 16 output columns.
const SPLIT_COLUMNS: usize = 16;
/// Most query rows the split tiles take: one tile of rows.
const SPLIT_ROWS: usize = 16;

/// [`pack_values`] as split pairs: the `hi` words in `hi`, the `lo` words in `lo`.
fn pack_values_split(split: &SplitTiles, b: &AttentionBlock<'_>, keys: &Range<usize>, hi: &mut [u32], lo: &mut [u32]) {
    let hd = b.head_dim;
    let value = |j: usize| &b.qkv[(keys.start + j) * b.stride + b.v_col..][..hd];
    let pairs = keys.len().div_ceil(2);
    for (t, (hi, lo)) in hi
        .chunks_exact_mut(hd)
        .zip(lo.chunks_exact_mut(hd))
        .take(pairs)
        .enumerate()
    {
        for j in (2 * t + 8..2 * t + 10).filter(|&j| j < keys.len()) {
            prefetch_span(value(j));
        }
        let second = (2 * t + 1 < keys.len()).then(|| value(2 * t + 1));
        (split.interleave)(value(2 * t), second, hi, lo);
    }
}

/// Writes the visible keys' values in pairs of keys (module docs).
fn pack_values(tiles: &Tiles, b: &AttentionBlock<'_>, keys: &Range<usize>, values_p: &mut [u32]) {
    let hd = b.head_dim;
    let value = |j: usize| &b.qkv[(keys.start + j) * b.stride + b.v_col..][..hd];
    for (t, words) in values_p.chunks_exact_mut(hd).take(keys.len().div_ceil(2)).enumerate() {
        for j in (2 * t + 8..2 * t + 10).filter(|&j| j < keys.len()) {
            prefetch_span(value(j));
        }
        let second = (2 * t + 1 < keys.len()).then(|| value(2 * t + 1));
        (tiles.interleave)(value(2 * t), second, words);
    }
}
