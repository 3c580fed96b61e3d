//! The JSON document (`meta`, `tensors`, `data_sha256`) as stored, and its validation into the
//! reader's tensor index.
//!
//! [`validate_document`] is the single place where a tensor table is checked: the reader runs it on
//! every open and the writer runs it before writing, so the writer cannot produce a file the reader
//! rejects. Checks, in order: per entry (name, dtype, shape, size, alignment, bounds, duplicates),
//! then overlaps between entries, then companion tensors (packed and quantized), then the
//! tensors the metadata names.

use super::dtype::{packed_f32_layout, packed_i8_layout, u6_len, u7_len, Dtype, KNOWN_DTYPES};
use super::meta::{is_sha256_hex, Architecture, ModelMeta};
use super::{FormatError, ALIGN};
use octet_kernels::f32::PackedF32Layout;
use octet_kernels::int8::PackedI8Layout;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most dimensions a tensor may have.
pub const MAX_RANK: usize = 8;
/// Longest tensor name in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// One tensor-table entry exactly as stored in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RawTensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    /// Byte offset from the start of the data section; a multiple of 64.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
    /// Quantization parameters (only on `i8`, and required on `u6` and `u7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<RawQuant>,
    /// Group size along k (only on `i8_packed`); absent = one group spanning k.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_group: Option<u64>,
}

/// `quant` of an `i8`, `u6` or `u7` entry as stored: `scale` is a number or a tensor name,
/// `zero_point` an integer, a tensor name or absent (0); `axis` is required when either is a
/// tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RawQuant {
    pub scale: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_point: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axis: Option<u64>,
}

/// The whole JSON document, as read. `meta` stays untyped until the architecture is checked so an
/// unknown architecture gets its own message.
#[derive(Debug, Deserialize)]
pub(crate) struct RawDocumentIn {
    pub meta: serde_json::Value,
    pub tensors: Vec<RawTensorEntry>,
    pub data_sha256: String,
}

/// The whole JSON document, as written.
#[derive(Debug, Serialize)]
pub(crate) struct RawDocumentOut<'a> {
    pub meta: &'a ModelMeta,
    pub tensors: &'a [RawTensorEntry],
    pub data_sha256: String,
}

/// A quantization parameter after validation: a value, or the index of a companion tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ParamRef<T> {
    Value(T),
    Tensor(usize),
}

/// Validated `quant` of an `i8`, `u6` or `u7` tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuantInfo {
    pub scale: ParamRef<f32>,
    pub zero_point: ParamRef<i32>,
    pub axis: Option<usize>,
}

/// A validated tensor-table entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte offset from the start of the data section.
    pub offset: usize,
    pub len: usize,
    pub quant: Option<QuantInfo>,
    /// The file's `k_group` of an `i8_packed` tensor (`None`: one activation scale per row).
    pub k_group: Option<usize>,
    pub packed_i8: Option<PackedI8Layout>,
    pub packed_f32: Option<PackedF32Layout>,
}

/// The validated document.
#[derive(Debug)]
pub(crate) struct Document {
    pub meta: ModelMeta,
    pub tensors: Vec<TensorInfo>,
    pub index: HashMap<String, usize>,
    pub data_sha256: [u8; 32],
}

fn bad_shape(entry: &RawTensorEntry, detail: impl Into<String>) -> FormatError {
    FormatError::BadShape {
        tensor: entry.name.clone(),
        shape: entry.shape.clone(),
        detail: detail.into(),
    }
}

/// Product of `shape` times `element_size`, or `None` on overflow.
fn plain_len(shape: &[u64], element_size: u64) -> Option<u64> {
    shape.iter().try_fold(element_size, |acc, &d| acc.checked_mul(d))
}

/// Validates one entry on its own (everything but companions and overlaps).
fn validate_entry(entry: &RawTensorEntry, data_len: u64) -> Result<TensorInfo, FormatError> {
    if entry.name.is_empty() || entry.name.len() > MAX_NAME_LEN {
        return Err(FormatError::BadJson {
            detail: format!(
                "a tensor name must have 1..={MAX_NAME_LEN} bytes, found one of {}",
                entry.name.len()
            ),
        });
    }
    let dtype = Dtype::parse(&entry.dtype).ok_or_else(|| FormatError::UnknownDtype {
        tensor: entry.name.clone(),
        dtype: entry.dtype.clone(),
        known: KNOWN_DTYPES,
    })?;
    if entry.shape.len() > MAX_RANK {
        return Err(bad_shape(entry, format!("more than {MAX_RANK} dimensions")));
    }
    if entry.quant.is_some() && !matches!(dtype, Dtype::I8 | Dtype::U6 | Dtype::U7) {
        return Err(FormatError::bad_meta(format!(
            "tensor '{}' is {dtype} but has `quant` (only i8, u6 and u7 may)",
            entry.name
        )));
    }
    if entry.k_group.is_some() && dtype != Dtype::I8Packed {
        return Err(FormatError::bad_meta(format!(
            "tensor '{}' is {dtype} but has `k_group` (only i8_packed may)",
            entry.name
        )));
    }
    let mut packed_i8 = None;
    let mut packed_f32 = None;
    let expected_len = match dtype {
        Dtype::I8Packed | Dtype::F32Packed => {
            let &[n, k] = entry.shape.as_slice() else {
                return Err(bad_shape(entry, format!("{dtype} tensors have shape [n, k]")));
            };
            if dtype == Dtype::I8Packed {
                let layout = packed_i8_layout(n, k, entry.k_group).map_err(|e| bad_shape(entry, e))?;
                packed_i8 = Some(layout);
                layout.data_len() as u64
            } else {
                let layout = packed_f32_layout(n, k).map_err(|e| bad_shape(entry, e))?;
                packed_f32 = Some(layout);
                layout.len() as u64 * 4
            }
        }
        Dtype::U6 => {
            let &[rows, dim] = entry.shape.as_slice() else {
                return Err(bad_shape(entry, "u6 tensors have shape [rows, dim]"));
            };
            u6_len(rows, dim).map_err(|e| bad_shape(entry, e))?
        }
        Dtype::U7 => {
            let &[rows, dim] = entry.shape.as_slice() else {
                return Err(bad_shape(entry, "u7 tensors have shape [rows, dim]"));
            };
            u7_len(rows, dim).map_err(|e| bad_shape(entry, e))?
        }
        _ => plain_len(&entry.shape, dtype.element_size())
            .ok_or_else(|| bad_shape(entry, "the byte size overflows 64 bits"))?,
    };
    if entry.len != expected_len {
        return Err(FormatError::SizeMismatch {
            tensor: entry.name.clone(),
            expected: expected_len,
            got: entry.len,
        });
    }
    if !entry.offset.is_multiple_of(ALIGN) {
        return Err(FormatError::Misaligned {
            tensor: entry.name.clone(),
            offset: entry.offset,
            align: ALIGN,
        });
    }
    let end = entry.offset.checked_add(entry.len);
    if end.is_none_or(|end| end > data_len) {
        return Err(FormatError::OutOfBounds {
            tensor: entry.name.clone(),
            offset: entry.offset,
            len: entry.len,
            data_len,
        });
    }
    // In bounds of a section that is itself in the file (and so in memory): fits usize.
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad_shape(entry, "too large for this platform"));
    let shape = entry
        .shape
        .iter()
        .map(|&d| to_usize(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TensorInfo {
        name: entry.name.clone(),
        dtype,
        shape,
        offset: to_usize(entry.offset)?,
        len: to_usize(entry.len)?,
        quant: None,
        k_group: packed_i8.and(entry.k_group.map(|g| g as usize)),
        packed_i8,
        packed_f32,
    })
}

/// Looks up a tensor that `needed_by` requires and checks its dtype and (if given) shape.
fn require(
    tensors: &[TensorInfo],
    index: &HashMap<String, usize>,
    name: &str,
    needed_by: &str,
    dtypes: &[Dtype],
    shape: Option<&[usize]>,
) -> Result<usize, FormatError> {
    let &i = index.get(name).ok_or_else(|| FormatError::MissingTensor {
        name: name.to_string(),
        needed_by: needed_by.to_string(),
    })?;
    let t = &tensors[i];
    if !dtypes.contains(&t.dtype) {
        let expected = dtypes.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(" or ");
        return Err(FormatError::WrongDtype {
            tensor: name.to_string(),
            expected,
            got: t.dtype.to_string(),
        });
    }
    if let Some(shape) = shape {
        if t.shape != shape {
            return Err(FormatError::WrongShape {
                tensor: name.to_string(),
                expected: shape.to_vec(),
                got: t.shape.clone(),
            });
        }
    }
    Ok(i)
}

/// Validates an `i8`, `u6` or `u7` entry's `quant` against the table.
fn validate_quant(
    raw: &RawQuant,
    info: &TensorInfo,
    tensors: &[TensorInfo],
    index: &HashMap<String, usize>,
) -> Result<QuantInfo, FormatError> {
    let name = &info.name;
    let axis = match raw.axis {
        None => None,
        Some(a) if (a as u128) < info.shape.len() as u128 => Some(a as usize),
        Some(a) => {
            return Err(FormatError::bad_meta(format!(
                "tensor '{name}' has quant axis {a} but only {} dimensions",
                info.shape.len()
            )))
        }
    };
    let channel_shape = |what: &str| -> Result<[usize; 1], FormatError> {
        match axis {
            Some(a) => Ok([info.shape[a]]),
            None => Err(FormatError::bad_meta(format!(
                "tensor '{name}' has a per-channel {what} but no quant axis"
            ))),
        }
    };
    let needed_by = format!("the quantization of '{name}'");
    let scale = match &raw.scale {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(v) if (v as f32).is_finite() => ParamRef::Value(v as f32),
            _ => {
                return Err(FormatError::bad_meta(format!(
                    "tensor '{name}' has a non-finite quant scale"
                )))
            }
        },
        serde_json::Value::String(s) => {
            let shape = channel_shape("scale")?;
            ParamRef::Tensor(require(tensors, index, s, &needed_by, &[Dtype::F32], Some(&shape))?)
        }
        _ => {
            return Err(FormatError::bad_meta(format!(
                "tensor '{name}': quant scale must be a number or a tensor name"
            )))
        }
    };
    let zero_point = match &raw.zero_point {
        None => ParamRef::Value(0),
        Some(serde_json::Value::Number(n)) => match n.as_i64().and_then(|v| i32::try_from(v).ok()) {
            Some(v) => ParamRef::Value(v),
            None => {
                return Err(FormatError::bad_meta(format!(
                    "tensor '{name}': quant zero_point must be an i32"
                )))
            }
        },
        Some(serde_json::Value::String(s)) => {
            let shape = channel_shape("zero_point")?;
            ParamRef::Tensor(require(tensors, index, s, &needed_by, &[Dtype::I32], Some(&shape))?)
        }
        Some(_) => {
            return Err(FormatError::bad_meta(format!(
                "tensor '{name}': quant zero_point must be an integer or a tensor name"
            )))
        }
    };
    Ok(QuantInfo {
        scale,
        zero_point,
        axis,
    })
}

/// A `u6` or `u7` table must have `quant`, per tensor or per row (axis 0): the layout packs
/// rows.
fn check_packed_table_quant(info: &TensorInfo) -> Result<(), FormatError> {
    let (name, dtype) = (&info.name, info.dtype);
    match info.quant {
        None => Err(FormatError::bad_meta(format!(
            "tensor '{name}' is {dtype} but has no `quant` (a {dtype} table needs its scale and zero point)"
        ))),
        Some(QuantInfo { axis: Some(a), .. }) if a != 0 => Err(FormatError::bad_meta(format!(
            "tensor '{name}' is {dtype} with quant axis {a}; {dtype} is quantized per tensor or per row (axis 0)"
        ))),
        Some(_) => Ok(()),
    }
}

/// Parses the hex `data_sha256`.
fn parse_sha256(hex: &str) -> Result<[u8; 32], FormatError> {
    if !is_sha256_hex(hex) {
        return Err(FormatError::BadJson {
            detail: "`data_sha256` must be 64 hex digits".into(),
        });
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        // Checked ASCII hex above, so this cannot fail.
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| FormatError::BadJson {
            detail: "`data_sha256` must be 64 hex digits".into(),
        })?;
    }
    Ok(out)
}

/// Lower-case hex of a digest.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses and validates the JSON document of a file whose data section has `data_len` bytes.
pub(crate) fn parse_document(json: &[u8], data_len: u64) -> Result<Document, FormatError> {
    let raw: RawDocumentIn =
        serde_json::from_slice(json).map_err(|e| FormatError::BadJson { detail: e.to_string() })?;
    match raw.meta.get("architecture") {
        Some(serde_json::Value::String(name)) => {
            Architecture::parse(name)?;
        }
        _ => {
            return Err(FormatError::BadJson {
                detail: "`meta.architecture` must be a string".into(),
            })
        }
    }
    let meta: ModelMeta = serde_json::from_value(raw.meta).map_err(|e| FormatError::BadJson {
        detail: format!("in `meta`: {e}"),
    })?;
    let data_sha256 = parse_sha256(&raw.data_sha256)?;
    validate_document(meta, &raw.tensors, data_len, data_sha256)
}

/// Validates metadata and tensor table against a data section of `data_len` bytes.
pub(crate) fn validate_document(
    meta: ModelMeta,
    entries: &[RawTensorEntry],
    data_len: u64,
    data_sha256: [u8; 32],
) -> Result<Document, FormatError> {
    meta.validate()?;

    let mut tensors = Vec::with_capacity(entries.len());
    let mut index = HashMap::with_capacity(entries.len());
    for entry in entries {
        let info = validate_entry(entry, data_len)?;
        if index.insert(info.name.clone(), tensors.len()).is_some() {
            return Err(FormatError::DuplicateTensor { name: info.name });
        }
        tensors.push(info);
    }

    // No two non-empty tensors may share a byte.
    let mut spans: Vec<(usize, usize, usize)> = tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.len > 0)
        .map(|(i, t)| (t.offset, t.offset + t.len, i))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(FormatError::Overlap {
                first: tensors[pair[0].2].name.clone(),
                second: tensors[pair[1].2].name.clone(),
            });
        }
    }

    // Companion tensors.
    for i in 0..tensors.len() {
        if let Some(layout) = tensors[i].packed_i8 {
            let name = &tensors[i].name;
            let needed_by = format!("the packed int8 weight '{name}'");
            require(
                &tensors,
                &index,
                &format!("{name}.col_scales"),
                &needed_by,
                &[Dtype::F32],
                Some(&[layout.n_pad]),
            )?;
            require(
                &tensors,
                &index,
                &format!("{name}.col_sums"),
                &needed_by,
                &[Dtype::I32],
                Some(&[layout.groups, layout.n_pad]),
            )?;
        }
        if let Some(raw) = &entries[i].quant {
            let quant = validate_quant(raw, &tensors[i], &tensors, &index)?;
            tensors[i].quant = Some(quant);
        }
        if matches!(tensors[i].dtype, Dtype::U6 | Dtype::U7) {
            check_packed_table_quant(&tensors[i])?;
        }
    }

    // Tensors the metadata names.
    let tokenizer = require(
        &tensors,
        &index,
        &meta.tokenizer,
        "`meta.tokenizer`",
        &[Dtype::U8],
        None,
    )?;
    if tensors[tokenizer].shape.len() != 1 {
        return Err(FormatError::WrongShape {
            tensor: meta.tokenizer.clone(),
            expected: vec![tensors[tokenizer].len],
            got: tensors[tokenizer].shape.clone(),
        });
    }
    let weight_dtypes = [
        Dtype::F32,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::I8,
        Dtype::I8Packed,
        Dtype::F32Packed,
    ];
    let bias_dtypes = [Dtype::F32, Dtype::F16, Dtype::Bf16];
    for (l, layer) in meta.dense.iter().enumerate() {
        let needed_by = format!("dense layer {l}");
        let shape = [layer.out_features, layer.in_features];
        require(
            &tensors,
            &index,
            &layer.weight,
            &needed_by,
            &weight_dtypes,
            Some(&shape),
        )?;
        if let Some(bias) = &layer.bias {
            require(
                &tensors,
                &index,
                bias,
                &needed_by,
                &bias_dtypes,
                Some(&[layer.out_features]),
            )?;
        }
    }

    Ok(Document {
        meta,
        tensors,
        index,
        data_sha256,
    })
}
