//! Small TFLite files built with the `flatbuffers` builder, for tests here and in the tools
//! crate (`feature = "test-util"`): a model spec written to bytes, a valid tiny model, and
//! TFLite Support metadata with a zip archive of associated files.

use crate::metadata;
use crate::model::op;
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use std::io::Write;

const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// One tensor to write: shape, TensorType code, buffer index, name, optional (scales, zero
/// points, axis).
#[derive(Clone)]
pub struct TensorSpec {
    pub shape: Vec<i32>,
    pub dtype: i8,
    pub buffer: u32,
    pub name: &'static str,
    pub quant: Option<(Vec<f32>, Vec<i64>, i32)>,
}

/// A buffer: inline bytes, or an external (offset, size).
#[derive(Clone)]
pub enum BufferSpec {
    Inline(Vec<u8>),
    External(u64, u64),
}

/// One operator: builtin code, inputs, outputs.
#[derive(Clone)]
pub struct OpSpec {
    pub code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
}

#[derive(Clone)]
pub struct ModelSpec {
    pub tensors: Vec<TensorSpec>,
    pub buffers: Vec<BufferSpec>,
    pub ops: Vec<OpSpec>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub identifier: &'static str,
    /// `Model.metadata` entries: name and buffer index.
    pub metadata: Vec<(&'static str, u32)>,
}

pub fn build(spec: &ModelSpec) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let buffers: Vec<WIPOffset<flatbuffers::TableFinishedWIPOffset>> = spec
        .buffers
        .iter()
        .map(|buf| match buf {
            BufferSpec::Inline(bytes) => {
                let data = (!bytes.is_empty()).then(|| b.create_vector(bytes));
                let t = b.start_table();
                if let Some(d) = data {
                    b.push_slot_always(slot(0), d);
                }
                b.end_table(t)
            }
            BufferSpec::External(offset, size) => {
                let t = b.start_table();
                b.push_slot_always(slot(1), *offset);
                b.push_slot_always(slot(2), *size);
                b.end_table(t)
            }
        })
        .collect();
    let tensors: Vec<_> = spec
        .tensors
        .iter()
        .map(|t| {
            let shape = b.create_vector(&t.shape);
            let name = b.create_string(t.name);
            let quant = t.quant.as_ref().map(|(s, z, axis)| {
                let s = b.create_vector(s);
                let z = b.create_vector(z);
                let q = b.start_table();
                b.push_slot_always(slot(2), s);
                b.push_slot_always(slot(3), z);
                b.push_slot_always(slot(6), *axis);
                b.end_table(q)
            });
            let tt = b.start_table();
            b.push_slot_always(slot(0), shape);
            b.push_slot_always(slot(1), t.dtype);
            b.push_slot_always(slot(2), t.buffer);
            b.push_slot_always(slot(3), name);
            if let Some(q) = quant {
                b.push_slot_always(slot(4), q);
            }
            b.end_table(tt)
        })
        .collect();
    let mut codes: Vec<i32> = spec.ops.iter().map(|o| o.code).collect();
    codes.dedup();
    let opcodes: Vec<_> = codes
        .iter()
        .map(|&c| {
            let t = b.start_table();
            b.push_slot_always(slot(0), c.min(127) as i8);
            b.push_slot_always(slot(3), c);
            b.end_table(t)
        })
        .collect();
    let ops: Vec<_> = spec
        .ops
        .iter()
        .map(|o| {
            let ins = b.create_vector(&o.inputs);
            let outs = b.create_vector(&o.outputs);
            let t = b.start_table();
            b.push_slot_always(slot(0), codes.iter().position(|&c| c == o.code).unwrap() as u32);
            b.push_slot_always(slot(1), ins);
            b.push_slot_always(slot(2), outs);
            b.end_table(t)
        })
        .collect();
    let tensors = b.create_vector(&tensors);
    let ops = b.create_vector(&ops);
    let inputs = b.create_vector(&spec.inputs);
    let outputs = b.create_vector(&spec.outputs);
    let sg = b.start_table();
    b.push_slot_always(slot(0), tensors);
    b.push_slot_always(slot(1), inputs);
    b.push_slot_always(slot(2), outputs);
    b.push_slot_always(slot(3), ops);
    let sg = b.end_table(sg);
    let subgraphs = b.create_vector(&[sg]);
    let opcodes = b.create_vector(&opcodes);
    let buffers = b.create_vector(&buffers);
    let metadata: Vec<_> = spec
        .metadata
        .iter()
        .map(|&(name, buffer)| {
            let name = b.create_string(name);
            let t = b.start_table();
            b.push_slot_always(slot(0), name);
            b.push_slot_always(slot(1), buffer);
            b.end_table(t)
        })
        .collect();
    let metadata = (!metadata.is_empty()).then(|| b.create_vector(&metadata));
    let m = b.start_table();
    b.push_slot_always(slot(0), 3u32);
    b.push_slot_always(slot(1), opcodes);
    b.push_slot_always(slot(2), subgraphs);
    b.push_slot_always(slot(4), buffers);
    if let Some(md) = metadata {
        b.push_slot_always(slot(6), md);
    }
    let m = b.end_table(m);
    b.finish(m, Some(spec.identifier));
    b.finished_data().to_vec()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// ids (int32 input) -> GATHER(table f32 [4, 3]) -> output; plus an int8 per-channel [2, 3]
/// constant and an int4 [5] constant.
pub fn valid() -> ModelSpec {
    let table: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    ModelSpec {
        tensors: vec![
            TensorSpec {
                shape: vec![1, 2],
                dtype: 2,
                buffer: 0,
                name: "ids",
                quant: None,
            },
            TensorSpec {
                shape: vec![4, 3],
                dtype: 0,
                buffer: 1,
                name: "table",
                quant: None,
            },
            TensorSpec {
                shape: vec![2, 3],
                dtype: 0,
                buffer: 0,
                name: "out",
                quant: None,
            },
            TensorSpec {
                shape: vec![2, 3],
                dtype: 9,
                buffer: 2,
                name: "w8",
                quant: Some((vec![0.5, 0.25], vec![0, 0], 0)),
            },
            TensorSpec {
                shape: vec![5],
                dtype: 17,
                buffer: 3,
                name: "w4",
                quant: Some((vec![2.0], vec![0], 0)),
            },
        ],
        buffers: vec![
            BufferSpec::Inline(vec![]),
            BufferSpec::Inline(f32_bytes(&table)),
            BufferSpec::Inline(vec![1, 2, 0x80, 0xff, 127, 3]),
            // int4, low nibble first: 1, -1 | 7, -8 | 2 (and an unused nibble)
            BufferSpec::Inline(vec![0xf1, 0x87, 0x02]),
        ],
        ops: vec![OpSpec {
            code: op::GATHER,
            inputs: vec![1, 0],
            outputs: vec![2],
        }],
        inputs: vec![0],
        outputs: vec![2],
        identifier: "TFL3",
        metadata: Vec::new(),
    }
}

pub const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n";

/// Where the tokenizer unit goes in the metadata.
#[derive(Clone, Copy)]
pub enum Place {
    Subgraph,
    InputTensor,
}

/// A `ModelMetadata` buffer with one tokenizer process unit (`unit_type` 4: BERT, 5:
/// SentencePiece) naming `file`.
pub fn metadata_buffer(unit_type: u8, file: &str, place: Place, identifier: &str) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let name = b.create_string(file);
    let af = b.start_table();
    b.push_slot_always(slot(0), name);
    let af = b.end_table(af);
    let files = b.create_vector(&[af]);
    let options = b.start_table();
    b.push_slot_always(slot(0), files);
    let options = b.end_table(options);
    let unit = b.start_table();
    b.push_slot_always(slot(0), unit_type);
    b.push_slot_always(slot(1), options);
    let unit = b.end_table(unit);
    let units = b.create_vector(&[unit]);
    let graph = match place {
        Place::Subgraph => {
            let g = b.start_table();
            b.push_slot_always(slot(5), units);
            b.end_table(g)
        }
        Place::InputTensor => {
            let tname = b.create_string("ids");
            let t = b.start_table();
            b.push_slot_always(slot(0), tname);
            b.push_slot_always(slot(4), units);
            let t = b.end_table(t);
            let inputs = b.create_vector(&[t]);
            let g = b.start_table();
            b.push_slot_always(slot(2), inputs);
            b.end_table(g)
        }
    };
    let graphs = b.create_vector(&[graph]);
    let root = b.start_table();
    b.push_slot_always(slot(3), graphs);
    let root = b.end_table(root);
    b.finish(root, Some(identifier));
    b.finished_data().to_vec()
}

/// A zip archive holding `files`, the first stored, the others deflated.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (i, (name, bytes)) in files.iter().enumerate() {
        let method = if i == 0 {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The small valid model with `metadata` as its TFLITE_METADATA buffer and `archive` after it.
pub fn model_with(metadata: Vec<u8>, archive: &[u8]) -> Vec<u8> {
    let mut spec: ModelSpec = valid();
    spec.buffers.push(BufferSpec::Inline(metadata));
    spec.metadata = vec![(metadata::METADATA_NAME, spec.buffers.len() as u32 - 1)];
    let mut bytes = build(&spec);
    bytes.extend_from_slice(archive);
    bytes
}

pub fn bert_model() -> Vec<u8> {
    model_with(
        metadata_buffer(4, "vocab.txt", Place::Subgraph, "M001"),
        &zip_of(&[("readme.txt", b"hi"), ("vocab.txt", VOCAB.as_bytes())]),
    )
}
