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

use super::{Encoder, PackedBatch};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::layers::attention::{attention, attention_math, AttentionMath, AttentionShape};
use crate::layers::rope::RopeTable;
use crate::layers::{Embedding, Linear, Norm};
use crate::scratch::Scratch;
use octet_kernels::activation::GeluForm;
use octet_kernels::{kernels, vector, Activation};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};

const ARCH: &str = "gemma3";

/// The fields of a Gemma 3 text `config.json` that the encoder uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
            return Err(Error::model(
                ARCH,
                "use_bidirectional_attention is false: this is a causal language model, not an embedding encoder",
            ));
        }
        if self.hidden_activation != "gelu_pytorch_tanh" && self.hidden_activation != "gelu_new" {
            return Err(Error::model(
                ARCH,
                format!(
                    "unsupported hidden_activation '{}' (gelu_pytorch_tanh)",
                    self.hidden_activation
                ),
            ));
        }
        if self.attn_logit_softcapping.is_some() {
            return Err(Error::model(ARCH, "attn_logit_softcapping is not supported"));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::model(ARCH, "rope_scaling is not supported"));
        }
        let sizes = [
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.head_dim,
            self.intermediate_size,
            self.vocab_size,
        ];
        if sizes.contains(&0)
            || !self.num_attention_heads.is_multiple_of(self.num_key_value_heads)
            || !self.head_dim.is_multiple_of(2)
        {
            return Err(Error::model(
                ARCH,
                "bad sizes: zero, heads not a multiple of key/value heads, or odd head_dim",
            ));
        }
        if self.query_pre_attn_scalar <= 0.0 || !self.query_pre_attn_scalar.is_finite() {
            return Err(Error::model(ARCH, "query_pre_attn_scalar must be positive"));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers
                || types.iter().any(|t| t != "sliding_attention" && t != "full_attention")
            {
                return Err(Error::model(
                    ARCH,
                    "layer_types must list sliding_attention or full_attention for every layer",
                ));
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
        let from_params = |kind: &str| {
            self.rope_parameters
                .as_ref()
                .and_then(|p| p.get(kind)?.get("rope_theta")?.as_f64())
                .map(|v| v as f32)
        };
        let full = from_params("full_attention").or(self.rope_theta).unwrap_or(1_000_000.0);
        let local = from_params("sliding_attention")
            .or(self.rope_local_base_freq)
            .unwrap_or(10_000.0);
        (full, local)
    }
}

struct Layer {
    sliding: bool,
    norm: Norm,
    qkv: Linear,
    q_norm: Norm,
    k_norm: Norm,
    output: Linear,
    attention_post_norm: Norm,
    ffn_norm: Norm,
    gate_up: Linear,
    down: Linear,
    ffn_post_norm: Norm,
}

/// A bound Gemma 3 encoder.
pub struct Gemma3 {
    config: Gemma3Config,
    word: Embedding,
    layers: Vec<Layer>,
    final_norm: Norm,
    rope_full: f32,
    rope_sliding: f32,
    /// The rotary tables of the full and sliding layers, built on first use for the longest
    /// sequence so far (rounded up to [`ROPE_POSITIONS_STEP`]) and kept: a call builds them
    /// only when it is longer.
    rope_tables: Mutex<Option<Arc<RopeTables>>>,
}

/// Rotary tables of a [`Gemma3`]: full-attention layers, then sliding ones.
struct RopeTables {
    full: RopeTable,
    sliding: RopeTable,
}

/// Rotary tables grow by this many positions, so a run of texts of growing length rebuilds them
/// rarely. (Built per call, the tables of a 1x128 call took about 0.8% of its time.)
const ROPE_POSITIONS_STEP: usize = 128;

impl Gemma3 {
    /// Binds and validates every tensor of a Gemma 3 model.
    pub fn bind(file: &Arc<ModelFile>, config: Gemma3Config) -> Result<Gemma3> {
        config.validate()?;
        let c = &config;
        let (h, hd, inter, eps) = (c.hidden_size, c.head_dim, c.intermediate_size, c.rms_norm_eps);
        let q_width = c.num_attention_heads * hd;
        let qkv_width = (c.num_attention_heads + 2 * c.num_key_value_heads) * hd;
        let norm = |name: &str, dim: usize| Norm::rms_norm(file, name, dim, eps, true);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                Ok(Layer {
                    sliding: c.is_sliding(i),
                    norm: norm(&format!("{p}.attention.norm.weight"), h)?,
                    qkv: Linear::load(file, ARCH, &format!("{p}.attention.qkv"), qkv_width, h, false)?,
                    q_norm: norm(&format!("{p}.attention.q_norm.weight"), hd)?,
                    k_norm: norm(&format!("{p}.attention.k_norm.weight"), hd)?,
                    output: Linear::load(file, ARCH, &format!("{p}.attention.output"), h, q_width, false)?,
                    attention_post_norm: norm(&format!("{p}.attention.post_norm.weight"), h)?,
                    ffn_norm: norm(&format!("{p}.ffn.norm.weight"), h)?,
                    gate_up: Linear::load(file, ARCH, &format!("{p}.ffn.gate_up"), 2 * inter, h, false)?,
                    down: Linear::load(file, ARCH, &format!("{p}.ffn.down"), h, inter, false)?,
                    ffn_post_norm: norm(&format!("{p}.ffn.post_norm.weight"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if layers.iter().any(|l| l.sliding) && c.sliding_window.is_none_or(|w| w < 2) {
            return Err(Error::model(ARCH, "sliding layers need a sliding_window of at least 2"));
        }
        let (rope_full, rope_sliding) = c.rope_bases();
        Ok(Gemma3 {
            word: Embedding::load(file, ARCH, "embeddings.word", c.vocab_size, h)?,
            final_norm: norm("final_norm.weight", h)?,
            layers,
            rope_full,
            rope_sliding,
            rope_tables: Mutex::new(None),
            config,
        })
    }

    /// The rotary tables for sequences of up to `positions` tokens.
    fn rope_tables(&self, positions: usize) -> Arc<RopeTables> {
        let mut cached = self.rope_tables.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some(tables) if tables.full.positions() >= positions => tables.clone(),
            _ => {
                let c = &self.config;
                let positions = positions
                    .next_multiple_of(ROPE_POSITIONS_STEP)
                    .min(c.max_position_embeddings)
                    .max(positions);
                let tables = Arc::new(RopeTables {
                    full: RopeTable::new(self.rope_full, c.head_dim, positions),
                    sliding: RopeTable::new(self.rope_sliding, c.head_dim, positions),
                });
                *cached = Some(tables.clone());
                tables
            }
        }
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
            math: AttentionMath::F32,
        }
    }

    /// q/k RMSNorm per head, then RoPE, on the fused QKV rows.
    fn prepare_qk(&self, layer: &Layer, qkv: &mut [f32], positions: &[u32], rope: &RopeTable) -> Result<()> {
        let c = &self.config;
        let (hd, eps, k) = (c.head_dim, c.rms_norm_eps, kernels().vector);
        let width = (c.num_attention_heads + 2 * c.num_key_value_heads) * hd;
        let (q_end, k_end) = (
            c.num_attention_heads * hd,
            (c.num_attention_heads + c.num_key_value_heads) * hd,
        );
        qkv.par_chunks_mut(width)
            .zip(positions.par_iter())
            .with_min_len(8)
            .try_for_each(|(row, &p)| -> Result<()> {
                vector::rms_norm(k, &mut row[..q_end], hd, layer.q_norm.weight(), eps, true)?;
                vector::rms_norm(k, &mut row[q_end..k_end], hd, layer.k_norm.weight(), eps, true)?;
                for head in row[..k_end].chunks_exact_mut(hd) {
                    rope.rotate(head, p as usize);
                }
                Ok(())
            })
    }
}

/// `out[r] = GELU_tanh(gate[r]) * up[r]` for rows `[gate | up]` of `gate_up`, in one pass per
/// row (`vector::gelu_mul`).
fn gated_gelu(gate_up: &[f32], inter: usize, out: &mut [f32]) -> Result<()> {
    let k = kernels().vector;
    gate_up
        .par_chunks(2 * inter)
        .zip(out.par_chunks_mut(inter))
        .with_min_len(4)
        .try_for_each(|(row, o)| {
            let (gate, up) = row.split_at(inter);
            vector::gelu_mul(k, GeluForm::Tanh, gate, up, o)
        })?;
    Ok(())
}

impl Encoder for Gemma3 {
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn forward<'s>(&self, batch: &PackedBatch, scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        let c = &self.config;
        let (t, h, inter) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        let longest = batch.spans.iter().map(|s| s.len).max().unwrap_or(0);
        if longest > c.max_position_embeddings {
            return Err(Error::Option(format!(
                "a sequence of {longest} tokens exceeds the {} positions of this model",
                c.max_position_embeddings
            )));
        }
        let positions = batch.positions();
        let rope = self.rope_tables(longest);

        let (full_shape, sliding_shape) = (self.attention_shape(false), self.attention_shape(true));
        let [x, normed, qkv, context, block_out, gate_up, inner] = scratch.take([
            t * h,
            t * h,
            t * full_shape.qkv_width(),
            t * full_shape.out_width(),
            t * h,
            t * 2 * inter,
            t * inter,
        ]);
        // PyTorch multiplies by the f32 value of sqrt(hidden_size).
        self.word.gather(&batch.ids, (h as f32).sqrt(), x, false)?;
        for layer in &self.layers {
            let (shape, rope) = if layer.sliding {
                (&sliding_shape, &rope.sliding)
            } else {
                (&full_shape, &rope.full)
            };
            layer.norm.apply_into(x, normed)?;
            layer.qkv.forward(normed, t, qkv, Activation::None, false)?;
            self.prepare_qk(layer, qkv, &positions, rope)?;
            // int8 layers compute the scores on bf16 pairs (Q and K rounded to bf16) and P V
            // in f32: 3% faster at 1x128 and 7.5% at 1x512 (one thread, alternating runs), and
            // no cosine lost on the 400 Lee sentences vs sentence-transformers (mean / p1 / min
            // 0.999300 / 0.999060 / 0.998677 against f32 attention's 0.999294 / 0.998988 /
            // 0.998563). On the 82 fixture texts vs octet f32: 0.99914 / 0.99560 against
            // 0.99914 / 0.99599 (special_tokens_02; the test's bound is 0.995). Rounding P and V
            // too (OCTET_ATTENTION=bf16) is 1.5x faster on the attention itself but costs
            // cosine: Lee min 0.998049, fixture min 0.99422. With AMX-BF16, P V runs on split
            // pairs instead (octet_kernels::attention's bf16 docs: f32's precision within
            // 1.2e-5, three tile products): 1x128 0.923 and 1x512 0.852 of the f32 P V time per
            // call (one thread, alternating runs), cosines unchanged to 5-6 decimals (fixture
            // 0.99921 / 0.99585, Lee 0.999417 / 0.999142 / 0.999023 vs octet f32).
            let shape = AttentionShape {
                math: attention_math(layer.qkv.allows_bf16_attention(), AttentionMath::Bf16Scores),
                ..*shape
            };
            attention(qkv, &batch.spans, &shape, None, context)?;
            layer.output.forward(context, t, block_out, Activation::None, false)?;
            layer.attention_post_norm.apply_and_add(block_out, x)?;

            layer.ffn_norm.apply_into(x, normed)?;
            // Tried: gate_up's tasks computing gelu(gate) x up and quantizing it for down from
            // their own tiles (as BERT's FFN does with Linear::forward_to): 1.5% faster at 8x128,
            // up to 4% slower at 1x16 (2 threads), so the steps stay separate here.
            layer.gate_up.forward(normed, t, gate_up, Activation::None, false)?;
            gated_gelu(gate_up, inter, inner)?;
            layer.down.forward(inner, t, block_out, Activation::None, false)?;
            layer.ffn_post_norm.apply_and_add(block_out, x)?;
        }
        self.final_norm.apply(x)?;
        Ok(x)
    }
}
