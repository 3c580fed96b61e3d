//! A BERT encoder recognised in a TFLite file ([`octet_tflite::bert`], or named by a
//! `--tflite-map` file) planned as octet's BERT tensors (`crates/octet/src/model/bert.rs`) and
//! its typed [`BertConfig`]: sizes from the tensor shapes, heads from the attention RESHAPE,
//! epsilon from the LayerNorm, GELU's form, `folded_norms` when TensorFlow's converter folded
//! LayerNorm gamma and beta into the projections, and `asymmetric_activations` when the file's
//! FULLY_CONNECTED options quantize activation rows asymmetrically.

use super::common::{linear_logical, read_linear, shape2, token_table, vector, Plan};
use crate::convert::{Logical, Planned, TableKind};
use anyhow::{bail, Context, Result};
use octet::format::PoolingMode;
use octet::model::bert::BertConfig;
use octet::model::ModelConfig;
use octet_tflite::bert::{self, BertGraph};
use octet_tflite::TfliteModel;

/// The first `len` values of a constant that is one row, or rows that the graph walk checked
/// are all equal (litert-torch's token-type row folded over the sequence, [1, n, h]).
fn first_row(model: &TfliteModel, t: usize, len: usize, what: &str) -> Result<Vec<f32>> {
    let mut values = model.f32_values(&model.tensors[t])?;
    if len == 0 || values.is_empty() || values.len() % len != 0 {
        bail!(
            "{what}: tensor {} has {} values, expected rows of {len}",
            model.tensors[t].label(),
            values.len()
        );
    }
    values.truncate(len);
    Ok(values)
}

/// The sizes of a recognised encoder.
pub struct Sizes {
    pub hidden: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub positions: usize,
}

/// Plans every tensor of the encoder in octet's BERT naming.
pub fn plan(model: &TfliteModel, g: &BertGraph) -> Result<(Vec<Planned>, Sizes)> {
    let (vocab, h) = shape2(model, g.word, "embeddings.word")?;
    if h == 0 || g.heads == 0 || h % g.heads != 0 {
        bail!("hidden size {h} is not a multiple of {} heads", g.heads);
    }
    let word_logical = token_table(model, g.word, vocab, h)?;
    let position = g
        .position
        .context("no position table found (octet's BERT adds learned positions)")?;
    let pos_tensor = &model.tensors[position];
    let positions = match pos_tensor.shape[..] {
        [p, d] | [1, p, d] if d == h && p > 0 => p,
        ref s => bail!("position table {} has shape {s:?}", pos_tensor.label()),
    };
    let mut token_type = vec![0f32; h];
    for &t in &g.token_type {
        for (acc, v) in token_type.iter_mut().zip(first_row(model, t, h, "token type")?) {
            *acc += v;
        }
    }
    let mut out = vec![
        Planned::new("embeddings.word", word_logical),
        Planned::new(
            "embeddings.position",
            Logical::Table {
                data: model.f32_values(pos_tensor)?,
                rows: positions,
                dim: h,
                kind: TableKind::Position,
            },
        ),
        Planned::new(
            "embeddings.token_type",
            Logical::Vector {
                data: token_type,
                shape: vec![1, h],
            },
        ),
    ];
    let norm = |out: &mut Vec<Planned>, r: &bert::NormRef, name: &str| -> Result<()> {
        out.push(Planned::new(
            &format!("{name}.weight"),
            Logical::Vector {
                data: vector(model, r.weight, h, name)?,
                shape: vec![h],
            },
        ));
        out.push(Planned::new(
            &format!("{name}.bias"),
            Logical::Vector {
                data: vector(model, r.bias, h, name)?,
                shape: vec![h],
            },
        ));
        Ok(())
    };
    norm(&mut out, &g.embeddings_norm, "embeddings.norm")?;
    let mut intermediate = 0;
    for (i, l) in g.layers.iter().enumerate() {
        let p = format!("layers.{i}");
        let q = read_linear(model, &l.query, h, &format!("{p} query"))?.scaled(g.query_scale);
        let k = read_linear(model, &l.key, h, &format!("{p} key"))?;
        let v = read_linear(model, &l.value, h, &format!("{p} value"))?;
        if q.n != h || k.n != h || v.n != h {
            bail!(
                "{p}: query/key/value have {}/{}/{} outputs, expected {h}",
                q.n,
                k.n,
                v.n
            );
        }
        out.push(Planned::new(
            &format!("{p}.attention.qkv"),
            linear_logical(vec![q, k, v], !g.folded_norms, true),
        ));
        let o = read_linear(model, &l.output, h, &format!("{p} attention output"))?;
        if o.n != h {
            bail!("{p}: attention output has {} outputs, expected {h}", o.n);
        }
        out.push(Planned::new(
            &format!("{p}.attention.output"),
            linear_logical(vec![o], false, true),
        ));
        norm(&mut out, &l.attention_norm, &format!("{p}.attention.norm"))?;
        let up = read_linear(model, &l.up, h, &format!("{p} FFN up"))?;
        if i == 0 {
            intermediate = up.n;
        } else if up.n != intermediate {
            bail!("{p}: FFN width {} differs from layer 0's {intermediate}", up.n);
        }
        out.push(Planned::new(
            &format!("{p}.ffn.up"),
            linear_logical(vec![up], !g.folded_norms, true),
        ));
        let down = read_linear(model, &l.down, intermediate, &format!("{p} FFN down"))?;
        if down.n != h {
            bail!("{p}: FFN down has {} outputs, expected {h}", down.n);
        }
        out.push(Planned::new(
            &format!("{p}.ffn.down"),
            linear_logical(vec![down], false, true),
        ));
        norm(&mut out, &l.ffn_norm, &format!("{p}.ffn.norm"))?;
    }
    Ok((
        out,
        Sizes {
            hidden: h,
            intermediate,
            vocab,
            positions,
        },
    ))
}

/// The BERT plan and config.
pub(crate) fn plan_bert(model: &TfliteModel, graph: &BertGraph) -> Result<Plan> {
    let (planned, sizes) = plan(model, graph)?;
    let config = ModelConfig::Bert(BertConfig {
        model_type: Some("bert".to_string()),
        hidden_size: sizes.hidden,
        num_hidden_layers: graph.layers.len(),
        num_attention_heads: graph.heads,
        intermediate_size: sizes.intermediate,
        vocab_size: sizes.vocab,
        max_position_embeddings: sizes.positions,
        type_vocab_size: 1,
        layer_norm_eps: graph.eps,
        hidden_act: if graph.gelu_tanh { "gelu_new" } else { "gelu" }.to_string(),
        folded_norms: graph.folded_norms,
        asymmetric_activations: graph.asymmetric_inputs,
        tflite_exact: false,
        // A masked export runs in the interpreter padded to its fixed input length; the
        // engine's `tflite_exact` replay lays its softmax rows out as that run does.
        tflite_fixed_length: graph
            .inputs
            .mask
            .and_then(|_| model.tensors[graph.inputs.ids].shape.last().copied())
            .filter(|&l| l > 0),
    });
    Ok(Plan {
        planned,
        config,
        pooling: match graph.pooling.mode {
            bert::Pooled::Mean | bert::Pooled::Caller => PoolingMode::Mean,
            bert::Pooled::Cls => PoolingMode::Cls,
        },
        normalize: graph.pooling.normalize,
        positions: sizes.positions,
        dense: Vec::new(),
    })
}
