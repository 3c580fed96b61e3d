//! What follows the last LayerNorm: a mean over the tokens (MEAN, or the masked mean of a
//! fixed-length export), the first token's row (CLS), or nothing (the graph outputs the token
//! vectors and the caller pools); then optionally L2 normalisation, as L2_NORMALIZATION or
//! litert-torch's lowering.

use super::{Pooled, PoolingFound};
use crate::graph::{unrecognised, Graph};
use crate::model::op;
use crate::TfliteError;

/// Recognises the pooling of `last` (the last LayerNorm's output). `ids` is the token-id input;
/// `mask` the attention-mask input found so far, set when the masked mean names it.
pub(crate) fn recognise(
    g: &Graph,
    last: usize,
    ids: usize,
    mask: &mut Option<usize>,
) -> Result<PoolingFound, TfliteError> {
    let outputs = &g.model.outputs;
    let states = g.through_layout(last);
    if outputs.contains(&last) || outputs.contains(&states) {
        // Padding rows of a masked model are in the output too: the caller pools the real
        // tokens, which is what octet's unpadded mean computes.
        return Ok(PoolingFound {
            mode: Pooled::Caller,
            normalize: false,
        });
    }
    let (mode, pooled) = if let Some(row) = g.first_row_slice(last) {
        (Pooled::Cls, row)
    } else {
        match g.masked_mean(last) {
            Some((pooled, input)) if mask.is_none_or(|m| m == input) && input != ids => {
                *mask = Some(input);
                (Pooled::Mean, pooled)
            }
            Some(_) => {
                return Err(unrecognised(
                    "pooling: the masked mean reads another input than the attention mask",
                ))
            }
            None => {
                if mask.is_some() {
                    return Err(unrecognised(format!(
                        "pooling: the model masks attention but does not pool {} with the mask (MUL by the mask, SUM, \
                         DIV by SUM(mask)) or take its first row: a plain mean would include the padding, which \
                         octet's unpadded run cannot reproduce",
                        g.label(last)
                    )));
                }
                let mean = g.one_user(last, op::MEAN, "pooling (MEAN, masked mean, a slice of row 0, or none)")?;
                (Pooled::Mean, g.out(mean)?)
            }
        }
    };
    let normalize = match g.consumers[pooled].as_slice() {
        _ if g.lowered_l2_norm(pooled).is_some_and(|out| outputs.contains(&out)) => true,
        [i] if g.op(*i).code == op::L2_NORMALIZATION => {
            let out = g.out(g.op(*i))?;
            if !outputs.contains(&out) {
                return Err(unrecognised(format!(
                    "pooling: the L2 normalised {} is not a model output",
                    g.label(out)
                )));
            }
            true
        }
        _ if outputs.contains(&pooled) => false,
        _ => {
            return Err(unrecognised(format!(
            "pooling: the pooled {} is neither an output nor L2 normalised (L2_NORMALIZATION, or litert-torch's x / \
                 max(POW(SUM(x * x), 0.5), eps))",
            g.label(pooled)
        )))
        }
    };
    Ok(PoolingFound { mode, normalize })
}

impl Graph<'_> {
    /// When a STRIDED_SLICE or SLICE of `x` (possibly after a RESHAPE) takes its first row
    /// (constant begin all zeros, one row of the hidden size out), the row's tensor after any
    /// RESHAPE / SQUEEZE.
    fn first_row_slice(&self, x: usize) -> Option<usize> {
        let h = *self.model.tensors[x].shape.last()?;
        let mut from = vec![x];
        if let [i] = self.consumers[x].as_slice() {
            if self.op(*i).code == op::RESHAPE {
                from.push(*self.op(*i).outputs.first()?);
            }
        }
        for t in from {
            for o in self.consumers[t].iter().map(|&i| self.op(i)) {
                if !matches!(o.code, op::STRIDED_SLICE | op::SLICE) || o.input(0) != Some(t) {
                    continue;
                }
                let begin = o.input(1).and_then(|b| self.constant(b))?;
                let zeros = self
                    .model
                    .i32_values(&self.model.tensors[begin])
                    .is_ok_and(|v| v.iter().all(|&b| b == 0));
                let out = *o.outputs.first()?;
                if zeros && self.model.tensors[out].numel() == h {
                    return Some(self.through_layout(out));
                }
            }
        }
        None
    }
}
