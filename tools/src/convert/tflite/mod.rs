//! `octet convert model.tflite [--tokenizer tokenizer.json]`: a TFLite BERT or T5 encoder to a
//! `.octet` file.
//!
//! The graph is recognised by [`octet_tflite::bert`] (planned in [`bert`]), else by
//! [`octet_tflite::t5`] (planned in [`t5`]); a BERT's tensors can also be named by a
//! `--tflite-map` file. When neither walk fits, the error says where each stopped. The graph's
//! constants become octet's tensors ([`common`]: the steps both plans share): int8 tensors keep
//! their exact values, scales and zero points ([`Logical::QuantizedLinear`],
//! [`Logical::QuantizedTable`]); float32 and float16 ones follow the recipe like any source.
//! The config the engine reads is built from the graph as the engine's typed
//! [`octet::model::ModelConfig`] and stored serialized. TFLite's hybrid FULLY_CONNECTED quantizes each activation row on the fly, so
//! the int8 layers quantize per row too: asymmetrically (the engine's `asymmetric_activations`)
//! when the file's FULLY_CONNECTED options ask for it, as the converter's do. A file with int8
//! tensors is kept as it is: its float tensors stay f32 whatever `--quant` says (recipe name
//! `tflite-int8`); a float file follows the recipe.
//!
//! The tokenizer is not inside a converter-written file: `--tokenizer` names the model's
//! `tokenizer.json`. A `sentence_bert_config.json` beside it sets the window
//! (`max_seq_length`); else the window is the position table's length. Without `--tokenizer`,
//! the tokenizer in the file's metadata is used ([`tokenizer_source`]).
//!
//! Modules: this one recognises and writes; [`bert`] and [`t5`] each plan one architecture and
//! import only [`common`], never each other.

mod bert;
mod common;
mod t5;
pub mod tokenizer_source;

pub use bert::{plan, Sizes};

use super::recipe::Recipe;
use super::{store, tokenizer, ConvertReport, Logical};
use anyhow::{bail, Context, Result};
use common::Plan;
use octet::format::{ModelMeta, ModelWriter, Pooling, Provenance, Quantization, SourceFile};
use octet::model::ModelConfig;
use octet_tflite::TfliteModel;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What `octet convert` needs besides the .tflite file.
pub struct TfliteInputs<'a> {
    /// The model's `tokenizer.json`; None: the tokenizer in the file's metadata.
    pub tokenizer: Option<&'a Path>,
    /// A mapping file (see [`octet_tflite::bert::from_mapping`]) used instead of recognising the graph.
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

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Recognises the encoder in `model`: BERT, then T5. When neither fits, the error says where
/// each walk stopped.
fn recognise(model: &TfliteModel, input: &Path) -> Result<Plan> {
    let bert_error = match octet_tflite::bert::recognise(model) {
        Ok(g) => return bert::plan_bert(model, &g),
        Err(e) => e,
    };
    match octet_tflite::t5::recognise(model) {
        Ok(g) => t5::plan(model, &g),
        Err(t5_error) => bail!(
            "{}: the graph is not recognised.\n  as a BERT encoder: {bert_error}\n  as a T5 encoder: {t5_error}\n\
             pass --tflite-map FILE to name a BERT encoder's tensors by hand",
            input.display()
        ),
    }
}

/// `config` with `tflite_exact` set, for `--tflite-exact`: a BERT encoder with the erf GELU,
/// whose int8 layers (if any) quantize their inputs asymmetrically as the engine's exact path
/// assumes.
fn exact_config(config: ModelConfig) -> Result<ModelConfig> {
    match config {
        ModelConfig::Bert(mut bert) => {
            if bert.hidden_act != "gelu" {
                bail!(
                    "--tflite-exact replays the erf GELU only; this encoder uses {}",
                    bert.hidden_act
                );
            }
            bert.tflite_exact = true;
            Ok(ModelConfig::Bert(bert))
        }
        other => bail!(
            "--tflite-exact replays BERT encoders only; this file is a {} encoder",
            other.architecture()
        ),
    }
}

/// Converts the TFLite file `input` into the `.octet` file `output`.
pub fn convert(input: &Path, output: &Path, recipe: &Recipe, inputs: &TfliteInputs) -> Result<ConvertReport> {
    let model = TfliteModel::open(input)?;
    let plan = match inputs.mapping {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let map: serde_json::Value =
                serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
            bert::plan_bert(&model, &octet_tflite::bert::from_mapping(&model, &map)?)?
        }
        None => recognise(&model, input)?,
    };
    let Plan {
        mut planned,
        config,
        pooling,
        normalize,
        positions,
        dense,
    } = plan;
    let config = if inputs.exact { exact_config(config)? } else { config };
    let architecture = config.architecture();
    let user_or_embedded = tokenizer_source::resolve(&model, inputs.tokenizer, input)?;
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
            name: octet::format::Quantization::TFLITE_INT8.to_string(),
            ..Recipe::parse("f32", recipe.keep.clone(), recipe.k_group)?
        };
        &as_converted
    } else {
        recipe
    };
    let meta = ModelMeta {
        architecture,
        config: config.to_value(),
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
        use super::exact_config;
        use octet::model::ModelConfig;
        let bert = |act: &str| {
            ModelConfig::parse(
                octet::format::Architecture::Bert,
                &serde_json::json!({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 8, "hidden_act": act}),
            )
            .unwrap()
        };
        let config = exact_config(bert("gelu")).unwrap();
        assert_eq!(config.to_value()["tflite_exact"], true);
        let e = exact_config(bert("gelu_new")).unwrap_err().to_string();
        assert!(e.contains("erf GELU only"), "{e}");
        let t5 = ModelConfig::parse(
            octet::format::Architecture::T5,
            &serde_json::json!({"d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2, "vocab_size": 10,
                "relative_attention_num_buckets": 32}),
        )
        .unwrap();
        let e = exact_config(t5).unwrap_err().to_string();
        assert!(e.contains("BERT encoders only"), "{e}");
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
