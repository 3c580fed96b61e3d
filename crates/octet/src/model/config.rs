//! [`ModelConfig`]: the architecture's config, typed. One struct per architecture
//! ([`BertConfig`], [`Gemma3Config`], [`T5Config`]) holds the fields its encoder reads, with
//! serde defaults for the ones a Hugging Face `config.json` may leave out.
//!
//! The file's `meta.config` is that JSON object (FORMAT.md section "meta"): the
//! sentence-transformers importers copy the model's `config.json` through verbatim (fields the
//! engine does not read are kept and ignored); the TFLite importers build the typed struct from
//! the graph and store it serialized ([`ModelConfig::to_value`]). Both load the same way.
//!
//! Reading needs the file's `architecture` (the config object names no architecture of its
//! own that octet could trust: `model_type` is optional and spelled per family), so it goes
//! through [`ModelConfig::parse`] rather than an untagged `Deserialize`, which would read a
//! Gemma config as a BERT one (they share the BERT fields). The engine parses it once, when the
//! embedder binds.

use super::bert::BertConfig;
use super::gemma3::Gemma3Config;
use super::t5::T5Config;
use crate::error::{Error, Result};
use crate::format::{Architecture, ModelMeta};
use serde::Serialize;

/// The config of one of the architectures octet runs. Serializes as the architecture's
/// config object (no tag: the tag is the file's `architecture`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelConfig {
    Bert(BertConfig),
    Gemma3(Gemma3Config),
    T5(T5Config),
}

impl ModelConfig {
    /// Parses `config` as the config of `architecture`.
    pub fn parse(architecture: Architecture, config: &serde_json::Value) -> Result<ModelConfig> {
        fn typed<T: serde::de::DeserializeOwned>(arch: Architecture, config: &serde_json::Value) -> Result<T> {
            T::deserialize(config).map_err(|e| Error::model(arch.as_str(), format!("bad config: {e}")))
        }
        Ok(match architecture {
            Architecture::Bert => ModelConfig::Bert(typed(architecture, config)?),
            Architecture::Gemma3 => ModelConfig::Gemma3(typed(architecture, config)?),
            Architecture::T5 => ModelConfig::T5(typed(architecture, config)?),
        })
    }

    /// The typed config of a file's metadata.
    pub fn of(meta: &ModelMeta) -> Result<ModelConfig> {
        ModelConfig::parse(meta.architecture, &meta.config)
    }

    /// The JSON object a converter stores as `meta.config`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a typed config always serializes")
    }

    /// The architecture this config is for.
    pub fn architecture(&self) -> Architecture {
        match self {
            ModelConfig::Bert(_) => Architecture::Bert,
            ModelConfig::Gemma3(_) => Architecture::Gemma3,
            ModelConfig::T5(_) => Architecture::T5,
        }
    }

    /// Width of the encoder's hidden states.
    pub fn hidden_size(&self) -> usize {
        match self {
            ModelConfig::Bert(c) => c.hidden_size,
            ModelConfig::Gemma3(c) => c.hidden_size,
            ModelConfig::T5(c) => c.d_model,
        }
    }

    /// int8 layers (the encoder's and the Dense projections after pooling) quantize their
    /// input rows asymmetrically, as TFLite's hybrid kernels do (set by the TFLite importers).
    pub fn asymmetric_activations(&self) -> bool {
        match self {
            ModelConfig::Bert(c) => c.asymmetric_activations,
            ModelConfig::Gemma3(_) => false,
            ModelConfig::T5(c) => c.asymmetric_activations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A plain Hugging Face config.json (as the sentence-transformers importer copies it through)
    /// loads with the defaults; the importer-only fields are off.
    #[test]
    fn hugging_face_configs_load_with_defaults() {
        let hf = json!({
            "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "vocab_size": 30522, "max_position_embeddings": 512, "hidden_act": "gelu"
        });
        let ModelConfig::Bert(c) = ModelConfig::parse(Architecture::Bert, &hf).unwrap() else {
            panic!("not a BERT config")
        };
        assert_eq!((c.type_vocab_size, c.layer_norm_eps, c.folded_norms), (2, 1e-12, false));
        assert_eq!(c.model_type.as_deref(), Some("bert"));
        assert!(!ModelConfig::Bert(c).asymmetric_activations());
        let err = ModelConfig::parse(Architecture::T5, &hf).unwrap_err().to_string();
        assert!(err.contains("bad config"), "{err}");
    }

    /// What a converter writes reads back as the same config.
    #[test]
    fn a_stored_config_round_trips() {
        let t5 = json!({
            "model_type": "t5", "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1,
            "num_heads": 2, "vocab_size": 10, "feed_forward_proj": "gated-gelu_python",
            "asymmetric_activations": true, "tflite_input_length": 64, "tflite_pad_id": 0
        });
        let config = ModelConfig::parse(Architecture::T5, &t5).unwrap();
        assert!(config.asymmetric_activations());
        assert_eq!((config.architecture(), config.hidden_size()), (Architecture::T5, 8));
        let stored = config.to_value();
        assert_eq!(stored["tflite_pad_id"], 0);
        assert_eq!(stored["relative_attention_num_buckets"], 32);
        assert_eq!(ModelConfig::parse(Architecture::T5, &stored).unwrap(), config);
    }
}
