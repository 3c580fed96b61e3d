//! Scaled dot-product attention over a packed batch of sequences, in f32.
//!
//! The batch holds no padding: the tokens of every sequence are stored back to back, and
//! each block of up to 64 query rows of each (sequence, head) pair is one task on rayon's pool:
//! scores = Q K^T x scale (+ bias), masked to the sliding window if there is one, softmax per
//! row, then P V. With a sliding window a block multiplies only the keys it can see. Each
//! task allocates its own `64 x len` score matrix (`len x len` with a bias), so attention
//! memory grows with seq (seq² with a bias) times the number of threads, for one layer at a
//! time, never times heads or layers.
//!
//! Q, K and V come from one fused projection: row t of `qkv` holds the `heads` query heads,
//! then the `kv_heads` key heads, then the `kv_heads` value heads, each `head_dim` wide.
//! Query head h reads key/value head `h / (heads / kv_heads)` (grouped-query attention).

use crate::error::Result;
use octet_kernels::{f32 as kf32, kernels, vector, Epilogue};
use rayon::prelude::*;

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

/// An additive score bias: `bias(head, len, scores)` adds to the `len x len` scores of one
/// head of one sequence (T5's relative position bias).
pub type ScoreBias<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// Query rows per task. Sequences longer than this are split into blocks of query rows, so a
/// single long text keeps every thread busy and a task's scores stay `ROW_BLOCK x keys`.
const ROW_BLOCK: usize = 64;

/// One unit of parallel work: a block of query rows of one head of one sequence.
#[derive(Clone, Copy, Debug)]
struct Task {
    seq: usize,
    head: usize,
    /// Query rows `rows.0 .. rows.1`, counted within the sequence.
    rows: (usize, usize),
}

/// The tasks for a batch. With a score bias, which is defined on whole `len x len` matrices,
/// every (sequence, head) is one task.
fn tasks(spans: &[Span], shape: &AttentionShape, whole: bool) -> Vec<Task> {
    let mut out = Vec::new();
    for (seq, span) in spans.iter().enumerate() {
        for head in 0..shape.heads {
            let block = if whole { span.len.max(1) } else { ROW_BLOCK };
            let mut r0 = 0;
            while r0 < span.len {
                let r1 = (r0 + block).min(span.len);
                out.push(Task { seq, head, rows: (r0, r1) });
                r0 = r1;
            }
        }
    }
    out
}

/// Runs attention for every sequence in `spans`; `out` is [rows, heads x head_dim].
/// With a sliding window, only the keys a block of queries can see are multiplied.
pub fn attention(qkv: &[f32], spans: &[Span], shape: &AttentionShape, bias: Option<ScoreBias<'_>>, out: &mut [f32]) -> Result<()> {
    let (hd, qkv_w, out_w) = (shape.head_dim, shape.qkv_width(), shape.out_width());
    let group = shape.heads / shape.kv_heads;
    let tasks = tasks(spans, shape, bias.is_some());
    let contexts: Vec<Result<Vec<f32>>> = tasks
        .par_iter()
        .map(|task| {
            let Span { start, len } = spans[task.seq];
            let (r0, r1) = task.rows;
            let rows = r1 - r0;
            // Keys visible to any query of the block: [c0, c1).
            let (c0, c1) = match shape.window {
                Some(w) if bias.is_none() => (r0.saturating_sub(w), (r1 + w).min(len)),
                _ => (0, len),
            };
            let keys = c1 - c0;
            let seq_rows = &qkv[start * qkv_w..(start + len) * qkv_w];
            let kv = task.head / group;
            let q = &seq_rows[r0 * qkv_w + task.head * hd..];
            let k_off = c0 * qkv_w + (shape.heads + kv) * hd;
            let v_off = c0 * qkv_w + (shape.heads + shape.kv_heads + kv) * hd;
            let kern = kernels();

            let k_layout = kf32::PackedF32Layout::new(keys, hd);
            let mut k_packed = vec![0f32; k_layout.len()];
            kf32::pack_nk(&seq_rows[k_off..], keys, hd, qkv_w, &mut k_packed)?;
            let mut scores = vec![0f32; rows * keys];
            let k_view = kf32::PackedF32::from_parts(k_layout, &k_packed)?;
            kf32::matmul_serial(kern.f32, q, qkv_w, rows, &k_view, &Epilogue::NONE, &mut scores, keys)?;
            vector::scale(kern.vector, &mut scores, shape.scale);
            if let Some(bias) = bias {
                bias(task.head, len, &mut scores);
            }
            if let Some(w) = shape.window {
                mask_outside_window(&mut scores, keys, r0, c0, w);
            }
            vector::softmax(kern.vector, &mut scores, keys)?;

            let v_layout = kf32::PackedF32Layout::new(hd, keys);
            let mut v_packed = vec![0f32; v_layout.len()];
            kf32::pack_kn(&seq_rows[v_off..], keys, hd, qkv_w, &mut v_packed)?;
            let v_view = kf32::PackedF32::from_parts(v_layout, &v_packed)?;
            let mut context = vec![0f32; rows * hd];
            kf32::matmul_serial(kern.f32, &scores, keys, rows, &v_view, &Epilogue::NONE, &mut context, hd)?;
            Ok(context)
        })
        .collect();
    for (task, context) in tasks.iter().zip(contexts) {
        let context = context?;
        let start = spans[task.seq].start + task.rows.0;
        for (i, row) in context.chunks_exact(hd).enumerate() {
            let at = (start + i) * out_w + task.head * hd;
            out[at..at + hd].copy_from_slice(row);
        }
    }
    Ok(())
}

/// Sets scores[i][j] to -inf where |(r0 + i) - (c0 + j)| > window: row i is query r0 + i and
/// column j is key c0 + j, `keys` columns per row.
fn mask_outside_window(scores: &mut [f32], keys: usize, r0: usize, c0: usize, window: usize) {
    for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
        let query = r0 + i;
        let lo = query.saturating_sub(window).saturating_sub(c0).min(keys);
        let hi = (query + window + 1).saturating_sub(c0).min(keys);
        row[..lo].fill(f32::NEG_INFINITY);
        row[hi.max(lo)..].fill(f32::NEG_INFINITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct f64 attention for one head, the reference.
    fn reference(qkv: &[f32], span: Span, shape: &AttentionShape, h: usize) -> Vec<f64> {
        let (hd, w) = (shape.head_dim, shape.qkv_width());
        let kv = h / (shape.heads / shape.kv_heads);
        let row = |t: usize, off: usize, d: usize| qkv[(span.start + t) * w + off + d] as f64;
        let mut out = vec![0f64; span.len * hd];
        for i in 0..span.len {
            let mut s: Vec<f64> = (0..span.len)
                .map(|j| {
                    let dot: f64 = (0..hd).map(|d| row(i, h * hd, d) * row(j, (shape.heads + kv) * hd, d)).sum();
                    let visible = shape.window.is_none_or(|win| i.abs_diff(j) <= win);
                    if visible { dot * shape.scale as f64 } else { f64::NEG_INFINITY }
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            s.iter_mut().for_each(|x| *x = (*x - max).exp());
            let sum: f64 = s.iter().sum();
            for d in 0..hd {
                out[i * hd + d] = (0..span.len).map(|j| s[j] / sum * row(j, (shape.heads + shape.kv_heads + kv) * hd, d)).sum();
            }
        }
        out
    }

    /// Runs `attention` and compares every output value with the f64 reference.
    fn check(shape: AttentionShape, lens: &[usize]) {
        let mut spans = Vec::new();
        let mut rows = 0;
        for &len in lens {
            spans.push(Span { start: rows, len });
            rows += len;
        }
        let qkv: Vec<f32> = (0..rows * shape.qkv_width()).map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * 2.0).collect();
        let mut out = vec![0f32; rows * shape.out_width()];
        attention(&qkv, &spans, &shape, None, &mut out).unwrap();
        for span in spans {
            for h in 0..shape.heads {
                let want = reference(&qkv, span, &shape, h);
                for i in 0..span.len {
                    for d in 0..shape.head_dim {
                        let got = out[(span.start + i) * shape.out_width() + h * shape.head_dim + d] as f64;
                        // f32 scores and softmax against an f64 reference: 1e-5 absolute on values of order 1.
                        assert!((got - want[i * shape.head_dim + d]).abs() < 1e-5, "{shape:?} span {span:?} head {h} row {i} dim {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn matches_direct_reference_with_gqa_window_and_ragged_spans() {
        check(AttentionShape { heads: 4, kv_heads: 2, head_dim: 8, scale: 0.35, window: Some(3) }, &[5, 1, 11]);
    }

    /// Sequences over one block of query rows (64): blocks at the start, middle and end, with
    /// and without a window, and a window wider than the block.
    #[test]
    fn long_sequences_split_into_row_blocks() {
        for window in [None, Some(5), Some(70), Some(300)] {
            check(AttentionShape { heads: 3, kv_heads: 1, head_dim: 8, scale: 0.2, window }, &[200, 64, 65, 3]);
        }
    }
}
