//! Reading a sentence-transformers / Hugging Face model folder: `config.json`,
//! `model.safetensors`, `tokenizer.json`, `modules.json`, `1_Pooling/config.json`, any
//! `Dense` modules, and the prompts in `config_sentence_transformers.json`.

use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A memory-mapped safetensors file.
pub struct SafetensorsFile {
    pub path: PathBuf,
    map: Mmap,
}

impl SafetensorsFile {
    /// Maps a safetensors file and checks that its header parses.
    pub fn open(path: &Path) -> Result<SafetensorsFile> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the map is read-only and lives as long as this struct; the converter
        // documents that its inputs must not be modified while it runs.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        SafeTensors::deserialize(&map)
            .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            map,
        })
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.map).expect("validated in open")
    }

    /// Every tensor name.
    pub fn names(&self) -> Vec<String> {
        self.tensors().names().into_iter().map(String::from).collect()
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }

    /// A tensor converted to f32, with its shape; `expected` is checked if given.
    pub fn f32(&self, name: &str, expected: Option<&[usize]>) -> Result<(Vec<f32>, Vec<usize>)> {
        let st = self.tensors();
        let view = st
            .tensor(name)
            .with_context(|| format!("tensor '{name}' not found in {}", self.path.display()))?;
        let shape = view.shape().to_vec();
        if let Some(e) = expected {
            if shape != e {
                bail!(
                    "tensor '{name}' in {} has shape {shape:?}, expected {e:?}",
                    self.path.display()
                );
            }
        }
        let bytes = view.data();
        let values = match view.dtype() {
            StDtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            StDtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            StDtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => bail!("tensor '{name}' has dtype {other:?}; only F32, F16 and BF16 weights can be converted"),
        };
        Ok((values, shape))
    }
}

/// One entry of `modules.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ModuleEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A `Dense` module: a projection after pooling.
#[derive(Clone, Debug)]
pub struct DenseModule {
    pub folder: PathBuf,
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
    pub activation: String,
}

/// Pooling as `1_Pooling/config.json` states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourcePooling {
    Mean,
    Cls,
    Max,
    LastToken,
}

/// Everything the converter reads from a model folder.
pub struct SourceFolder {
    pub root: PathBuf,
    pub config: Value,
    pub weights: SafetensorsFile,
    pub tokenizer_json: Vec<u8>,
    pub pooling: SourcePooling,
    pub normalize: bool,
    pub max_seq_len: Option<usize>,
    pub dense: Vec<DenseModule>,
    pub prompts: BTreeMap<String, String>,
    pub default_prompt: Option<String>,
    /// (file name relative to root, sha256 hex) of every file read.
    pub sources: Vec<(String, String)>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl SourceFolder {
    /// Reads a sentence-transformers folder (or a plain Hugging Face folder: then pooling is
    /// mean, normalization on, as most embedding models use).
    pub fn open(root: &Path) -> Result<SourceFolder> {
        if !root.is_dir() {
            bail!("{} is not a folder; give the sentence-transformers / Hugging Face model folder (with config.json and model.safetensors)", root.display());
        }
        let mut sources = Vec::new();
        let mut track = |rel: &str| -> Result<PathBuf> {
            let p = root.join(rel);
            sources.push((rel.to_string(), sha256_file(&p)?));
            Ok(p)
        };
        let config = read_json(&track("config.json")?)?;
        let weights = SafetensorsFile::open(&track("model.safetensors")?)?;
        let tokenizer_json = std::fs::read(track("tokenizer.json")?).context("cannot read tokenizer.json")?;

        let mut pooling = SourcePooling::Mean;
        let mut normalize = true;
        let mut dense = Vec::new();
        let modules_path = root.join("modules.json");
        if modules_path.exists() {
            let modules: Vec<ModuleEntry> = serde_json::from_value(read_json(&track("modules.json")?)?)
                .context("modules.json: unexpected layout")?;
            normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));
            for m in &modules {
                if m.kind.ends_with("Pooling") {
                    let cfg = read_json(&track(&format!("{}/config.json", m.path))?)?;
                    pooling = parse_pooling(&cfg)?;
                } else if m.kind.ends_with("Dense") {
                    let cfg = read_json(&track(&format!("{}/config.json", m.path))?)?;
                    let get = |k: &str| {
                        cfg.get(k)
                            .and_then(Value::as_u64)
                            .map(|v| v as usize)
                            .with_context(|| format!("{}/config.json lacks {k}", m.path))
                    };
                    dense.push(DenseModule {
                        folder: root.join(&m.path),
                        in_features: get("in_features")?,
                        out_features: get("out_features")?,
                        bias: cfg.get("bias").and_then(Value::as_bool).unwrap_or(true),
                        activation: cfg
                            .get("activation_function")
                            .and_then(Value::as_str)
                            .unwrap_or("torch.nn.modules.activation.Tanh")
                            .to_string(),
                    });
                    track(&format!("{}/model.safetensors", m.path))?;
                } else if !(m.kind.ends_with("Transformer") || m.kind.ends_with("Normalize")) {
                    bail!(
                        "modules.json names module '{}' of type {}, which octet does not support",
                        m.path,
                        m.kind
                    );
                }
            }
        }
        let mut max_seq_len = None;
        if root.join("sentence_bert_config.json").exists() {
            let cfg = read_json(&track("sentence_bert_config.json")?)?;
            max_seq_len = cfg.get("max_seq_length").and_then(Value::as_u64).map(|v| v as usize);
        }
        let mut prompts = BTreeMap::new();
        let mut default_prompt = None;
        if root.join("config_sentence_transformers.json").exists() {
            let cfg = read_json(&track("config_sentence_transformers.json")?)?;
            if let Some(map) = cfg.get("prompts").and_then(Value::as_object) {
                for (k, v) in map {
                    if let Some(s) = v.as_str() {
                        prompts.insert(k.clone(), s.to_string());
                    }
                }
            }
            default_prompt = cfg.get("default_prompt_name").and_then(Value::as_str).map(String::from);
        }
        Ok(SourceFolder {
            root: root.to_path_buf(),
            config,
            weights,
            tokenizer_json,
            pooling,
            normalize,
            max_seq_len,
            dense,
            prompts,
            default_prompt,
            sources,
        })
    }

    /// The `model_type` in config.json.
    pub fn model_type(&self) -> &str {
        self.config.get("model_type").and_then(Value::as_str).unwrap_or("")
    }

    /// The first of `prefixes` under which the weights hold `anchor` (e.g. `bert.` for
    /// `bert.embeddings.word_embeddings.weight`); the error says the checkpoint is not `family`.
    pub fn weight_prefix(&self, prefixes: &[&'static str], anchor: &str, family: &str) -> Result<&'static str> {
        prefixes
            .iter()
            .copied()
            .find(|p| self.weights.contains(&format!("{p}{anchor}")))
            .with_context(|| {
                format!(
                    "no '{anchor}' in {}: not a {family} checkpoint",
                    self.weights.path.display()
                )
            })
    }

    /// An integer field of config.json.
    pub fn config_usize(&self, key: &str) -> Result<usize> {
        self.config
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .with_context(|| format!("config.json lacks the integer '{key}'"))
    }
}

fn parse_pooling(cfg: &Value) -> Result<SourcePooling> {
    // sentence-transformers 6 writes one string; earlier versions one flag per mode.
    if let Some(mode) = cfg.get("pooling_mode").and_then(Value::as_str) {
        return match mode {
            "mean" => Ok(SourcePooling::Mean),
            "cls" => Ok(SourcePooling::Cls),
            "max" => Ok(SourcePooling::Max),
            "lasttoken" => Ok(SourcePooling::LastToken),
            other => bail!("pooling mode '{other}' is not supported (mean, cls, max, lasttoken)"),
        };
    }
    let on = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    let modes = [
        (on("pooling_mode_mean_tokens"), SourcePooling::Mean),
        (on("pooling_mode_cls_token"), SourcePooling::Cls),
        (on("pooling_mode_max_tokens"), SourcePooling::Max),
        (on("pooling_mode_lasttoken"), SourcePooling::LastToken),
    ];
    let chosen: Vec<SourcePooling> = modes.into_iter().filter(|(on, _)| *on).map(|(_, m)| m).collect();
    match chosen.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the pooling config enables no pooling mode"),
        _ => bail!("the pooling config enables several modes at once ({chosen:?}); octet supports one"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pooling_configs_of_both_sentence_transformers_generations() {
        assert_eq!(
            parse_pooling(&json!({"pooling_mode_mean_tokens": true})).unwrap(),
            SourcePooling::Mean
        );
        assert_eq!(
            parse_pooling(&json!({"pooling_mode": "cls"})).unwrap(),
            SourcePooling::Cls
        );
        assert!(parse_pooling(&json!({"pooling_mode": "weightedmean"})).is_err());
        assert!(parse_pooling(&json!({})).is_err());
    }
}
