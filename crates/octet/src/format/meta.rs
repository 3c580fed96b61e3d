//! The typed model metadata stored in the `meta` object of a `.octet` file's JSON document:
//! architecture and its config, tokenizer, pooling, normalization, sequence length, task prompts,
//! Matryoshka dims, post-pooling dense layers, quantization recipe and provenance.
//!
//! Unknown JSON fields are ignored (a newer minor version may add some); data a converter wants to
//! keep without a schema goes in [`ModelMeta::extra`]. [`ModelMeta::validate`] checks the values
//! that do not depend on the tensor table; the reader checks tensor references afterwards.

use super::FormatError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The encoder architectures this version of octet implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// BERT-style encoders (all-MiniLM-L6-v2 and friends).
    Bert,
    /// Gemma 3 text encoders with bidirectional attention (EmbeddingGemma).
    Gemma3,
    /// T5 encoders.
    T5,
}

/// The architecture names this reader knows, for error messages.
pub const SUPPORTED_ARCHITECTURES: &str = "bert, gemma3, t5";

impl Architecture {
    /// The name used in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Gemma3 => "gemma3",
            Architecture::T5 => "t5",
        }
    }

    /// Parses an architecture name, with the documented error for unknown ones.
    pub fn parse(name: &str) -> Result<Architecture, FormatError> {
        match name {
            "bert" => Ok(Architecture::Bert),
            "gemma3" => Ok(Architecture::Gemma3),
            "t5" => Ok(Architecture::T5),
            _ => Err(FormatError::UnknownArchitecture {
                name: name.to_string(),
                supported: SUPPORTED_ARCHITECTURES,
            }),
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingMode {
    /// Mean over the non-padding tokens.
    Mean,
    /// The first token's vector.
    Cls,
    /// Element-wise maximum over the non-padding tokens.
    Max,
    /// The last non-padding token's vector.
    #[serde(rename = "lasttoken")]
    LastToken,
}

/// Pooling and final normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pooling {
    pub mode: PoolingMode,
    /// L2-normalize the final vector (after the dense layers and after Matryoshka truncation).
    pub normalize: bool,
}

/// One post-pooling projection `y = activation(W x + b)` (sentence-transformers `Dense`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseLayer {
    /// Input features.
    #[serde(rename = "in")]
    pub in_features: usize,
    /// Output features.
    #[serde(rename = "out")]
    pub out_features: usize,
    /// Activation name as sentence-transformers spells it, e.g. `"identity"`, `"tanh"`; the engine
    /// rejects names it does not implement.
    pub activation: String,
    /// Name of the weight tensor, logical shape `[out, in]` (f32, f16, bf16, i8 or a packed dtype).
    pub weight: String,
    /// Name of the bias tensor, shape `[out]` (f32, f16 or bf16), or `None` for no bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<String>,
}

/// How the weights were quantized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// Recipe name chosen by the converter, e.g. `"f32"`, `"int8-per-channel"`.
    pub recipe: String,
    /// Group size along k for grouped int8 weights, `None` when each column is one group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_group: Option<usize>,
    /// Free-form notes (which layers were kept in float, calibration, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Quantization {
    /// The recipe name of a TFLite file whose author quantized it: the converter keeps its
    /// int8 tensors as they are, and the engine replays what the interpreter computes.
    pub const TFLITE_INT8: &'static str = "tflite-int8";

    /// Whether the weights are a TFLite file's own int8 tensors ([`Self::TFLITE_INT8`]).
    pub fn is_tflite_int8(&self) -> bool {
        self.recipe == Self::TFLITE_INT8
    }
}

/// One source file the model was converted from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// File name relative to the source model folder, e.g. `"model.safetensors"`.
    pub file: String,
    /// Lower-case hex sha256 of the file (64 characters).
    pub sha256: String,
}

/// Where the model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The converter and its version, e.g. `"octet-convert 0.1.0"`.
    pub converter: String,
    /// The source files and their checksums.
    #[serde(default)]
    pub sources: Vec<SourceFile>,
}

/// Everything the engine needs besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The encoder architecture.
    pub architecture: Architecture,
    /// The architecture's full config (a JSON object, e.g. the Hugging Face `config.json`); parsed
    /// by the engine's model module.
    pub config: serde_json::Value,
    /// Name of the `u8` tensor holding the `tokenizer.json` bytes.
    pub tokenizer: String,
    /// Pooling and normalization.
    pub pooling: Pooling,
    /// Longest input in tokens, including special tokens.
    pub max_seq_len: usize,
    /// Named task prompts: name -> prefix prepended to the input text.
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
    /// The prompt used when the caller names none; must be a key of `prompts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_prompt: Option<String>,
    /// Output sizes the model was trained to be truncated to (Matryoshka); empty if none.
    #[serde(default)]
    pub matryoshka_dims: Vec<usize>,
    /// Post-pooling projections, applied in order.
    #[serde(default)]
    pub dense: Vec<DenseLayer>,
    /// The quantization recipe.
    pub quantization: Quantization,
    /// Source files and converter.
    pub provenance: Provenance,
    /// Extra data without a schema, for forward compatibility.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// True for a 64-character lower- or upper-case hex string.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ModelMeta {
    /// Checks the values that do not depend on the tensor table.
    pub fn validate(&self) -> Result<(), FormatError> {
        if !self.config.is_object() {
            return Err(FormatError::bad_meta("`config` must be a JSON object"));
        }
        if self.tokenizer.is_empty() {
            return Err(FormatError::bad_meta(
                "`tokenizer` must name the tensor holding tokenizer.json",
            ));
        }
        if self.max_seq_len == 0 {
            return Err(FormatError::bad_meta("`max_seq_len` must be at least 1"));
        }
        if let Some(default) = &self.default_prompt {
            if !self.prompts.contains_key(default) {
                return Err(FormatError::bad_meta(format!(
                    "`default_prompt` is '{default}', which is not one of the `prompts`"
                )));
            }
        }
        if self.matryoshka_dims.contains(&0) {
            return Err(FormatError::bad_meta("`matryoshka_dims` must not contain 0"));
        }
        for (i, layer) in self.dense.iter().enumerate() {
            if layer.in_features == 0 || layer.out_features == 0 {
                return Err(FormatError::bad_meta(format!("dense layer {i} has a zero size")));
            }
            if i > 0 && self.dense[i - 1].out_features != layer.in_features {
                return Err(FormatError::bad_meta(format!(
                    "dense layer {i} takes {} inputs but the layer before it gives {}",
                    layer.in_features,
                    self.dense[i - 1].out_features
                )));
            }
        }
        if self.quantization.k_group == Some(0) {
            return Err(FormatError::bad_meta("`quantization.k_group` must not be 0"));
        }
        for source in &self.provenance.sources {
            if !is_sha256_hex(&source.sha256) {
                return Err(FormatError::bad_meta(format!(
                    "provenance sha256 of '{}' is not 64 hex digits",
                    source.file
                )));
            }
        }
        Ok(())
    }
}
