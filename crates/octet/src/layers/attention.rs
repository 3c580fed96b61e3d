//! Scaled dot-product attention over a packed batch of sequences, in f32 (or with Q and K, and
//! maybe V and the probabilities, rounded to bf16, for int8 models on CPUs with bf16 dot
//! products: see [`AttentionMath`]), on the fused attention kernel (`octet_kernels::attention`).
//!
//! The batch holds no padding: the tokens of every sequence are stored back to back. Work is
//! cut into tasks of (sequence, key/value head, block of up to 128 query rows) on rayon's pool;
//! a task runs the kernel once for its block, for every query head that shares the key/value
//! head (grouped-query attention), so the block's keys are packed once for all of them. The
//! kernel reads Q, K and V straight from the fused rows and writes the result straight into
//! the task's rows and head columns of `out`; its scratch (the block's keys transposed and a
//! few rows of scores) is a per-thread buffer kept across tasks, layers and calls, so nothing
//! is allocated per task. With a sliding window a block only touches the keys it can see.
//! When the batch is small (one short sequence, few heads), blocks shrink to as few as 16
//! rows so every thread still gets several tasks.
//!
//! Q, K and V come from one fused projection: row t of `qkv` holds the `heads` query heads,
//! then the `kv_heads` key heads, then the `kv_heads` value heads, each `head_dim` wide.
//! Query head h reads key/value head `h / (heads / kv_heads)`.
//!
//! A score bias ([`ScoreBias`], T5's relative position bias) is a value per head and relative
//! position `key - query`, so it is read in place rather than built as `len x len` matrices.

use crate::error::{Error, Result};
use octet_kernels::attention::{self as katt, AttentionBlock, RelativeBias};
use octet_kernels::{kernels, AttentionPrecision};
use rayon::prelude::*;
use std::cell::RefCell;

pub use crate::batch::Span;

/// The geometry of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; divides `heads`.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Multiplier of the raw scores (1/sqrt(head_dim) for BERT, 1 for T5).
    pub scale: f32,
    /// Symmetric sliding window: query i sees key j only when |i - j| <= `window`.
    pub window: Option<usize>,
    /// f32 or bf16 products; bf16 takes effect only where the CPU has the instruction. Models
    /// set it with [`attention_math`].
    pub math: AttentionMath,
}

/// How an attention layer multiplies. The bf16 forms run on the CPU's bf16 dot products
/// (`octet_kernels::attention::bf16_for_isa`, `bf16_scores_for_isa`), twice the products per
/// instruction; where the CPU has none they run f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMath {
    /// Q K^T and P V in f32.
    F32,
    /// Q and K rounded to bf16 for the scores; the probabilities and P V in f32.
    Bf16Scores,
    /// Q, K, V and the probabilities rounded to bf16: both products on bf16 pairs.
    Bf16,
}

impl AttentionShape {
    /// Width of one row of the fused QKV projection.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Width of one row of the attention output.
    pub fn out_width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// An additive score bias that depends on the head and the relative position `j - i` (key
/// minus query) only: `table` is [heads, 2 x longest - 1] and entry `(h, j - i + longest - 1)`
/// is added to head h's score of query i and key j. `longest` must be at least the longest
/// sequence of the batch.
#[derive(Clone, Copy, Debug)]
pub struct ScoreBias<'a> {
    /// [heads, 2 x longest - 1].
    pub table: &'a [f32],
    /// The longest sequence the table covers.
    pub longest: usize,
}

/// Most query rows per task: a task's scratch holds its keys transposed plus a few rows of
/// scores, and its keys are packed once for all of its rows and heads, so the larger the
/// block the less packing per row (a 128-token sequence packs its keys once per head).
const ROW_BLOCK: usize = 128;

/// Fewest query rows per task when blocks shrink for a small batch (a multiple of the
/// kernel's 8-row groups).
const MIN_ROW_BLOCK: usize = 16;

/// Tasks wanted per thread before blocks stop shrinking, so uneven tasks (window edges,
/// short sequences) still balance.
const TASKS_PER_THREAD: usize = 4;

/// One unit of parallel work: a block of query rows of one sequence, for the query heads
/// sharing one key/value head.
#[derive(Clone, Copy, Debug)]
struct Task {
    seq: usize,
    kv_head: usize,
    /// Query rows `rows.0 .. rows.1`, counted within the sequence.
    rows: (usize, usize),
}

/// The row block for a batch: [`ROW_BLOCK`], halved down to [`MIN_ROW_BLOCK`] while there are
/// fewer than [`TASKS_PER_THREAD`] tasks per thread.
fn row_block(spans: &[Span], kv_heads: usize) -> usize {
    let wanted = TASKS_PER_THREAD * rayon::current_num_threads();
    let count = |block: usize| spans.iter().map(|s| s.len.div_ceil(block)).sum::<usize>() * kv_heads;
    let mut block = ROW_BLOCK;
    while block > MIN_ROW_BLOCK && count(block) < wanted {
        block /= 2;
    }
    block
}

/// The tasks for a batch.
fn tasks(spans: &[Span], shape: &AttentionShape) -> Vec<Task> {
    let block = row_block(spans, shape.kv_heads);
    let mut out = Vec::new();
    for (seq, span) in spans.iter().enumerate() {
        for kv_head in 0..shape.kv_heads {
            let mut r0 = 0;
            while r0 < span.len {
                let r1 = (r0 + block).min(span.len);
                out.push(Task {
                    seq,
                    kv_head,
                    rows: (r0, r1),
                });
                r0 = r1;
            }
        }
    }
    out
}

/// `out` as the tasks share it: each task writes only its own rows' columns of its heads.
struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: SharedOut is only used inside `attention`, where every task writes a region
// (its rows x its heads' columns) no other task touches, while `out` stays mutably borrowed.
unsafe impl Sync for SharedOut {}

thread_local! {
    /// Kernel scratch of this thread, grown as needed and kept across tasks and calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Checks the batch against the slices: spans in order without overlap, inside `qkv` and
/// `out`, heads that group evenly, a bias that covers every sequence.
fn check(
    qkv: &[f32],
    spans: &[Span],
    shape: &AttentionShape,
    bias: Option<&ScoreBias<'_>>,
    out: &[f32],
) -> Result<usize> {
    let bad = |detail: String| Err(Error::model("attention", detail));
    if shape.heads == 0 || shape.kv_heads == 0 || shape.head_dim == 0 || !shape.heads.is_multiple_of(shape.kv_heads) {
        return bad(format!(
            "heads {} must be a positive multiple of kv_heads {} and head_dim {} positive",
            shape.heads, shape.kv_heads, shape.head_dim
        ));
    }
    let mut end = 0;
    for span in spans {
        if span.start < end {
            return bad(format!("span {span:?} overlaps or precedes the previous one"));
        }
        end = span.start + span.len;
    }
    if qkv.len() < end * shape.qkv_width() || out.len() < end * shape.out_width() {
        return bad(format!(
            "{end} rows need {} qkv and {} output values, got {} and {}",
            end * shape.qkv_width(),
            end * shape.out_width(),
            qkv.len(),
            out.len()
        ));
    }
    if let Some(b) = bias {
        let longest = spans.iter().map(|s| s.len).max().unwrap_or(0);
        if b.longest < longest || b.table.len() < shape.heads * (2 * b.longest.max(1) - 1) {
            return bad(format!(
                "a bias for {} tokens ({} values) does not cover {} heads of {longest} tokens",
                b.longest,
                b.table.len(),
                shape.heads
            ));
        }
    }
    Ok(end)
}

/// How an attention layer multiplies: f32 unless its projection's int8 weights allow bf16
/// (`allowed`: [`crate::layers::Linear::allows_bf16_attention`]); then as `OCTET_ATTENTION`
/// says (`f32`, or `bf16` for [`AttentionMath::Bf16`]), or else the model's default.
pub fn attention_math(allowed: bool, model_default: AttentionMath) -> AttentionMath {
    if !allowed {
        return AttentionMath::F32;
    }
    match kernels().attention_precision {
        AttentionPrecision::ModelDefault => model_default,
        AttentionPrecision::F32 => AttentionMath::F32,
        AttentionPrecision::Bf16 => AttentionMath::Bf16,
    }
}

/// Runs attention for every sequence in `spans`; `out` is [rows, heads x head_dim]. Spans
/// must come in order without overlapping (as a packed batch lays them out).
pub fn attention(
    qkv: &[f32],
    spans: &[Span],
    shape: &AttentionShape,
    bias: Option<&ScoreBias<'_>>,
    out: &mut [f32],
) -> Result<()> {
    check(qkv, spans, shape, bias, out)?;
    let (hd, qkv_w, out_w) = (shape.head_dim, shape.qkv_width(), shape.out_width());
    let group = shape.heads / shape.kv_heads;
    let table = kernels();
    let kernel = match shape.math {
        AttentionMath::F32 => None,
        AttentionMath::Bf16Scores => table.attention_bf16_scores,
        AttentionMath::Bf16 => table.attention_bf16,
    }
    .unwrap_or(table.attention);
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        len: out.len(),
    };
    let shared = &shared;
    tasks(spans, shape).par_iter().try_for_each(|task| -> Result<()> {
        let Span { start, len } = spans[task.seq];
        let (r0, r1) = task.rows;
        let first_head = task.kv_head * group;
        let block = AttentionBlock {
            qkv: &qkv[start * qkv_w..(start + len) * qkv_w],
            stride: qkv_w,
            len,
            head_dim: hd,
            heads: group,
            q_col: first_head * hd,
            k_col: (shape.heads + task.kv_head) * hd,
            v_col: (shape.heads + shape.kv_heads + task.kv_head) * hd,
            rows: r0..r1,
            scale: shape.scale,
            window: shape.window,
            bias: bias.map(|b| {
                let width = 2 * b.longest.max(1) - 1;
                RelativeBias {
                    values: &b.table[first_head * width..],
                    head_stride: width,
                    zero: b.longest.max(1) - 1,
                }
            }),
        };
        let mut rows: [&mut [f32]; ROW_BLOCK] = std::array::from_fn(|_| Default::default());
        for (r, slot) in rows.iter_mut().take(r1 - r0).enumerate() {
            let at = (start + r0 + r) * out_w + first_head * hd;
            debug_assert!(at + group * hd <= shared.len);
            // SAFETY: `check` put every span's rows inside `out` (at + group x hd <= len), the
            // spans do not overlap, and tasks split each span's rows and heads into disjoint
            // blocks, so this row's columns of these heads belong to this task alone; `out`
            // is mutably borrowed for the whole call and not used otherwise meanwhile.
            *slot = unsafe { std::slice::from_raw_parts_mut(shared.ptr.add(at), group * hd) };
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let need = katt::scratch_len(katt::visible_keys(&(r0..r1), len, shape.window).len(), hd);
            if scratch.len() < need {
                scratch.resize(need, 0.0);
            }
            katt::attend(kernel, &block, scratch, &mut rows[..r1 - r0])
        })?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct f64 attention for one head, the reference.
    fn reference(qkv: &[f32], span: Span, shape: &AttentionShape, bias: Option<&ScoreBias<'_>>, h: usize) -> Vec<f64> {
        let (hd, w) = (shape.head_dim, shape.qkv_width());
        let kv = h / (shape.heads / shape.kv_heads);
        let row = |t: usize, off: usize, d: usize| qkv[(span.start + t) * w + off + d] as f64;
        let mut out = vec![0f64; span.len * hd];
        for i in 0..span.len {
            let mut s: Vec<f64> = (0..span.len)
                .map(|j| {
                    let dot: f64 = (0..hd)
                        .map(|d| row(i, h * hd, d) * row(j, (shape.heads + kv) * hd, d))
                        .sum();
                    let visible = shape.window.is_none_or(|win| i.abs_diff(j) <= win);
                    let b = bias.map_or(0.0, |b| b.table[h * (2 * b.longest - 1) + j + b.longest - 1 - i] as f64);
                    if visible {
                        dot * shape.scale as f64 + b
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            s.iter_mut().for_each(|x| *x = (*x - max).exp());
            let sum: f64 = s.iter().sum();
            for d in 0..hd {
                out[i * hd + d] = (0..span.len)
                    .map(|j| s[j] / sum * row(j, (shape.heads + shape.kv_heads + kv) * hd, d))
                    .sum();
            }
        }
        out
    }

    /// Runs `attention` and compares every output value with the f64 reference.
    fn check(shape: AttentionShape, lens: &[usize]) {
        check_with_bias(shape, lens, None)
    }

    /// As [`check`], with an optional score bias.
    fn check_with_bias(shape: AttentionShape, lens: &[usize], bias: Option<&ScoreBias<'_>>) {
        let mut spans = Vec::new();
        let mut rows = 0;
        for &len in lens {
            spans.push(Span { start: rows, len });
            rows += len;
        }
        let qkv: Vec<f32> = (0..rows * shape.qkv_width())
            .map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * 2.0)
            .collect();
        let mut out = vec![0f32; rows * shape.out_width()];
        attention(&qkv, &spans, &shape, bias, &mut out).unwrap();
        for span in spans {
            for h in 0..shape.heads {
                let want = reference(&qkv, span, &shape, bias, h);
                for i in 0..span.len {
                    for d in 0..shape.head_dim {
                        let got = out[(span.start + i) * shape.out_width() + h * shape.head_dim + d] as f64;
                        // f32 scores and softmax against an f64 reference: 1e-5 absolute on values of
                        // order 1. bf16 rounds Q, K, V and P to 8 significant bits: 2e-2 (see the
                        // kernel tests' bound for bf16 against f64).
                        let tolerance = if shape.math != AttentionMath::F32 && kernels().attention_bf16.is_some() {
                            2e-2
                        } else {
                            1e-5
                        };
                        assert!(
                            (got - want[i * shape.head_dim + d]).abs() < tolerance,
                            "{shape:?} span {span:?} head {h} row {i} dim {d}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn matches_direct_reference_with_gqa_window_and_ragged_spans() {
        check(
            AttentionShape {
                heads: 4,
                kv_heads: 2,
                head_dim: 8,
                scale: 0.35,
                window: Some(3),
                math: AttentionMath::F32,
            },
            &[5, 1, 11],
        );
    }

    /// bf16 attention, all-bf16 and scores only (where the CPU has it), over the same ragged
    /// batch, with a window and grouped heads: the layer picks the bf16 kernels and stays
    /// within bf16's bound.
    #[test]
    fn bf16_matches_direct_reference() {
        for math in [AttentionMath::Bf16, AttentionMath::Bf16Scores] {
            for window in [None, Some(3)] {
                check(
                    AttentionShape {
                        heads: 4,
                        kv_heads: 2,
                        head_dim: 8,
                        scale: 0.35,
                        window,
                        math,
                    },
                    &[5, 1, 11, 140],
                );
            }
        }
    }

    /// Sequences over one block of query rows (16 to 128 rows): blocks at the start, middle and end, with
    /// and without a window, and a window wider than the block.
    #[test]
    fn long_sequences_split_into_row_blocks() {
        for window in [None, Some(5), Some(70), Some(300)] {
            check(
                AttentionShape {
                    heads: 3,
                    kv_heads: 1,
                    head_dim: 8,
                    scale: 0.2,
                    window,
                    math: AttentionMath::F32,
                },
                &[300, 64, 129, 3],
            );
        }
    }

    /// T5's relative bias read in place: sequences shorter than the table, and blocks of rows.
    #[test]
    fn relative_bias_matches_direct_reference() {
        let longest = 130;
        let table: Vec<f32> = (0..2 * (2 * longest - 1))
            .map(|i| ((i * 31 % 17) as f32 / 17.0 - 0.5) * 3.0)
            .collect();
        let bias = ScoreBias { table: &table, longest };
        check_with_bias(
            AttentionShape {
                heads: 2,
                kv_heads: 2,
                head_dim: 8,
                scale: 1.0,
                window: None,
                math: AttentionMath::F32,
            },
            &[5, 1, 130, 70],
            Some(&bias),
        );
    }

    /// Bad batches are errors: overlapping spans, too little output, a bias too short.
    #[test]
    fn bad_batches_are_errors() {
        let shape = AttentionShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            scale: 0.5,
            window: None,
            math: AttentionMath::F32,
        };
        let qkv = vec![0.5f32; 10 * shape.qkv_width()];
        let mut out = vec![0f32; 10 * shape.out_width()];
        let overlapping = [Span { start: 0, len: 6 }, Span { start: 5, len: 5 }];
        assert!(attention(&qkv, &overlapping, &shape, None, &mut out).is_err());
        let past_end = [Span { start: 4, len: 7 }];
        assert!(attention(&qkv, &past_end, &shape, None, &mut out).is_err());
        let table = vec![0f32; 2 * 9];
        let short = ScoreBias {
            table: &table,
            longest: 5,
        };
        assert!(attention(&qkv, &[Span { start: 0, len: 10 }], &shape, Some(&short), &mut out).is_err());
        let uneven = AttentionShape {
            heads: 3,
            kv_heads: 2,
            ..shape
        };
        assert!(attention(&qkv, &[Span { start: 0, len: 2 }], &uneven, None, &mut out).is_err());
        assert!(attention(&qkv, &[Span { start: 0, len: 10 }], &shape, None, &mut out).is_ok());
    }

    /// Blocks shrink for small batches but stay between the bounds.
    #[test]
    fn row_blocks_shrink_for_small_batches() {
        let one_long = [Span {
            start: 0,
            len: ROW_BLOCK * TASKS_PER_THREAD * rayon::current_num_threads(),
        }];
        assert_eq!(row_block(&one_long, 1), ROW_BLOCK);
        let tiny = [Span { start: 0, len: 20 }];
        assert_eq!(row_block(&tiny, 1), MIN_ROW_BLOCK);
    }
}
