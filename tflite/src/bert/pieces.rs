//! Recognisers of the smaller pieces around the BERT walk: embedding rows litert-torch folds,
//! attention masks that add nothing, and litert-torch's lowered L2 normalisation.

use crate::graph::Graph;
use crate::model::op;

impl Graph<'_> {
    /// True when the constant `t` has [.., rows, h] values whose rows are all the same (a
    /// single row broadcast, as litert-torch folds the token-type row over the sequence).
    pub(crate) fn rows_identical(&self, t: usize, h: usize) -> bool {
        match self.model.f32_values(&self.model.tensors[t]) {
            Ok(v) if h > 0 && v.len() % h == 0 && v.len() > h => v.chunks_exact(h).all(|row| row == &v[..h]),
            _ => false,
        }
    }

    /// True when `t` is an attention mask that adds nothing: an all-zero constant, or
    /// litert-torch's SELECT_V2(condition, a, b) where a constant condition (possibly through
    /// BROADCAST_TO / RESHAPE) picks a zero scalar everywhere.
    pub(crate) fn is_zero_mask(&self, t: usize) -> bool {
        if let Some(c) = self.constant(t) {
            return self
                .model
                .f32_values(&self.model.tensors[c])
                .is_ok_and(|v| v.iter().all(|&x| x == 0.0));
        }
        let Some(select) = self.producer[t].map(|i| self.op(i)) else {
            return false;
        };
        if select.code != op::SELECT_V2 {
            return false;
        }
        let mut cond = match select.input(0) {
            Some(c) => c,
            None => return false,
        };
        while let Some(o) = self.producer[cond].map(|i| self.op(i)) {
            match (o.code, o.input(0)) {
                (op::BROADCAST_TO | op::RESHAPE, Some(src)) => cond = src,
                _ => return false,
            }
        }
        let Some(values) = self.bool_values(cond) else {
            return false;
        };
        let zero = |i: usize| select.input(i).and_then(|v| self.scalar(v)) == Some(0.0);
        (values.iter().all(|&b| b) && zero(1)) || (values.iter().all(|&b| !b) && zero(2))
    }

    /// litert-torch's lowering of `x / max(||x||, eps)`: MUL(x, x) -> SUM -> POW 0.5 (or
    /// SQRT) -> [MAXIMUM eps] -> DIV(x, .). Returns the DIV's output.
    pub(crate) fn lowered_l2_norm(&self, x: usize) -> Option<usize> {
        let square = self
            .users(x, op::MUL)
            .into_iter()
            .find(|o| o.input(0) == Some(x) && o.input(1) == Some(x))?;
        let sum = self.users(*square.outputs.first()?, op::SUM).into_iter().next()?;
        let s = *sum.outputs.first()?;
        let root = self.consumers[s].iter().map(|&i| self.op(i)).find(|o| {
            o.code == op::SQRT || (o.code == op::POW && o.input(1).and_then(|e| self.scalar(e)) == Some(0.5))
        })?;
        let mut norm = *root.outputs.first()?;
        if let Some(max) = self.users(norm, op::MAXIMUM).into_iter().next() {
            let floor = max.inputs.iter().flatten().copied().find(|&t| t != norm)?;
            // A floor against division by zero, not a change of the result.
            if !self.scalar(floor).is_some_and(|f| (0.0..1e-6).contains(&f)) {
                return None;
            }
            norm = *max.outputs.first()?;
        }
        let div = self
            .users(norm, op::DIV)
            .into_iter()
            .find(|o| o.input(0) == Some(x) && o.input(1) == Some(norm))?;
        div.outputs.first().copied()
    }
}
