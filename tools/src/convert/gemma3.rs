//! Gemma 3 text checkpoints (EmbeddingGemma's `Gemma3TextModel`) to octet's tensor names
//! (see `crates/octet/src/model/gemma3.rs`). Q, K and V are concatenated into one projection,
//! and so are the MLP's gate and up projections. Norm weights are stored as written: the engine
//! applies Gemma's `x * (1 + w)`.

use super::source::SourceFolder;
use super::{Logical, Planned, TableKind};
use anyhow::{bail, Result};

/// Activation-scale groups of a Gemma model's int8 layers by layer, unless `--k-group` sets one
/// for all. The down projection's input holds single huge values (max/rms ~ 30): one scale per
/// token there costs most of the accuracy, while the other layers lose little to it and run
/// about a third faster (a grouped layer rescales its integer sums every group).
///
/// Measured on EmbeddingGemma-300m, the 400 Lee corpus sentences with the `document` prompt,
/// int8 (8-bit token table) vs fp32 sentence-transformers, mean / min cosine (down, qkv,
/// gate_up, attention output; `-` is one scale per token):
/// 32 everywhere 0.99951 / 0.99885; 32 - - - 0.99897 / 0.99777; 64 - - - 0.99895 / 0.99739;
/// 32 - 128 - 0.99906 / 0.99839; **32 128 - -** 0.99930 / 0.99892; 32 128 128 - 0.99938 /
/// 0.99897; 32 64 64 - 0.99944 / 0.99924; 32 128 128 128 0.99940 / 0.99866. The chosen row
/// keeps the quality target (0.999 / 0.998) with the two widest layers, gate_up (42% of the
/// layer FLOPs) and the attention output, at one scale per token. Wider groups on the down
/// projection are faster (128 instead of 32: 15% at 1x16, 4% at 1x128 in one run alternating the
/// two files) and kept the corpus target (128 128 - -: 0.99923 / 0.99885 against 0.99929 / 0.99856
/// on a later tree), but with round-to-nearest weights they failed the fixture test's min cosine
/// against f32: 0.99494 (128) and 0.99484 (64) on special_tokens_02, bound 0.995 (32: 0.99599).
/// With GPTQ weights (`gptq.rs`, calibrated by default) down takes groups of 128. Against fp32
/// sentence-transformers: fixture texts mean / min 0.99921 / 0.99585 (round-to-nearest, down in
/// groups of 32: 0.99914 / 0.99560; GPTQ, 32: 0.99930 / 0.99630); Lee corpus with the document
/// prompt mean / p1 / min 0.999417 / 0.999132 / 0.998946 (round-to-nearest, 32: 0.999298 /
/// 0.999000 / 0.998706; GPTQ, 32: 0.999472 / 0.999189 / 0.998692).
/// The Dense projections after pooling (one row per text, so their cost is nil) keep groups of 32.
pub const LAYER_K_GROUPS: [(&str, Option<usize>); 5] = [
    ("layers.*.ffn.down", Some(128)),
    ("layers.*.attention.qkv", Some(128)),
    ("layers.*.ffn.gate_up", None),
    ("layers.*.attention.output", None),
    ("dense.*", Some(32)),
];

/// Values per scale and zero point in a quantized token table. EmbeddingGemma's rows hold
/// outliers (max/rms 6 to 11), so one scale per row is coarse: int8 per row gives a relative
/// error per row of 1.1% on average (2.0% on BOS), per block of 128 values 0.70% (1.2%), per
/// 64 0.59%. End to end over the 82 fixture texts (layers int8, groups of 32), table per row:
/// mean cosine 0.99931, min 0.99343; per 128-value block: 0.99939 / 0.99723; per 64: 0.99938 /
/// 0.99728; f32 table: 0.99939 / 0.99777; 6 bits per 32-value block: 0.99921 / 0.99053.
/// Blocks of 128 cost 12.6 MB of scales and zero points (6 per row).
pub const TABLE_BLOCK: usize = 128;

/// The Matryoshka widths EmbeddingGemma was trained for (its model card); recorded in the file
/// when the converted model's output is 768 wide.
pub const EMBEDDINGGEMMA_MATRYOSHKA_DIMS: [usize; 3] = [512, 256, 128];

/// Plans every tensor of a Gemma 3 text encoder.
pub fn plan(src: &SourceFolder, _window: usize) -> Result<Vec<Planned>> {
    let w = &src.weights;
    let prefix = src.weight_prefix(
        &["", "model.", "model.language_model."],
        "embed_tokens.weight",
        "Gemma 3",
    )?;
    let h = src.config_usize("hidden_size")?;
    let layers = src.config_usize("num_hidden_layers")?;
    let inter = src.config_usize("intermediate_size")?;
    let vocab = src.config_usize("vocab_size")?;
    let heads = src.config_usize("num_attention_heads")?;
    let kv_heads = src.config_usize("num_key_value_heads")?;
    let head_dim = src.config_usize("head_dim")?;
    if src
        .config
        .get("attention_bias")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    {
        bail!("attention_bias = true is not supported (Gemma 3 has no attention biases)");
    }
    let get =
        |name: &str, shape: &[usize]| -> Result<Vec<f32>> { Ok(w.f32(&format!("{prefix}{name}"), Some(shape))?.0) };
    let vector = |name: &str, len: usize| -> Result<Logical> {
        Ok(Logical::Vector {
            data: get(name, &[len])?,
            shape: vec![len],
        })
    };

    // Stored as [vocab x blocks, hidden / blocks] (the engine reads it back as [vocab, hidden]),
    // so a quantized table has one scale and zero point per TABLE_BLOCK values (module docs).
    let blocks = if h % TABLE_BLOCK == 0 { h / TABLE_BLOCK } else { 1 };
    let mut out = vec![Planned::new(
        "embeddings.word",
        Logical::Table {
            data: get("embed_tokens.weight", &[vocab, h])?,
            rows: vocab * blocks,
            dim: h / blocks,
            kind: TableKind::Token,
        },
    )];
    for i in 0..layers {
        let s = format!("layers.{i}");
        let mut qkv = get(&format!("{s}.self_attn.q_proj.weight"), &[heads * head_dim, h])?;
        qkv.extend(get(&format!("{s}.self_attn.k_proj.weight"), &[kv_heads * head_dim, h])?);
        qkv.extend(get(&format!("{s}.self_attn.v_proj.weight"), &[kv_heads * head_dim, h])?);
        let qkv_rows = (heads + 2 * kv_heads) * head_dim;
        let mut gate_up = get(&format!("{s}.mlp.gate_proj.weight"), &[inter, h])?;
        gate_up.extend(get(&format!("{s}.mlp.up_proj.weight"), &[inter, h])?);
        let linear = |weight: Vec<f32>, n: usize, k: usize, after_norm: bool| Logical::Linear {
            weight,
            n,
            k,
            bias: None,
            after_norm,
        };
        out.extend([
            Planned::new(
                &format!("{s}.attention.norm.weight"),
                vector(&format!("{s}.input_layernorm.weight"), h)?,
            ),
            Planned::new(&format!("{s}.attention.qkv"), linear(qkv, qkv_rows, h, true)),
            Planned::new(
                &format!("{s}.attention.q_norm.weight"),
                vector(&format!("{s}.self_attn.q_norm.weight"), head_dim)?,
            ),
            Planned::new(
                &format!("{s}.attention.k_norm.weight"),
                vector(&format!("{s}.self_attn.k_norm.weight"), head_dim)?,
            ),
            Planned::new(
                &format!("{s}.attention.output"),
                linear(
                    get(&format!("{s}.self_attn.o_proj.weight"), &[h, heads * head_dim])?,
                    h,
                    heads * head_dim,
                    false,
                ),
            ),
            Planned::new(
                &format!("{s}.attention.post_norm.weight"),
                vector(&format!("{s}.post_attention_layernorm.weight"), h)?,
            ),
            Planned::new(
                &format!("{s}.ffn.norm.weight"),
                vector(&format!("{s}.pre_feedforward_layernorm.weight"), h)?,
            ),
            Planned::new(&format!("{s}.ffn.gate_up"), linear(gate_up, 2 * inter, h, true)),
            Planned::new(
                &format!("{s}.ffn.down"),
                linear(get(&format!("{s}.mlp.down_proj.weight"), &[h, inter])?, h, inter, false),
            ),
            Planned::new(
                &format!("{s}.ffn.post_norm.weight"),
                vector(&format!("{s}.post_feedforward_layernorm.weight"), h)?,
            ),
        ]);
    }
    out.push(Planned::new("final_norm.weight", vector("norm.weight", h)?));
    Ok(out)
}
