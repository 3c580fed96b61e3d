//! BERT-family checkpoints (BERT, MiniLM, bge, e5, gte...) to octet's tensor names
//! (see `crates/octet/src/model/bert.rs`): Q, K and V are concatenated into one projection.

use super::channel_order::Role;
use super::source::SourceFolder;
use super::{Logical, Planned, TableKind};
use anyhow::{bail, Result};

/// Activation-scale groups of a BERT model's int8 layers by layer, unless `--k-group` sets one
/// for all; layers not listed take the recipe's default (groups of 64 after a norm, one scale
/// per token elsewhere). The FFN down projection reads the GELU's output, whose few large values
/// per token make one scale per token the largest single error of the int8 recipe. Measured on
/// all-MiniLM-L6-v2 (`octet convert SRC --report --quant int8`: 400 Lee sentences vs f32, mean /
/// 1st percentile / min cosine): down per token 0.998551 / 0.997155 / 0.996823; down in groups
/// of 32 0.998912 / 0.997964 / 0.997372 (an earlier tree; 0.998914 / 0.997964 / 0.997296 on
/// this one), of 64 0.998894 / 0.997978 / 0.997296, of 128 0.998878 / 0.998054 / 0.997483: the
/// group size makes no difference past noise, and groups of 128 (12 per row) cost the kernel a
/// quarter of the per-group work of groups of 32. Alternating the two files in one run, groups of
/// 128 instead of 32 made MiniLM int8 faster by 12% at 1x16 (1 thread), 3% at 1x128 (1 thread),
/// 7% at 1x128 (2 threads) and 3% at 32x128 (1 thread); the file is 20.8 MB instead of 21.1.
/// The QKV and FFN-up projections read a LayerNorm's output; with symmetric groups they needed
/// groups of 64 (in groups of 128: 0.998524 / 0.997439 / 0.996598). The engine now quantizes
/// their groups centered on each group's range (`Linear::with_centered_rows`), which holds
/// groups of 128 better than symmetric groups of 64, so they take 128 as well. With GPTQ weights
/// (`gptq.rs`) and against fp32 sentence-transformers instead (same 400 sentences): QKV and up
/// symmetric in groups of 64 0.999209 / 0.998734 / 0.998240; centered in groups of 128 0.999375
/// / 0.998890 / 0.998402; centered in groups of 64 0.999491 / 0.999155 / 0.998819. Alternating
/// the files in one run (`octet-bench-timer`, 1 and 2 threads, 1x16 to 32x128), centered groups
/// of 128 ran at the speed of symmetric groups of 64 (0.98-1.01x), centered groups of 64 1.7-4%
/// slower (each group's offset is one more multiply-add per output). For comparison (the older
/// figures, round-to-nearest weights, vs f32): 8-bit token table alone 0.998716 / 0.997720 /
/// 0.997300, groups of 32 on every layer 0.999104 / 0.998384 / 0.997876, and down kept in f32
/// 0.999223 / 0.998694 / 0.998253. The engine then centered FFN-down's groups too (GELU outputs
/// lie almost all above -0.17, so symmetric groups wasted half their codes): 0.999375 / 0.998890
/// / 0.998402 -> 0.999435 / 0.999021 / 0.998802; with the hidden channels reordered
/// ([`super::channel_order`]) 0.999529 / 0.999153 / 0.998947, and with an 8-bit token table as
/// well 0.999649 / 0.999422 / 0.999136.
pub const LAYER_K_GROUPS: [(&str, Option<usize>); 3] = [
    ("layers.*.ffn.down", Some(128)),
    ("layers.*.attention.qkv", Some(128)),
    ("layers.*.ffn.up", Some(128)),
];

/// How each planned tensor of a BERT encoder meets the hidden channels (the residual stream),
/// for [`super::channel_order`]: the embedding tables' columns, every norm, the QKV and FFN-up
/// inputs, and the attention-output and FFN-down outputs.
pub fn channel_role(name: &str) -> Option<Role> {
    let role = match name {
        "embeddings.word" | "embeddings.position" | "embeddings.token_type" => Role::Columns,
        n if n.ends_with(".norm.weight") || n.ends_with(".norm.bias") => Role::Vector,
        n if n.ends_with(".attention.qkv") || n.ends_with(".ffn.up") => Role::LinearInput,
        n if n.ends_with(".attention.output") || n.ends_with(".ffn.down") => Role::LinearOutput,
        _ => return None,
    };
    Some(role)
}

/// The calibrated layers whose inputs are the hidden channels: they choose the
/// [`super::channel_order`].
pub fn channel_inputs(layers: usize) -> Vec<String> {
    (0..layers)
        .flat_map(|i| {
            [
                format!("layers.{i}.attention.qkv.weight"),
                format!("layers.{i}.ffn.up.weight"),
            ]
        })
        .collect()
}

/// Plans every tensor of a BERT encoder.
/// Only the first `window` position rows are kept: the engine never reads past the window.
pub fn plan(src: &SourceFolder, window: usize) -> Result<Vec<Planned>> {
    let w = &src.weights;
    let prefix = src.weight_prefix(&["", "bert.", "model."], "embeddings.word_embeddings.weight", "BERT")?;
    let h = src.config_usize("hidden_size")?;
    let layers = src.config_usize("num_hidden_layers")?;
    let inter = src.config_usize("intermediate_size")?;
    let vocab = src.config_usize("vocab_size")?;
    let positions = src.config_usize("max_position_embeddings")?;
    let types = src.config.get("type_vocab_size").and_then(|v| v.as_u64()).unwrap_or(2) as usize;
    let get =
        |name: &str, shape: &[usize]| -> Result<Vec<f32>> { Ok(w.f32(&format!("{prefix}{name}"), Some(shape))?.0) };

    let mut out = vec![
        Planned::new(
            "embeddings.word",
            Logical::Table {
                data: get("embeddings.word_embeddings.weight", &[vocab, h])?,
                rows: vocab,
                dim: h,
                kind: TableKind::Token,
            },
        ),
        Planned::new("embeddings.position", {
            let kept = window.min(positions);
            let mut data = get("embeddings.position_embeddings.weight", &[positions, h])?;
            data.truncate(kept * h);
            Logical::Table {
                data,
                rows: kept,
                dim: h,
                kind: TableKind::Position,
            }
        }),
        Planned::new(
            "embeddings.token_type",
            Logical::Vector {
                data: get("embeddings.token_type_embeddings.weight", &[types, h])?,
                shape: vec![types, h],
            },
        ),
    ];
    let norm = |out: &mut Vec<Planned>, from: &str, to: &str| -> Result<()> {
        out.push(Planned::new(
            &format!("{to}.weight"),
            Logical::Vector {
                data: get(&format!("{from}.weight"), &[h])?,
                shape: vec![h],
            },
        ));
        out.push(Planned::new(
            &format!("{to}.bias"),
            Logical::Vector {
                data: get(&format!("{from}.bias"), &[h])?,
                shape: vec![h],
            },
        ));
        Ok(())
    };
    norm(&mut out, "embeddings.LayerNorm", "embeddings.norm")?;
    for i in 0..layers {
        let src_layer = format!("encoder.layer.{i}");
        let dst = format!("layers.{i}");
        let mut qkv = Vec::with_capacity(3 * h * h);
        let mut qkv_bias = Vec::with_capacity(3 * h);
        for part in ["query", "key", "value"] {
            qkv.extend(get(&format!("{src_layer}.attention.self.{part}.weight"), &[h, h])?);
            qkv_bias.extend(get(&format!("{src_layer}.attention.self.{part}.bias"), &[h])?);
        }
        out.push(Planned::new(
            &format!("{dst}.attention.qkv"),
            Logical::Linear {
                weight: qkv,
                n: 3 * h,
                k: h,
                bias: Some(qkv_bias),
                after_norm: true,
            },
        ));
        let linear = |from: &str, n: usize, k: usize, after_norm: bool| -> Result<Logical> {
            Ok(Logical::Linear {
                weight: get(&format!("{from}.weight"), &[n, k])?,
                n,
                k,
                bias: Some(get(&format!("{from}.bias"), &[n])?),
                after_norm,
            })
        };
        out.push(Planned::new(
            &format!("{dst}.attention.output"),
            linear(&format!("{src_layer}.attention.output.dense"), h, h, false)?,
        ));
        norm(
            &mut out,
            &format!("{src_layer}.attention.output.LayerNorm"),
            &format!("{dst}.attention.norm"),
        )?;
        out.push(Planned::new(
            &format!("{dst}.ffn.up"),
            linear(&format!("{src_layer}.intermediate.dense"), inter, h, true)?,
        ));
        out.push(Planned::new(
            &format!("{dst}.ffn.down"),
            linear(&format!("{src_layer}.output.dense"), h, inter, false)?,
        ));
        norm(
            &mut out,
            &format!("{src_layer}.output.LayerNorm"),
            &format!("{dst}.ffn.norm"),
        )?;
    }
    if h % src.config_usize("num_attention_heads")? != 0 {
        bail!("hidden_size {h} is not a multiple of num_attention_heads");
    }
    Ok(out)
}
