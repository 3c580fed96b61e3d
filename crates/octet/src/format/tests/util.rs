//! Shared test helpers: a small model using every dtype and feature, and tools to take a file
//! apart and put it back together (with a valid checksum) after editing it.

use super::super::header::{Header, HEADER_LEN};
use super::super::*;
use half::{bf16, f16};
use std::collections::BTreeMap;

pub const TOKENIZER_JSON: &[u8] = br#"{"version":"1.0","model":{"type":"WordPiece","vocab":{"[PAD]":0}}}"#;

/// Metadata exercising every field.
pub fn sample_meta() -> ModelMeta {
    ModelMeta {
        architecture: Architecture::Bert,
        config: serde_json::json!({ "hidden_size": 8, "num_hidden_layers": 1, "layer_norm_eps": 1e-12 }),
        tokenizer: "tokenizer.json".into(),
        pooling: Pooling {
            mode: PoolingMode::Mean,
            normalize: true,
        },
        max_seq_len: 256,
        prompts: BTreeMap::from([
            ("query".into(), "query: ".into()),
            ("document".into(), "passage: ".into()),
        ]),
        default_prompt: Some("query".into()),
        matryoshka_dims: vec![8, 4],
        dense: vec![DenseLayer {
            in_features: 8,
            out_features: 4,
            activation: "tanh".into(),
            weight: "dense.0.weight".into(),
            bias: Some("dense.0.bias".into()),
        }],
        quantization: Quantization {
            recipe: "int8-per-channel".into(),
            k_group: Some(8),
            notes: Some("test".into()),
        },
        provenance: Provenance {
            converter: "octet-test 0.0.0".into(),
            sources: vec![SourceFile {
                file: "model.safetensors".into(),
                sha256: "ab".repeat(32),
            }],
        },
        extra: BTreeMap::from([("future".into(), serde_json::json!({ "x": [1, 2] }))]),
    }
}

/// Deterministic test values.
pub fn ramp_f32(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37 + seed).sin() * 3.0).collect()
}

pub fn ramp_i8(n: usize, seed: i32) -> Vec<i8> {
    (0..n).map(|i| ((i as i32 * 37 + seed) % 256 - 128) as i8).collect()
}

pub fn ramp_i32(n: usize, seed: i32) -> Vec<i32> {
    (0..n).map(|i| (i as i32 - 3) * 1_000_003 + seed).collect()
}

/// Values in 0..=63 for u6 tables.
pub fn ramp_u6(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 29 + seed) % 64) as u8).collect()
}

/// `ramp_u6(rows * dim, seed)` in the u6 layout.
pub fn packed_u6(rows: usize, dim: usize, seed: usize) -> Vec<u8> {
    octet_kernels::gather::pack_u6(&ramp_u6(rows * dim, seed), rows, dim).unwrap()
}

/// Values in 0..=127 for u7 tables.
pub fn ramp_u7(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 53 + seed) % 128) as u8).collect()
}

/// `ramp_u7(rows * dim, seed)` in the u7 layout.
pub fn packed_u7(rows: usize, dim: usize, seed: usize) -> Vec<u8> {
    octet_kernels::gather::pack_u7(&ramp_u7(rows * dim, seed), rows, dim).unwrap()
}

/// A writer holding the sample model: every dtype, quantization mode and packed layout.
pub fn sample_writer() -> ModelWriter {
    let mut w = ModelWriter::new(sample_meta());
    w.add_blob("tokenizer.json", TOKENIZER_JSON).unwrap();
    w.add_f32("emb.f32", &[3, 5], &ramp_f32(15, 0.0)).unwrap();
    let halves: Vec<f16> = ramp_f32(6, 1.0).into_iter().map(f16::from_f32).collect();
    w.add_f16("emb.f16", &[2, 3], &halves).unwrap();
    let brains: Vec<bf16> = ramp_f32(4, 2.0).into_iter().map(bf16::from_f32).collect();
    w.add_bf16("emb.bf16", &[4], &brains).unwrap();
    w.add_i32("ids", &[2, 2], &ramp_i32(4, 0)).unwrap();
    w.add_i8("raw.i8", &[7], &ramp_i8(7, 0)).unwrap();
    w.add_i8_table(
        "table.pt",
        &[2, 3],
        &ramp_i8(6, 1),
        QuantParam::PerTensor(0.5),
        QuantParam::PerTensor(3),
        None,
    )
    .unwrap();
    w.add_i8_table(
        "table.pc",
        &[4, 3],
        &ramp_i8(12, 2),
        QuantParam::PerChannel(&[0.1, 0.2, 0.3, 0.4]),
        QuantParam::PerChannel(&[-1, 0, 1, 2]),
        Some(0),
    )
    .unwrap();
    w.add_i8_table(
        "table.cols",
        &[2, 3],
        &ramp_i8(6, 3),
        QuantParam::PerChannel(&[0.25, 0.5, 1.0]),
        QuantParam::PerTensor(0),
        Some(1),
    )
    .unwrap();
    // u6: 3 rows of 5 values (ragged: 6 bytes a row) per row; 2 rows of 8 per tensor.
    w.add_u6_table(
        "table.u6",
        3,
        5,
        &packed_u6(3, 5, 1),
        QuantParam::PerChannel(&[0.5, 0.25, 0.125]),
        QuantParam::PerChannel(&[31, 0, 63]),
    )
    .unwrap();
    w.add_u6_table(
        "table.u6t",
        2,
        8,
        &packed_u6(2, 8, 2),
        QuantParam::PerTensor(0.25),
        QuantParam::PerTensor(32),
    )
    .unwrap();
    // u7: 3 rows of 9 values (ragged: 14 bytes a row) per row; 2 rows of 16 per tensor.
    w.add_u7_table(
        "table.u7",
        3,
        9,
        &packed_u7(3, 9, 3),
        QuantParam::PerChannel(&[0.5, 0.25, 0.125]),
        QuantParam::PerChannel(&[63, 0, 127]),
    )
    .unwrap();
    w.add_u7_table(
        "table.u7t",
        2,
        16,
        &packed_u7(2, 16, 4),
        QuantParam::PerTensor(0.125),
        QuantParam::PerTensor(64),
    )
    .unwrap();
    // n = 5, k = 9, one group: n_pad 16, k_pad 16.
    w.add_packed_i8(
        "lin.i8",
        5,
        9,
        None,
        &ramp_i8(16 * 16, 4),
        &ramp_f32(16, 3.0),
        &ramp_i32(16, 5),
    )
    .unwrap();
    // n = 17, k = 40, groups of 32: n_pad 32, k_pad 64, 2 groups.
    w.add_packed_i8(
        "lin.i8g",
        17,
        40,
        Some(32),
        &ramp_i8(32 * 64, 5),
        &ramp_f32(32, 4.0),
        &ramp_i32(2 * 32, 6),
    )
    .unwrap();
    // n = 3, k = 5: n_pad 16.
    w.add_packed_f32("lin.f32", 3, 5, &ramp_f32(16 * 5, 5.0)).unwrap();
    w.add_f32("dense.0.weight", &[4, 8], &ramp_f32(32, 6.0)).unwrap();
    w.add_f32("dense.0.bias", &[4], &ramp_f32(4, 7.0)).unwrap();
    w.add_f32("empty", &[0, 3], &[]).unwrap();
    w.add_f32("scalar", &[], &[42.0]).unwrap();
    w
}

pub fn sample_bytes() -> Vec<u8> {
    sample_writer().to_bytes().unwrap()
}

/// A file taken apart: its header, its JSON as a value, and its data section.
pub struct Parts {
    pub header: Header,
    pub json: serde_json::Value,
    pub data: Vec<u8>,
}

pub fn split(bytes: &[u8]) -> Parts {
    let header = Header::decode(bytes).unwrap();
    let json_start = header.json_offset as usize;
    let json = serde_json::from_slice(&bytes[json_start..json_start + header.json_len as usize]).unwrap();
    let data = bytes[header.data_offset as usize..].to_vec();
    Parts { header, json, data }
}

/// Lays out `json` and `data` as a file with a correct header and checksum, keeping the
/// version and flags of `like`.
pub fn assemble_raw(like: &Header, json: &[u8], data: &[u8]) -> Vec<u8> {
    let json_len = json.len() as u64;
    let data_offset = (HEADER_LEN as u64 + json_len).div_ceil(64) * 64;
    let file_len = data_offset + data.len() as u64;
    let mut header = Header {
        json_len,
        data_offset,
        data_len: data.len() as u64,
        file_len,
        ..like.clone()
    };
    let header_bytes = header.seal(json);
    let mut out = header_bytes.to_vec();
    out.extend_from_slice(json);
    out.resize(data_offset as usize, 0);
    out.extend_from_slice(data);
    out
}

pub fn assemble(parts: &Parts) -> Vec<u8> {
    assemble_raw(&parts.header, &serde_json::to_vec(&parts.json).unwrap(), &parts.data)
}

/// Recomputes the metadata checksum of a file in place (after editing header or JSON bytes).
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let header = Header::decode(bytes);
    let Ok(header) = header else { return };
    let start = (header.json_offset as usize).min(bytes.len());
    let end = (header.json_offset.saturating_add(header.json_len) as usize)
        .min(bytes.len())
        .max(start);
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(&bytes[..HEADER_LEN]);
    let sha = Header::compute_meta_sha256(&raw, &bytes[start..end]);
    bytes[56..88].copy_from_slice(&sha);
}

/// The tensor-table entry called `name`.
pub fn entry_mut<'a>(parts: &'a mut Parts, name: &str) -> &'a mut serde_json::Value {
    parts.json["tensors"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
}

/// Removes the tensor-table entry called `name`.
pub fn remove_entry(parts: &mut Parts, name: &str) {
    parts.json["tensors"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["name"] != name);
}

/// Opens `bytes` and returns the error, failing the test if the file opens.
pub fn open_err(bytes: Vec<u8>) -> FormatError {
    match ModelFile::from_bytes(bytes) {
        Ok(_) => panic!("a corrupt file opened"),
        Err(e) => e,
    }
}

/// Uses every accessor on every tensor, so a fuzzed file that opens is fully exercised.
pub fn touch_everything(model: &ModelFile) {
    let _ = model.meta();
    let _ = model.verify_data();
    let _ = model.tokenizer_json();
    let names: Vec<(String, Vec<usize>)> = model
        .tensors()
        .map(|t| (t.name.to_string(), t.shape.to_vec()))
        .collect();
    for (name, shape) in names {
        let t = model.tensor(&name).unwrap();
        let _ = (t.numel(), t.k_group(), t.bytes.len());
        let _ = model.f32(&name, &shape);
        let _ = model.f16(&name, &shape);
        let _ = model.bf16(&name, &shape);
        let _ = model.i32(&name, &shape);
        let _ = model.blob(&name);
        if let Ok(t) = model.i8(&name, &shape) {
            if let Some(q) = t.quant {
                if let QuantParam::PerChannel(s) = q.scale {
                    let _ = s.iter().sum::<f32>();
                }
            }
        }
        if let [n, k] = shape[..] {
            let tables = [
                model.u6(&name, n, k).map(|t| (t.data, t.quant)),
                model.u7(&name, n, k).map(|t| (t.data, t.quant)),
            ];
            for (data, quant) in tables.into_iter().flatten() {
                let _ = data.iter().map(|&b| b as u64).sum::<u64>();
                if let QuantParam::PerChannel(s) = quant.scale {
                    let _ = s.iter().sum::<f32>();
                }
                if let QuantParam::PerChannel(z) = quant.zero_point {
                    let _ = z.iter().map(|&v| v as i64).sum::<i64>();
                }
            }
            let _ = model.packed_i8_parts(&name, n, k);
            let _ = model.packed_f32_parts(&name, n, k);
        }
    }
}
