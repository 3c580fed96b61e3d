//! The [`Inventory`] of a TFLite file, from octet's verified reader (`crate::tflite`): the
//! constant tensors of the main subgraph in tensor order (name, shape, TFLite dtype, stored
//! bytes, per-tensor or per-channel quantization), the subgraph's inputs and outputs (with
//! `?` for dimensions chosen at run time), operator counts, and whether octet recognises the
//! graph as an encoder it can convert (and if not, where the walk stopped), and the tokenizer
//! its MediaPipe / TFLite Support metadata carries, if any.

use super::{per_channel, Dim, Format, Inventory, Port, Quantization, TensorEntry};
use anyhow::Result;
use octet_tflite::metadata::{self, TokenizerKind};
use octet_tflite::model::{op, Tensor};
use octet_tflite::{bert, TensorType, TfliteModel};
use std::path::Path;

/// TFLite's own name for a tensor type.
fn dtype_name(t: TensorType) -> String {
    match t {
        TensorType::F32 => "FLOAT32".into(),
        TensorType::F16 => "FLOAT16".into(),
        TensorType::I32 => "INT32".into(),
        TensorType::U8 => "UINT8".into(),
        TensorType::I64 => "INT64".into(),
        TensorType::I8 => "INT8".into(),
        TensorType::I16 => "INT16".into(),
        TensorType::I4 => "INT4".into(),
        TensorType::Other(c) => format!("type {c}"),
    }
}

fn quantization(t: &Tensor) -> Quantization {
    match &t.quant {
        None => Quantization::None,
        Some(q) => per_channel(Some(q.axis), &q.scale, q.zero_point.first().copied().unwrap_or(0)),
    }
}

fn port(t: &Tensor) -> Port {
    let shape = match &t.shape_signature {
        Some(sig) if sig.len() == t.shape.len() => sig
            .iter()
            .zip(&t.shape)
            .map(|(&s, &d)| if s < 0 { Dim::Dynamic("?".into()) } else { Dim::Fixed(d) })
            .collect(),
        _ => t.shape.iter().map(|&d| Dim::Fixed(d)).collect(),
    };
    Port {
        name: t.name.clone(),
        dtype: dtype_name(t.dtype),
        shape,
        note: String::new(),
    }
}

/// Reads the inventory of the TFLite file at `path`.
pub fn read(path: &Path) -> Result<Inventory> {
    let model = TfliteModel::open(path)?;
    let mut inv = Inventory::new(Format::Tflite, path, model.file_len() as u64);
    for t in model.tensors.iter().filter(|t| t.is_constant()) {
        inv.tensors.push(TensorEntry {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: dtype_name(t.dtype),
            bytes: t.data.as_ref().map_or(0, |r| r.len() as u64),
            quantization: quantization(t),
            companion_of: None,
        });
    }
    inv.inputs = model.inputs.iter().map(|&i| port(&model.tensors[i])).collect();
    inv.outputs = model.outputs.iter().map(|&i| port(&model.tensors[i])).collect();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in &model.operators {
        let name = o
            .custom_code
            .clone()
            .filter(|_| o.code == 32)
            .unwrap_or_else(|| op::name(o.code));
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    inv.operators = counts;
    inv.facts.push(("subgraphs".into(), model.subgraph_count.to_string()));
    inv.facts.push(("operators".into(), model.operators.len().to_string()));
    inv.facts.push((
        "tensors".into(),
        format!("{} ({} constant)", model.tensors.len(), inv.tensors.len()),
    ));
    match metadata::embedded_tokenizer(&model) {
        Ok(Some(t)) => {
            let size = match t.unit.kind {
                TokenizerKind::Bert => format!(
                    "{} tokens",
                    t.contents.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()
                ),
                TokenizerKind::SentencePiece => format!("{} bytes", t.contents.len()),
            };
            inv.facts.push((
                "tokenizer".into(),
                format!(
                    "{} '{}' ({size}) in the file's TFLite metadata",
                    t.unit.kind.as_str(),
                    t.unit.file
                ),
            ));
        }
        Ok(None) => {}
        Err(e) => inv.notes.push(format!(
            "the tokenizer named in the TFLite metadata cannot be read: {e}"
        )),
    }
    match bert::recognise(&model) {
        Ok(g) => {
            let h = model.tensors[g.word].shape.get(1).copied().unwrap_or(0);
            inv.facts.push((
                "recognised".into(),
                format!(
                    "BERT encoder: {} layers, hidden {h}, {} heads{}{}",
                    g.layers.len(),
                    g.heads,
                    if g.folded_norms {
                        ", LayerNorm folded into the projections"
                    } else {
                        ""
                    },
                    if g.asymmetric_inputs {
                        ", asymmetric int8 activations"
                    } else {
                        ""
                    },
                ),
            ));
            let mean = match g.pooling.mode {
                bert::Pooled::Mean if g.inputs.mask.is_some() => "masked mean-pooled",
                bert::Pooled::Mean => "mean-pooled",
                bert::Pooled::Cls => "CLS-pooled (first token)",
                bert::Pooled::Caller => "",
            };
            if let Some(out) = inv.outputs.first_mut() {
                out.note = if g.pooling.mode == bert::Pooled::Caller {
                    "per-token vectors: pooling left to the caller (octet mean-pools the text's tokens, unnormalised)".into()
                } else if g.pooling.normalize {
                    format!("{mean}, L2-normalized embedding")
                } else {
                    format!("{mean} embedding")
                };
            }
            // Ports are in the model's input order.
            for (port, &tensor) in inv.inputs.iter_mut().zip(&model.inputs) {
                port.note = if tensor == g.inputs.ids {
                    "token ids".into()
                } else if Some(tensor) == g.inputs.mask {
                    "attention mask (1 = token, 0 = padding): octet runs unpadded, as if all ones".into()
                } else if Some(tensor) == g.inputs.segments {
                    "segment ids (token types): octet embeds one text, segment 0".into()
                } else {
                    String::new()
                };
            }
        }
        Err(bert_error) => match octet_tflite::t5::recognise(&model) {
            Ok(g) => describe_t5(&model, &g, &mut inv),
            Err(t5_error) => inv.notes.push(format!(
                "octet convert would not recognise this graph: as a BERT encoder: {bert_error}; as a T5 encoder: {t5_error}"
            )),
        },
    }
    Ok(inv)
}

/// The facts of a recognised T5 encoder.
fn describe_t5(model: &TfliteModel, g: &octet_tflite::t5::T5Graph, inv: &mut Inventory) {
    use octet_tflite::t5::FfnActivation;
    let d = model.tensors[g.word].shape.get(1).copied().unwrap_or(0);
    let act = match g.activation {
        FfnActivation::Relu => "ReLU",
        FfnActivation::GeluTanh => "GELU (tanh)",
        FfnActivation::GeluErf => "GELU (erf)",
    };
    let bias = model
        .f32_values(&model.tensors[g.position_bias])
        .ok()
        .and_then(|v| octet_tflite::t5::bucket_table(&v, g.heads, g.sequence).ok())
        .map(|b| format!("{} buckets up to distance {}", b.num_buckets, b.max_distance))
        .unwrap_or_else(|| "a position bias no T5 bucketing reproduces".into());
    inv.facts.push((
        "recognised".into(),
        format!(
            "T5 encoder: {} layers, d_model {d}, {} heads of {}, {}{act} FFN, relative-position bias folded over {} positions ({bias}){}{}",
            g.layers.len(),
            g.heads,
            g.d_kv,
            if g.gated { "gated " } else { "" },
            g.sequence,
            if g.dense.is_some() { ", Dense after pooling" } else { "" },
            if g.asymmetric_inputs { ", asymmetric int8 activations" } else { "" },
        ),
    ));
    if let Some(out) = inv.outputs.first_mut() {
        let pooled = if g.dense.is_some() {
            "masked mean, Dense"
        } else {
            "masked mean"
        };
        out.note = if g.normalize {
            format!("{pooled}, L2-normalized embedding")
        } else {
            format!("{pooled} embedding")
        };
    }
    if let Some(input) = inv.inputs.iter_mut().find(|p| p.dtype == "INT32" || p.dtype == "INT64") {
        input.note = match g.pad_id {
            Some(pad) => format!("token ids, {pad} = padding"),
            None => "token ids".into(),
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::Quantization;

    #[test]
    fn a_small_model_is_described() {
        let path = std::env::temp_dir().join(format!("octet-inventory-tflite-{}.tflite", std::process::id()));
        std::fs::write(&path, octet_tflite::testing::build(&octet_tflite::testing::valid())).unwrap();
        let inv = super::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        // The constants: the f32 table, the int8 per-channel and the int4 per-tensor tensors.
        let names: Vec<&str> = inv.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["table", "w8", "w4"]);
        assert_eq!(inv.tensors[1].dtype, "INT8");
        assert_eq!(inv.tensors[1].bytes, 6);
        assert!(matches!(
            inv.tensors[1].quantization,
            Quantization::PerChannel {
                axis: Some(0),
                channels: 2,
                ..
            }
        ));
        assert!(matches!(
            inv.tensors[2].quantization,
            Quantization::PerTensor { zero_point: 0, .. }
        ));
        assert_eq!(inv.inputs[0].describe(), "ids INT32 [1, 2]");
        assert_eq!(inv.operators, vec![("GATHER".to_string(), 1)]);
        assert!(inv.notes[0].contains("would not recognise"), "{:?}", inv.notes);
    }
}
