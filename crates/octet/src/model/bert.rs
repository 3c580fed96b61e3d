//! BERT-family encoders (BERT, MiniLM, bge, e5, gte...): Devlin et al. 2018,
//! <https://arxiv.org/abs/1810.04805>.
//!
//! word + position + token-type embeddings -> LayerNorm, then per layer (post-LayerNorm):
//! x = LN(x + Wo·attention(Wqkv·x)); x = LN(x + W2·GELU(W1·x)). Q, K and V are one fused
//! [3h, h] projection (the converter concatenates them). Token-type ids are all 0, as
//! sentence-transformers uses them for single texts.
//!
//! `folded_norms` (config, default false; set by the TFLite importer): TensorFlow's converter
//! folds each LayerNorm's gamma and beta into the linear layers that read it, which then read
//! the normalised values before gamma and beta. With it, the projections after a LayerNorm
//! (QKV, FFN up) read those values and the residual stream still gets gamma and beta, so the
//! converted int8 weights are used exactly as the TFLite interpreter uses them.
//!
//! `tflite_exact` (config, default false; set by `octet convert --tflite-exact`): the float
//! steps between the int8 layers (LayerNorm, attention with its softmax, GELU) follow TFLite's
//! builtin kernels operation for operation (`layers::tflite_exact`), so each int8 layer's
//! activation codes are the interpreter's. Slower than the fused kernels; for replaying a
//! TFLite file as the interpreter runs it.
//!
//! Tensor names (written by `octet convert`):
//! `embeddings.{word,position,token_type}` (position may hold only the first `max_seq_len` rows), `embeddings.norm.{weight,bias}`,
//! `layers.{i}.attention.{qkv,output}.{weight,bias}`, `layers.{i}.attention.norm.{weight,bias}`,
//! `layers.{i}.ffn.{up,down}.{weight,bias}`, `layers.{i}.ffn.norm.{weight,bias}`.

use super::{Encoder, PackedBatch};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::layers::attention::{attention, attention_math, AttentionMath, AttentionShape};
use crate::layers::{tflite_exact, Embedding, Linear, Norm};
use crate::scratch::Scratch;
use octet_kernels::activation::GeluForm;
use octet_kernels::Activation;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const ARCH: &str = "bert";

/// The fields of a Hugging Face BERT `config.json` that the encoder uses (read from any
/// `config.json`, other fields ignored; written whole by the TFLite importer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Hugging Face's `model_type` (`bert`), kept for readers of the file; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// The linear layers after each LayerNorm have its gamma and beta folded in (module docs).
    #[serde(default)]
    pub folded_norms: bool,
    /// int8 layers quantize activation rows asymmetrically, as TFLite's hybrid kernels do
    /// ([`Linear::with_asymmetric_rows`]; set by the TFLite importer).
    #[serde(default)]
    pub asymmetric_activations: bool,
    /// LayerNorm, attention and GELU as TFLite's builtin float kernels compute them (module
    /// docs); set by `octet convert --tflite-exact`. Needs the erf GELU.
    #[serde(default)]
    pub tflite_exact: bool,
    /// With `tflite_exact`: the interpreter runs every input padded to this length (masked,
    /// fixed-length exports); absent, it runs each text at its own length. The softmax sums
    /// depend on it (`layers::tflite_exact::attention`).
    #[serde(default)]
    pub tflite_fixed_length: Option<usize>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f32 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// The FFN activation that `hidden_act` names.
    pub fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu(GeluForm::Erf)),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::Gelu(GeluForm::Tanh)),
            "relu" => Ok(Activation::Relu),
            other => Err(Error::model(
                ARCH,
                format!("unsupported hidden_act '{other}' (gelu, gelu_new, gelu_pytorch_tanh, relu)"),
            )),
        }
    }

    /// Checks the sizes fit together.
    fn validate(&self) -> Result<()> {
        let h = self.hidden_size;
        if h == 0 || self.num_attention_heads == 0 || !h.is_multiple_of(self.num_attention_heads) {
            return Err(Error::model(
                ARCH,
                format!(
                    "hidden_size {h} is not a positive multiple of num_attention_heads {}",
                    self.num_attention_heads
                ),
            ));
        }
        if self.intermediate_size == 0
            || self.vocab_size == 0
            || self.max_position_embeddings == 0
            || self.type_vocab_size == 0
        {
            return Err(Error::model(ARCH, "a size in the config is zero"));
        }
        Ok(())
    }
}

struct Layer {
    qkv: Linear,
    output: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    ffn_norm: Norm,
}

/// A bound BERT encoder.
pub struct Bert {
    config: BertConfig,
    activation: Activation,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Binds and validates every tensor of a BERT model.
    pub fn bind(file: &Arc<ModelFile>, config: BertConfig) -> Result<Bert> {
        config.validate()?;
        let (h, inter, eps) = (config.hidden_size, config.intermediate_size, config.layer_norm_eps);
        let asym = config.asymmetric_activations;
        let linear = |name: &str, n: usize, k: usize| -> Result<Linear> {
            Ok(Linear::load(file, ARCH, name, n, k, true)?.with_asymmetric_rows(asym))
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                Ok(Layer {
                    // The norms' outputs sit off-centre, and GELU's lie almost all above
                    // -0.17: QKV, FFN-up and FFN-down quantize their activation groups around
                    // each group's middle (Linear::with_centered_rows).
                    qkv: linear(&format!("{p}.attention.qkv"), 3 * h, h)?.with_centered_rows(true),
                    output: linear(&format!("{p}.attention.output"), h, h)?,
                    attention_norm: Norm::layer_norm(file, &format!("{p}.attention.norm"), h, eps)?,
                    up: linear(&format!("{p}.ffn.up"), inter, h)?.with_centered_rows(true),
                    down: linear(&format!("{p}.ffn.down"), h, inter)?.with_centered_rows(true),
                    ffn_norm: Norm::layer_norm(file, &format!("{p}.ffn.norm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The converter may store only the positions the window can reach.
        let positions = file.tensor("embeddings.position")?.shape.first().copied().unwrap_or(0);
        if positions == 0 || positions > config.max_position_embeddings || positions < file.meta().max_seq_len {
            return Err(Error::model(
                ARCH,
                format!("embeddings.position has {positions} rows; need between max_seq_len {} and max_position_embeddings {}", file.meta().max_seq_len, config.max_position_embeddings),
            ));
        }
        if config.tflite_exact && config.activation()? != Activation::Gelu(GeluForm::Erf) {
            return Err(Error::model(
                ARCH,
                format!(
                    "tflite_exact replays the erf GELU only, not hidden_act '{}'",
                    config.hidden_act
                ),
            ));
        }
        Ok(Bert {
            activation: config.activation()?,
            word: Embedding::load(file, ARCH, "embeddings.word", config.vocab_size, h)?,
            position: Embedding::load(file, ARCH, "embeddings.position", positions, h)?,
            token_type: Embedding::load(file, ARCH, "embeddings.token_type", config.type_vocab_size, h)?,
            embeddings_norm: Norm::layer_norm(file, "embeddings.norm", h, eps)?,
            layers,
            config,
        })
    }

    fn embed(&self, batch: &PackedBatch, x: &mut [f32]) -> Result<()> {
        self.word.gather(&batch.ids, 1.0, x, false)?;
        self.position.gather(&batch.positions(), 1.0, x, true)?;
        let types = vec![0u32; batch.tokens()];
        self.token_type.gather(&types, 1.0, x, true)?;
        if self.config.tflite_exact {
            self.exact_norm(&self.embeddings_norm, x);
            Ok(())
        } else if self.config.folded_norms {
            self.embeddings_norm.normalize(x)
        } else {
            self.embeddings_norm.apply(x)
        }
    }
}

impl Bert {
    /// A LayerNorm as TFLite's lowering computes it: normalised, then (unless the projections
    /// that read it have gamma and beta folded in) the affine half.
    fn exact_norm(&self, norm: &Norm, x: &mut [f32]) {
        tflite_exact::layer_norm(x, self.config.hidden_size, norm.eps());
        if !self.config.folded_norms {
            norm.affine(x);
        }
    }

    /// [`Encoder::forward`]'s layers with `tflite_exact`: the same int8 layers, the float steps
    /// between them from [`tflite_exact`].
    fn forward_exact(&self, batch: &PackedBatch, shape: &AttentionShape, buffers: [&mut [f32]; 4]) -> Result<()> {
        let [x, qkv, context, inner] = buffers;
        let (t, folded) = (batch.tokens(), self.config.folded_norms);
        let mut previous_norm = &self.embeddings_norm;
        for layer in &self.layers {
            layer.qkv.forward(x, t, qkv, Activation::None, false)?;
            if folded {
                previous_norm.affine(x);
            }
            tflite_exact::attention(qkv, &batch.spans, shape, self.config.tflite_fixed_length, context)?;
            layer.output.forward(context, t, x, Activation::None, true)?;
            self.exact_norm(&layer.attention_norm, x);
            layer.up.forward(x, t, inner, Activation::None, false)?;
            tflite_exact::gelu(inner);
            if folded {
                layer.attention_norm.affine(x);
            }
            layer.down.forward(inner, t, x, Activation::None, true)?;
            self.exact_norm(&layer.ffn_norm, x);
            previous_norm = &layer.ffn_norm;
        }
        if folded {
            previous_norm.affine(x);
        }
        Ok(())
    }
}

impl Encoder for Bert {
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn forward<'s>(&self, batch: &PackedBatch, scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        let c = &self.config;
        let (t, h) = (batch.tokens(), c.hidden_size);
        if let Some(s) = batch.spans.iter().find(|s| s.len > self.position.rows) {
            return Err(Error::Option(format!(
                "a sequence of {} tokens exceeds the {} positions of this model",
                s.len, self.position.rows
            )));
        }
        let shape = AttentionShape {
            heads: c.num_attention_heads,
            kv_heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            scale: 1.0 / ((h / c.num_attention_heads) as f32).sqrt(),
            window: None,
            math: AttentionMath::F32,
        };
        let [x, qkv, context, inner] = scratch.take([t * h, t * 3 * h, t * h, t * c.intermediate_size]);
        self.embed(batch, x)?;
        if c.tflite_exact {
            self.forward_exact(batch, &shape, [&mut *x, qkv, context, inner])?;
            return Ok(x);
        }
        let folded = c.folded_norms;
        // With folded norms, `x` enters each projection normalised but without the previous
        // LayerNorm's gamma and beta, which are applied after it for the residual.
        let mut previous_norm = &self.embeddings_norm;
        for layer in &self.layers {
            layer.qkv.forward(x, t, qkv, Activation::None, false)?;
            if folded {
                previous_norm.affine(x);
            }
            // bf16 attention by default for int8 layers (where the CPU has it): on
            // all-MiniLM-L6-v2 it changes no cosine past noise (400 Lee sentences vs
            // sentence-transformers, mean / p1 / min: 0.998875 / 0.997940 / 0.997449, f32
            // attention 0.998878 / 0.998065 / 0.997483; the 82 fixture texts vs octet f32, mean /
            // min: 0.99826 / 0.99244 against 0.99823 / 0.99261) and makes the model 3-4% faster
            // (benches/RESULTS.md).
            let shape = AttentionShape {
                math: attention_math(layer.qkv.allows_bf16_attention(), AttentionMath::Bf16),
                ..shape
            };
            attention(qkv, &batch.spans, &shape, None, context)?;
            layer.output.forward(context, t, x, Activation::None, true)?;
            if folded {
                layer.attention_norm.normalize(x)?;
                let handoff = layer.up.forward_to(&layer.down, x, t, self.activation, inner)?;
                layer.attention_norm.affine(x);
                layer.down.forward_from(handoff, inner, t, x, Activation::None, true)?;
                layer.ffn_norm.normalize(x)?;
            } else {
                layer.attention_norm.apply(x)?;
                let handoff = layer.up.forward_to(&layer.down, x, t, self.activation, inner)?;
                layer.down.forward_from(handoff, inner, t, x, Activation::None, true)?;
                layer.ffn_norm.apply(x)?;
            }
            previous_norm = &layer.ffn_norm;
        }
        if folded {
            // The last LayerNorm feeds the pooling, not a projection.
            previous_norm.affine(x);
        }
        Ok(x)
    }
}
