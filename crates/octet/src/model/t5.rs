//! T5 encoders: the original T5 (ReLU feed-forward) and T5 v1.1 (gated GELU), as used by
//! sentence-T5 and GTR. Raffel et al. 2019, <https://arxiv.org/abs/1910.10683>; the v1.1 FFN
//! is GEGLU from Shazeer 2020, <https://arxiv.org/abs/2002.05202>.
//!
//! Token embeddings (not scaled, no position table), then per layer (pre-norm, residual kept
//! un-normalized):
//!
//! ```text
//! x = x + Wo · attention(Wqkv · rms(x))          scores = q·k (no 1/sqrt(d) scale) + bias[h][j - i]
//! x = x + Wdown · ffn(rms(x))                     ffn = relu(Wup ·)   or   act(Wgate ·) * (Wup ·)
//! ```
//!
//! and a final RMSNorm. `rms(x) = x / sqrt(mean(x²) + eps) * w` (T5's LayerNorm: no mean, no
//! bias, the weight itself rather than 1 + weight). The attention width `heads x d_kv` may
//! differ from `d_model` (T5 v1.1 small: 6 x 64 = 384 against 512).
//!
//! **Relative position bias.** Every layer adds the same learned bias, one value per head and
//! *bucket* of the relative position `j - i` (key minus query). The buckets are bidirectional:
//! half of them for keys after the query, half for keys before; within a half, distances below
//! `half / 2` have a bucket each, longer ones share logarithmically wider buckets up to
//! `max_distance`, and everything beyond shares the last one ([`relative_position_bucket`]).
//! In Hugging Face checkpoints only block 0 holds the table; the other blocks reuse its bias.
//! [`T5::forward`] expands the table once per batch into one row per head over every relative
//! position the longest sequence can have, and all layers and sequences read slices of it.
//!
//! Tensor names (written by `octet convert`, see `tools/src/convert/t5.rs`):
//! `embeddings.word` [vocab, d_model], `relative_attention_bias` [num_buckets, heads] (f32),
//! `layers.{i}.attention.norm.weight` [d_model], `layers.{i}.attention.qkv.weight`
//! [3 x heads x d_kv, d_model] (q, k, v rows), `layers.{i}.attention.output.weight`
//! [d_model, heads x d_kv], `layers.{i}.ffn.norm.weight` [d_model], then either
//! `layers.{i}.ffn.up.weight` [d_ff, d_model] (ungated) or `layers.{i}.ffn.gate_up.weight`
//! [2 x d_ff, d_model] (gated: rows `0..d_ff` the gate `wi_0`, rows `d_ff..` the up `wi_1`),
//! `layers.{i}.ffn.down.weight` [d_model, d_ff], `final_norm.weight` [d_model]. No biases.

use super::{Encoder, PackedBatch};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::layers::attention::{attention, attention_math, AttentionMath, AttentionShape, ScoreBias};
use crate::layers::{Embedding, Linear, Norm, Stored};
use crate::scratch::Scratch;
use octet_kernels::activation::GeluForm;
use octet_kernels::{kernels, vector, Activation};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const ARCH: &str = "t5";

/// The fields of a Hugging Face `T5Config` that the encoder uses (read from any
/// `config.json`, other fields ignored; written whole by the TFLite importer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct T5Config {
    /// Hugging Face's `model_type` (`t5`), kept for readers of the file; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    pub num_heads: usize,
    pub vocab_size: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    /// `relu`, `gelu`, `gated-gelu` (T5 v1.1: gelu_new), `gated-<act>`... (`gated-gelu_python`:
    /// the erf GELU, gated).
    #[serde(default = "default_ffn")]
    pub feed_forward_proj: String,
    /// int8 layers quantize activation rows asymmetrically, as TFLite's hybrid kernels do
    /// ([`Linear::with_asymmetric_rows`]; set by the TFLite importer).
    #[serde(default)]
    pub asymmetric_activations: bool,
    /// The fixed input length of the TFLite file this was imported from; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflite_input_length: Option<usize>,
    /// The padding id of the TFLite file this was imported from; not used (octet does not pad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflite_pad_id: Option<i32>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f32 {
    1e-6
}
fn default_ffn() -> String {
    "relu".into()
}

/// The feed-forward block that `feed_forward_proj` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedForward {
    /// `down(act(up(x)))`: original T5 (`DenseReluDense.wi`, `wo`).
    Plain(Activation),
    /// `down(act(gate(x)) * up(x))`: T5 v1.1 (`wi_0` the gate, `wi_1` the up, `wo`).
    Gated(Activation),
}

impl FeedForward {
    /// Whether the block has a gate projection.
    pub fn is_gated(self) -> bool {
        matches!(self, FeedForward::Gated(_))
    }
}

impl T5Config {
    /// The FFN as transformers reads `feed_forward_proj`: `act` or `gated-act`, where
    /// `gated-gelu` means the tanh form (`gelu_new`) and plain `gelu` the erf form.
    pub fn feed_forward(&self) -> Result<FeedForward> {
        let proj = self.feed_forward_proj.as_str();
        let (gated, act) = match proj.split_once('-') {
            Some(("gated", act)) => (true, act),
            None => (false, proj),
            Some(_) => {
                return Err(Error::model(
                    ARCH,
                    format!("feed_forward_proj '{proj}' is not 'act' or 'gated-act'"),
                ))
            }
        };
        let activation = match (gated, act) {
            (true, "gelu") => Activation::Gelu(GeluForm::Tanh),
            (_, "relu") => Activation::Relu,
            (_, "gelu" | "gelu_python") => Activation::Gelu(GeluForm::Erf),
            (_, "gelu_new" | "gelu_pytorch_tanh") => Activation::Gelu(GeluForm::Tanh),
            _ => {
                return Err(Error::model(
                    ARCH,
                    format!("unsupported feed_forward_proj '{proj}' (relu, gelu, gelu_new, gated-relu, gated-gelu, gated-gelu_new, gated-gelu_python)"),
                ))
            }
        };
        Ok(if gated {
            FeedForward::Gated(activation)
        } else {
            FeedForward::Plain(activation)
        })
    }

    /// Width of the attention projections: heads x d_kv.
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    /// Checks the sizes fit together.
    pub fn validate(&self) -> Result<()> {
        if [self.d_model, self.d_kv, self.d_ff, self.num_heads, self.vocab_size].contains(&0) {
            return Err(Error::model(
                ARCH,
                "a size in the config (d_model, d_kv, d_ff, num_heads, vocab_size) is zero",
            ));
        }
        let (buckets, max_distance) = (
            self.relative_attention_num_buckets,
            self.relative_attention_max_distance,
        );
        // Each direction needs an exact half (buckets / 4 >= 1) and a log half that reaches past it.
        if buckets < 4 || !buckets.is_multiple_of(2) || max_distance <= buckets / 4 {
            return Err(Error::model(
                ARCH,
                format!("relative_attention_num_buckets {buckets} must be even and at least 4, and relative_attention_max_distance {max_distance} above {}", buckets / 4),
            ));
        }
        self.feed_forward().map(|_| ())
    }
}

/// The bidirectional bucket of a relative position `relative` = key position - query position,
/// as transformers' `T5Attention._relative_position_bucket` computes it. Keys after the query
/// use buckets `half..num_buckets`, the rest `0..half` (`half = num_buckets / 2`). Within a
/// half, a distance below `half / 2` is its own bucket; longer ones go to
/// `half/2 + trunc(ln(d / (half/2)) / ln(max_distance / (half/2)) * (half - half/2))`, at most
/// `half - 1`. The logarithm is evaluated in f32 like PyTorch's, so bucket edges land exactly
/// where they do in the reference (checked against its tables in `tests/t5.rs`).
/// Needs `num_buckets >= 4` and `max_distance > num_buckets / 4` ([`T5Config::validate`]).
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let base = if relative > 0 { half } else { 0 };
    let distance = relative.unsigned_abs();
    let max_exact = (half / 2) as u64;
    if distance < max_exact {
        return base + distance as usize;
    }
    let log_ratio = (max_distance as f64 / max_exact as f64).ln() as f32;
    let scaled = (distance as f32 / max_exact as f32).ln() / log_ratio * (half as u64 - max_exact) as f32;
    // `scaled` >= 0 here; the float-to-int cast truncates, as `.to(torch.long)` does.
    let large = (max_exact as usize).saturating_add(scaled as usize);
    base + large.min(half - 1)
}

/// The relative-position bias of one batch: for each head, a row over every relative position
/// `-(longest - 1) ..= longest - 1`, so that query `i` of any sequence reads its `len` key
/// biases as one contiguous slice.
struct PositionBias {
    /// [heads, 2 x longest - 1]: entry `(h, r + longest - 1)` is the bias of head h at relative position r.
    table: Vec<f32>,
    longest: usize,
}

impl PositionBias {
    fn new(weights: &[f32], heads: usize, num_buckets: usize, max_distance: usize, longest: usize) -> PositionBias {
        let longest = longest.max(1);
        let width = 2 * longest - 1;
        let mut table = vec![0f32; heads * width];
        for (slot, relative) in (-(longest as i64 - 1)..=(longest as i64 - 1)).enumerate() {
            let bucket = relative_position_bucket(relative, num_buckets, max_distance);
            for h in 0..heads {
                table[h * width + slot] = weights[bucket * heads + h];
            }
        }
        PositionBias { table, longest }
    }

    /// The table as attention reads it: a value per head and relative position.
    fn as_score_bias(&self) -> ScoreBias<'_> {
        ScoreBias {
            table: &self.table,
            longest: self.longest,
        }
    }
}

struct Layer {
    attention_norm: Norm,
    qkv: Linear,
    output: Linear,
    ffn_norm: Norm,
    /// [d_ff, d_model] ungated, [2 d_ff, d_model] gated (gate rows first).
    up: Linear,
    down: Linear,
}

/// A bound T5 encoder.
pub struct T5 {
    config: T5Config,
    feed_forward: FeedForward,
    word: Embedding,
    /// [num_buckets, heads].
    relative_bias: Stored<f32>,
    layers: Vec<Layer>,
    final_norm: Norm,
}

impl T5 {
    /// Binds and validates every tensor of a T5 encoder.
    pub fn bind(file: &Arc<ModelFile>, config: T5Config) -> Result<T5> {
        config.validate()?;
        let feed_forward = config.feed_forward()?;
        let (d, inner, ff, eps) = (
            config.d_model,
            config.inner_dim(),
            config.d_ff,
            config.layer_norm_epsilon,
        );
        let up_rows = if feed_forward.is_gated() { 2 * ff } else { ff };
        let up_name = if feed_forward.is_gated() { "gate_up" } else { "up" };
        let asym = config.asymmetric_activations;
        let linear = |name: &str, n: usize, k: usize| -> Result<Linear> {
            Ok(Linear::load(file, ARCH, name, n, k, false)?.with_asymmetric_rows(asym))
        };
        let norm = |name: &str| Norm::rms_norm(file, &format!("{name}.weight"), d, eps, false);
        let layers = (0..config.num_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                Ok(Layer {
                    attention_norm: norm(&format!("{p}.attention.norm"))?,
                    qkv: linear(&format!("{p}.attention.qkv"), 3 * inner, d)?,
                    output: linear(&format!("{p}.attention.output"), d, inner)?,
                    ffn_norm: norm(&format!("{p}.ffn.norm"))?,
                    up: linear(&format!("{p}.ffn.{up_name}"), up_rows, d)?,
                    down: linear(&format!("{p}.ffn.down"), d, ff)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(T5 {
            word: Embedding::load(file, ARCH, "embeddings.word", config.vocab_size, d)?,
            relative_bias: Stored::of(
                file,
                file.f32(
                    "relative_attention_bias",
                    &[config.relative_attention_num_buckets, config.num_heads],
                )?,
            )?,
            final_norm: norm("final_norm")?,
            layers,
            feed_forward,
            config,
        })
    }

    /// The configuration the file holds.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// `x` [t, d_model] -> `out` [t, d_model] += the feed-forward block of `normed`.
    fn feed_forward(
        &self,
        layer: &Layer,
        normed: &[f32],
        t: usize,
        inner: &mut [f32],
        gate_up: &mut [f32],
        x: &mut [f32],
    ) -> Result<()> {
        let ff = self.config.d_ff;
        match self.feed_forward {
            FeedForward::Plain(act) => layer.up.forward(normed, t, inner, act, false)?,
            FeedForward::Gated(act) => {
                layer.up.forward(normed, t, gate_up, Activation::None, false)?;
                gate_up
                    .par_chunks_exact_mut(2 * ff)
                    .zip(inner.par_chunks_exact_mut(ff))
                    .for_each(|(row, out)| {
                        let (gate, up) = row.split_at_mut(ff);
                        activate(act, gate);
                        out.iter_mut()
                            .zip(gate.iter().zip(up.iter()))
                            .for_each(|(o, (g, u))| *o = g * u);
                    });
            }
        }
        layer.down.forward(inner, t, x, Activation::None, true)
    }
}

/// Applies `act` in place.
fn activate(act: Activation, x: &mut [f32]) {
    match act {
        Activation::None => {}
        Activation::Gelu(form) => vector::gelu(kernels().vector, form, x),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

impl Encoder for T5 {
    fn hidden_size(&self) -> usize {
        self.config.d_model
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn forward<'s>(&self, batch: &PackedBatch, scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        let c = &self.config;
        let (t, d, inner) = (batch.tokens(), c.d_model, c.inner_dim());
        let shape = AttentionShape {
            heads: c.num_heads,
            kv_heads: c.num_heads,
            head_dim: c.d_kv,
            scale: 1.0,
            window: None,
            math: AttentionMath::F32,
        };
        let longest = batch.spans.iter().map(|s| s.len).max().unwrap_or(0);
        let bias = PositionBias::new(
            self.relative_bias.get(),
            c.num_heads,
            c.relative_attention_num_buckets,
            c.relative_attention_max_distance,
            longest,
        );
        let bias = bias.as_score_bias();

        let gate_up_len = if self.feed_forward.is_gated() {
            t * 2 * c.d_ff
        } else {
            0
        };
        let [x, normed, qkv, context, ffn_inner, gate_up] =
            scratch.take([t * d, t * d, t * 3 * inner, t * inner, t * c.d_ff, gate_up_len]);
        self.word.gather(&batch.ids, 1.0, x, false)?;
        for layer in &self.layers {
            layer.attention_norm.apply_into(x, normed)?;
            layer.qkv.forward(normed, t, qkv, Activation::None, false)?;
            // f32 attention unless OCTET_ATTENTION=bf16 asks otherwise (int8 layers): bf16's
            // quality on T5 is unmeasured.
            let shape = AttentionShape {
                math: attention_math(layer.qkv.allows_bf16_attention(), AttentionMath::F32),
                ..shape
            };
            attention(qkv, &batch.spans, &shape, Some(&bias), context)?;
            layer.output.forward(context, t, x, Activation::None, true)?;

            layer.ffn_norm.apply_into(x, normed)?;
            self.feed_forward(layer, normed, t, ffn_inner, gate_up, x)?;
        }
        self.final_norm.apply(x)?;
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proj: &str) -> T5Config {
        serde_json::from_value(serde_json::json!({
            "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2, "vocab_size": 10,
            "feed_forward_proj": proj
        }))
        .unwrap()
    }

    #[test]
    fn feed_forward_names() {
        assert_eq!(
            config("relu").feed_forward().unwrap(),
            FeedForward::Plain(Activation::Relu)
        );
        assert_eq!(
            config("gated-gelu").feed_forward().unwrap(),
            FeedForward::Gated(Activation::Gelu(GeluForm::Tanh))
        );
        assert_eq!(
            config("gelu").feed_forward().unwrap(),
            FeedForward::Plain(Activation::Gelu(GeluForm::Erf))
        );
        assert_eq!(
            config("gated-relu").feed_forward().unwrap(),
            FeedForward::Gated(Activation::Relu)
        );
        // transformers' name for the erf GELU when gated ("gated-gelu" is the tanh form).
        assert_eq!(
            config("gated-gelu_python").feed_forward().unwrap(),
            FeedForward::Gated(Activation::Gelu(GeluForm::Erf))
        );
        assert!(config("gated-silu").feed_forward().is_err());
        assert!(config("double-gated-gelu").feed_forward().is_err());
        let defaults = config("relu");
        assert_eq!(
            (
                defaults.relative_attention_num_buckets,
                defaults.relative_attention_max_distance
            ),
            (32, 128)
        );
        assert!(defaults.validate().is_ok());
        let bad = T5Config {
            relative_attention_num_buckets: 2,
            ..defaults
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn buckets_at_the_t5_defaults() {
        // Values of transformers' _relative_position_bucket(num_buckets=32, max_distance=128).
        let cases = [
            (0, 0),
            (-1, 1),
            (1, 17),
            (-7, 7),
            (7, 23),
            (-8, 8),
            (8, 24),
            (-15, 9),
            (-16, 10),
            (16, 26),
            (-31, 11),
            (-32, 12),
            (-64, 14),
            (-127, 15),
            (-128, 15),
            (5000, 31),
        ];
        for (relative, bucket) in cases {
            assert_eq!(
                relative_position_bucket(relative, 32, 128),
                bucket,
                "relative {relative}"
            );
        }
    }

    #[test]
    fn position_bias_rows_are_slices_of_the_table() {
        let (heads, buckets, max_distance) = (2, 8, 6);
        let weights: Vec<f32> = (0..buckets * heads).map(|v| v as f32).collect();
        let bias = PositionBias::new(&weights, heads, buckets, max_distance, 5);
        for len in [1, 3, 5] {
            let view = bias.as_score_bias();
            let width = 2 * view.longest - 1;
            for h in 0..heads {
                for i in 0..len {
                    for j in 0..len {
                        let bucket = relative_position_bucket(j as i64 - i as i64, buckets, max_distance);
                        // Query i, key j reads entry (h, j - i + longest - 1).
                        assert_eq!(
                            view.table[h * width + j + view.longest - 1 - i],
                            weights[bucket * heads + h],
                            "len {len} head {h} ({i}, {j})"
                        );
                    }
                }
            }
        }
    }
}
