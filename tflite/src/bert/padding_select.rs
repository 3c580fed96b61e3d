//! litert-torch's lowering of a Hugging Face padding mask (transformers' bidirectional mask on
//! an `(input_ids, attention_mask)` export), the other form of the score bias that
//! [`super::masked`] recognises:
//!
//! ```text
//! mask -> CAST(bool) -> GATHER_ND(constant indices: key j <- mask[0, j]) -> [1, 1, 1, n]
//!      -> LOGICAL_AND(constant all true [1, 1, n, 1], .) -> [1, 1, n, n]
//!      -> SELECT_V2(., 0, f32::MIN) -> ADD to the scores
//! ```
//!
//! The bias is 0 where key j is a token and a large negative number where it is padding, the
//! same for every query row. On octet's unpadded run every key is a token, so the bias is 0
//! everywhere and the piece is dropped from the plan, as the `(1 - mask) x -10000` form is.

use super::masked::MASK_BIAS_AT_MOST;
use crate::graph::Graph;
use crate::model::op;

impl Graph<'_> {
    /// When `t` is SELECT_V2(key mask, 0, a large negative constant) with a key mask read from
    /// an int input (see the module docs), that input.
    pub(crate) fn padding_mask_select(&self, t: usize) -> Option<usize> {
        let select = self.op(self.producer[self.before_layout(t)]?);
        if select.code != op::SELECT_V2 || self.scalar(select.input(1)?) != Some(0.0) {
            return None;
        }
        if !self.scalar(select.input(2)?).is_some_and(|c| c <= MASK_BIAS_AT_MOST) {
            return None;
        }
        self.key_mask(select.input(0)?)
    }

    /// When the BOOL tensor `cond` is true at [.., query i, key j] exactly where key j is a
    /// token by an int mask input [1, n] (ANDed with any all-true constants), that input.
    fn key_mask(&self, cond: usize) -> Option<usize> {
        let o = self.op(self.producer[cond]?);
        match o.code {
            op::LOGICAL_AND => {
                let (a, b) = (o.input(0)?, o.input(1)?);
                match (self.all_true(a), self.all_true(b)) {
                    (true, false) => self.key_mask(b),
                    (false, true) => self.key_mask(a),
                    _ => None,
                }
            }
            op::GATHER_ND => {
                let mask = self.int_input_behind(o.input(0)?)?;
                let n = self.key_length(mask)?;
                let indices = self.constant(o.input(1)?)?;
                let values = self.model.i32_values(&self.model.tensors[indices]).ok()?;
                // n index pairs (0, j), j = 0 .. n in order: out[.., j] = mask[0, j].
                let in_order = values.len() == 2 * n
                    && values
                        .chunks_exact(2)
                        .enumerate()
                        .all(|(j, pair)| pair[0] == 0 && pair[1] as usize == j);
                (in_order && self.is_key_row(*o.outputs.first()?, n)).then_some(mask)
            }
            _ => {
                // The mask itself, reshaped to [.., 1, n] (keys on the last axis).
                let mask = self.int_input_behind(cond)?;
                self.is_key_row(cond, self.key_length(mask)?).then_some(mask)
            }
        }
    }

    /// n when the mask input has shape [1, n] (or [n]).
    fn key_length(&self, mask: usize) -> Option<usize> {
        match self.model.tensors[mask].shape[..] {
            [n] | [1, n] if n > 0 => Some(n),
            _ => None,
        }
    }

    /// True when `t` has shape [1, .., 1, n]: one row of keys, broadcast over the query rows.
    fn is_key_row(&self, t: usize, n: usize) -> bool {
        match self.model.tensors[t].shape.split_last() {
            Some((&last, rest)) => last == n && rest.iter().all(|&d| d == 1),
            None => false,
        }
    }

    /// True when `t` is a constant BOOL tensor (possibly through BROADCAST_TO / RESHAPE) that is
    /// true everywhere.
    fn all_true(&self, mut t: usize) -> bool {
        while let Some(o) = self.producer[t].map(|i| self.op(i)) {
            match (o.code, o.input(0)) {
                (op::BROADCAST_TO | op::RESHAPE, Some(src)) => t = src,
                _ => return false,
            }
        }
        self.bool_values(t).is_some_and(|v| v.iter().all(|&b| b))
    }
}
