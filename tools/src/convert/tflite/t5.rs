//! A T5 encoder recognised in a TFLite file ([`octet_tflite::t5`]) planned as octet's T5
//! tensors (`crates/octet/src/model/t5.rs`, the names of [`crate::convert::t5`]) and its typed
//! [`T5Config`].
//!
//! - Q, K and V are stacked into `attention.qkv`; a gated FFN's gate and up into
//!   `ffn.gate_up` (gate rows first). int8 weights keep their exact values and scales.
//! - RMSNorm weights the converter folded into the projections become weights of 1, so the
//!   engine's norm only normalises (multiplying by 1 is exact).
//! - The folded [heads, n, n] position bias becomes the engine's [buckets, heads] table
//!   ([`octet_tflite::t5::bucket_table`]). The window is the input length n, or longer when
//!   the bucketing is T5's default and the log buckets of the last distances reach further
//!   ([`octet_tflite::t5::BucketTable::window`]: at n = 64 a bucket starts at 64, so 64).
//! - A gated FFN with erf GELU is `feed_forward_proj` `gated-gelu_python` (transformers reads
//!   `gated-gelu` as the tanh form).
//! - A projection after pooling becomes a `dense.0` layer.
//! - `asymmetric_activations` in the config makes every int8 layer quantize its input rows
//!   with a zero point, as TFLite's hybrid FULLY_CONNECTED does.
//!
//! octet runs each text unpadded, which is what the model's mask computes from a padded
//! input: masked keys get -1e9 before the softmax (weight exactly 0 in f32) and masked tokens
//! are left out of the mean.

use super::common::{linear_logical, read_linear, shape2, token_table, vector, LinearData, Plan};
use crate::convert::{Logical, Planned};
use anyhow::{bail, Result};
use octet::format::{DenseLayer, PoolingMode};
use octet::model::t5::T5Config;
use octet::model::ModelConfig;
use octet_tflite::t5::{bucket_table, FfnActivation, T5Graph};
use octet_tflite::TfliteModel;

/// `feed_forward_proj` as transformers' T5Config spells the FFN.
fn feed_forward_proj(g: &T5Graph) -> Result<&'static str> {
    Ok(match (g.gated, g.activation) {
        (false, FfnActivation::Relu) => "relu",
        (false, FfnActivation::GeluTanh) => "gelu_new",
        (false, FfnActivation::GeluErf) => "gelu",
        (true, FfnActivation::Relu) => "gated-relu",
        (true, FfnActivation::GeluTanh) => "gated-gelu",
        // transformers reads "gated-gelu" as the tanh form; its erf GELU is "gelu_python".
        (true, FfnActivation::GeluErf) => "gated-gelu_python",
    })
}

/// Plans every tensor of a recognised T5 encoder.
pub(crate) fn plan(model: &TfliteModel, g: &T5Graph) -> Result<Plan> {
    let (vocab, d) = shape2(model, g.word, "embeddings.word")?;
    let inner = g.heads * g.d_kv;
    let n = g.sequence;
    let bias_values = model.f32_values(&model.tensors[g.position_bias])?;
    let buckets = bucket_table(&bias_values, g.heads, n)?;
    let proj = feed_forward_proj(g)?;
    let norm = |t: Option<usize>, what: &str| -> Result<Logical> {
        let data = match t {
            Some(t) => vector(model, t, d, what)?,
            None => vec![1.0; d],
        };
        Ok(Logical::Vector { data, shape: vec![d] })
    };
    let check = |l: &LinearData, n_want: usize, what: &str| -> Result<()> {
        if l.n != n_want {
            bail!("{what}: {} outputs, expected {n_want}", l.n);
        }
        Ok(())
    };
    let mut out = vec![
        Planned::new("embeddings.word", token_table(model, g.word, vocab, d)?),
        Planned::new(
            "relative_attention_bias",
            Logical::Vector {
                data: buckets.table.clone(),
                shape: vec![buckets.num_buckets, g.heads],
            },
        ),
    ];
    let mut d_ff = 0;
    for (i, l) in g.layers.iter().enumerate() {
        let p = format!("layers.{i}");
        out.push(Planned::new(
            &format!("{p}.attention.norm.weight"),
            norm(l.attention_norm, &format!("{p} attention norm"))?,
        ));
        let mut qkv = Vec::new();
        for (r, what) in [(&l.query, "query"), (&l.key, "key"), (&l.value, "value")] {
            let lin = read_linear(model, r, d, &format!("{p} {what}"))?;
            check(&lin, inner, &format!("{p} {what}"))?;
            qkv.push(lin);
        }
        out.push(Planned::new(
            &format!("{p}.attention.qkv"),
            linear_logical(qkv, l.attention_norm.is_some(), false),
        ));
        let o = read_linear(model, &l.output, inner, &format!("{p} attention output"))?;
        check(&o, d, &format!("{p} attention output"))?;
        out.push(Planned::new(
            &format!("{p}.attention.output"),
            linear_logical(vec![o], false, false),
        ));
        out.push(Planned::new(
            &format!("{p}.ffn.norm.weight"),
            norm(l.ffn_norm, &format!("{p} FFN norm"))?,
        ));
        let up = read_linear(model, &l.up, d, &format!("{p} FFN up"))?;
        if i == 0 {
            d_ff = up.n;
        }
        check(&up, d_ff, &format!("{p} FFN up"))?;
        let after_norm = l.ffn_norm.is_some();
        match &l.gate {
            Some(gate) => {
                let gate = read_linear(model, gate, d, &format!("{p} FFN gate"))?;
                check(&gate, d_ff, &format!("{p} FFN gate"))?;
                out.push(Planned::new(
                    &format!("{p}.ffn.gate_up"),
                    linear_logical(vec![gate, up], after_norm, false),
                ));
            }
            None => out.push(Planned::new(
                &format!("{p}.ffn.up"),
                linear_logical(vec![up], after_norm, false),
            )),
        }
        let down = read_linear(model, &l.down, d_ff, &format!("{p} FFN down"))?;
        check(&down, d, &format!("{p} FFN down"))?;
        out.push(Planned::new(
            &format!("{p}.ffn.down"),
            linear_logical(vec![down], false, false),
        ));
    }
    out.push(Planned::new("final_norm.weight", norm(g.final_norm, "final norm")?));
    let mut dense = Vec::new();
    if let Some(r) = &g.dense {
        let lin = read_linear(model, r, d, "dense projection")?;
        dense.push(DenseLayer {
            in_features: d,
            out_features: lin.n,
            activation: "identity".to_string(),
            weight: "dense.0.weight".to_string(),
            bias: None,
        });
        out.push(Planned::new("dense.0", linear_logical(vec![lin], false, false)));
    }
    let config = ModelConfig::T5(T5Config {
        model_type: Some("t5".to_string()),
        d_model: d,
        d_kv: g.d_kv,
        d_ff,
        num_layers: g.layers.len(),
        num_heads: g.heads,
        vocab_size: vocab,
        relative_attention_num_buckets: buckets.num_buckets,
        relative_attention_max_distance: buckets.max_distance,
        layer_norm_epsilon: g.eps,
        feed_forward_proj: proj.to_string(),
        asymmetric_activations: g.asymmetric_inputs,
        tflite_input_length: Some(n),
        tflite_pad_id: g.pad_id,
    });
    Ok(Plan {
        planned: out,
        config,
        pooling: PoolingMode::Mean,
        normalize: g.normalize,
        // Relative positions need no table: as far as the folded buckets reach.
        positions: buckets.window,
        dense,
    })
}
