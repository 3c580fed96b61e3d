//! From token states to one vector per text: pooling over each sequence, the optional dense
//! projections that follow it (sentence-transformers `Dense` modules), Matryoshka truncation
//! and L2 normalization.

use crate::batch::Span;
use crate::error::{Error, Result};
use crate::format::{ModelFile, PoolingMode};
use crate::layers::Linear;
use crate::model::ModelConfig;
use octet_kernels::{activation, kernels, vector, Activation};
use std::sync::Arc;

/// Pools the token states `states` [tokens, dim] of each span into `out` [spans, dim].
pub fn pool(mode: PoolingMode, states: &[f32], dim: usize, spans: &[Span]) -> Vec<f32> {
    let mut out = vec![0f32; spans.len() * dim];
    for (span, row) in spans.iter().zip(out.chunks_exact_mut(dim)) {
        let tokens = states[span.start * dim..(span.start + span.len) * dim].chunks_exact(dim);
        match mode {
            PoolingMode::Cls => row.copy_from_slice(&states[span.start * dim..(span.start + 1) * dim]),
            PoolingMode::LastToken => {
                row.copy_from_slice(&states[(span.start + span.len - 1) * dim..(span.start + span.len) * dim])
            }
            PoolingMode::Mean => {
                for token in tokens {
                    row.iter_mut().zip(token).for_each(|(r, t)| *r += t);
                }
                let inv = 1.0 / span.len.max(1) as f32;
                row.iter_mut().for_each(|r| *r *= inv);
            }
            PoolingMode::Max => {
                row.fill(f32::NEG_INFINITY);
                for token in tokens {
                    row.iter_mut().zip(token).for_each(|(r, t)| *r = r.max(*t));
                }
            }
        }
    }
    out
}

/// The order in which a file stores the encoder's hidden channels, when the converter changed
/// it (`encoder.channel_order`, FORMAT.md): stored channel j is the source model's channel
/// `order[j]`. The converter sorts a BERT encoder's channels by their activations' size so that
/// the few large ones share an int8 activation group instead of coarsening every group; every
/// per-channel operation (norms, biases, tables, weights) follows the same order, so only the
/// pooled vector needs putting back, which [`ChannelOrder::restore`] does.
pub struct ChannelOrder {
    order: Vec<usize>,
}

impl ChannelOrder {
    /// The tensor that holds the order: i32 [hidden].
    pub const TENSOR: &'static str = crate::format::CHANNEL_ORDER_TENSOR;

    /// Reads the file's channel order for `hidden` channels; `None` when the file has none.
    /// An order that is not a permutation of `0..hidden` is an error.
    pub fn load(file: &ModelFile, arch: &str, hidden: usize) -> Result<Option<ChannelOrder>> {
        if !file.contains(Self::TENSOR) {
            return Ok(None);
        }
        let stored = file.i32(Self::TENSOR, &[hidden])?;
        let mut seen = vec![false; hidden];
        let mut order = Vec::with_capacity(hidden);
        for &c in stored {
            match usize::try_from(c) {
                Ok(c) if c < hidden && !seen[c] => {
                    seen[c] = true;
                    order.push(c);
                }
                _ => {
                    return Err(Error::model(
                        arch,
                        format!(
                            "{} is not a permutation of the {hidden} hidden channels (entry {c})",
                            Self::TENSOR
                        ),
                    ))
                }
            }
        }
        Ok(Some(ChannelOrder { order }))
    }

    /// Puts each row of `rows` (vectors of the stored width) back in the source model's order.
    pub fn restore(&self, rows: &mut [f32]) {
        let width = self.order.len();
        let mut stored = vec![0f32; width];
        for row in rows.chunks_exact_mut(width) {
            stored.copy_from_slice(row);
            for (&source, &v) in self.order.iter().zip(&stored) {
                row[source] = v;
            }
        }
    }
}

/// The nonlinearity after a dense projection, as sentence-transformers names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseActivation {
    Identity,
    Tanh,
}

impl DenseActivation {
    /// Parses `torch.nn.modules.linear.Identity`, `torch.nn.modules.activation.Tanh`, `identity`, `tanh`.
    pub fn parse(name: &str) -> Result<DenseActivation> {
        let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
        match last.as_str() {
            "identity" | "" => Ok(DenseActivation::Identity),
            "tanh" => Ok(DenseActivation::Tanh),
            _ => Err(Error::model(
                "dense",
                format!("unsupported dense activation '{name}' (identity, tanh)"),
            )),
        }
    }
}

/// One post-pooling projection.
pub struct Dense {
    linear: Linear,
    activation: DenseActivation,
}

impl Dense {
    /// Binds every dense layer the metadata lists.
    /// int8 projections of a TFLite import quantize their input asymmetrically, as the encoder's
    /// layers do ([`ModelConfig::asymmetric_activations`]; `config` is the file's).
    pub fn bind_all(file: &Arc<ModelFile>, config: &ModelConfig) -> Result<Vec<Dense>> {
        let asym = config.asymmetric_activations();
        file.meta()
            .dense
            .iter()
            .map(|d| {
                Ok(Dense {
                    linear: Linear::load_named(
                        file,
                        "dense",
                        &d.weight,
                        d.bias.as_deref(),
                        d.out_features,
                        d.in_features,
                    )?
                    .with_asymmetric_rows(asym),
                    activation: DenseActivation::parse(&d.activation)?,
                })
            })
            .collect()
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.linear.n
    }

    /// Applies the projection to `rows` vectors.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; rows * self.linear.n];
        self.linear.forward(x, rows, &mut out, Activation::None, false)?;
        if self.activation == DenseActivation::Tanh {
            out.iter_mut().for_each(|v| *v = activation::tanh(*v));
        }
        Ok(out)
    }
}

/// Truncates a vector to `dims` (Matryoshka) and, if asked, L2-normalizes it.
pub fn finish(mut v: Vec<f32>, dims: Option<usize>, normalize: bool) -> Vec<f32> {
    if let Some(d) = dims {
        v.truncate(d);
    }
    if normalize {
        vector::l2_normalize(kernels().vector, &mut v);
    }
    v
}

/// [`finish`] into a caller's slice: writes the first `out.len()` values of the pooled `row`
/// (Matryoshka truncation when `out` is shorter than the row) and, if asked, L2-normalizes them.
pub fn finish_into(row: &[f32], normalize: bool, out: &mut [f32]) {
    out.copy_from_slice(&row[..out.len()]);
    if normalize {
        vector::l2_normalize(kernels().vector, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::util::sample_writer;

    fn file_with_order(order: &[i32]) -> ModelFile {
        let mut writer = sample_writer();
        writer.add_i32(ChannelOrder::TENSOR, &[order.len()], order).unwrap();
        ModelFile::from_bytes(writer.to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn channel_order_restores_the_source_order() {
        let order = ChannelOrder::load(&file_with_order(&[2, 0, 3, 1]), "bert", 4)
            .unwrap()
            .unwrap();
        // Stored channel j is source channel order[j]: two rows of 4.
        let mut rows = vec![20.0, 0.0, 30.0, 10.0, 21.0, 1.0, 31.0, 11.0];
        order.restore(&mut rows);
        assert_eq!(rows, [0.0, 10.0, 20.0, 30.0, 1.0, 11.0, 21.0, 31.0]);
        // No tensor: no order.
        let plain = ModelFile::from_bytes(sample_writer().to_bytes().unwrap()).unwrap();
        assert!(ChannelOrder::load(&plain, "bert", 4).unwrap().is_none());
    }

    #[test]
    fn a_channel_order_that_is_not_a_permutation_is_an_error() {
        for bad in [&[0, 1, 1, 2][..], &[0, 1, 2, 4], &[0, 1, 2, -1]] {
            let err = ChannelOrder::load(&file_with_order(bad), "bert", 4).err().unwrap();
            assert!(err.to_string().contains("not a permutation"), "{err}");
        }
        // The wrong length is a shape error.
        assert!(ChannelOrder::load(&file_with_order(&[0, 1, 2]), "bert", 4).is_err());
    }
}
