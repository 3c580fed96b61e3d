//! Gemma 3 text models run as bidirectional encoders (EmbeddingGemma): Gemma Team 2025,
//! <https://arxiv.org/abs/2503.19786>, and transformers' `Gemma3TextModel`.
//!
//! x = sqrt(hidden) x embed(ids); then per layer (norms before *and* after each block):
//! x += post_norm(Wo · attention(rope(qk_norm(Wqkv · norm(x)))));
//! x += post_norm(Wdown · (GELU_tanh(Wgate · norm(x)) ⊙ Wup · norm(x))); finally x = norm(x).
//! Every norm is RMSNorm with `x * (1 + w)`. Attention is grouped-query (`num_key_value_heads`
//! K/V heads), scaled by `query_pre_attn_scalar^-1/2`, with no causal mask. Sliding layers see
//! keys within `sliding_window / 2` positions on either side (transformers turns the
//! config's `sliding_window` w into an exclusive bound of w/2 + 1 for bidirectional models)
//! and use RoPE base `rope_local_base_freq`; full layers see everything, with `rope_theta`.
//!
//! Tensor names (written by `octet convert`): `embeddings.word`,
//! `layers.{i}.attention.{norm,q_norm,k_norm,post_norm}.weight`, `layers.{i}.attention.{qkv,output}.weight`
//! (qkv = q heads, then k heads, then v heads), `layers.{i}.ffn.{norm,post_norm}.weight`,
//! `layers.{i}.ffn.{gate_up,down}.weight` (gate_up = the gate rows, then the up rows),
//! `final_norm.weight`.

use super::{parse_config, Encoder, PackedBatch};
use crate::attention::{attention, AttentionShape};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::rope::RopeTable;
use crate::weights::{Embedding, Linear};
use octet_kernels::activation::GeluForm;
use octet_kernels::{kernels, vector, Activation};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

const ARCH: &str = "gemma3";

/// The fields of a Gemma 3 text `config.json` that the encoder uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Gemma3Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    #[serde(default)]
    pub rope_theta: Option<f32>,
    #[serde(default)]
    pub rope_local_base_freq: Option<f32>,
    /// transformers 5 form: `{"full_attention": {"rope_theta": ..}, "sliding_attention": {..}}`.
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    pub sliding_window: Option<usize>,
    pub query_pre_attn_scalar: f32,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "default_pattern", rename = "_sliding_window_pattern")]
    pub sliding_window_pattern: usize,
    #[serde(default = "default_act")]
    pub hidden_activation: String,
    #[serde(default)]
    pub use_bidirectional_attention: bool,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f32>,
}

fn default_eps() -> f32 {
    1e-6
}
fn default_pattern() -> usize {
    6
}
fn default_act() -> String {
    "gelu_pytorch_tanh".into()
}

impl Gemma3Config {
    /// Checks what the encoder supports and that the sizes fit together.
    fn validate(&self) -> Result<()> {
        if !self.use_bidirectional_attention {
            return Err(Error::model(ARCH, "use_bidirectional_attention is false: this is a causal language model, not an embedding encoder"));
        }
        if self.hidden_activation != "gelu_pytorch_tanh" && self.hidden_activation != "gelu_new" {
            return Err(Error::model(ARCH, format!("unsupported hidden_activation '{}' (gelu_pytorch_tanh)", self.hidden_activation)));
        }
        if self.attn_logit_softcapping.is_some() {
            return Err(Error::model(ARCH, "attn_logit_softcapping is not supported"));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::model(ARCH, "rope_scaling is not supported"));
        }
        let sizes = [self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.num_key_value_heads, self.head_dim, self.intermediate_size, self.vocab_size];
        if sizes.contains(&0) || !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) || !self.head_dim.is_multiple_of(2) {
            return Err(Error::model(ARCH, "bad sizes: zero, heads not a multiple of key/value heads, or odd head_dim"));
        }
        if self.query_pre_attn_scalar <= 0.0 || !self.query_pre_attn_scalar.is_finite() {
            return Err(Error::model(ARCH, "query_pre_attn_scalar must be positive"));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers || types.iter().any(|t| t != "sliding_attention" && t != "full_attention") {
                return Err(Error::model(ARCH, "layer_types must list sliding_attention or full_attention for every layer"));
            }
        }
        Ok(())
    }

    /// Whether layer `i` uses the sliding window.
    fn is_sliding(&self, i: usize) -> bool {
        match &self.layer_types {
            Some(types) => types[i] == "sliding_attention",
            None => !(i + 1).is_multiple_of(self.sliding_window_pattern.max(1)),
        }
    }

    /// RoPE bases for (full, sliding) layers.
    fn rope_bases(&self) -> (f32, f32) {
        let from_params = |kind: &str| self.rope_parameters.as_ref().and_then(|p| p.get(kind)?.get("rope_theta")?.as_f64()).map(|v| v as f32);
        let full = from_params("full_attention").or(self.rope_theta).unwrap_or(1_000_000.0);
        let local = from_params("sliding_attention").or(self.rope_local_base_freq).unwrap_or(10_000.0);
        (full, local)
    }
}

/// One RMSNorm's weight, applied as `x * (1 + w)`.
struct Norm<'m>(&'m [f32]);

impl<'m> Norm<'m> {
    fn load(file: &'m ModelFile, name: &str, dim: usize) -> Result<Norm<'m>> {
        Ok(Norm(file.f32(name, &[dim])?))
    }

    fn apply(&self, x: &mut [f32], eps: f32) -> Result<()> {
        let (dim, k) = (self.0.len(), kernels().vector);
        // Rows are independent: split big batches across the pool.
        x.par_chunks_mut(dim * 64).try_for_each(|rows| vector::rms_norm(k, rows, dim, self.0, eps, true))?;
        Ok(())
    }
}

struct Layer<'m> {
    sliding: bool,
    norm: Norm<'m>,
    qkv: Linear<'m>,
    q_norm: Norm<'m>,
    k_norm: Norm<'m>,
    output: Linear<'m>,
    attention_post_norm: Norm<'m>,
    ffn_norm: Norm<'m>,
    gate_up: Linear<'m>,
    down: Linear<'m>,
    ffn_post_norm: Norm<'m>,
}

/// A bound Gemma 3 encoder.
pub struct Gemma3<'m> {
    config: Gemma3Config,
    word: Embedding<'m>,
    layers: Vec<Layer<'m>>,
    final_norm: Norm<'m>,
    rope_full: f32,
    rope_sliding: f32,
}

impl<'m> Gemma3<'m> {
    /// Binds and validates every tensor of a Gemma 3 model.
    pub fn bind(file: &'m ModelFile) -> Result<Gemma3<'m>> {
        let config: Gemma3Config = parse_config(file, ARCH)?;
        config.validate()?;
        let c = &config;
        let (h, hd, inter) = (c.hidden_size, c.head_dim, c.intermediate_size);
        let q_width = c.num_attention_heads * hd;
        let qkv_width = (c.num_attention_heads + 2 * c.num_key_value_heads) * hd;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                Ok(Layer {
                    sliding: c.is_sliding(i),
                    norm: Norm::load(file, &format!("{p}.attention.norm.weight"), h)?,
                    qkv: Linear::load(file, ARCH, &format!("{p}.attention.qkv"), qkv_width, h, false)?,
                    q_norm: Norm::load(file, &format!("{p}.attention.q_norm.weight"), hd)?,
                    k_norm: Norm::load(file, &format!("{p}.attention.k_norm.weight"), hd)?,
                    output: Linear::load(file, ARCH, &format!("{p}.attention.output"), h, q_width, false)?,
                    attention_post_norm: Norm::load(file, &format!("{p}.attention.post_norm.weight"), h)?,
                    ffn_norm: Norm::load(file, &format!("{p}.ffn.norm.weight"), h)?,
                    gate_up: Linear::load(file, ARCH, &format!("{p}.ffn.gate_up"), 2 * inter, h, false)?,
                    down: Linear::load(file, ARCH, &format!("{p}.ffn.down"), h, inter, false)?,
                    ffn_post_norm: Norm::load(file, &format!("{p}.ffn.post_norm.weight"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if layers.iter().any(|l| l.sliding) && c.sliding_window.is_none_or(|w| w < 2) {
            return Err(Error::model(ARCH, "sliding layers need a sliding_window of at least 2"));
        }
        let (rope_full, rope_sliding) = c.rope_bases();
        Ok(Gemma3 {
            word: Embedding::load(file, ARCH, "embeddings.word", c.vocab_size, h)?,
            final_norm: Norm::load(file, "final_norm.weight", h)?,
            layers,
            rope_full,
            rope_sliding,
            config,
        })
    }

    /// The attention geometry of a layer.
    fn attention_shape(&self, sliding: bool) -> AttentionShape {
        let c = &self.config;
        AttentionShape {
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            scale: 1.0 / c.query_pre_attn_scalar.sqrt(),
            // The config's window w becomes |i - j| < w/2 + 1, i.e. |i - j| <= w/2 (module docs).
            window: if sliding { c.sliding_window.map(|w| w / 2) } else { None },
        }
    }

    /// q/k RMSNorm per head, then RoPE, on the fused QKV rows.
    fn prepare_qk(&self, layer: &Layer<'_>, qkv: &mut [f32], positions: &[u32], rope: &RopeTable) -> Result<()> {
        let c = &self.config;
        let (hd, eps, k) = (c.head_dim, c.rms_norm_eps, kernels().vector);
        let width = (c.num_attention_heads + 2 * c.num_key_value_heads) * hd;
        let (q_end, k_end) = (c.num_attention_heads * hd, (c.num_attention_heads + c.num_key_value_heads) * hd);
        qkv.par_chunks_mut(width).zip(positions.par_iter()).with_min_len(8).try_for_each(|(row, &p)| -> Result<()> {
            vector::rms_norm(k, &mut row[..q_end], hd, layer.q_norm.0, eps, true)?;
            vector::rms_norm(k, &mut row[q_end..k_end], hd, layer.k_norm.0, eps, true)?;
            for head in row[..k_end].chunks_exact_mut(hd) {
                rope.rotate(head, p as usize);
            }
            Ok(())
        })
    }
}

/// `out[r] = GELU_tanh(gate[r]) * up[r]` for rows `[gate | up]` of `gate_up`.
fn gated_gelu(gate_up: &mut [f32], inter: usize, out: &mut [f32]) {
    let k = kernels().vector;
    gate_up.par_chunks_mut(2 * inter).zip(out.par_chunks_mut(inter)).with_min_len(4).for_each(|(row, o)| {
        let (gate, up) = row.split_at_mut(inter);
        vector::gelu(k, GeluForm::Tanh, gate);
        for ((o, g), u) in o.iter_mut().zip(gate.iter()).zip(up.iter()) {
            *o = g * u;
        }
    });
}

impl Encoder for Gemma3<'_> {
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let c = &self.config;
        let (t, h, inter, eps) = (batch.tokens(), c.hidden_size, c.intermediate_size, c.rms_norm_eps);
        let longest = batch.spans.iter().map(|s| s.len).max().unwrap_or(0);
        if longest > c.max_position_embeddings {
            return Err(Error::Option(format!("a sequence of {longest} tokens exceeds the {} positions of this model", c.max_position_embeddings)));
        }
        let positions: Vec<u32> = batch.spans.iter().flat_map(|s| 0..s.len as u32).collect();
        let rope_full = RopeTable::new(self.rope_full, c.head_dim, longest);
        let rope_sliding = RopeTable::new(self.rope_sliding, c.head_dim, longest);

        let mut x = vec![0f32; t * h];
        // PyTorch multiplies by the f32 value of sqrt(hidden_size).
        self.word.gather(&batch.ids, (h as f32).sqrt(), &mut x, false)?;
        let (full_shape, sliding_shape) = (self.attention_shape(false), self.attention_shape(true));
        let mut normed = vec![0f32; t * h];
        let mut qkv = vec![0f32; t * full_shape.qkv_width()];
        let mut context = vec![0f32; t * full_shape.out_width()];
        let mut block_out = vec![0f32; t * h];
        let mut gate_up = vec![0f32; t * 2 * inter];
        let mut inner = vec![0f32; t * inter];
        let vk = kernels().vector;
        for layer in &self.layers {
            let (shape, rope) = if layer.sliding { (&sliding_shape, &rope_sliding) } else { (&full_shape, &rope_full) };
            normed.copy_from_slice(&x);
            layer.norm.apply(&mut normed, eps)?;
            layer.qkv.forward(&normed, t, &mut qkv, Activation::None, false)?;
            self.prepare_qk(layer, &mut qkv, &positions, rope)?;
            attention(&qkv, &batch.spans, shape, None, &mut context)?;
            layer.output.forward(&context, t, &mut block_out, Activation::None, false)?;
            layer.attention_post_norm.apply(&mut block_out, eps)?;
            vector::add(vk, &mut x, &block_out)?;

            normed.copy_from_slice(&x);
            layer.ffn_norm.apply(&mut normed, eps)?;
            layer.gate_up.forward(&normed, t, &mut gate_up, Activation::None, false)?;
            gated_gelu(&mut gate_up, inter, &mut inner);
            layer.down.forward(&inner, t, &mut block_out, Activation::None, false)?;
            layer.ffn_post_norm.apply(&mut block_out, eps)?;
            vector::add(vk, &mut x, &block_out)?;
        }
        self.final_norm.apply(&mut x, eps)?;
        Ok(x)
    }
}
