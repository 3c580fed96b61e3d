//! A TFLite model decoded into plain Rust values: the main subgraph's tensors (shape, type,
//! quantization, where their constant data lies) and operators, checked on the way in.
//!
//! Everything a later step indexes is validated here: tensor, buffer and opcode indices are in
//! range, shapes are non-negative with an element count that fits `usize`, and a constant's
//! bytes are exactly its element count times its type's size. Buffers are either inside the
//! flatbuffer (`Buffer.data`) or, for files over 2 GB, after it (`Buffer.offset` / `size`, from
//! the start of the file). The file is held in memory (`std::fs::read`), not mapped, so that a
//! file rewritten under us cannot change what was checked.

use crate::error::TfliteError;
use crate::schema;
use flatbuffers::Vector;
use std::ops::Range;
use std::path::Path;

/// The file identifier at bytes 4..8 of every TFLite flatbuffer.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// Builtin operator codes the importer recognises (schema `BuiltinOperator`).
pub mod op {
    pub const ADD: i32 = 0;
    pub const DEQUANTIZE: i32 = 6;
    pub const EMBEDDING_LOOKUP: i32 = 7;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const L2_NORMALIZATION: i32 = 11;
    pub const MUL: i32 = 18;
    pub const RELU: i32 = 19;
    pub const RESHAPE: i32 = 22;
    pub const SOFTMAX: i32 = 25;
    pub const GATHER: i32 = 36;
    pub const TRANSPOSE: i32 = 39;
    pub const MEAN: i32 = 40;
    pub const SUB: i32 = 41;
    pub const DIV: i32 = 42;
    pub const SQUEEZE: i32 = 43;
    pub const STRIDED_SLICE: i32 = 45;
    pub const CAST: i32 = 53;
    pub const MAXIMUM: i32 = 55;
    pub const SLICE: i32 = 65;
    pub const EXPAND_DIMS: i32 = 70;
    pub const NOT_EQUAL: i32 = 72;
    pub const SUM: i32 = 74;
    pub const SQRT: i32 = 75;
    pub const RSQRT: i32 = 76;
    pub const SHAPE: i32 = 77;
    pub const POW: i32 = 78;
    pub const ONE_HOT: i32 = 85;
    pub const LOGICAL_AND: i32 = 86;
    pub const SQUARE: i32 = 92;
    pub const SQUARED_DIFFERENCE: i32 = 99;
    pub const GATHER_ND: i32 = 107;
    pub const SELECT_V2: i32 = 123;
    pub const BATCH_MATMUL: i32 = 126;
    pub const BROADCAST_TO: i32 = 130;
    pub const GELU: i32 = 150;

    /// A readable name for error messages.
    pub fn name(code: i32) -> String {
        let known = [
            (ADD, "ADD"),
            (DEQUANTIZE, "DEQUANTIZE"),
            (EMBEDDING_LOOKUP, "EMBEDDING_LOOKUP"),
            (FULLY_CONNECTED, "FULLY_CONNECTED"),
            (L2_NORMALIZATION, "L2_NORMALIZATION"),
            (MUL, "MUL"),
            (RELU, "RELU"),
            (RESHAPE, "RESHAPE"),
            (SOFTMAX, "SOFTMAX"),
            (GATHER, "GATHER"),
            (TRANSPOSE, "TRANSPOSE"),
            (MEAN, "MEAN"),
            (SUB, "SUB"),
            (DIV, "DIV"),
            (SQUEEZE, "SQUEEZE"),
            (STRIDED_SLICE, "STRIDED_SLICE"),
            (CAST, "CAST"),
            (MAXIMUM, "MAXIMUM"),
            (SLICE, "SLICE"),
            (EXPAND_DIMS, "EXPAND_DIMS"),
            (SUM, "SUM"),
            (SQRT, "SQRT"),
            (RSQRT, "RSQRT"),
            (SHAPE, "SHAPE"),
            (POW, "POW"),
            (ONE_HOT, "ONE_HOT"),
            (LOGICAL_AND, "LOGICAL_AND"),
            (GATHER_ND, "GATHER_ND"),
            (NOT_EQUAL, "NOT_EQUAL"),
            (SQUARE, "SQUARE"),
            (SQUARED_DIFFERENCE, "SQUARED_DIFFERENCE"),
            (SELECT_V2, "SELECT_V2"),
            (BATCH_MATMUL, "BATCH_MATMUL"),
            (BROADCAST_TO, "BROADCAST_TO"),
            (GELU, "GELU"),
        ];
        known
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| format!("builtin {code}"))
    }
}

/// A tensor's element type (schema `TensorType`); the ones the importer reads by value, plus
/// `Other` for the rest (their tensors can exist but not be read as weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    I32,
    U8,
    I64,
    I8,
    I16,
    /// Two values per byte, low nibble first, sign-extended.
    I4,
    Other(i8),
}

impl TensorType {
    fn from_code(code: i8) -> TensorType {
        match code {
            0 => TensorType::F32,
            1 => TensorType::F16,
            2 => TensorType::I32,
            3 => TensorType::U8,
            4 => TensorType::I64,
            7 => TensorType::I16,
            9 => TensorType::I8,
            17 => TensorType::I4,
            other => TensorType::Other(other),
        }
    }

    /// Bytes needed for `count` elements, or None for types without a fixed size.
    pub fn bytes_for(self, count: usize) -> Option<usize> {
        match self {
            TensorType::F32 | TensorType::I32 => count.checked_mul(4),
            TensorType::F16 | TensorType::I16 => count.checked_mul(2),
            TensorType::I64 => count.checked_mul(8),
            TensorType::U8 | TensorType::I8 => Some(count),
            TensorType::I4 => Some(count.div_ceil(2)),
            TensorType::Other(_) => None,
        }
    }

    pub fn as_str(self) -> String {
        match self {
            TensorType::F32 => "float32".into(),
            TensorType::F16 => "float16".into(),
            TensorType::I32 => "int32".into(),
            TensorType::U8 => "uint8".into(),
            TensorType::I64 => "int64".into(),
            TensorType::I8 => "int8".into(),
            TensorType::I16 => "int16".into(),
            TensorType::I4 => "int4".into(),
            TensorType::Other(c) => format!("type {c}"),
        }
    }
}

/// Affine quantization: real = scale x (q - zero_point), per tensor (one value) or per channel
/// along `axis` (one value per index of that dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: usize,
}

impl Quantization {
    pub fn per_channel(&self) -> bool {
        self.scale.len() > 1 || self.zero_point.len() > 1
    }
}

/// One tensor of the main subgraph.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub index: usize,
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: TensorType,
    /// Quantization parameters, when the tensor has a scale.
    pub quant: Option<Quantization>,
    /// Where its constant bytes lie in the file, when it is a constant.
    pub data: Option<Range<usize>>,
    /// `shape` with -1 where the size is chosen at run time, when the file records it.
    pub shape_signature: Option<Vec<i32>>,
}

impl Tensor {
    /// Element count (checked against overflow when decoding).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }

    /// `name (#index)`, for messages.
    pub fn label(&self) -> String {
        format!("'{}' (#{})", self.name, self.index)
    }
}

/// The options of the operators whose options the importer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpOptions {
    None,
    FullyConnected {
        fused_activation: i8,
        weights_format: i8,
        asymmetric_quantize_inputs: bool,
    },
    BatchMatMul {
        adj_x: bool,
        adj_y: bool,
    },
    Gelu {
        approximate: bool,
    },
}

/// One operator of the main subgraph, in execution order.
#[derive(Clone, Debug)]
pub struct Operator {
    pub index: usize,
    /// Builtin code ([`op`]); 32 (CUSTOM) for custom operators.
    pub code: i32,
    pub custom_code: Option<String>,
    /// Input tensor indices; `None` for an omitted optional input (-1).
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
    pub options: OpOptions,
}

impl Operator {
    /// Input `i` if present.
    pub fn input(&self, i: usize) -> Option<usize> {
        self.inputs.get(i).copied().flatten()
    }

    pub fn label(&self) -> String {
        format!("{} (operator #{})", op::name(self.code), self.index)
    }
}

/// One entry of `Model.metadata`: a named buffer (e.g. `TFLITE_METADATA`, the TFLite Support
/// metadata that [`super::metadata`] reads).
#[derive(Clone, Debug)]
pub struct MetadataEntry {
    pub name: String,
    /// Where the buffer's bytes lie in the file (None when the buffer is empty).
    pub data: Option<Range<usize>>,
}

/// A decoded TFLite model: the file's bytes and its main subgraph (subgraph 0).
pub struct TfliteModel {
    bytes: Vec<u8>,
    /// The model's named metadata buffers, each buffer index checked.
    pub metadata: Vec<MetadataEntry>,
    pub tensors: Vec<Tensor>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub operators: Vec<Operator>,
    /// Subgraphs in the file (only the first is decoded).
    pub subgraph_count: usize,
}

fn invalid(msg: impl Into<String>) -> TfliteError {
    TfliteError::Invalid(msg.into())
}

/// Reads a flatbuffer i32 vector of tensor indices, each checked below `tensors`.
fn indices(
    v: Option<Vector<'_, i32>>,
    tensors: usize,
    what: &str,
    optional: bool,
) -> Result<Vec<Option<usize>>, TfliteError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    v.iter()
        .map(|i| match i {
            -1 if optional => Ok(None),
            i if i >= 0 && (i as usize) < tensors => Ok(Some(i as usize)),
            i => Err(invalid(format!(
                "{what} refers to tensor {i}, but the subgraph has {tensors} tensors"
            ))),
        })
        .collect()
}

/// The `Model.metadata` entries, each buffer index checked against `buffers`.
fn metadata_entries(
    model: &schema::ModelTable<'_>,
    buffers: &[Option<Range<usize>>],
) -> Result<Vec<MetadataEntry>, TfliteError> {
    let Some(entries) = model.metadata() else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .map(|m| {
            let name = String::from_utf8_lossy(m.name()).into_owned();
            let buffer = m.buffer() as usize;
            let data = buffers.get(buffer).cloned().ok_or_else(|| {
                invalid(format!(
                    "metadata '{name}' refers to buffer {buffer}, but the model has {} buffers",
                    buffers.len()
                ))
            })?;
            Ok(MetadataEntry { name, data })
        })
        .collect()
}

impl TfliteModel {
    /// Reads and decodes the file at `path`.
    pub fn open(path: &Path) -> Result<TfliteModel, TfliteError> {
        let bytes = std::fs::read(path).map_err(|e| TfliteError::Io(format!("cannot read {}: {e}", path.display())))?;
        TfliteModel::from_bytes(bytes)
    }

    /// Decodes a model held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TfliteModel, TfliteError> {
        if bytes.len() < 8 {
            return Err(invalid(format!("{} bytes: too short for a TFLite file", bytes.len())));
        }
        if &bytes[4..8] != FILE_IDENTIFIER {
            return Err(invalid(format!(
                "file identifier {:?}, not \"TFL3\": not a TFLite model",
                String::from_utf8_lossy(&bytes[4..8])
            )));
        }
        let (tensors, inputs, outputs, operators, subgraph_count, metadata) = Self::decode(&bytes)?;
        Ok(TfliteModel {
            bytes,
            metadata,
            tensors,
            inputs,
            outputs,
            operators,
            subgraph_count,
        })
    }

    /// Decodes the main subgraph of a file whose identifier was checked.
    #[allow(clippy::type_complexity)]
    fn decode(
        bytes: &[u8],
    ) -> Result<
        (
            Vec<Tensor>,
            Vec<usize>,
            Vec<usize>,
            Vec<Operator>,
            usize,
            Vec<MetadataEntry>,
        ),
        TfliteError,
    > {
        // A flatbuffer's offsets are 32-bit: the table part lies in the first 2 GB, and larger
        // files keep their buffers after it (Buffer.offset / size).
        let fb = &bytes[..bytes.len().min(flatbuffers::FLATBUFFERS_MAX_BUFFER_SIZE)];
        let model = schema::verified_model(fb).map_err(|e| invalid(format!("malformed flatbuffer: {e}")))?;
        let subgraphs = model.subgraphs().ok_or_else(|| invalid("the model has no subgraphs"))?;
        if subgraphs.is_empty() {
            return Err(invalid("the model has no subgraphs"));
        }
        let graph = subgraphs.get(0);
        let codes: Vec<(i32, Option<String>)> = model
            .operator_codes()
            .map(|v| {
                v.iter()
                    .map(|c| {
                        (
                            c.builtin_code(),
                            c.custom_code().map(|b| String::from_utf8_lossy(b).into_owned()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();

        // Buffers: byte ranges into the file.
        let mut buffers: Vec<Option<Range<usize>>> = Vec::new();
        if let Some(bufs) = model.buffers() {
            for (i, b) in bufs.iter().enumerate() {
                let (offset, size) = b.external();
                let range = if offset > 1 {
                    // Offsets 0 and 1 are the schema's "no external data" sentinels.
                    let start = usize::try_from(offset)
                        .map_err(|_| invalid(format!("buffer {i}: offset {offset} too large")))?;
                    let len =
                        usize::try_from(size).map_err(|_| invalid(format!("buffer {i}: size {size} too large")))?;
                    let end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                        invalid(format!(
                            "buffer {i}: bytes {offset}..{offset}+{size} lie past the end of the {}-byte file",
                            bytes.len()
                        ))
                    })?;
                    Some(start..end)
                } else {
                    b.data().filter(|d| !d.is_empty()).map(|d| {
                        // The slice borrows from `bytes`: its position is its offset in the file.
                        let start = d.as_ptr() as usize - bytes.as_ptr() as usize;
                        start..start + d.len()
                    })
                };
                buffers.push(range);
            }
        }

        let tensor_tables = graph
            .tensors()
            .map(|v| v.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        let count = tensor_tables.len();
        let mut tensors = Vec::with_capacity(count);
        for (index, t) in tensor_tables.iter().enumerate() {
            let name = String::from_utf8_lossy(t.name()).into_owned();
            let shape = t
                .shape()
                .map(|s| s.iter().collect::<Vec<i32>>())
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    usize::try_from(d)
                        .map_err(|_| invalid(format!("tensor '{name}' (#{index}) has a negative dimension {d}")))
                })
                .collect::<Result<Vec<usize>, _>>()?;
            let numel = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    invalid(format!(
                        "tensor '{name}' (#{index}): the element count of shape {shape:?} overflows"
                    ))
                })?;
            let dtype = TensorType::from_code(t.type_code());
            let buffer = t.buffer() as usize;
            if buffer >= buffers.len() && !(buffer == 0 && buffers.is_empty()) {
                return Err(invalid(format!(
                    "tensor '{name}' (#{index}) refers to buffer {buffer}, but the model has {} buffers",
                    buffers.len()
                )));
            }
            let data = buffers.get(buffer).cloned().flatten();
            if let Some(range) = &data {
                // Types without a fixed element size (strings, bool...) are never read as values.
                let want = dtype.bytes_for(numel).unwrap_or(range.len());
                if range.len() != want {
                    return Err(invalid(format!(
                        "tensor '{name}' (#{index}): buffer holds {} bytes, but shape {shape:?} of {} needs {want}",
                        range.len(),
                        dtype.as_str()
                    )));
                }
            }
            let quant = match t.quantization() {
                Some(q) if q.details_type() != 0 => {
                    return Err(invalid(format!(
                        "tensor '{name}' (#{index}) uses custom quantization details, which octet does not read"
                    )))
                }
                Some(q) => {
                    let scale: Vec<f32> = q.scale().map(|v| v.iter().collect()).unwrap_or_default();
                    let zero_point: Vec<i64> = q.zero_point().map(|v| v.iter().collect()).unwrap_or_default();
                    if scale.is_empty() {
                        None
                    } else {
                        let axis = usize::try_from(q.quantized_dimension()).map_err(|_| {
                            invalid(format!("tensor '{name}' (#{index}): negative quantized_dimension"))
                        })?;
                        if scale.len() > 1 {
                            let channels = shape.get(axis).copied().ok_or_else(|| invalid(format!("tensor '{name}' (#{index}): quantized_dimension {axis} out of range for shape {shape:?}")))?;
                            if scale.len() != channels {
                                return Err(invalid(format!(
                                    "tensor '{name}' (#{index}): {} scales for {channels} channels",
                                    scale.len()
                                )));
                            }
                        }
                        if !(zero_point.is_empty() || zero_point.len() == 1 || zero_point.len() == scale.len()) {
                            return Err(invalid(format!(
                                "tensor '{name}' (#{index}): {} zero points for {} scales",
                                zero_point.len(),
                                scale.len()
                            )));
                        }
                        if scale.iter().any(|s| !s.is_finite() || *s <= 0.0) {
                            return Err(invalid(format!(
                                "tensor '{name}' (#{index}): a scale is not a positive finite number"
                            )));
                        }
                        Some(Quantization {
                            scale,
                            zero_point,
                            axis,
                        })
                    }
                }
                None => None,
            };
            let shape_signature = t.shape_signature().map(|v| v.iter().collect());
            tensors.push(Tensor {
                index,
                name,
                shape,
                dtype,
                quant,
                data,
                shape_signature,
            });
        }

        let single = |v: Option<Vector<'_, i32>>, what: &str| -> Result<Vec<usize>, TfliteError> {
            Ok(indices(v, count, what, false)?.into_iter().flatten().collect())
        };
        let inputs = single(graph.inputs(), "the subgraph's inputs")?;
        let outputs = single(graph.outputs(), "the subgraph's outputs")?;
        let mut operators = Vec::new();
        if let Some(ops) = graph.operators() {
            for (index, o) in ops.iter().enumerate() {
                let opcode = o.opcode_index() as usize;
                let (code, custom_code) = codes.get(opcode).cloned().ok_or_else(|| {
                    invalid(format!(
                        "operator #{index} uses opcode {opcode}, but the model has {} operator codes",
                        codes.len()
                    ))
                })?;
                let what = format!("operator #{index}");
                let inputs = indices(o.inputs(), count, &what, true)?;
                let outputs = indices(o.outputs(), count, &what, false)?
                    .into_iter()
                    .flatten()
                    .collect();
                let options = if let Some(f) = o.fully_connected_options() {
                    OpOptions::FullyConnected {
                        fused_activation: f.fused_activation(),
                        weights_format: f.weights_format(),
                        asymmetric_quantize_inputs: f.asymmetric_quantize_inputs(),
                    }
                } else if let Some(b) = o.batch_matmul_options() {
                    let (adj_x, adj_y) = b.adj();
                    OpOptions::BatchMatMul { adj_x, adj_y }
                } else if let Some(g) = o.gelu_options() {
                    OpOptions::Gelu {
                        approximate: g.approximate(),
                    }
                } else {
                    OpOptions::None
                };
                operators.push(Operator {
                    index,
                    code,
                    custom_code,
                    inputs,
                    outputs,
                    options,
                });
            }
        }
        crate::execution_order::check(&operators, count)?;
        let metadata = metadata_entries(&model, &buffers)?;
        Ok((tensors, inputs, outputs, operators, subgraphs.len(), metadata))
    }

    /// The bytes of the metadata buffer called `name`, if the model has one.
    pub fn metadata_bytes(&self, name: &str) -> Option<&[u8]> {
        self.metadata
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.data.clone())
            .map(|r| &self.bytes[r])
    }

    /// The whole file, including anything after the flatbuffer (such as the zip archive of
    /// associated files that TFLite Support metadata appends).
    pub fn file_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The constant bytes of tensor `t` (validated length), or None for a non-constant.
    pub fn data(&self, t: &Tensor) -> Option<&[u8]> {
        t.data.clone().map(|r| &self.bytes[r])
    }

    /// The size of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.bytes.len()
    }

    /// A constant tensor's values as f32: float32 and float16 directly, integer types
    /// dequantized with their scale and zero point when they have them (as DEQUANTIZE would).
    pub fn f32_values(&self, t: &Tensor) -> Result<Vec<f32>, TfliteError> {
        let bytes = self
            .data(t)
            .ok_or_else(|| invalid(format!("tensor {} is not a constant", t.label())))?;
        let raw: Vec<f32> = match t.dtype {
            TensorType::F32 => {
                return Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
            TensorType::F16 => {
                return Ok(bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect())
            }
            TensorType::I8 => bytes.iter().map(|&b| b as i8 as f32).collect(),
            TensorType::U8 => bytes.iter().map(|&b| b as f32).collect(),
            TensorType::I4 => self.i4_values(t)?.into_iter().map(|v| v as f32).collect(),
            TensorType::I16 => bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                .collect(),
            TensorType::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            other => {
                return Err(invalid(format!(
                    "tensor {}: cannot read {} as float",
                    t.label(),
                    other.as_str()
                )))
            }
        };
        let Some(q) = &t.quant else { return Ok(raw) };
        let channels = if q.per_channel() { t.shape[q.axis] } else { 1 };
        // Elements of one channel repeat every `inner` values along the flattened tensor.
        let inner: usize = t.shape[(q.axis + 1).min(t.shape.len())..].iter().product();
        Ok(raw
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = if channels > 1 { (i / inner.max(1)) % channels } else { 0 };
                let scale = q.scale[c.min(q.scale.len() - 1)];
                let zp = q
                    .zero_point
                    .get(c.min(q.zero_point.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(0);
                (v - zp as f32) * scale
            })
            .collect())
    }

    /// A constant int8 tensor's raw values.
    pub fn i8_values(&self, t: &Tensor) -> Result<Vec<i8>, TfliteError> {
        match (t.dtype, self.data(t)) {
            (TensorType::I8, Some(b)) => Ok(b.iter().map(|&v| v as i8).collect()),
            (TensorType::I4, Some(_)) => self.i4_values(t),
            _ => Err(invalid(format!("tensor {} is not a constant int8 tensor", t.label()))),
        }
    }

    /// A constant int4 tensor's values (low nibble first, sign-extended) as i8.
    pub fn i4_values(&self, t: &Tensor) -> Result<Vec<i8>, TfliteError> {
        let bytes = self
            .data(t)
            .filter(|_| t.dtype == TensorType::I4)
            .ok_or_else(|| invalid(format!("tensor {} is not a constant int4 tensor", t.label())))?;
        let n = t.numel();
        Ok((0..n)
            .map(|i| ((bytes[i / 2] >> (4 * (i % 2))) << 4) as i8 >> 4)
            .collect())
    }

    /// A constant int32 tensor's values.
    pub fn i32_values(&self, t: &Tensor) -> Result<Vec<i32>, TfliteError> {
        match (t.dtype, self.data(t)) {
            (TensorType::I32, Some(b)) => Ok(b
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            _ => Err(invalid(format!("tensor {} is not a constant int32 tensor", t.label()))),
        }
    }
}
