//! The [`Inventory`] of a `.octet` file: its tensor table (companions folded onto the tensor
//! they serve), the recipe and architecture from the metadata, text in and one embedding out.

use super::{per_channel, Dim, Format, Inventory, Port, Quantization, TensorEntry};
use anyhow::{Context, Result};
use octet::format::{Dtype, I8Quant, ModelFile, ModelMeta, QuantParam};
use std::collections::HashMap;
use std::path::Path;

/// Reads the inventory of the `.octet` file at `path` (validated as the engine would).
pub fn read(path: &Path) -> Result<Inventory> {
    let file = ModelFile::open(path).with_context(|| format!("cannot read the model {}", path.display()))?;
    let mut inv = Inventory::new(Format::Octet, path, file.file_len());
    let meta = file.meta();
    let (major, minor) = file.version();
    inv.facts.push(("format".into(), format!("octet {major}.{minor}")));
    inv.facts.push(("architecture".into(), meta.architecture.to_string()));
    inv.facts.push(("recipe".into(), meta.quantization.recipe.clone()));
    if let Some(g) = meta.quantization.k_group {
        inv.facts.push(("k_group".into(), g.to_string()));
    }
    if let Some(notes) = &meta.quantization.notes {
        inv.facts.push(("recipe notes".into(), notes.clone()));
    }
    inv.facts.push(("converter".into(), meta.provenance.converter.clone()));

    // Which tensors serve another one: `.scale` / `.zero_point` of quantized i8 / u6 / u7 tensors,
    // `.col_scales` / `.col_sums` of packed int8 weights.
    let dtypes: HashMap<&str, Dtype> = file.tensors().map(|t| (t.name, t.dtype)).collect();
    let companion_of = |name: &str| -> Option<String> {
        let (base, suffix) = name.rsplit_once('.')?;
        let base_dtype = *dtypes.get(base)?;
        let serves = match suffix {
            "scale" | "zero_point" => matches!(base_dtype, Dtype::I8 | Dtype::U6 | Dtype::U7),
            "col_scales" | "col_sums" => base_dtype == Dtype::I8Packed,
            _ => false,
        };
        serves.then(|| base.to_string())
    };
    for view in file.tensors() {
        let quantization = quantization(&file, view.name, view.dtype, view.shape)?;
        inv.tensors.push(TensorEntry {
            name: view.name.to_string(),
            shape: view.shape.to_vec(),
            dtype: view.dtype.to_string(),
            bytes: view.bytes.len() as u64,
            quantization,
            companion_of: companion_of(view.name),
        });
    }
    let (inputs, outputs) = ports(meta);
    inv.inputs = inputs;
    inv.outputs = outputs;
    Ok(inv)
}

fn quantization(file: &ModelFile, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Quantization> {
    Ok(match dtype {
        Dtype::I8Packed => {
            let (n, k) = (shape[0], shape[1]);
            let (_, _, col_scales, _) = file.packed_i8_parts(name, n, k)?;
            // Padding columns past n carry no weight.
            per_channel(None, &col_scales[..n.min(col_scales.len())], 0)
        }
        Dtype::I8 => match file.i8(name, shape)?.quant {
            Some(q) => from_quant(q),
            None => Quantization::None,
        },
        Dtype::U6 => from_quant(file.u6(name, shape[0], shape[1])?.quant),
        Dtype::U7 => from_quant(file.u7(name, shape[0], shape[1])?.quant),
        _ => Quantization::None,
    })
}

fn from_quant(q: I8Quant<'_>) -> Quantization {
    let zero_point = match q.zero_point {
        QuantParam::PerTensor(z) => z as i64,
        QuantParam::PerChannel(_) => 0,
    };
    match q.scale {
        QuantParam::PerTensor(scale) => Quantization::PerTensor { scale, zero_point },
        QuantParam::PerChannel(scales) => per_channel(q.axis, scales, zero_point),
    }
}

/// Width of the model's output: the last dense projection's, else the encoder's hidden size.
pub fn output_dim(meta: &ModelMeta) -> Option<usize> {
    if let Some(d) = meta.dense.last() {
        return Some(d.out_features);
    }
    ["hidden_size", "d_model"]
        .iter()
        .find_map(|k| meta.config.get(k).and_then(|v| v.as_u64()))
        .map(|v| v as usize)
}

/// Text in (tokenized inside the file), one pooled vector per text out.
fn ports(meta: &ModelMeta) -> (Vec<Port>, Vec<Port>) {
    let prompts = if meta.prompts.is_empty() {
        String::new()
    } else {
        format!(
            "; prompts: {}",
            meta.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    let inputs = vec![Port {
        name: "input_ids".into(),
        dtype: "u32".into(),
        shape: vec![
            Dim::Dynamic("batch".into()),
            Dim::Dynamic(format!("tokens<={}", meta.max_seq_len)),
        ],
        note: format!("token ids from the stored tokenizer ({}){prompts}", meta.tokenizer),
    }];
    let mut note = format!("{:?} pooling", meta.pooling.mode).to_lowercase();
    if !meta.dense.is_empty() {
        note.push_str(&format!(", {} dense", meta.dense.len()));
    }
    if meta.pooling.normalize {
        note.push_str(", L2-normalized");
    }
    if !meta.matryoshka_dims.is_empty() {
        note.push_str(&format!(", matryoshka {:?}", meta.matryoshka_dims));
    }
    let dim = output_dim(meta)
        .map(Dim::Fixed)
        .unwrap_or_else(|| Dim::Dynamic("?".into()));
    let outputs = vec![Port {
        name: "embedding".into(),
        dtype: "f32".into(),
        shape: vec![Dim::Dynamic("batch".into()), dim],
        note,
    }];
    (inputs, outputs)
}
