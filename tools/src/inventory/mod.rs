//! What a model file holds, described the same way for every format octet reads: `.octet`
//! ([`octet`]), `.safetensors` ([`safetensors`]) and TFLite (`tflite.rs`, see
//! the `octet-tflite` crate). `octet inspect` prints an [`Inventory`]; `octet diff` compares two.
//!
//! An inventory lists every tensor in file order with its format's own dtype name (`i8_packed`,
//! `F32`, `INT8`), logical shape, stored bytes and [`Quantization`]; companion tensors that only
//! serve another one (scales, zero points, column sums) name it in
//! [`TensorEntry::companion_of`], so totals count them while tables can fold them. The model's
//! inputs and outputs are [`Port`]s (empty when the format does not say), and formats with an
//! operator graph (TFLite) fill [`Inventory::operators`].
//!
//! [`read`] picks the reader by the file's first bytes, not its name: `OCTETMDL` is `.octet`,
//! `TFL3` at offset 4 is TFLite, and an 8-byte little-endian length followed by `{` is
//! safetensors.

pub mod diff;
pub mod octet;
pub mod safetensors;
pub mod tflite;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A model file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Octet,
    Safetensors,
    Tflite,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Octet => "octet",
            Format::Safetensors => "safetensors",
            Format::Tflite => "tflite",
        })
    }
}

/// How a tensor's stored values map to real numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Quantization {
    /// Stored as real numbers (f32, f16, bf16), or integers that are not quantized values.
    None,
    /// One scale (and zero point) for the whole tensor: real = scale x (q - zero_point).
    PerTensor { scale: f32, zero_point: i64 },
    /// One scale per channel along `axis` (`None` when the format does not name the axis, e.g.
    /// octet's packed weights, whose channels are output features).
    PerChannel {
        axis: Option<usize>,
        channels: usize,
        min_scale: f32,
        max_scale: f32,
    },
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantization::None => f.write_str("none"),
            Quantization::PerTensor { scale, zero_point } => write!(f, "per-tensor scale {scale:.3e} zp {zero_point}"),
            Quantization::PerChannel {
                axis,
                channels,
                min_scale,
                max_scale,
            } => {
                let axis = axis.map(|a| format!(" axis {a}")).unwrap_or_default();
                write!(
                    f,
                    "per-channel{axis} x{channels} scales {min_scale:.3e}..{max_scale:.3e}"
                )
            }
        }
    }
}

/// One stored tensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorEntry {
    pub name: String,
    /// The logical shape (for packed layouts, the unpacked `[n, k]`).
    pub shape: Vec<usize>,
    /// The format's own dtype name.
    pub dtype: String,
    /// Bytes stored in the file (packing and padding included).
    pub bytes: u64,
    pub quantization: Quantization,
    /// The tensor this one serves (scales, zero points, column sums), if it is a companion.
    pub companion_of: Option<String>,
}

/// One dimension of a model input or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Dim {
    Fixed(usize),
    /// Chosen at run time: `batch`, `tokens`, or `?` when the format only says "any".
    Dynamic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Dynamic(name) => f.write_str(name),
        }
    }
}

/// A model input or output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Port {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<Dim>,
    /// What the values mean, e.g. "token ids" or "mean-pooled, L2-normalized embedding".
    pub note: String,
}

impl Port {
    /// `name dtype [d0, d1] note`.
    pub fn describe(&self) -> String {
        let shape: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", self.note)
        };
        format!("{} {} [{}]{note}", self.name, self.dtype, shape.join(", "))
    }
}

/// Everything `octet inspect` shows about one model file.
#[derive(Clone, Debug, Serialize)]
pub struct Inventory {
    pub format: Format,
    pub path: PathBuf,
    pub file_bytes: u64,
    /// Facts the format records, in display order: architecture, recipe, window, ...
    pub facts: Vec<(String, String)>,
    /// Every tensor in file order, companions included.
    pub tensors: Vec<TensorEntry>,
    /// Model inputs; empty when the format does not record them (safetensors).
    pub inputs: Vec<Port>,
    /// Model outputs; empty when the format does not record them.
    pub outputs: Vec<Port>,
    /// Operator type and count, most frequent first (formats with a graph: TFLite).
    pub operators: Vec<(String, usize)>,
    /// Anything else worth saying (e.g. where inputs and outputs were inferred from).
    pub notes: Vec<String>,
}

/// Per-dtype totals: dtype, tensor count, bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DtypeTotal {
    pub dtype: String,
    pub tensors: usize,
    pub bytes: u64,
}

impl Inventory {
    /// A new inventory with no tensors, ports or facts yet.
    pub fn new(format: Format, path: &Path, file_bytes: u64) -> Inventory {
        Inventory {
            format,
            path: path.to_path_buf(),
            file_bytes,
            facts: Vec::new(),
            tensors: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            operators: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Bytes of all tensors (the rest of the file is headers, metadata and padding).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// Totals per dtype, largest first.
    pub fn totals_by_dtype(&self) -> Vec<DtypeTotal> {
        let mut totals: Vec<DtypeTotal> = Vec::new();
        for t in &self.tensors {
            match totals.iter_mut().find(|d| d.dtype == t.dtype) {
                Some(d) => {
                    d.tensors += 1;
                    d.bytes += t.bytes;
                }
                None => totals.push(DtypeTotal {
                    dtype: t.dtype.clone(),
                    tensors: 1,
                    bytes: t.bytes,
                }),
            }
        }
        totals.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.dtype.cmp(&b.dtype)));
        totals
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Tells the format from the file's first bytes.
pub fn detect(path: &Path) -> Result<Format> {
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut got = 0;
    while got < head.len() {
        let n = file
            .read(&mut head[got..])
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = &head[..got];
    if head.starts_with(&::octet::format::MAGIC) {
        return Ok(Format::Octet);
    }
    if head.len() >= 8 && &head[4..8] == b"TFL3" {
        return Ok(Format::Tflite);
    }
    if head.len() >= 9 && head[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    bail!(
        "{}: not a model file octet can read (expected a .octet file, a .safetensors file or a TFLite flatbuffer)",
        path.display()
    )
}

/// Reads the inventory of the model file at `path`, whatever its format.
pub fn read(path: &Path) -> Result<Inventory> {
    match detect(path)? {
        Format::Octet => octet::read(path),
        Format::Safetensors => safetensors::read(path),
        Format::Tflite => tflite::read(path),
    }
}

/// Quantization from a list of per-channel scales (one value: per tensor).
pub fn per_channel(axis: Option<usize>, scales: &[f32], zero_point: i64) -> Quantization {
    match scales {
        [] => Quantization::None,
        [scale] => Quantization::PerTensor {
            scale: *scale,
            zero_point,
        },
        _ => {
            let min_scale = scales.iter().cloned().fold(f32::INFINITY, f32::min);
            let max_scale = scales.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            Quantization::PerChannel {
                axis,
                channels: scales.len(),
                min_scale,
                max_scale,
            }
        }
    }
}

/// The widths of the first `columns` columns of a text table: each column's longest cell or
/// heading (`octet inspect`'s tensor table, `octet diff`'s changes).
pub fn column_widths<const N: usize>(head: &[&str; N], rows: &[[String; N]], columns: usize) -> Vec<usize> {
    (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([head[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect()
}
