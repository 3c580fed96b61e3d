//! Fused scaled dot-product attention for one block of query rows, in f32, with no allocation.
//!
//! One call ([`attend`]) handles a block of query rows `rows` of one sequence for `heads`
//! query heads that share one key/value head (grouped-query attention; `heads` = 1 without
//! it). It reads Q, K and V straight from the sequence's fused QKV rows (`stride` values per
//! row): query head g of the block at columns `q_col + g x head_dim`, the key head at `k_col`,
//! the value head at `v_col`. For query i and visible key j:
//!
//! ```text
//! s[i][j] = scale x (q_i . k_j) + bias(i, j)      visible: |i - j| <= window (all keys without one)
//! p[i][.] = softmax over the visible keys          (the vector family's softmax row)
//! out[i]  = Σ_j p[i][j] v_j
//! ```
//!
//! `bias(i, j)` is a [`RelativeBias`]: a value per head and relative position `j - i`, as T5's
//! bucketed relative position bias is, so no `len x len` matrix is ever built.
//!
//! **Steps and scratch layout.** The caller passes one scratch slice of at least
//! [`scratch_len`] values (reused across calls; nothing is allocated here):
//! - `keys_t` [head_dim, padded]: the block's visible keys `c0 .. c1`, transposed so that a
//!   vector load reads one dimension of consecutive keys; `padded` is the key count rounded
//!   up to [`KEY_ALIGN`] (16) and the padding columns are zero. Packed once per call and
//!   shared by every query head of the group.
//! - `scores` [GROUP_ROWS, padded]: the scores of up to [`GROUP_ROWS`] (8) query rows at a
//!   time, so a group's scores stay in L1 for short sequences (8 x 128 keys = 4 KiB) and in
//!   L2 at 2048 keys (64 KiB).
//!
//! For each group of query rows the ISA kernel computes the scores against the union of the
//! rows' visible keys (widened to [`KEY_ALIGN`] columns of `keys_t`, so score tiles never
//! have a ragged edge), then per row the bias is added, keys outside the row's window are set
//! to zero probability and the row's visible part goes through softmax; then the ISA kernel
//! multiplies P by V, reading V rows in place, and writes each output row.
//! Both products are register tiles of several query rows against a strip of keys (Q K^T)
//! or of output columns (P V), so each K or V load serves every row of the tile; the tile
//! sizes are given in each ISA file.
//!
//! Accuracy: implementations differ from the scalar reference by summation order, fused
//! multiply-adds and the SIMD `exp` (a few ulp, see [`crate::activation`]); tests.rs states
//! the tolerances.
//!
//! Files: [`scalar`] (reference), `avx2`, `avx512`, `neon` (one per ISA), the bf16 forms
//! (`bf16`, `avx512_bf16`, `amx_bf16`), `tests`.

mod bf16;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod amx_bf16;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_bf16;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

use crate::vector::{self, VectorKernel};
use crate::{check_len, Isa, KernelError};
use std::ops::Range;

/// Query rows whose scores are held at once (one "group"): the scores scratch is
/// `GROUP_ROWS x padded keys`. A multiple of every ISA's row tile (4 or 8).
pub const GROUP_ROWS: usize = 8;

/// The most query rows any kernel holds at once (the AMX bf16 tiles take 16: one tile of rows);
/// [`scratch_len`] provides for this many.
const MAX_GROUP_ROWS: usize = 16;

/// The packed keys' column count is rounded up to this, a multiple of every ISA's key strip
/// (4, 8 or 16 lanes), so Q K^T tiles never need a column tail.
pub const KEY_ALIGN: usize = 16;

/// Scores tile: `scores[r * s_stride + j] = scale * Σ_d q[r * q_stride + d] * keys_t[d * k_stride + j]`
/// for `r < rows`, `j < cols`; `cols` is a multiple of [`KEY_ALIGN`].
type ScoresFn = fn(
    q: &[f32],
    q_stride: usize,
    rows: usize,
    keys_t: &[f32],
    k_stride: usize,
    cols: usize,
    head_dim: usize,
    scale: f32,
    scores: &mut [f32],
    s_stride: usize,
);

/// Output tile: `out[r][col + d] = Σ_{j < keys} p[r * p_stride + j] * v[j * v_stride + d]` for
/// `r < out.len()`, `d < head_dim`.
type ProbsValuesFn = fn(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    keys: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
);

/// The attention implementation for one instruction-set level. Holding one proves the CPU
/// supports it: the statics are private and handed out only by [`for_isa`].
pub struct AttentionKernel {
    /// Kernel name with its geometry: architecture, Q K^T tile (rows x keys), ISA.
    pub name: &'static str,
    scores: ScoresFn,
    probs_values: ProbsValuesFn,
    /// The softmax of the same level, so attention and the vector family agree.
    vector: &'static VectorKernel,
    /// The bf16 tiles, for a kernel that rounds Q and K (and V and P when `bf16_values`) to
    /// bf16 ([`bf16`]); `None` for f32 attention.
    bf16: Option<&'static bf16::Tiles>,
    /// Whether a bf16 kernel also rounds V and the probabilities and multiplies them on bf16
    /// pairs; if not, only the scores (Q K^T) are bf16 and P V runs the f32 tiles.
    bf16_values: bool,
}

impl AttentionKernel {
    /// Whether this kernel rounds Q and K to bf16 (the scores' inputs).
    pub fn is_bf16(&self) -> bool {
        self.bf16.is_some()
    }

    /// Whether this kernel rounds V and the probabilities to bf16 as well.
    pub fn rounds_values(&self) -> bool {
        self.bf16.is_some() && self.bf16_values
    }
}

static SCALAR: AttentionKernel = AttentionKernel {
    name: "generic-attention-f32-1x1-scalar",
    scores: scalar::scores,
    probs_values: scalar::probs_values,
    vector: &vector::SCALAR,
    bf16: None,
    bf16_values: false,
};

/// The reference of the bf16 kernels: the pair sums as plain f32 loops.
static SCALAR_BF16: AttentionKernel = AttentionKernel {
    name: "generic-attention-bf16-1x1-scalar",
    scores: scalar::scores,
    probs_values: scalar::probs_values,
    vector: &vector::SCALAR,
    bf16: Some(&bf16::SCALAR_TILES),
    bf16_values: true,
};

/// The reference of the bf16-scores kernels: Q K^T on bf16 pairs as plain f32 loops, P V in f32.
static SCALAR_BF16_SCORES: AttentionKernel = AttentionKernel {
    name: "generic-attention-bf16scores-1x1-scalar",
    scores: scalar::scores,
    probs_values: scalar::probs_values,
    vector: &vector::SCALAR,
    bf16: Some(&bf16::SCALAR_TILES),
    bf16_values: false,
};

#[cfg(target_arch = "x86_64")]
static AVX2: AttentionKernel = AttentionKernel {
    name: "x86_64-attention-f32-4x16-avx2",
    scores: avx2::scores,
    probs_values: avx2::probs_values,
    vector: &vector::AVX2,
    bf16: None,
    bf16_values: false,
};

#[cfg(target_arch = "x86_64")]
static AVX512: AttentionKernel = AttentionKernel {
    name: "x86_64-attention-f32-8x32-avx512",
    scores: avx512::scores,
    probs_values: avx512::probs_values,
    vector: &vector::AVX512,
    bf16: None,
    bf16_values: false,
};

#[cfg(target_arch = "x86_64")]
static AVX512_BF16: AttentionKernel = AttentionKernel {
    name: "x86_64-attention-bf16-8x32-avx512bf16",
    scores: avx512::scores,
    probs_values: avx512::probs_values,
    vector: &vector::AVX512,
    bf16: Some(&avx512_bf16::TILES),
    bf16_values: true,
};

#[cfg(target_arch = "x86_64")]
static AVX512_BF16_SCORES: AttentionKernel = AttentionKernel {
    name: "x86_64-attention-bf16scores-8x32-avx512bf16",
    scores: avx512::scores,
    probs_values: avx512::probs_values,
    vector: &vector::AVX512,
    bf16: Some(&avx512_bf16::TILES),
    bf16_values: false,
};

#[cfg(target_arch = "x86_64")]
static AMX_BF16: AttentionKernel = AttentionKernel {
    name: "x86_64-attention-bf16-16x64-amxbf16",
    scores: avx512::scores,
    probs_values: avx512::probs_values,
    vector: &vector::AVX512,
    bf16: Some(&amx_bf16::TILES),
    bf16_values: true,
};

#[cfg(target_arch = "x86_64")]
static AMX_BF16_SCORES: AttentionKernel = AttentionKernel {
    name: "x86_64-attention-bf16scores-16x64-amxbf16",
    scores: avx512::scores,
    probs_values: avx512::probs_values,
    vector: &vector::AVX512,
    bf16: Some(&amx_bf16::TILES),
    bf16_values: false,
};

#[cfg(target_arch = "aarch64")]
static NEON: AttentionKernel = AttentionKernel {
    name: "aarch64-attention-f32-4x16-neon",
    scores: neon::scores,
    probs_values: neon::probs_values,
    vector: &vector::NEON,
    bf16: None,
    bf16_values: false,
};

/// The best attention implementation at or below `isa` that this CPU supports. The NEON
/// kernel serves the dotprod and i8mm levels too: attention is f32 only.
pub fn for_isa(isa: Isa) -> &'static AttentionKernel {
    // The AMX level adds tiles for the int8 matmul only; attention runs on its AVX-512 kernel.
    let isa = if isa == Isa::Amx { Isa::Avx512 } else { isa };
    if !isa.is_supported() {
        return &SCALAR;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &AVX2,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::Dotprod | Isa::I8mm => &NEON,
        _ => &SCALAR,
    }
}

/// The bf16 attention kernel at `isa`, where this CPU multiplies bf16 pairs in hardware
/// (AVX-512 BF16 at the `avx512` and `amx` levels; at `amx`, where the CPU also has AMX-BF16,
/// the kernel whose products run on tiles, `amx_bf16.rs`); `None` elsewhere: without the
/// instruction bf16 would only lose precision. [`bf16_reference`] is the scalar form tests
/// compare with.
pub fn bf16_for_isa(isa: Isa) -> Option<&'static AttentionKernel> {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Amx && bf16_hardware(isa) && amx_bf16::available() {
        return Some(&AMX_BF16);
    }
    bf16_hardware(isa).then_some(HARDWARE_BF16).flatten()
}

/// The scalar bf16 kernel: the reference of [`bf16_for_isa`]'s kernels.
pub fn bf16_reference() -> &'static AttentionKernel {
    &SCALAR_BF16
}

/// The attention kernel at `isa` that computes only the scores on bf16 pairs (Q and K rounded
/// to bf16) and P V in f32, where this CPU multiplies bf16 pairs in hardware (on tiles at `amx`
/// with AMX-BF16, as [`bf16_for_isa`]); `None` elsewhere.
/// [`bf16_scores_reference`] is the scalar form tests compare with.
pub fn bf16_scores_for_isa(isa: Isa) -> Option<&'static AttentionKernel> {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Amx && bf16_hardware(isa) && amx_bf16::available() {
        return Some(&AMX_BF16_SCORES);
    }
    bf16_hardware(isa).then_some(HARDWARE_BF16_SCORES).flatten()
}

/// The scalar bf16-scores kernel: the reference of [`bf16_scores_for_isa`]'s kernels.
pub fn bf16_scores_reference() -> &'static AttentionKernel {
    &SCALAR_BF16_SCORES
}

/// Whether `isa` is supported here and multiplies bf16 pairs (AVX-512 BF16 at the `avx512` and
/// `amx` levels).
fn bf16_hardware(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx512 | Isa::Amx) && isa.is_supported() && std::is_x86_feature_detected!("avx512bf16") {
        return true;
    }
    let _ = isa;
    false
}

#[cfg(target_arch = "x86_64")]
const HARDWARE_BF16: Option<&'static AttentionKernel> = Some(&AVX512_BF16);
#[cfg(target_arch = "x86_64")]
const HARDWARE_BF16_SCORES: Option<&'static AttentionKernel> = Some(&AVX512_BF16_SCORES);
#[cfg(not(target_arch = "x86_64"))]
const HARDWARE_BF16: Option<&'static AttentionKernel> = None;
#[cfg(not(target_arch = "x86_64"))]
const HARDWARE_BF16_SCORES: Option<&'static AttentionKernel> = None;

/// An additive score bias that depends only on the head and the relative position `j - i`
/// (key minus query): head g of a block at relative position r adds
/// `values[g * head_stride + zero + r]`. It must cover `-(len - 1) ..= len - 1` for every head
/// of the block: `zero >= len - 1` and `zero + len <= head_stride`.
#[derive(Clone, Copy, Debug)]
pub struct RelativeBias<'a> {
    /// [heads, head_stride]; the first row belongs to the block's first query head.
    pub values: &'a [f32],
    /// Distance between two heads' rows.
    pub head_stride: usize,
    /// Index of relative position 0 within a head's row.
    pub zero: usize,
}

/// One call's work: query rows `rows` of a sequence of `len` tokens, for `heads` consecutive
/// query heads that share one key/value head. See the module docs for the column layout.
#[derive(Clone, Debug)]
pub struct AttentionBlock<'a> {
    /// The sequence's fused QKV rows: `len` rows of `stride` values (the last row may end
    /// after its value head).
    pub qkv: &'a [f32],
    /// Values per QKV row.
    pub stride: usize,
    /// Tokens in the sequence (the keys).
    pub len: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Query heads in the block; query head g starts at column `q_col + g * head_dim`.
    pub heads: usize,
    /// Column of the first query head.
    pub q_col: usize,
    /// Column of the key head.
    pub k_col: usize,
    /// Column of the value head.
    pub v_col: usize,
    /// Query rows, counted within the sequence.
    pub rows: Range<usize>,
    /// Multiplier of q . k.
    pub scale: f32,
    /// Symmetric sliding window: query i sees key j only when |i - j| <= window.
    pub window: Option<usize>,
    /// Optional relative position bias, added after scaling.
    pub bias: Option<RelativeBias<'a>>,
}

/// The keys any of the query rows `rows` can see.
pub fn visible_keys(rows: &Range<usize>, len: usize, window: Option<usize>) -> Range<usize> {
    match window {
        Some(w) => rows.start.saturating_sub(w)..(rows.end.saturating_add(w)).min(len),
        None => 0..len,
    }
}

/// `n` rounded up to a multiple of [`KEY_ALIGN`].
fn padded(n: usize) -> usize {
    n.div_ceil(KEY_ALIGN) * KEY_ALIGN
}

/// Scratch values [`attend`] needs for a block whose rows see `keys` keys (see
/// [`visible_keys`]) with heads `head_dim` wide, for any kernel: the transposed keys and one
/// group's scores (f32), plus a group's query and probability rows in bf16 pairs (bf16; the
/// key and value pairs take no more than the f32 keys), plus the split tiles' second halves.
pub fn scratch_len(keys: usize, head_dim: usize) -> usize {
    // The split-value tiles (`bf16.rs`) add the `lo` halves of the value and probability
    // pairs: half a value row per key and half a probability row per group row.
    padded(keys) * (head_dim + MAX_GROUP_ROWS)
        + MAX_GROUP_ROWS * (head_dim + padded(keys))
        + (padded(keys) / 2 + 1) * (head_dim + MAX_GROUP_ROWS)
}

/// Panics unless the slices of a scores tile call hold their tiles: every ISA's safe wrapper
/// calls this before its unchecked loads and stores. `T` is f32 for [`ScoresFn`], a word of
/// two bf16 for [`bf16::ScoresFn`] (whose `head_dim` counts pairs).
#[allow(clippy::too_many_arguments)]
fn assert_scores_args<T>(
    q: &[T],
    q_stride: usize,
    rows: usize,
    keys_t: &[T],
    k_stride: usize,
    cols: usize,
    head_dim: usize,
    scores: &[f32],
    s_stride: usize,
) {
    assert!(cols.is_multiple_of(KEY_ALIGN) && cols <= k_stride && cols <= s_stride && head_dim > 0);
    if rows > 0 && cols > 0 {
        assert!(q.len() >= (rows - 1) * q_stride + head_dim && q_stride >= head_dim);
        assert!(keys_t.len() >= (head_dim - 1) * k_stride + cols);
        assert!(scores.len() >= (rows - 1) * s_stride + cols);
    }
}

/// Panics unless the slices of a P V tile call hold their tiles. `T` is f32 for
/// [`ProbsValuesFn`], a word of two bf16 for [`bf16::ProbsValuesFn`] (whose `keys` counts pairs).
#[allow(clippy::too_many_arguments)]
fn assert_probs_values_args<T>(
    p: &[T],
    p_stride: usize,
    v: &[T],
    v_stride: usize,
    keys: usize,
    head_dim: usize,
    out: &[&mut [f32]],
    col: usize,
) {
    assert!(p_stride >= keys && v_stride >= head_dim);
    if !out.is_empty() && keys > 0 {
        assert!(p.len() >= (out.len() - 1) * p_stride + keys);
        assert!(v.len() >= (keys - 1) * v_stride + head_dim);
    }
    assert!(out.iter().all(|row| row.len() >= col + head_dim));
}

/// Checks a block's geometry against its slices.
fn check(block: &AttentionBlock<'_>, scratch: usize, out: &[&mut [f32]]) -> Result<(), KernelError> {
    let b = block;
    let invalid = |what: String| Err(KernelError::Invalid(what));
    if b.head_dim == 0 || b.heads == 0 {
        return invalid(format!(
            "attention: head_dim {} and heads {} must be positive",
            b.head_dim, b.heads
        ));
    }
    let q_end = b.q_col + b.heads * b.head_dim;
    if q_end > b.stride || b.k_col + b.head_dim > b.stride || b.v_col + b.head_dim > b.stride {
        return invalid(format!(
            "attention: query, key or value columns run past the row stride {}",
            b.stride
        ));
    }
    if b.rows.start > b.rows.end || b.rows.end > b.len {
        return invalid(format!(
            "attention: query rows {:?} outside a sequence of {}",
            b.rows, b.len
        ));
    }
    if b.len > 0 {
        let last = b.q_col.max(b.k_col).max(b.v_col) + b.heads.max(1) * b.head_dim;
        check_len(
            "attention qkv",
            b.qkv.len(),
            (b.len - 1) * b.stride + last.min(b.stride),
        )?;
    }
    if let Some(bias) = &b.bias {
        if b.len > 0 && (bias.zero + 1 < b.len || bias.zero + b.len > bias.head_stride) {
            return invalid(format!(
                "attention: bias rows of {} with zero at {} do not cover a sequence of {}",
                bias.head_stride, bias.zero, b.len
            ));
        }
        check_len(
            "attention bias",
            bias.values.len(),
            (b.heads - 1) * bias.head_stride + bias.zero + b.len,
        )?;
    }
    let keys = visible_keys(&b.rows, b.len, b.window);
    check_len("attention scratch", scratch, scratch_len(keys.len(), b.head_dim))?;
    check_len("attention output rows", out.len(), b.rows.len())?;
    for row in &out[..b.rows.len()] {
        check_len("attention output row", row.len(), b.heads * b.head_dim)?;
    }
    Ok(())
}

/// Runs attention for one block (module docs). `out` holds one slice per query row of the
/// block, each at least `heads x head_dim` long: head g's result goes to columns
/// `g * head_dim ..`. `scratch` holds at least [`scratch_len`] values; its contents are
/// overwritten.
pub fn attend(
    kernel: &AttentionKernel,
    block: &AttentionBlock<'_>,
    scratch: &mut [f32],
    out: &mut [&mut [f32]],
) -> Result<(), KernelError> {
    check(block, scratch.len(), out)?;
    if let Some(tiles) = kernel.bf16 {
        if block.head_dim.is_multiple_of(2) {
            return bf16::attend(kernel, tiles, block, scratch, out);
        }
    }
    let b = block;
    let hd = b.head_dim;
    let keys = visible_keys(&b.rows, b.len, b.window);
    let k_stride = padded(keys.len());
    let (keys_t, rest) = scratch.split_at_mut(k_stride * hd);
    let scores = &mut rest[..GROUP_ROWS * k_stride];
    pack_keys_transposed(b, &keys, k_stride, keys_t);

    let mut r0 = b.rows.start;
    while r0 < b.rows.end {
        let r1 = (r0 + GROUP_ROWS).min(b.rows.end);
        let group = r0..r1;
        // The union of the group's visible keys, as key positions [u0, u1), and its columns in
        // keys_t widened to whole KEY_ALIGN strips: [a0, a1).
        let union = visible_keys(&group, b.len, b.window);
        let (u0, u1) = (union.start - keys.start, union.end - keys.start);
        let a0 = u0 / KEY_ALIGN * KEY_ALIGN;
        let a1 = padded(u1).min(k_stride);
        let out_rows = &mut out[r0 - b.rows.start..r1 - b.rows.start];
        // The next group's query rows, all heads of the block: their first touch is a cache miss
        // (batches of short texts: 4-5% of MiniLM at 32 x 128).
        for r in r1..(r1 + GROUP_ROWS).min(b.rows.end) {
            prefetch_span(&b.qkv[r * b.stride + b.q_col..][..b.heads * hd]);
        }
        for g in 0..b.heads {
            let q = &b.qkv[r0 * b.stride + b.q_col + g * hd..];
            (kernel.scores)(
                q,
                b.stride,
                group.len(),
                &keys_t[a0..],
                k_stride,
                a1 - a0,
                hd,
                b.scale,
                scores,
                k_stride,
            );
            for (r, row) in scores.chunks_exact_mut(k_stride).take(group.len()).enumerate() {
                probabilities(kernel, b, g, r0 + r, &union, keys.start + a0, row)?;
            }
            let v = &b.qkv[union.start * b.stride + b.v_col..];
            (kernel.probs_values)(&scores[u0 - a0..], k_stride, v, b.stride, u1 - u0, hd, out_rows, g * hd);
        }
        r0 = r1;
    }
    Ok(())
}

/// Turns the scores of query row `i`, head `g` of the block into probabilities: `row[c]`
/// holds the score of key `col0 + c`. The row's own visible keys get the bias and the
/// softmax; the other keys of `union`, the keys its group of rows sees, get 0.
fn probabilities(
    kernel: &AttentionKernel,
    b: &AttentionBlock<'_>,
    g: usize,
    i: usize,
    union: &Range<usize>,
    col0: usize,
    row: &mut [f32],
) -> Result<(), KernelError> {
    let own = visible_keys(&(i..i + 1), b.len, b.window);
    let (lo, hi) = (own.start - col0, own.end - col0);
    let visible = &mut row[lo..hi];
    if let Some(bias) = &b.bias {
        let first = g * bias.head_stride + bias.zero + own.start - i;
        vector::add(kernel.vector, visible, &bias.values[first..first + visible.len()])?;
    }
    let n = visible.len();
    vector::softmax(kernel.vector, visible, n)?;
    row[union.start - col0..lo].fill(0.0);
    row[hi..union.end - col0].fill(0.0);
    Ok(())
}

/// Writes `keys_t[d * k_stride + c] = k_{keys.start + c}[d]` for the visible keys, and zeros
/// in the padding columns `keys.len() .. k_stride`.
fn pack_keys_transposed(b: &AttentionBlock<'_>, keys: &Range<usize>, k_stride: usize, keys_t: &mut [f32]) {
    let hd = b.head_dim;
    let n = keys.len();
    let key = |c: usize| &b.qkv[(keys.start + c) * b.stride + b.k_col..][..hd];
    // Eight keys at a time: each output run of 8 columns is one contiguous store, and each
    // key's row is read along its length (a key at a time scattered every value k_stride apart).
    const KEYS: usize = 8;
    let whole = n / KEYS * KEYS;
    for c0 in (0..whole).step_by(KEYS) {
        for c in c0 + KEYS..(c0 + 2 * KEYS).min(n) {
            prefetch_span(key(c));
        }
        let rows: [&[f32]; KEYS] = std::array::from_fn(|j| key(c0 + j));
        for d in 0..hd {
            let dst = &mut keys_t[d * k_stride + c0..][..KEYS];
            for (j, x) in dst.iter_mut().enumerate() {
                *x = rows[j][d];
            }
        }
    }
    for c in whole..n {
        for (d, &x) in key(c).iter().enumerate() {
            keys_t[d * k_stride + c] = x;
        }
    }
    if n < k_stride {
        for d in 0..hd {
            keys_t[d * k_stride + n..(d + 1) * k_stride].fill(0.0);
        }
    }
}

/// Asks the CPU to bring `values` into L1, one request per 64 bytes and one for the last value
/// (so a span that starts mid-line gets its last line too). x86 only: elsewhere a no-op
/// (stable Rust has no prefetch intrinsic for aarch64).
#[inline]
pub(super) fn prefetch_span(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for line in values.chunks(16) {
            // SAFETY: a prefetch reads nothing and cannot fault; SSE is part of x86_64's baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
        if let Some(last) = values.last() {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((last as *const f32).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}
