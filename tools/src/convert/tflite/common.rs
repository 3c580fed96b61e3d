//! The steps both TFLite plans share ([`super::bert`], [`super::t5`]): reading a linear layer
//! (exact int8 with its per-channel scales, or f32; transposed weights put back to [n, k]),
//! stacking layers into one (QKV, gate/up), the token table (exact int8 with its zero points),
//! plain vectors, and the [`Plan`] a recognised graph becomes.

use crate::convert::{Logical, Planned, TableKind};
use anyhow::{bail, Context, Result};
use octet::format::{DenseLayer, PoolingMode};
use octet::model::ModelConfig;
use octet_tflite::bert::LinearRef;
use octet_tflite::{TensorType, TfliteModel};

/// A linear layer read from the file: exact int8, or f32.
enum Weights {
    I8 { q: Vec<i8>, scales: Vec<f32> },
    F32(Vec<f32>),
}

pub(crate) struct LinearData {
    weights: Weights,
    bias: Vec<f32>,
    pub(crate) n: usize,
    pub(crate) k: usize,
}

impl LinearData {
    /// The layer times `factor` (weights and bias; an int8 layer's scales, its codes unchanged).
    pub(crate) fn scaled(mut self, factor: f32) -> LinearData {
        if factor != 1.0 {
            match &mut self.weights {
                Weights::I8 { scales, .. } => scales.iter_mut().for_each(|s| *s *= factor),
                Weights::F32(w) => w.iter_mut().for_each(|v| *v *= factor),
            }
            self.bias.iter_mut().for_each(|b| *b *= factor);
        }
        self
    }

    fn dequantized(&self) -> Vec<f32> {
        match &self.weights {
            Weights::F32(w) => w.clone(),
            Weights::I8 { q, scales } => q
                .iter()
                .enumerate()
                .map(|(i, &v)| v as f32 * scales[i / self.k])
                .collect(),
        }
    }
}

pub(crate) fn shape2(model: &TfliteModel, t: usize, what: &str) -> Result<(usize, usize)> {
    match model.tensors[t].shape[..] {
        [a, b] => Ok((a, b)),
        ref s => bail!(
            "{what}: tensor {} has shape {s:?}, expected 2-D",
            model.tensors[t].label()
        ),
    }
}

/// Reads a linear layer; `k` is the expected input width.
pub(crate) fn read_linear(model: &TfliteModel, r: &LinearRef, k_expected: usize, what: &str) -> Result<LinearData> {
    let t = &model.tensors[r.weight];
    let (a, b) = shape2(model, r.weight, what)?;
    let (n, k) = if r.transposed { (b, a) } else { (a, b) };
    if k != k_expected {
        bail!("{what}: weight {} has {k} inputs, expected {k_expected}", t.label());
    }
    // The channel axis of a per-channel weight must be the output axis.
    let out_axis = if r.transposed { 1 } else { 0 };
    let exact = match (&t.dtype, &t.quant) {
        (TensorType::I8 | TensorType::I4, Some(q))
            if q.zero_point.iter().all(|&z| z == 0) && (!q.per_channel() || q.axis == out_axis) =>
        {
            let mut values = model.i8_values(t)?;
            if r.transposed {
                values = (0..n * k).map(|i| values[(i % k) * n + i / k]).collect();
            }
            let scales = if q.per_channel() {
                q.scale.clone()
            } else {
                vec![q.scale[0]; n]
            };
            Some(Weights::I8 { q: values, scales })
        }
        _ => None,
    };
    let weights = match exact {
        Some(w) => w,
        None => {
            let mut values = model.f32_values(t)?;
            if r.transposed {
                values = (0..n * k).map(|i| values[(i % k) * n + i / k]).collect();
            }
            Weights::F32(values)
        }
    };
    let bias = match r.bias {
        Some(b) => {
            let values = model.f32_values(&model.tensors[b])?;
            if values.len() != n {
                bail!(
                    "{what}: bias {} has {} values for {n} outputs",
                    model.tensors[b].label(),
                    values.len()
                );
            }
            values
        }
        None => vec![0.0; n],
    };
    Ok(LinearData { weights, bias, n, k })
}

/// One linear layer made of `parts` stacked along the outputs (QKV), int8 if every part is.
/// `with_bias`: store the bias (zeros where the file has none); T5's layers have none.
pub(crate) fn linear_logical(parts: Vec<LinearData>, after_norm: bool, with_bias: bool) -> Logical {
    let k = parts[0].k;
    let n: usize = parts.iter().map(|p| p.n).sum();
    let bias: Option<Vec<f32>> = with_bias.then(|| parts.iter().flat_map(|p| p.bias.iter().copied()).collect());
    if parts.iter().all(|p| matches!(p.weights, Weights::I8 { .. })) {
        let (mut q, mut scales) = (Vec::with_capacity(n * k), Vec::with_capacity(n));
        for p in parts {
            if let Weights::I8 { q: pq, scales: ps } = p.weights {
                q.extend(pq);
                scales.extend(ps);
            }
        }
        Logical::QuantizedLinear { q, scales, n, k, bias }
    } else {
        let weight = parts.iter().flat_map(|p| p.dequantized()).collect();
        Logical::Linear {
            weight,
            n,
            k,
            bias,
            after_norm,
        }
    }
}

pub(crate) fn vector(model: &TfliteModel, t: usize, len: usize, what: &str) -> Result<Vec<f32>> {
    let values = model.f32_values(&model.tensors[t])?;
    if values.len() != len {
        bail!(
            "{what}: tensor {} has {} values, expected {len}",
            model.tensors[t].label(),
            values.len()
        );
    }
    Ok(values)
}

/// The token table: exact int8 with its scales and zero points, or f32.
pub(crate) fn token_table(model: &TfliteModel, word_index: usize, vocab: usize, h: usize) -> Result<Logical> {
    let word = &model.tensors[word_index];
    Ok(match (&word.dtype, &word.quant) {
        (TensorType::I8, Some(q)) if !q.per_channel() || q.axis == 0 => {
            let zero_points: Result<Vec<i32>> = q
                .zero_point
                .iter()
                .map(|&z| i32::try_from(z).context("zero point out of range"))
                .collect();
            let mut zero_points = zero_points?;
            if zero_points.len() < q.scale.len() {
                // One zero point (or none: 0) for every row's scale.
                zero_points = vec![zero_points.first().copied().unwrap_or(0); q.scale.len()];
            }
            Logical::QuantizedTable {
                q: model.i8_values(word)?,
                rows: vocab,
                dim: h,
                scales: q.scale.clone(),
                zero_points,
            }
        }
        _ => Logical::Table {
            data: model.f32_values(word)?,
            rows: vocab,
            dim: h,
            kind: TableKind::Token,
        },
    })
}

/// What a recognised graph becomes: the planned tensors and the metadata that depends on the
/// architecture.
pub(crate) struct Plan {
    pub planned: Vec<Planned>,
    /// The architecture's typed config, stored as `meta.config`.
    pub config: ModelConfig,
    pub pooling: PoolingMode,
    pub normalize: bool,
    /// The longest input the graph takes (position table rows, or the fixed input length).
    pub positions: usize,
    pub dense: Vec<DenseLayer>,
}
