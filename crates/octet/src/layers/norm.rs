//! [`Norm`]: the row normalizations of every architecture, one type.
//!
//! - LayerNorm (BERT): `(x - mean) / sqrt(var + eps) * gamma + beta`. With `folded_norms`
//!   (TFLite imports) the projections that read the norm's output have gamma and beta folded in,
//!   so [`Norm::normalize`] and [`Norm::affine`] apply the two halves separately.
//! - RMSNorm: `x / sqrt(mean(x²) + eps) * w` (T5) or `* (1 + w)` (Gemma 3).
//!
//! Rows are independent; large batches are split across rayon's current pool.

use super::stored::Stored;
use crate::error::{Error, Result};
use crate::format::ModelFile;
use octet_kernels::{kernels, vector};
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per parallel task: below this a row block is not worth a task.
const ROWS_PER_TASK: usize = 64;

/// The paired buffers of [`Norm::apply_into`] and [`Norm::apply_and_add`] hold the same rows.
fn check_same_len(a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::Internal(format!("norm: paired buffers of {a} and {b} values")))
    }
}

/// Which normalization, with its parameters.
enum Kind {
    Layer {
        bias: Stored<f32>,
        ones: Vec<f32>,
        zeros: Vec<f32>,
    },
    Rms {
        plus_one: bool,
    },
}

/// One normalization layer over rows of `dim` values.
pub struct Norm {
    weight: Stored<f32>,
    kind: Kind,
    eps: f32,
    dim: usize,
}

impl Norm {
    /// A LayerNorm with `{name}.weight` and `{name}.bias`, both [dim].
    pub fn layer_norm(file: &Arc<ModelFile>, name: &str, dim: usize, eps: f32) -> Result<Norm> {
        let weight = Stored::of(file, file.f32(&format!("{name}.weight"), &[dim])?)?;
        let bias = Stored::of(file, file.f32(&format!("{name}.bias"), &[dim])?)?;
        Ok(Norm {
            weight,
            kind: Kind::Layer {
                bias,
                ones: vec![1.0; dim],
                zeros: vec![0.0; dim],
            },
            eps,
            dim,
        })
    }

    /// An RMSNorm with the weight tensor `weight_name` ([dim]), applied as `x * w`, or as
    /// `x * (1 + w)` when `plus_one` (Gemma).
    pub fn rms_norm(file: &Arc<ModelFile>, weight_name: &str, dim: usize, eps: f32, plus_one: bool) -> Result<Norm> {
        let weight = Stored::of(file, file.f32(weight_name, &[dim])?)?;
        Ok(Norm {
            weight,
            kind: Kind::Rms { plus_one },
            eps,
            dim,
        })
    }

    /// Normalizes every row of `x` in place, with the weight (and bias).
    pub fn apply(&self, x: &mut [f32]) -> Result<()> {
        x.par_chunks_mut(self.dim * ROWS_PER_TASK)
            .try_for_each(|rows| self.apply_rows(rows))
    }

    /// `dst` = the rows of `src` normalized (a pre-norm that keeps its input for the
    /// residual): each task copies its rows and normalizes them while they are in cache,
    /// instead of a serial copy of the whole batch followed by a pass of its own.
    pub fn apply_into(&self, src: &[f32], dst: &mut [f32]) -> Result<()> {
        check_same_len(src.len(), dst.len())?;
        let chunk = self.dim * ROWS_PER_TASK;
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .try_for_each(|(d, s)| match &self.kind {
                // One pass fewer: the norm reads `s` and writes `d`.
                Kind::Rms { plus_one } => {
                    let (weight, k) = (self.weight.get(), kernels().vector);
                    vector::rms_norm_into(k, s, d, self.dim, weight, self.eps, *plus_one)?;
                    Ok(())
                }
                Kind::Layer { .. } => {
                    d.copy_from_slice(s);
                    self.apply_rows(d)
                }
            })
    }

    /// Adds the normalized rows of `block_out` to `residual` (a post-norm before the residual
    /// add), one parallel pass over both. `block_out` is left normalized (LayerNorm) or
    /// unspecified (RMSNorm, whose rows go straight into the residual).
    pub fn apply_and_add(&self, block_out: &mut [f32], residual: &mut [f32]) -> Result<()> {
        check_same_len(block_out.len(), residual.len())?;
        let (k, chunk) = (kernels().vector, self.dim * ROWS_PER_TASK);
        block_out
            .par_chunks_mut(chunk)
            .zip(residual.par_chunks_mut(chunk))
            .try_for_each(|(b, r)| {
                match &self.kind {
                    // The normalized rows go straight into the residual.
                    Kind::Rms { plus_one } => {
                        vector::rms_norm_add(k, b, r, self.dim, self.weight.get(), self.eps, *plus_one)?
                    }
                    Kind::Layer { .. } => {
                        self.apply_rows(b)?;
                        vector::add(k, r, b)?;
                    }
                }
                Ok(())
            })
    }

    /// Normalizes the whole rows of `rows` on the calling thread.
    fn apply_rows(&self, rows: &mut [f32]) -> Result<()> {
        let (weight, k, dim, eps) = (self.weight.get(), kernels().vector, self.dim, self.eps);
        match &self.kind {
            Kind::Layer { bias, .. } => vector::layer_norm(k, rows, dim, weight, bias.get(), eps)?,
            Kind::Rms { plus_one } => vector::rms_norm(k, rows, dim, weight, eps, *plus_one)?,
        }
        Ok(())
    }

    /// LayerNorm without gamma and beta: `(x - mean) / sqrt(var + eps)` per row. An RMSNorm
    /// applies fully (it has no folded form).
    pub fn normalize(&self, x: &mut [f32]) -> Result<()> {
        match &self.kind {
            Kind::Layer { ones, zeros, .. } => {
                let (k, dim, eps) = (kernels().vector, self.dim, self.eps);
                x.par_chunks_mut(dim * ROWS_PER_TASK)
                    .try_for_each(|rows| vector::layer_norm(k, rows, dim, ones, zeros, eps))?;
                Ok(())
            }
            Kind::Rms { .. } => self.apply(x),
        }
    }

    /// The affine half of a LayerNorm, `x = x * gamma + beta` per row (nothing for an RMSNorm).
    pub fn affine(&self, x: &mut [f32]) {
        if let Kind::Layer { bias, .. } = &self.kind {
            let (weight, bias) = (self.weight.get(), bias.get());
            x.par_chunks_mut(self.dim * ROWS_PER_TASK).for_each(|rows| {
                for row in rows.chunks_exact_mut(self.dim) {
                    for ((v, &g), &b) in row.iter_mut().zip(weight).zip(bias) {
                        *v = *v * g + b;
                    }
                }
            });
        }
    }

    /// The weight, for kernels that apply it themselves (Gemma's per-head q/k norms).
    pub fn weight(&self) -> &[f32] {
        self.weight.get()
    }

    /// The epsilon.
    pub fn eps(&self) -> f32 {
        self.eps
    }
}
