//! T5 encoder checkpoints (T5EncoderModel, or the encoder half of T5ForConditionalGeneration:
//! original T5, T5 v1.1, sentence-T5, GTR) to octet's tensor names (see
//! `crates/octet/src/model/t5.rs`). Q, K and V are concatenated into one projection; a gated
//! FFN's `wi_0` (gate) and `wi_1` (up) into one [2 d_ff, d_model] projection, gate rows first.
//! The relative-attention bias table comes from block 0, the only block that has one. Decoder
//! tensors, if any, are ignored. The config is parsed and checked by the engine's own
//! [`T5Config`], so a file the engine would refuse is refused here first.

use super::source::SourceFolder;
use super::{Logical, Planned, TableKind};
use anyhow::{anyhow, Context, Result};
use octet::model::t5::T5Config;

/// Names of the token-embedding table, in order of preference (`shared` is the same tensor,
/// tied; safetensors files keep one of the two).
const WORD_EMBEDDINGS: [&str; 2] = ["encoder.embed_tokens.weight", "shared.weight"];

/// Plans every tensor of a T5 encoder. T5 has no position table, so the window (handled by the
/// tokenizer) changes nothing here.
pub fn plan(src: &SourceFolder, _window: usize) -> Result<Vec<Planned>> {
    let w = &src.weights;
    let config: T5Config = serde_json::from_value(src.config.clone())
        .context("config.json is not a T5 config (d_model, d_kv, d_ff, num_layers, num_heads, vocab_size)")?;
    config.validate()?;
    let gated = config.feed_forward()?.is_gated();
    let (d, inner, ff, vocab) = (config.d_model, config.inner_dim(), config.d_ff, config.vocab_size);
    let buckets = config.relative_attention_num_buckets;
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> { Ok(w.f32(name, Some(shape))?.0) };
    let vector = |name: &str| -> Result<Logical> {
        Ok(Logical::Vector {
            data: get(name, &[d])?,
            shape: vec![d],
        })
    };
    let linear = |weight: Vec<f32>, n: usize, k: usize, after_norm: bool| Logical::Linear {
        weight,
        n,
        k,
        bias: None,
        after_norm,
    };

    let word = WORD_EMBEDDINGS.into_iter().find(|n| w.contains(n)).ok_or_else(|| {
        anyhow!(
            "neither {} is in {}: not a T5 checkpoint",
            WORD_EMBEDDINGS.join(" nor "),
            w.path.display()
        )
    })?;
    let mut out = vec![
        Planned::new(
            "embeddings.word",
            Logical::Table {
                data: get(word, &[vocab, d])?,
                rows: vocab,
                dim: d,
                kind: TableKind::Token,
            },
        ),
        Planned::new(
            "relative_attention_bias",
            Logical::Vector {
                data: get(
                    "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                    &[buckets, config.num_heads],
                )?,
                shape: vec![buckets, config.num_heads],
            },
        ),
    ];
    for i in 0..config.num_layers {
        let block = format!("encoder.block.{i}.layer");
        let dst = format!("layers.{i}");
        out.push(Planned::new(
            &format!("{dst}.attention.norm.weight"),
            vector(&format!("{block}.0.layer_norm.weight"))?,
        ));
        let mut qkv = Vec::with_capacity(3 * inner * d);
        for part in ["q", "k", "v"] {
            qkv.extend(get(&format!("{block}.0.SelfAttention.{part}.weight"), &[inner, d])?);
        }
        out.push(Planned::new(
            &format!("{dst}.attention.qkv"),
            linear(qkv, 3 * inner, d, true),
        ));
        out.push(Planned::new(
            &format!("{dst}.attention.output"),
            linear(
                get(&format!("{block}.0.SelfAttention.o.weight"), &[d, inner])?,
                d,
                inner,
                false,
            ),
        ));
        out.push(Planned::new(
            &format!("{dst}.ffn.norm.weight"),
            vector(&format!("{block}.1.layer_norm.weight"))?,
        ));
        let ffn = format!("{block}.1.DenseReluDense");
        if gated {
            let mut gate_up = get(&format!("{ffn}.wi_0.weight"), &[ff, d])?;
            gate_up.extend(get(&format!("{ffn}.wi_1.weight"), &[ff, d])?);
            out.push(Planned::new(
                &format!("{dst}.ffn.gate_up"),
                linear(gate_up, 2 * ff, d, true),
            ));
        } else {
            out.push(Planned::new(
                &format!("{dst}.ffn.up"),
                linear(get(&format!("{ffn}.wi.weight"), &[ff, d])?, ff, d, true),
            ));
        }
        out.push(Planned::new(
            &format!("{dst}.ffn.down"),
            linear(get(&format!("{ffn}.wo.weight"), &[d, ff])?, d, ff, false),
        ));
    }
    out.push(Planned::new(
        "final_norm.weight",
        vector("encoder.final_layer_norm.weight")?,
    ));
    Ok(out)
}
