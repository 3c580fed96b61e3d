//! Reader tests on flatbuffers built here with the `flatbuffers` builder: a small valid model
//! decodes to the right values, and every malformed variant is an error, never a panic.

use super::bert;
use super::model::{op, TensorType, TfliteModel};
use super::TfliteError;
use flatbuffers::{FlatBufferBuilder, WIPOffset};

const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// One tensor to write: shape, TensorType code, buffer index, name, optional (scales, zero
/// points, axis).
#[derive(Clone)]
pub(crate) struct TensorSpec {
    shape: Vec<i32>,
    dtype: i8,
    buffer: u32,
    name: &'static str,
    quant: Option<(Vec<f32>, Vec<i64>, i32)>,
}

/// A buffer: inline bytes, or an external (offset, size).
#[derive(Clone)]
pub(crate) enum BufferSpec {
    Inline(Vec<u8>),
    External(u64, u64),
}

/// One operator: builtin code, inputs, outputs.
#[derive(Clone)]
pub(crate) struct OpSpec {
    code: i32,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
}

#[derive(Clone)]
pub(crate) struct ModelSpec {
    tensors: Vec<TensorSpec>,
    pub(crate) buffers: Vec<BufferSpec>,
    ops: Vec<OpSpec>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    identifier: &'static str,
    /// `Model.metadata` entries: name and buffer index.
    pub(crate) metadata: Vec<(&'static str, u32)>,
}

pub(crate) fn build(spec: &ModelSpec) -> Vec<u8> {
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

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// ids (int32 input) -> GATHER(table f32 [4, 3]) -> output; plus an int8 per-channel [2, 3]
/// constant and an int4 [5] constant.
pub(crate) fn valid() -> ModelSpec {
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

fn decode(spec: &ModelSpec) -> Result<TfliteModel, TfliteError> {
    TfliteModel::from_bytes(build(spec))
}

fn expect_invalid(spec: &ModelSpec, needle: &str) {
    match decode(spec) {
        Err(TfliteError::Invalid(msg)) => assert!(msg.contains(needle), "error '{msg}' does not mention '{needle}'"),
        Err(e) => panic!("expected an invalid-file error mentioning '{needle}', got {e}"),
        Ok(_) => panic!("expected an error mentioning '{needle}', the model decoded"),
    }
}

#[test]
fn a_valid_model_decodes_with_its_values() {
    let m = decode(&valid()).unwrap();
    assert_eq!(m.tensors.len(), 5);
    assert_eq!((m.inputs.clone(), m.outputs.clone()), (vec![0], vec![2]));
    assert_eq!(m.operators[0].code, op::GATHER);
    assert_eq!(m.operators[0].inputs, vec![Some(1), Some(0)]);
    let table = &m.tensors[1];
    assert_eq!((table.shape.clone(), table.dtype), (vec![4, 3], TensorType::F32));
    assert_eq!(m.f32_values(table).unwrap()[11], 5.5);
    let w8 = &m.tensors[3];
    assert_eq!(m.i8_values(w8).unwrap(), vec![1, 2, -128, -1, 127, 3]);
    let q = w8.quant.as_ref().unwrap();
    assert!(q.per_channel() && q.axis == 0);
    // Dequantized per channel (row): row 0 x 0.5, row 1 x 0.25.
    assert_eq!(m.f32_values(w8).unwrap(), vec![0.5, 1.0, -64.0, -0.25, 31.75, 0.75]);
    assert_eq!(m.i4_values(&m.tensors[4]).unwrap(), vec![1, -1, 7, -8, 2]);
    assert!(!m.tensors[2].is_constant() && !m.tensors[0].is_constant());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = build(&valid());
    for len in 0..bytes.len() {
        assert!(
            TfliteModel::from_bytes(bytes[..len].to_vec()).is_err(),
            "a file cut to {len} of {} bytes decoded",
            bytes.len()
        );
    }
}

#[test]
fn wrong_file_identifier() {
    expect_invalid(
        &ModelSpec {
            identifier: "TFL2",
            ..valid()
        },
        "TFL3",
    );
}

#[test]
fn buffer_index_out_of_range() {
    let mut spec = valid();
    spec.tensors[1].buffer = 9;
    expect_invalid(&spec, "buffer 9");
}

#[test]
fn overflowing_and_negative_shapes() {
    let mut spec = valid();
    spec.tensors[2].shape = vec![i32::MAX, i32::MAX, i32::MAX, i32::MAX];
    expect_invalid(&spec, "overflows");
    let mut spec = valid();
    spec.tensors[2].shape = vec![2, -3];
    expect_invalid(&spec, "negative");
}

#[test]
fn buffer_shorter_than_shape_times_type() {
    let mut spec = valid();
    spec.tensors[1].shape = vec![5, 3];
    expect_invalid(&spec, "needs 60");
    // Same element count, wider type.
    let mut spec = valid();
    spec.tensors[3].dtype = 2;
    spec.tensors[3].quant = None;
    expect_invalid(&spec, "needs 24");
}

#[test]
fn operator_and_quantization_indices_are_checked() {
    let mut spec = valid();
    spec.ops[0].inputs = vec![1, 42];
    expect_invalid(&spec, "tensor 42");
    let mut spec = valid();
    spec.inputs = vec![-1];
    expect_invalid(&spec, "tensor -1");
    let mut spec = valid();
    spec.tensors[3].quant = Some((vec![0.5, 0.25, 1.0], vec![0], 0));
    expect_invalid(&spec, "3 scales for 2 channels");
    let mut spec = valid();
    spec.tensors[3].quant = Some((vec![0.5, 0.25], vec![0], 5));
    expect_invalid(&spec, "quantized_dimension 5");
    let mut spec = valid();
    spec.tensors[3].quant = Some((vec![f32::NAN], vec![0], 0));
    expect_invalid(&spec, "scale");
}

#[test]
fn external_buffers_are_read_from_the_file_and_checked() {
    // The table's 48 bytes appended after the flatbuffer, as files over 2 GB store them.
    let table: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let mut spec = valid();
    spec.buffers[1] = BufferSpec::External(0, 48);
    let probe_len = build(&spec).len() as u64;
    spec.buffers[1] = BufferSpec::External(probe_len, 48);
    let mut bytes = build(&spec);
    assert_eq!(
        bytes.len() as u64,
        probe_len,
        "the offset field must not change the flatbuffer's size"
    );
    bytes.extend(f32_bytes(&table));
    let m = TfliteModel::from_bytes(bytes.clone()).unwrap();
    assert_eq!(m.f32_values(&m.tensors[1]).unwrap(), table);
    // Past the end of the file.
    bytes.truncate(bytes.len() - 4);
    assert!(matches!(TfliteModel::from_bytes(bytes), Err(TfliteError::Invalid(m)) if m.contains("past the end")));
    let mut spec = valid();
    spec.buffers[1] = BufferSpec::External(u64::MAX - 8, 48);
    expect_invalid(&spec, "buffer 1");
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = build(&valid());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..4000 {
        let mut b = bytes.clone();
        for _ in 0..1 + (state % 4) as usize {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = 8 + (state as usize) % (b.len() - 8);
            b[at] = (state >> 32) as u8;
        }
        if let Ok(m) = TfliteModel::from_bytes(b) {
            // Whatever decodes must be safe to read and to walk.
            for t in &m.tensors {
                let _ = m.f32_values(t);
                let _ = m.i8_values(t);
            }
            let _ = bert::recognise(&m);
            let _ = super::t5::recognise(&m);
        }
    }
}

#[test]
fn a_graph_without_an_embedding_says_what_was_not_recognised() {
    let mut spec = valid();
    spec.ops[0].code = op::ADD;
    let m = decode(&spec).unwrap();
    let err = bert::recognise(&m).unwrap_err().to_string();
    assert!(err.contains("no GATHER"), "{err}");
    // The GATHER alone is found, and the walk stops where the LayerNorm should start.
    let m = decode(&valid()).unwrap();
    let err = bert::recognise(&m).unwrap_err().to_string();
    assert!(err.contains("embeddings") && err.contains("ADD"), "{err}");
    let err = super::t5::recognise(&m).unwrap_err().to_string();
    assert!(err.contains("RMSNorm"), "{err}");
}

/// `octet convert` tries every walk and reports where each stopped.
#[test]
fn convert_names_every_walk_that_failed() {
    let dir = std::env::temp_dir().join(format!("octet-tflite-unrecognised-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("not-an-encoder.tflite");
    std::fs::write(&input, build(&valid())).unwrap();
    let recipe = crate::convert::recipe::Recipe::parse("f32", vec![], None).unwrap();
    let inputs = crate::convert::tflite::TfliteInputs {
        tokenizer: None,
        mapping: None,
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
