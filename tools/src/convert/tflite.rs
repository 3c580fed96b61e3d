//! `octet convert model.tflite [--tokenizer tokenizer.json]`: a TFLite BERT or T5 encoder to a
//! `.octet` file.
//!
//! The graph is recognised by [`octet_tflite::bert`], else by [`octet_tflite::t5`] (planned
//! in [`super::tflite_t5`]); a BERT's tensors can also be named by a `--tflite-map` file. When
//! neither walk fits, the error says where each stopped. For BERT, the graph is read and
//! its constants become octet's tensors: int8 tensors keep their exact values, scales and zero
//! points ([`Logical::QuantizedLinear`], [`Logical::QuantizedTable`]); float32 and float16 ones
//! follow the recipe like any source. The config the engine reads is written from the graph:
//! sizes from the tensor shapes, heads from the attention RESHAPE, epsilon from the LayerNorm,
//! GELU's form, and `folded_norms` when the converter folded LayerNorm gamma and beta into the
//! projections. TFLite's hybrid FULLY_CONNECTED quantizes each activation row on the fly, so
//! the int8 layers quantize per row too: asymmetrically (the engine's `asymmetric_activations`)
//! when the file's FULLY_CONNECTED options ask for it, as the converter's do. A file with int8
//! tensors is kept as it is: its float tensors stay f32 whatever `--quant` says (recipe name
//! `tflite-int8`); a float file follows the recipe.
//!
//! The tokenizer is not inside a converter-written file: `--tokenizer` names the model's
//! `tokenizer.json`. A `sentence_bert_config.json` beside it sets the window
//! (`max_seq_length`); else the window is the position table's length.

use super::recipe::Recipe;
use super::{store, tokenizer, ConvertReport, Logical, Planned, TableKind};
use anyhow::{bail, Context, Result};
use octet::format::{
    Architecture, DenseLayer, ModelMeta, ModelWriter, Pooling, PoolingMode, Provenance, Quantization, SourceFile,
};
use octet_tflite::bert::{self, BertGraph, LinearRef};
use octet_tflite::{TensorType, TfliteModel};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What `octet convert` needs besides the .tflite file.
pub struct TfliteInputs<'a> {
    /// The model's `tokenizer.json`; None: the tokenizer in the file's metadata.
    pub tokenizer: Option<&'a Path>,
    /// A mapping file (see [`bert::from_mapping`]) used instead of recognising the graph.
    pub mapping: Option<&'a Path>,
    /// `--tflite-exact`: the engine computes the float steps of a BERT encoder as TFLite's
    /// builtin kernels do (config `tflite_exact`), so an int8 file replays as the interpreter
    /// runs it; slower. Refused for other encoders and other activations than the erf GELU.
    pub exact: bool,
}

/// True when `path` is a TFLite file: its file identifier, or failing a readable header, its
/// extension.
pub fn is_tflite(path: &Path) -> bool {
    if path.is_file() {
        let mut head = [0u8; 8];
        if let Ok(mut f) = std::fs::File::open(path) {
            use std::io::Read;
            if f.read_exact(&mut head).is_ok() {
                return octet_tflite::looks_like_tflite(&head);
            }
        }
    }
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite"))
}

/// A linear layer read from the file: exact int8, or f32.
enum Weights {
    I8 { q: Vec<i8>, scales: Vec<f32> },
    F32(Vec<f32>),
}

pub(super) struct LinearData {
    weights: Weights,
    bias: Vec<f32>,
    pub(super) n: usize,
    pub(super) k: usize,
}

impl LinearData {
    /// The layer times `factor` (weights and bias; an int8 layer's scales, its codes unchanged).
    fn scaled(mut self, factor: f32) -> LinearData {
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

pub(super) fn shape2(model: &TfliteModel, t: usize, what: &str) -> Result<(usize, usize)> {
    match model.tensors[t].shape[..] {
        [a, b] => Ok((a, b)),
        ref s => bail!(
            "{what}: tensor {} has shape {s:?}, expected 2-D",
            model.tensors[t].label()
        ),
    }
}

/// Reads a linear layer; `k` is the expected input width.
pub(super) fn read_linear(model: &TfliteModel, r: &LinearRef, k_expected: usize, what: &str) -> Result<LinearData> {
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
pub(super) fn linear_logical(parts: Vec<LinearData>, after_norm: bool, with_bias: bool) -> Logical {
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

pub(super) fn vector(model: &TfliteModel, t: usize, len: usize, what: &str) -> Result<Vec<f32>> {
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
pub(super) fn token_table(model: &TfliteModel, word_index: usize, vocab: usize, h: usize) -> Result<Logical> {
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

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a recognised graph becomes: the planned tensors and the metadata that depends on the
/// architecture.
pub(super) struct Plan {
    pub planned: Vec<Planned>,
    pub architecture: Architecture,
    pub config: serde_json::Value,
    pub pooling: PoolingMode,
    pub normalize: bool,
    /// The longest input the graph takes (position table rows, or the fixed input length).
    pub positions: usize,
    pub dense: Vec<DenseLayer>,
}

/// Recognises the encoder in `model`: BERT, then T5. When neither fits, the error says where
/// each walk stopped.
fn recognise(model: &TfliteModel, input: &Path) -> Result<Plan> {
    let bert_error = match bert::recognise(model) {
        Ok(g) => return plan_bert(model, &g),
        Err(e) => e,
    };
    match octet_tflite::t5::recognise(model) {
        Ok(g) => super::tflite_t5::plan(model, &g),
        Err(t5_error) => bail!(
            "{}: the graph is not recognised.\n  as a BERT encoder: {bert_error}\n  as a T5 encoder: {t5_error}\n\
             pass --tflite-map FILE to name a BERT encoder's tensors by hand",
            input.display()
        ),
    }
}

/// The BERT plan and config.
fn plan_bert(model: &TfliteModel, graph: &BertGraph) -> Result<Plan> {
    let (planned, sizes) = plan(model, graph)?;
    let config = serde_json::json!({
        "model_type": "bert",
        "hidden_size": sizes.hidden,
        "num_hidden_layers": graph.layers.len(),
        "num_attention_heads": graph.heads,
        "intermediate_size": sizes.intermediate,
        "vocab_size": sizes.vocab,
        "max_position_embeddings": sizes.positions,
        "type_vocab_size": 1,
        "layer_norm_eps": graph.eps,
        "hidden_act": if graph.gelu_tanh { "gelu_new" } else { "gelu" },
        "folded_norms": graph.folded_norms,
        "asymmetric_activations": graph.asymmetric_inputs,
    });
    // A masked export runs in the interpreter padded to its fixed input length; the engine's
    // `tflite_exact` replay lays its softmax rows out as that run does.
    let mut config = config;
    if graph.inputs.mask.is_some() {
        if let Some(&length) = model.tensors[graph.inputs.ids].shape.last().filter(|&&l| l > 0) {
            config["tflite_fixed_length"] = serde_json::json!(length);
        }
    }
    Ok(Plan {
        planned,
        architecture: Architecture::Bert,
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

/// Converts the TFLite file `input` into the `.octet` file `output`.
/// `config` with `tflite_exact` set, for `--tflite-exact`: a BERT encoder with the erf GELU,
/// whose int8 layers (if any) quantize their inputs asymmetrically as the engine's exact path
/// assumes.
fn exact_config(mut config: serde_json::Value, architecture: Architecture) -> Result<serde_json::Value> {
    if architecture != Architecture::Bert {
        bail!("--tflite-exact replays BERT encoders only; this file is a {architecture} encoder");
    }
    if config["hidden_act"] != "gelu" {
        bail!(
            "--tflite-exact replays the erf GELU only; this encoder uses {}",
            config["hidden_act"]
        );
    }
    config["tflite_exact"] = serde_json::Value::Bool(true);
    Ok(config)
}

pub fn convert(input: &Path, output: &Path, recipe: &Recipe, inputs: &TfliteInputs) -> Result<ConvertReport> {
    let model = TfliteModel::open(input)?;
    let plan = match inputs.mapping {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let map: serde_json::Value =
                serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
            plan_bert(&model, &bert::from_mapping(&model, &map)?)?
        }
        None => recognise(&model, input)?,
    };
    let Plan {
        mut planned,
        architecture,
        config,
        pooling,
        normalize,
        positions,
        dense,
    } = plan;
    let config = if inputs.exact {
        exact_config(config, architecture)?
    } else {
        config
    };
    let user_or_embedded = super::tflite_tokenizer::resolve(&model, inputs.tokenizer, input)?;
    let max_seq_len = user_or_embedded.window.unwrap_or(positions).min(positions);
    let file_bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let prequantized = planned.iter().any(|p| {
        matches!(
            p.tensor,
            Logical::QuantizedLinear { .. } | Logical::QuantizedTable { .. }
        )
    });
    // A file its author already quantized is kept as it is: its float tensors (the position
    // table, norms, biases) stay f32 whatever the recipe, so octet adds no rounding of its own.
    let as_converted;
    let recipe = if prequantized {
        as_converted = Recipe {
            name: "tflite-int8".to_string(),
            ..Recipe::parse("f32", recipe.keep.clone(), recipe.k_group)?
        };
        &as_converted
    } else {
        recipe
    };
    let meta = ModelMeta {
        architecture,
        config,
        tokenizer: "tokenizer.json".to_string(),
        pooling: Pooling {
            mode: pooling,
            normalize,
        },
        max_seq_len,
        prompts: Default::default(),
        default_prompt: None,
        matryoshka_dims: Vec::new(),
        dense,
        quantization: Quantization {
            recipe: recipe.name.clone(),
            k_group: recipe.k_group,
            notes: prequantized.then(|| {
                "int8 tensors of the TFLite file kept as they are (per-channel weights; activations quantized per row, \
                 asymmetric as in TFLite's hybrid kernels when the file asks for it); float tensors f32"
                    .to_string()
            }),
        },
        provenance: Provenance {
            converter: format!("octet {}", env!("CARGO_PKG_VERSION")),
            sources: vec![
                SourceFile {
                    file: name_of(input),
                    sha256: sha256_hex(&file_bytes),
                },
                SourceFile {
                    file: user_or_embedded.origin.clone(),
                    sha256: sha256_hex(&user_or_embedded.json),
                },
            ],
        },
        extra: Default::default(),
    };
    drop(file_bytes);
    let mut writer = ModelWriter::new(meta);
    tokenizer::add(&mut writer, "tokenizer.json", &user_or_embedded.json)?;
    let count = planned.len();
    for p in planned.drain(..) {
        store::store(&mut writer, recipe, p)?;
    }
    let bytes = writer
        .write(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(ConvertReport {
        bytes,
        tensors: count,
        architecture: architecture.as_str().to_string(),
        recipe: recipe.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    /// `--tflite-exact` sets the config flag for a BERT encoder with the erf GELU and refuses
    /// what the exact replay does not implement.
    #[test]
    fn exact_config_sets_the_flag_or_refuses() {
        use super::{exact_config, Architecture};
        let bert = serde_json::json!({"hidden_act": "gelu"});
        let config = exact_config(bert.clone(), Architecture::Bert).unwrap();
        assert_eq!(config["tflite_exact"], true);
        let e = exact_config(bert, Architecture::T5).unwrap_err().to_string();
        assert!(e.contains("BERT encoders only"), "{e}");
        let tanh = serde_json::json!({"hidden_act": "gelu_new"});
        let e = exact_config(tanh, Architecture::Bert).unwrap_err().to_string();
        assert!(e.contains("erf GELU only"), "{e}");
    }

    /// `octet convert` tries every walk and reports where each stopped.
    #[test]
    fn convert_names_every_walk_that_failed() {
        let dir = std::env::temp_dir().join(format!("octet-tflite-unrecognised-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("not-an-encoder.tflite");
        std::fs::write(&input, octet_tflite::testing::build(&octet_tflite::testing::valid())).unwrap();
        let recipe = crate::convert::recipe::Recipe::parse("f32", vec![], None).unwrap();
        let inputs = crate::convert::tflite::TfliteInputs {
            tokenizer: None,
            mapping: None,
            exact: false,
        };
        let err = crate::convert::tflite::convert(&input, &dir.join("out.octet"), &recipe, &inputs)
            .map(|_| ())
            .unwrap_err();
        let text = format!("{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            text.contains("as a BERT encoder:") && text.contains("as a T5 encoder:") && text.contains("--tflite-map"),
            "{text}"
        );
    }
}
