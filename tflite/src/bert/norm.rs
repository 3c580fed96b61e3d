//! LayerNorm in the two lowerings the converters write (see [`super`]'s table): TensorFlow's
//! `(x - mean) * rsqrt(var + eps)` and litert-torch's `x * r + (0 - r * mean)`, then gamma and beta.

use super::NormRef;
use crate::graph::{message, unrecognised, Graph};
use crate::model::op;
use crate::TfliteError;

/// A matched LayerNorm.
pub(crate) struct LayerNormMatch {
    pub eps: f32,
    pub norm: NormRef,
    /// (x - mean) * rsqrt(var + eps), before gamma and beta.
    pub normalized: usize,
    /// The output after gamma and beta.
    pub output: usize,
}

impl Graph<'_> {
    /// Matches the LayerNorm that starts at tensor `x` in either lowering (see the module
    /// docs); when neither matches, the error says where each one stopped.
    pub(crate) fn layer_norm(&self, x: usize, context: &str) -> Result<LayerNormMatch, TfliteError> {
        let ctx = format!("{context} LayerNorm");
        let (eps, normalized) = match self.normalize_tf(x, &ctx) {
            Ok(found) => found,
            Err(tf) => self.normalize_torch(x, &ctx).map_err(|torch| {
                unrecognised(format!(
                    "{ctx} reading {}: neither TensorFlow's lowering ({}) nor litert-torch's ({})",
                    self.label(x),
                    message(&tf),
                    message(&torch)
                ))
            })?,
        };
        self.gamma_beta(normalized, eps, &ctx)
    }

    /// TensorFlow's lowering up to the normalised values: MEAN, SQUARED_DIFFERENCE, MEAN,
    /// ADD eps, RSQRT, SUB mean, MUL. Returns (eps, normalised tensor).
    fn normalize_tf(&self, x: usize, ctx: &str) -> Result<(f32, usize), TfliteError> {
        let ctx = |step: &str| format!("{ctx} ({step})");
        let mean = self.one_user(x, op::MEAN, &ctx("mean"))?;
        let m = self.out(mean)?;
        let (eps, r) = self.inverse_std(x, &ctx("variance"))?;
        let sub = self
            .users(x, op::SUB)
            .into_iter()
            .find(|o| o.input(0) == Some(x) && o.input(1) == Some(m))
            .ok_or_else(|| unrecognised(format!("{}: no SUB of the mean from {}", ctx("centre"), self.label(x))))?;
        let d = self.out(sub)?;
        let scale = self
            .users(d, op::MUL)
            .into_iter()
            .find(|o| o.inputs.contains(&Some(r)))
            .ok_or_else(|| {
                unrecognised(format!(
                    "{}: no MUL of the centred values by the rsqrt",
                    ctx("normalise")
                ))
            })?;
        Ok((eps, self.out(scale)?))
    }

    /// litert-torch's lowering up to the normalised values: `x * r + (0 - r * mean)` with
    /// `r = RSQRT(MEAN(SQUARED_DIFFERENCE(x, mean)) + eps)`, the per-token statistics
    /// RESHAPEd to [.., n, 1] where they meet `x`. Returns (eps, normalised tensor).
    fn normalize_torch(&self, x: usize, ctx: &str) -> Result<(f32, usize), TfliteError> {
        let ctx = |step: &str| format!("{ctx} ({step})");
        let mean = self.one_user(x, op::MEAN, &ctx("mean"))?;
        let m = self.out(mean)?;
        let (eps, r) = self.inverse_std(x, &ctx("variance"))?;
        let scaled = self
            .users(x, op::MUL)
            .into_iter()
            .find(|o| {
                o.inputs
                    .iter()
                    .flatten()
                    .any(|&t| t != x && self.before_reshapes(t) == r)
            })
            .ok_or_else(|| unrecognised(format!("{}: no MUL of {} by the rsqrt", ctx("scale"), self.label(x))))?;
        let scaled_out = self.out(scaled)?;
        let shift_add = self.one_user(scaled_out, op::ADD, &ctx("shift"))?;
        let shift = shift_add
            .inputs
            .iter()
            .flatten()
            .copied()
            .find(|&t| t != scaled_out)
            .map(|t| self.before_reshapes(t))
            .ok_or_else(|| unrecognised(format!("{}: {} has one input", ctx("shift"), shift_add.label())))?;
        // shift = 0 - r * mean
        let is_shift = self.producer[shift].map(|i| self.op(i)).is_some_and(|sub| {
            sub.code == op::SUB
                && sub.input(0).and_then(|z| self.scalar(z)) == Some(0.0)
                && sub
                    .input(1)
                    .and_then(|t| self.producer[t])
                    .map(|i| self.op(i))
                    .is_some_and(|mul| {
                        mul.code == op::MUL && mul.inputs.contains(&Some(r)) && mul.inputs.contains(&Some(m))
                    })
        });
        if !is_shift {
            return Err(unrecognised(format!(
                "{}: {} does not add -(rsqrt x mean)",
                ctx("shift"),
                shift_add.label()
            )));
        }
        Ok((eps, self.out(shift_add)?))
    }

    /// The variance branch both lowerings share: SQUARED_DIFFERENCE(x, mean) -> MEAN -> ADD
    /// eps -> RSQRT. Returns (eps, the RSQRT's output).
    fn inverse_std(&self, x: usize, ctx: &str) -> Result<(f32, usize), TfliteError> {
        let sqd = self.one_user(x, op::SQUARED_DIFFERENCE, ctx)?;
        let var = self.one_user(self.out(sqd)?, op::MEAN, &format!("{ctx} mean"))?;
        let v = self.out(var)?;
        let add_eps = self.one_user(v, op::ADD, &format!("{ctx} epsilon"))?;
        let eps_tensor = if add_eps.input(0) == Some(v) {
            add_eps.input(1)
        } else {
            add_eps.input(0)
        };
        let eps = eps_tensor
            .and_then(|t| self.scalar(t))
            .ok_or_else(|| unrecognised(format!("{ctx} epsilon: not a scalar constant")))?;
        let rsqrt = self.one_user(self.out(add_eps)?, op::RSQRT, &format!("{ctx} rsqrt"))?;
        Ok((eps, self.out(rsqrt)?))
    }

    /// The MUL by gamma and ADD of beta after the normalised values.
    fn gamma_beta(&self, normalized: usize, eps: f32, ctx: &str) -> Result<LayerNormMatch, TfliteError> {
        let ctx = |step: &str| format!("{ctx} ({step})");
        let gamma_op = self
            .users(normalized, op::MUL)
            .into_iter()
            .find(|o| {
                o.inputs
                    .iter()
                    .flatten()
                    .any(|&t| t != normalized && self.constant(t).is_some())
            })
            .ok_or_else(|| {
                unrecognised(format!(
                    "{}: no MUL of {} by a constant gamma",
                    ctx("gamma"),
                    self.label(normalized)
                ))
            })?;
        let weight = gamma_op
            .inputs
            .iter()
            .flatten()
            .find_map(|&t| if t != normalized { self.constant(t) } else { None })
            .ok_or_else(|| unrecognised(format!("{}: gamma is not a constant", ctx("gamma"))))?;
        let g = self.out(gamma_op)?;
        let beta_op = self.one_user(g, op::ADD, &ctx("beta"))?;
        let bias = beta_op
            .inputs
            .iter()
            .flatten()
            .copied()
            .find(|&t| t != g)
            .and_then(|t| self.constant(t))
            .ok_or_else(|| unrecognised(format!("{}: beta is not a constant", ctx("beta"))))?;
        Ok(LayerNormMatch {
            eps,
            norm: NormRef { weight, bias },
            normalized,
            output: self.out(beta_op)?,
        })
    }
}
