//! Reader tests on flatbuffers built by [`crate::testing`]: a small valid model decodes to the
//! right values, and every malformed variant is an error, never a panic.

use crate::bert;
use crate::model::{op, TensorType, TfliteModel};
use crate::testing::{build, f32_bytes, valid, BufferSpec, ModelSpec};
use crate::TfliteError;

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

/// The committed tiny masked three-input BERTs (tests/fixtures/tflite_masked), with bytes
/// overwritten at seeded places: whatever still decodes is walked (mask, segment and pooling
/// recognisers included) and its metadata read, without a panic.
#[test]
fn corrupted_masked_files_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tflite_masked");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for name in ["tiny-mean-int8.tflite", "tiny-cls-f32.tflite", "tiny-none-int8.tflite"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let clean = TfliteModel::from_bytes(bytes.clone()).unwrap();
        assert!(bert::recognise(&clean).is_ok(), "{name}");
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + (state % 3) as usize {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = 8 + (state as usize) % (b.len() - 8);
                b[at] = (state >> 32) as u8;
            }
            if let Ok(m) = TfliteModel::from_bytes(b) {
                let _ = bert::recognise(&m);
                let _ = crate::metadata::embedded_tokenizer(&m);
            }
        }
    }
}
