//! Scaled dot-product attention over a packed batch of sequences, in f32.
//!
//! The batch holds no padding: the tokens of every sequence are stored back to back, and
//! each (sequence, head) pair is one task on rayon's pool: scores = Q K^T x scale (+ bias),
//! masked to the sliding window if there is one, softmax per row, then P V. Each task
//! allocates its own `len x len` score matrix, so attention memory grows as seq² times the
//! number of threads, for one layer at a time, never times heads or layers.
//!
//! Q, K and V come from one fused projection: row t of `qkv` holds the `heads` query heads,
//! then the `kv_heads` key heads, then the `kv_heads` value heads, each `head_dim` wide.
//! Query head h reads key/value head `h / (heads / kv_heads)` (grouped-query attention).

use crate::error::Result;
use octet_kernels::{f32 as kf32, kernels, vector, Epilogue};
use rayon::prelude::*;

/// A sequence's place in a packed batch: rows `start .. start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First row.
    pub start: usize,
    /// Number of rows (tokens).
    pub len: usize,
}

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

/// Runs attention for every sequence in `spans`; `out` is [rows, heads x head_dim].
pub fn attention(qkv: &[f32], spans: &[Span], shape: &AttentionShape, bias: Option<ScoreBias<'_>>, out: &mut [f32]) -> Result<()> {
    let (hd, qkv_w, out_w) = (shape.head_dim, shape.qkv_width(), shape.out_width());
    let group = shape.heads / shape.kv_heads;
    let tasks: Vec<(usize, usize)> = (0..spans.len()).flat_map(|s| (0..shape.heads).map(move |h| (s, h))).collect();
    let contexts: Vec<Result<Vec<f32>>> = tasks
        .par_iter()
        .map(|&(s, h)| {
            let Span { start, len } = spans[s];
            let rows = &qkv[start * qkv_w..(start + len) * qkv_w];
            let kv = h / group;
            let q = &rows[h * hd..];
            let k_off = (shape.heads + kv) * hd;
            let v_off = (shape.heads + shape.kv_heads + kv) * hd;
            let kern = kernels();

            let k_layout = kf32::PackedF32Layout::new(len, hd);
            let mut k_packed = vec![0f32; k_layout.len()];
            kf32::pack_nk(&rows[k_off..], len, hd, qkv_w, &mut k_packed)?;
            let mut scores = vec![0f32; len * len];
            let k_view = kf32::PackedF32::from_parts(k_layout, &k_packed)?;
            kf32::matmul_serial(kern.f32, q, qkv_w, len, &k_view, &Epilogue::NONE, &mut scores, len)?;
            vector::scale(kern.vector, &mut scores, shape.scale);
            if let Some(bias) = bias {
                bias(h, len, &mut scores);
            }
            if let Some(w) = shape.window {
                mask_outside_window(&mut scores, len, w);
            }
            vector::softmax(kern.vector, &mut scores, len)?;

            let v_layout = kf32::PackedF32Layout::new(hd, len);
            let mut v_packed = vec![0f32; v_layout.len()];
            kf32::pack_kn(&rows[v_off..], len, hd, qkv_w, &mut v_packed)?;
            let v_view = kf32::PackedF32::from_parts(v_layout, &v_packed)?;
            let mut context = vec![0f32; len * hd];
            kf32::matmul_serial(kern.f32, &scores, len, len, &v_view, &Epilogue::NONE, &mut context, hd)?;
            Ok(context)
        })
        .collect();
    for (&(s, h), context) in tasks.iter().zip(contexts) {
        let context = context?;
        let Span { start, len } = spans[s];
        for (i, row) in context.chunks_exact(hd).enumerate().take(len) {
            let at = (start + i) * out_w + h * hd;
            out[at..at + hd].copy_from_slice(row);
        }
    }
    Ok(())
}

/// Sets scores[i][j] to -inf where |i - j| > window.
fn mask_outside_window(scores: &mut [f32], len: usize, window: usize) {
    if window + 1 >= len {
        return;
    }
    for (i, row) in scores.chunks_exact_mut(len).enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(len);
        row[..lo].fill(f32::NEG_INFINITY);
        row[hi..].fill(f32::NEG_INFINITY);
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

    #[test]
    fn matches_direct_reference_with_gqa_window_and_ragged_spans() {
        let shape = AttentionShape { heads: 4, kv_heads: 2, head_dim: 8, scale: 0.35, window: Some(3) };
        let spans = [Span { start: 0, len: 5 }, Span { start: 5, len: 1 }, Span { start: 6, len: 11 }];
        let rows = 17;
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
                        assert!((got - want[i * shape.head_dim + d]).abs() < 1e-5, "span {span:?} head {h} row {i} dim {d}");
                    }
                }
            }
        }
    }
}
