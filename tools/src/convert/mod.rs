//! `octet convert`: a sentence-transformers / Hugging Face folder to a `.octet` file.
//!
//! The source is read ([`source`]), mapped to octet's tensor names by its architecture
//! ([`bert`]), each tensor is stored in the precision the [`recipe`] chooses ([`store`]),
//! and the engine crate's writer writes the file (temporary file, then rename).

pub mod bert;
pub mod calibrate;
pub mod channel_order;
pub mod gemma3;
pub mod gptq;
pub mod recipe;
pub mod source;
pub mod store;
pub mod t5;
pub mod tflite;
pub mod tokenizer;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use octet::format::{
    Architecture, DenseLayer, ModelMeta, ModelWriter, Pooling, PoolingMode, Provenance, Quantization, SourceFile,
};
use recipe::{Precision, Recipe};
use source::{SourceFolder, SourcePooling};
use std::path::Path;

/// A tensor in octet's naming, before a precision is chosen for it.
#[derive(Clone)]
pub enum Logical {
    /// y = x W^T + b with W [n, k]. `after_norm`: the input comes straight from a norm layer,
    /// whose outlier channels make per-token int8 activation scales too coarse.
    Linear {
        weight: Vec<f32>,
        n: usize,
        k: usize,
        bias: Option<Vec<f32>>,
        after_norm: bool,
    },
    /// An embedding table [rows, dim]: token embeddings, or position embeddings.
    Table {
        data: Vec<f32>,
        rows: usize,
        dim: usize,
        kind: TableKind,
    },
    /// Anything else (norm weights, position tables), always f32.
    Vector { data: Vec<f32>, shape: Vec<usize> },
    /// A linear layer already quantized by its source (a TFLite file): int8 weights [n, k]
    /// with one scale per output channel and zero point 0. Stored as they are under every
    /// recipe, never re-quantized; activations are quantized per token (as TFLite's hybrid
    /// FULLY_CONNECTED does, per row) unless `--k-group` says otherwise.
    QuantizedLinear {
        q: Vec<i8>,
        scales: Vec<f32>,
        n: usize,
        k: usize,
        bias: Option<Vec<f32>>,
    },
    /// An int8 embedding table [rows, dim] already quantized by its source: one scale and zero
    /// point for the whole table, or one per row. Stored as it is.
    QuantizedTable {
        q: Vec<i8>,
        rows: usize,
        dim: usize,
        scales: Vec<f32>,
        zero_points: Vec<i32>,
    },
}

/// What an embedding table is indexed by; recipes treat the two differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// Indexed by token id (the big table).
    Token,
    /// Indexed by position.
    Position,
}

/// A named logical tensor.
#[derive(Clone)]
pub struct Planned {
    pub name: String,
    pub tensor: Logical,
}

impl Planned {
    pub fn new(name: &str, tensor: Logical) -> Planned {
        Planned {
            name: name.to_string(),
            tensor,
        }
    }
}

/// What `convert` did.
pub struct ConvertReport {
    pub bytes: u64,
    pub tensors: usize,
    pub architecture: String,
    /// The recipe the file was written with (a pre-quantized TFLite file has its own).
    pub recipe: String,
}

/// Converts the folder `input` into the `.octet` file `output` with `recipe`.
pub fn convert(input: &Path, output: &Path, recipe: &Recipe, show_progress: bool) -> Result<ConvertReport> {
    let src = SourceFolder::open(input)?;
    let max_seq_len = match src.max_seq_len {
        Some(n) => n,
        // T5 configs name their trained length n_positions.
        None => src
            .config_usize("max_position_embeddings")
            .or_else(|_| src.config_usize("n_positions"))
            .context("no max_seq_length in sentence_bert_config.json, and no max_position_embeddings or n_positions in config.json")?,
    };
    // Gemma's activations carry outliers that one scale per token cannot hold in every layer:
    // unless told otherwise, its int8 layers take the groups of gemma3::LAYER_K_GROUPS.
    // Its token table stays at 8 bits by default: 6 bits measured a min cosine of 0.9905
    // (gemma3.rs); 6 or 7 bits (not measured on Gemma) are kept when asked for (--table-bits).
    let arch_recipe;
    let default_table = |bits: Precision| {
        if recipe.table == Precision::U6 && !recipe.table_given {
            bits
        } else {
            recipe.table
        }
    };
    let recipe = if matches!(src.model_type(), "gemma3_text" | "gemma3") {
        arch_recipe = Recipe {
            layer_k_groups: &gemma3::LAYER_K_GROUPS,
            table: default_table(Precision::I8),
            ..recipe.clone()
        };
        &arch_recipe
    } else if src.model_type() == "bert" && recipe.layer_k_groups.is_empty() {
        // BERT's FFN down projection takes groups of 128 (bert::LAYER_K_GROUPS), and its token
        // table 7 bits by default: with them MiniLM's int8 file is 24.3% of the safetensors and
        // matches llama.cpp Q8_0's cosine to fp32 (recipe's module docs).
        arch_recipe = Recipe {
            layer_k_groups: &bert::LAYER_K_GROUPS,
            table: default_table(Precision::U7),
            ..recipe.clone()
        };
        &arch_recipe
    } else {
        recipe
    };
    check_layers_listed(&src)?;
    let (architecture, mut planned) = match src.model_type() {
        "bert" => (Architecture::Bert, bert::plan(&src, max_seq_len)?),
        "gemma3_text" | "gemma3" => (Architecture::Gemma3, gemma3::plan(&src, max_seq_len)?),
        "t5" => (Architecture::T5, t5::plan(&src, max_seq_len)?),
        "" => bail!("config.json has no model_type; cannot tell the architecture"),
        other => bail!("unknown architecture '{other}' in config.json; octet converts: bert, gemma3_text, t5"),
    };
    for (j, d) in src.dense.iter().enumerate() {
        let file = source::SafetensorsFile::open(&d.folder.join("model.safetensors"))?;
        let (weight, _) = file.f32("linear.weight", Some(&[d.out_features, d.in_features]))?;
        let bias = if d.bias {
            Some(file.f32("linear.bias", Some(&[d.out_features]))?.0)
        } else {
            None
        };
        planned.push(Planned::new(
            &format!("dense.{j}"),
            Logical::Linear {
                weight,
                n: d.out_features,
                k: d.in_features,
                bias,
                after_norm: false,
            },
        ));
    }
    let meta = ModelMeta {
        architecture,
        config: src.config.clone(),
        tokenizer: "tokenizer.json".to_string(),
        pooling: Pooling {
            mode: match src.pooling {
                SourcePooling::Mean => PoolingMode::Mean,
                SourcePooling::Cls => PoolingMode::Cls,
                SourcePooling::Max => PoolingMode::Max,
                SourcePooling::LastToken => PoolingMode::LastToken,
            },
            normalize: src.normalize,
        },
        max_seq_len,
        prompts: src.prompts.clone(),
        default_prompt: src.default_prompt.clone(),
        matryoshka_dims: matryoshka_dims(architecture, &src),
        dense: src
            .dense
            .iter()
            .enumerate()
            .map(|(j, d)| DenseLayer {
                in_features: d.in_features,
                out_features: d.out_features,
                activation: d.activation.clone(),
                weight: format!("dense.{j}.weight"),
                bias: d.bias.then(|| format!("dense.{j}.bias")),
            })
            .collect(),
        quantization: Quantization {
            recipe: recipe.name.clone(),
            k_group: recipe.k_group,
            notes: None,
        },
        provenance: Provenance {
            converter: format!("octet {}", env!("CARGO_PKG_VERSION")),
            sources: src
                .sources
                .iter()
                .map(|(file, sha256)| SourceFile {
                    file: file.clone(),
                    sha256: sha256.clone(),
                })
                .collect(),
        },
        extra: Default::default(),
    };

    let bar = if show_progress {
        ProgressBar::new(planned.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} tensors ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut grams = calibrate_weights(&src, recipe, &meta, &planned, &bar)?;
    // BERT: the hidden channels stored largest first (channel_order), chosen from calibration.
    let mut order = None;
    if let (Architecture::Bert, Some((_, grams))) = (architecture, grams.as_mut()) {
        let h = src.config_usize("hidden_size")?;
        let layers = src.config_usize("num_hidden_layers")?;
        order = channel_order::by_input_size(grams, &bert::channel_inputs(layers), h);
        if let Some(order) = &order {
            channel_order::apply(&mut planned, grams, order, bert::channel_role)?;
        }
    }
    let mut notes = Vec::new();
    if !recipe.keep.is_empty() {
        notes.push(format!("kept in f32: {}", recipe.keep.join(", ")));
    }
    if let Some((texts, grams)) = &grams {
        let tokens = grams.values().map(|g| g.rows).max().unwrap_or(0);
        notes.push(format!(
            "int8 weights rounded by GPTQ, calibrated on {texts} texts ({tokens} tokens)"
        ));
    }
    if order.is_some() {
        notes.push("hidden channels stored largest first (encoder.channel_order)".to_string());
    }
    let mut meta = meta;
    meta.quantization.notes = (!notes.is_empty()).then(|| notes.join("; "));
    bar.set_message("quantizing");
    let mut writer = ModelWriter::new(meta);
    tokenizer::add(&mut writer, "tokenizer.json", &src.tokenizer_json)?;
    if let Some(order) = &order {
        writer.add_i32(
            octet::pooling::ChannelOrder::TENSOR,
            &[order.len()],
            &channel_order::tensor(order)?,
        )?;
    }
    let count = planned.len();
    let mut rounded = match &grams {
        Some((_, grams)) => round_calibrated(&planned, grams),
        None => Default::default(),
    };
    drop(grams);
    for p in planned.drain(..) {
        let codes = rounded.remove(&p.name);
        store::store_calibrated(&mut writer, recipe, p, codes)?;
        bar.inc(1);
    }
    bar.set_message("writing");
    let bytes = writer
        .write(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    bar.finish_and_clear();
    Ok(ConvertReport {
        bytes,
        tensors: count,
        architecture: architecture.as_str().to_string(),
        recipe: recipe.name.clone(),
    })
}

/// When `recipe` rounds linear layers to int8 and its calibration gives texts for this
/// architecture: runs the f32 model on them ([`calibrate`]) and returns the number of texts and
/// the statistics of every int8 layer's input, by weight name.
fn calibrate_weights(
    src: &SourceFolder,
    recipe: &Recipe,
    meta: &ModelMeta,
    planned: &[Planned],
    bar: &ProgressBar,
) -> Result<Option<(usize, std::collections::HashMap<String, calibrate::Gram>)>> {
    if recipe.linear != Precision::I8 {
        return Ok(None);
    }
    let Some(texts) = recipe.calibration.texts(src.model_type())? else {
        return Ok(None);
    };
    let int8_weights: std::collections::HashSet<String> = planned
        .iter()
        .filter(|p| matches!(p.tensor, Logical::Linear { .. }) && recipe.linear_precision(&p.name) == Precision::I8)
        .map(|p| format!("{}.weight", p.name))
        .collect();
    if int8_weights.is_empty() {
        return Ok(None);
    }
    bar.set_message("calibrating");
    let start = || -> Result<ModelWriter> {
        let mut writer = ModelWriter::new(meta.clone());
        tokenizer::add(&mut writer, "tokenizer.json", &src.tokenizer_json)?;
        Ok(writer)
    };
    let grams = calibrate::grams(start, planned, &texts, move |name| int8_weights.contains(name))?;
    Ok(Some((texts.len(), grams)))
}

/// GPTQ codes and scales of every linear layer with calibration statistics, by layer name,
/// computed in parallel (a layer whose H cannot be factored is left out: rounded to nearest).
fn round_calibrated(
    planned: &[Planned],
    grams: &std::collections::HashMap<String, calibrate::Gram>,
) -> std::collections::HashMap<String, (Vec<i8>, Vec<f32>)> {
    use rayon::prelude::*;
    planned
        .par_iter()
        .filter_map(|p| {
            let Logical::Linear { weight, n, k, .. } = &p.tensor else {
                return None;
            };
            let gram = grams.get(&format!("{}.weight", p.name)).filter(|g| g.k == *k)?;
            Some((p.name.clone(), gptq::quantize(weight, *n, *k, &gram.h)?))
        })
        .collect()
}

/// The Matryoshka widths to record: EmbeddingGemma's, for a Gemma 3 model whose output
/// (after its dense projections) is 768 wide; none otherwise.
fn matryoshka_dims(architecture: Architecture, src: &SourceFolder) -> Vec<usize> {
    let width = src
        .dense
        .last()
        .map(|d| d.out_features)
        .or_else(|| src.config_usize("hidden_size").ok());
    if architecture == Architecture::Gemma3 && width == Some(768) {
        gemma3::EMBEDDINGGEMMA_MATRYOSHKA_DIMS.to_vec()
    } else {
        Vec::new()
    }
}

/// Fails if the weights hold layers the config does not list (`num_hidden_layers` or
/// `num_layers` too small): the converter reads layers by the config's count, so the extra
/// ones would be dropped without a word and the model would embed differently.
fn check_layers_listed(src: &SourceFolder) -> Result<()> {
    let Ok(count) = src
        .config_usize("num_hidden_layers")
        .or_else(|_| src.config_usize("num_layers"))
    else {
        return Ok(());
    };
    let mut extra: Vec<(usize, String)> = Vec::new();
    for name in src.weights.names() {
        let parts: Vec<&str> = name.split('.').collect();
        let index = parts.windows(2).find_map(|w| {
            matches!(w[0], "layer" | "layers" | "block" | "h")
                .then(|| w[1].parse::<usize>().ok())
                .flatten()
        });
        if let Some(i) = index.filter(|&i| i >= count) {
            extra.push((i, name));
        }
    }
    if extra.is_empty() {
        return Ok(());
    }
    extra.sort();
    let highest = extra.last().map_or(0, |e| e.0);
    bail!(
        "model.safetensors holds weights for layers {count} to {highest} (e.g. '{}'), but config.json lists only \
         {count} layers; the converted model would silently lack them: fix the layer count in config.json",
        extra[0].1
    )
}
