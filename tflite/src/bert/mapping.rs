//! A BERT encoder named by a user's mapping file (`--tflite-map`), for graphs the walk does
//! not recognise.

use super::{BertGraph, InputRoles, LayerRefs, NormRef, Pooled, PoolingFound};
use crate::graph::LinearRef;
use crate::{TensorType, TfliteError, TfliteModel};
use std::collections::BTreeMap;

/// A user's mapping: tensor (name or decimal index) -> engine name, plus the hyperparameters
/// the graph would have given.
///
/// ```json
/// {"tensors": {"Const_100": "embeddings.word", "7": "layers.0.attention.query.weight", ...},
///  "config": {"num_attention_heads": 12, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
///             "folded_norms": true, "normalize": true}}
/// ```
///
/// Engine names: `embeddings.{word,position,token_type}`, `embeddings.norm.{weight,bias}`,
/// `layers.N.attention.{query,key,value,output}.{weight,bias}`, `layers.N.attention.norm.{weight,bias}`,
/// `layers.N.ffn.{up,down}.{weight,bias}`, `layers.N.ffn.norm.{weight,bias}`. Linear weights are
/// [out, in], as FULLY_CONNECTED stores them. Pooling is the mean over tokens.
pub fn from_mapping(model: &TfliteModel, map: &serde_json::Value) -> Result<BertGraph, TfliteError> {
    let bad = |m: String| TfliteError::Invalid(format!("mapping file: {m}"));
    let tensors = map
        .get("tensors")
        .and_then(|v| v.as_object())
        .ok_or_else(|| bad("needs an object \"tensors\": {tensor name or index: engine name}".into()))?;
    let mut by_engine: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value) in tensors {
        let engine = value
            .as_str()
            .ok_or_else(|| bad(format!("the value for '{key}' is not a string")))?;
        let index = match key.parse::<usize>() {
            Ok(i) if i < model.tensors.len() => i,
            Ok(i) => {
                return Err(bad(format!(
                    "tensor index {i} out of range ({} tensors)",
                    model.tensors.len()
                )))
            }
            Err(_) => model
                .tensors
                .iter()
                .position(|t| t.name == *key)
                .ok_or_else(|| bad(format!("no tensor named '{key}'")))?,
        };
        if !model.tensors[index].is_constant() {
            return Err(bad(format!(
                "tensor {} is not a constant",
                model.tensors[index].label()
            )));
        }
        if by_engine.insert(engine.to_string(), index).is_some() {
            return Err(bad(format!("engine name '{engine}' is given twice")));
        }
    }
    let config = map.get("config").cloned().unwrap_or_default();
    let get = |name: &str| {
        by_engine
            .get(name)
            .copied()
            .ok_or_else(|| bad(format!("no tensor for '{name}'")))
    };
    let norm = |p: &str| -> Result<NormRef, TfliteError> {
        Ok(NormRef {
            weight: get(&format!("{p}.weight"))?,
            bias: get(&format!("{p}.bias"))?,
        })
    };
    let linear = |p: &str| -> Result<LinearRef, TfliteError> {
        Ok(LinearRef {
            weight: get(&format!("{p}.weight"))?,
            bias: by_engine.get(&format!("{p}.bias")).copied(),
            transposed: false,
        })
    };
    let mut layers = Vec::new();
    while by_engine.contains_key(&format!("layers.{}.attention.query.weight", layers.len())) {
        let p = format!("layers.{}", layers.len());
        layers.push(LayerRefs {
            query: linear(&format!("{p}.attention.query"))?,
            key: linear(&format!("{p}.attention.key"))?,
            value: linear(&format!("{p}.attention.value"))?,
            output: linear(&format!("{p}.attention.output"))?,
            attention_norm: norm(&format!("{p}.attention.norm"))?,
            up: linear(&format!("{p}.ffn.up"))?,
            down: linear(&format!("{p}.ffn.down"))?,
            ffn_norm: norm(&format!("{p}.ffn.norm"))?,
        });
    }
    if layers.is_empty() {
        return Err(bad("no 'layers.0.attention.query.weight'".into()));
    }
    let heads = config
        .get("num_attention_heads")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| bad("config.num_attention_heads is required".into()))? as usize;
    let act = config.get("hidden_act").and_then(|v| v.as_str()).unwrap_or("gelu");
    let ids = model
        .inputs
        .iter()
        .copied()
        .find(|&i| matches!(model.tensors[i].dtype, TensorType::I32 | TensorType::I64))
        .ok_or_else(|| bad("the model has no int32 / int64 token-id input".into()))?;
    Ok(BertGraph {
        inputs: InputRoles {
            ids,
            mask: None,
            segments: None,
        },
        word: get("embeddings.word")?,
        position: by_engine.get("embeddings.position").copied(),
        token_type: by_engine.get("embeddings.token_type").copied().into_iter().collect(),
        embeddings_norm: norm("embeddings.norm")?,
        layers,
        heads,
        eps: config.get("layer_norm_eps").and_then(|v| v.as_f64()).unwrap_or(1e-12) as f32,
        gelu_tanh: matches!(act, "gelu_new" | "gelu_pytorch_tanh"),
        folded_norms: config.get("folded_norms").and_then(|v| v.as_bool()).unwrap_or(false),
        query_scale: 1.0,
        asymmetric_inputs: config
            .get("asymmetric_activations")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        pooling: PoolingFound {
            mode: Pooled::Mean,
            normalize: config.get("normalize").and_then(|v| v.as_bool()).unwrap_or(true),
        },
    })
}
