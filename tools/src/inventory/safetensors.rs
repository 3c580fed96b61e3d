//! The [`Inventory`] of a `.safetensors` file: its JSON header (read without touching the
//! data), tensors in data order. The format records no inputs or outputs; when a Hugging Face
//! `config.json` sits next to the file, they are described from it (encoder models: token ids
//! in, one hidden state per token out).

use super::{Dim, Format, Inventory, Port, Quantization, TensorEntry};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// Largest header read (safetensors itself caps it at 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Reads the inventory of the `.safetensors` file at `path`.
pub fn read(path: &Path) -> Result<Inventory> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file_bytes = file.metadata()?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .with_context(|| format!("{}: too short for safetensors", path.display()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER || 8 + header_len > file_bytes {
        bail!(
            "{}: safetensors header length {header_len} does not fit the file ({file_bytes} bytes)",
            path.display()
        );
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .with_context(|| format!("{}: the safetensors header is not JSON", path.display()))?;
    let Some(map) = json.as_object() else {
        bail!("{}: the safetensors header is not a JSON object", path.display())
    };

    let mut inv = Inventory::new(Format::Safetensors, path, file_bytes);
    let mut tensors: Vec<(u64, TensorEntry)> = Vec::new();
    for (name, entry) in map {
        if name == "__metadata__" {
            if let Some(meta) = entry.as_object() {
                for (k, v) in meta {
                    inv.facts.push((
                        format!("metadata {k}"),
                        v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                    ));
                }
            }
            continue;
        }
        let dtype = entry
            .get("dtype")
            .and_then(|v| v.as_str())
            .with_context(|| format!("tensor {name}: no dtype"))?;
        let shape: Vec<usize> = entry
            .get("shape")
            .and_then(|v| v.as_array())
            .with_context(|| format!("tensor {name}: no shape"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .map(|d| d as usize)
                    .with_context(|| format!("tensor {name}: bad shape"))
            })
            .collect::<Result<_>>()?;
        let offsets = entry
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .with_context(|| format!("tensor {name}: no data_offsets"))?;
        let (start, end) = match offsets[..] {
            [ref a, ref b] => (a.as_u64().unwrap_or(0), b.as_u64().unwrap_or(0)),
            _ => bail!("tensor {name}: data_offsets must be [start, end]"),
        };
        if end < start || 8 + header_len + end > file_bytes {
            bail!("{}: tensor {name} lies outside the file", path.display());
        }
        tensors.push((
            start,
            TensorEntry {
                name: name.clone(),
                shape,
                dtype: dtype.to_string(),
                bytes: end - start,
                quantization: Quantization::None,
                companion_of: None,
            },
        ));
    }
    tensors.sort_by_key(|(start, t)| (*start, t.name.clone()));
    inv.tensors = tensors.into_iter().map(|(_, t)| t).collect();
    describe_from_config(path, &mut inv);
    Ok(inv)
}

/// Inputs and outputs from a `config.json` next to the file, if there is one.
fn describe_from_config(path: &Path, inv: &mut Inventory) {
    let config_path = path.with_file_name("config.json");
    let config: Option<serde_json::Value> = std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(config) = config else {
        inv.notes
            .push("safetensors records no inputs or outputs (no config.json next to the file)".into());
        return;
    };
    let get = |k: &str| config.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    if let Some(t) = config.get("model_type").and_then(|v| v.as_str()) {
        inv.facts.push(("model_type".into(), t.to_string()));
    }
    let window = get("max_position_embeddings").or_else(|| get("n_positions"));
    let tokens = Dim::Dynamic(
        window
            .map(|w| format!("tokens<={w}"))
            .unwrap_or_else(|| "tokens".into()),
    );
    inv.inputs.push(Port {
        name: "input_ids".into(),
        dtype: "i64".into(),
        shape: vec![Dim::Dynamic("batch".into()), tokens.clone()],
        note: get("vocab_size")
            .map(|v| format!("token ids < {v}"))
            .unwrap_or_default(),
    });
    let hidden = get("hidden_size").or_else(|| get("d_model"));
    inv.outputs.push(Port {
        name: "last_hidden_state".into(),
        dtype: "f32".into(),
        shape: vec![
            Dim::Dynamic("batch".into()),
            tokens,
            hidden.map(Dim::Fixed).unwrap_or_else(|| Dim::Dynamic("?".into())),
        ],
        note: "one vector per token, before pooling".into(),
    });
    inv.notes
        .push(format!("inputs and outputs described from {}", config_path.display()));
}
