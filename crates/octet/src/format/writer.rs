//! [`ModelWriter`]: builds a `.octet` file from metadata and tensors. The converter and the tests
//! share this one implementation.
//!
//! The writer lays tensors out in the order they were added, each at the next multiple of 64
//! bytes, runs the reader's own validation on the result before writing a byte (so it cannot
//! produce a file the reader rejects), and writes atomically: a temporary file in the target's
//! folder, flushed and fsynced, then renamed over the target. A reader that has the old file
//! mapped keeps the old pages; nobody ever sees a half-written model.

use super::dtype::{file_k_group, packed_f32_layout, packed_i8_layout, round_up, u6_len, u7_len, Dtype, QuantParam};
use super::header::{Header, FLAG_CHANNEL_ORDER, HEADER_LEN};
use super::meta::ModelMeta;
use super::table::{to_hex, validate_document, RawDocumentOut, RawQuant, RawTensorEntry};
use super::{FormatError, ALIGN, CHANNEL_ORDER_TENSOR};
use bytemuck::Pod;
use half::{bf16, f16};
use octet_kernels::int8::PackedI8Layout;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Zero bytes used for padding.
const ZEROS: [u8; ALIGN as usize] = [0; ALIGN as usize];

/// A tensor waiting to be written; `entry.offset` is assigned by [`ModelWriter::plan`].
struct Pending {
    entry: RawTensorEntry,
    bytes: Vec<u8>,
}

/// Where everything goes, computed before writing.
struct Plan {
    header_bytes: [u8; HEADER_LEN],
    json: Vec<u8>,
    data_offset: u64,
    /// The table with offsets filled in.
    entries: Vec<RawTensorEntry>,
    file_len: u64,
}

/// Collects metadata and tensors, then writes a `.octet` file.
pub struct ModelWriter {
    meta: ModelMeta,
    tensors: Vec<Pending>,
    names: HashSet<String>,
}

fn numel(shape: &[usize]) -> Result<usize, FormatError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| FormatError::invalid(format!("shape {shape:?} overflows")))
}

fn to_u64s(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

fn check_len(name: &str, what: &str, got: usize, expected: usize) -> Result<(), FormatError> {
    if got != expected {
        return Err(FormatError::invalid(format!(
            "tensor '{name}': {what} has {got} elements, expected {expected}"
        )));
    }
    Ok(())
}

/// A `quant` record and the companion tensors (with their bytes) it names.
type QuantRecord = (RawQuant, Vec<(RawTensorEntry, Vec<u8>)>);

/// Bytes of a slice of plain numbers, little-endian (this crate only builds on little-endian
/// targets, see `format/mod.rs`).
fn le_bytes<T: Pod>(data: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(data).to_vec()
}

impl ModelWriter {
    /// A writer for a model with `meta` and no tensors yet.
    pub fn new(meta: ModelMeta) -> ModelWriter {
        ModelWriter {
            meta,
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// The metadata, to adjust before writing.
    pub fn meta_mut(&mut self) -> &mut ModelMeta {
        &mut self.meta
    }

    fn push(&mut self, entry: RawTensorEntry, bytes: Vec<u8>) -> Result<(), FormatError> {
        if !self.names.insert(entry.name.clone()) {
            return Err(FormatError::invalid(format!("tensor '{}' added twice", entry.name)));
        }
        self.tensors.push(Pending { entry, bytes });
        Ok(())
    }

    fn plain_entry(name: &str, dtype: Dtype, shape: &[usize], len: usize) -> RawTensorEntry {
        RawTensorEntry {
            name: name.to_string(),
            dtype: dtype.as_str().to_string(),
            shape: to_u64s(shape),
            offset: 0,
            len: len as u64,
            quant: None,
            k_group: None,
        }
    }

    /// Adds a tensor of a plain dtype (not packed, no quantization) from its little-endian bytes.
    pub fn add(&mut self, name: &str, dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Result<(), FormatError> {
        if !dtype.is_plain() {
            return Err(FormatError::invalid(format!(
                "tensor '{name}': add {dtype} with add_packed_i8 / add_packed_f32 / add_u6_table / add_u7_table"
            )));
        }
        let expected = numel(shape)?
            .checked_mul(dtype.element_size() as usize)
            .ok_or_else(|| FormatError::invalid(format!("shape {shape:?} overflows")))?;
        check_len(name, "the byte buffer", bytes.len(), expected)?;
        self.push(Self::plain_entry(name, dtype, shape, bytes.len()), bytes)
    }

    fn add_typed<T: Pod>(&mut self, name: &str, dtype: Dtype, shape: &[usize], data: &[T]) -> Result<(), FormatError> {
        check_len(name, "the data", data.len(), numel(shape)?)?;
        self.add(name, dtype, shape, le_bytes(data))
    }

    /// Adds an `f32` tensor.
    pub fn add_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<(), FormatError> {
        self.add_typed(name, Dtype::F32, shape, data)
    }

    /// Adds an `f16` tensor.
    pub fn add_f16(&mut self, name: &str, shape: &[usize], data: &[f16]) -> Result<(), FormatError> {
        self.add_typed(name, Dtype::F16, shape, data)
    }

    /// Adds a `bf16` tensor.
    pub fn add_bf16(&mut self, name: &str, shape: &[usize], data: &[bf16]) -> Result<(), FormatError> {
        self.add_typed(name, Dtype::Bf16, shape, data)
    }

    /// Adds an `i32` tensor.
    pub fn add_i32(&mut self, name: &str, shape: &[usize], data: &[i32]) -> Result<(), FormatError> {
        self.add_typed(name, Dtype::I32, shape, data)
    }

    /// Adds an `i8` tensor without quantization parameters.
    pub fn add_i8(&mut self, name: &str, shape: &[usize], data: &[i8]) -> Result<(), FormatError> {
        self.add_typed(name, Dtype::I8, shape, data)
    }

    /// Adds a `u8` blob of shape `[bytes.len()]` (e.g. the tokenizer JSON).
    pub fn add_blob(&mut self, name: &str, bytes: &[u8]) -> Result<(), FormatError> {
        self.add(name, Dtype::U8, &[bytes.len()], bytes.to_vec())
    }

    /// Adds a quantized `i8` tensor (`real = scale * (q - zero_point)`). Per-channel parameters
    /// have `shape[axis]` values and are stored as companions `<name>.scale` (f32) and
    /// `<name>.zero_point` (i32); `axis` is required when either is per channel.
    pub fn add_i8_table(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[i8],
        scale: QuantParam<'_, f32>,
        zero_point: QuantParam<'_, i32>,
        axis: Option<usize>,
    ) -> Result<(), FormatError> {
        check_len(name, "the data", data.len(), numel(shape)?)?;
        let per_channel = matches!(scale, QuantParam::PerChannel(_)) || matches!(zero_point, QuantParam::PerChannel(_));
        let channels = match axis {
            Some(a) if a < shape.len() => shape[a],
            Some(a) => {
                return Err(FormatError::invalid(format!(
                    "tensor '{name}': axis {a} out of range for {shape:?}"
                )))
            }
            None if per_channel => {
                return Err(FormatError::invalid(format!(
                    "tensor '{name}': per-channel quantization needs an axis"
                )))
            }
            None => 0,
        };
        let (quant, companions) = self.quant_record(name, scale, zero_point, channels, axis)?;
        let mut entry = Self::plain_entry(name, Dtype::I8, shape, data.len());
        entry.quant = Some(quant);
        self.push(entry, le_bytes(data))?;
        for (companion, bytes) in companions {
            self.push(companion, bytes)?;
        }
        Ok(())
    }

    /// Adds a `u6` table of logical shape `[rows, dim]` (`real = scale * (q - zero_point)`),
    /// `data` already in the 6-bit layout (`rows * 3 * ceil(dim / 4)` bytes, as
    /// `octet_kernels::gather::pack_u6` writes it). Per-row parameters have `rows` values and are
    /// stored as companions `<name>.scale` (f32) and `<name>.zero_point` (i32) with axis 0.
    pub fn add_u6_table(
        &mut self,
        name: &str,
        rows: usize,
        dim: usize,
        data: &[u8],
        scale: QuantParam<'_, f32>,
        zero_point: QuantParam<'_, i32>,
    ) -> Result<(), FormatError> {
        let len = u6_len(rows as u64, dim as u64).map_err(|e| FormatError::invalid(format!("tensor '{name}': {e}")))?;
        self.add_packed_table(name, Dtype::U6, rows, dim, len, data, scale, zero_point)
    }

    /// Adds a `u7` table of logical shape `[rows, dim]` (`real = scale * (q - zero_point)`),
    /// `data` already in the 7-bit layout (`rows * 7 * ceil(dim / 8)` bytes, as
    /// `octet_kernels::gather::pack_u7` writes it). Per-row parameters have `rows` values and are
    /// stored as companions `<name>.scale` (f32) and `<name>.zero_point` (i32) with axis 0.
    pub fn add_u7_table(
        &mut self,
        name: &str,
        rows: usize,
        dim: usize,
        data: &[u8],
        scale: QuantParam<'_, f32>,
        zero_point: QuantParam<'_, i32>,
    ) -> Result<(), FormatError> {
        let len = u7_len(rows as u64, dim as u64).map_err(|e| FormatError::invalid(format!("tensor '{name}': {e}")))?;
        self.add_packed_table(name, Dtype::U7, rows, dim, len, data, scale, zero_point)
    }

    /// Adds a `u6` or `u7` table whose layout takes `len` bytes, with its `quant` record and
    /// companions (per row with axis 0, or per tensor).
    #[allow(clippy::too_many_arguments)]
    fn add_packed_table(
        &mut self,
        name: &str,
        dtype: Dtype,
        rows: usize,
        dim: usize,
        len: u64,
        data: &[u8],
        scale: QuantParam<'_, f32>,
        zero_point: QuantParam<'_, i32>,
    ) -> Result<(), FormatError> {
        check_len(name, "the packed bytes", data.len(), len as usize)?;
        let per_row = matches!(scale, QuantParam::PerChannel(_)) || matches!(zero_point, QuantParam::PerChannel(_));
        let (quant, companions) = self.quant_record(name, scale, zero_point, rows, per_row.then_some(0))?;
        let mut entry = Self::plain_entry(name, dtype, &[rows, dim], data.len());
        entry.quant = Some(quant);
        self.push(entry, data.to_vec())?;
        for (companion, bytes) in companions {
            self.push(companion, bytes)?;
        }
        Ok(())
    }

    /// The `quant` record of tensor `name` and its companions: per-channel parameters (of
    /// `channels` values) become `<name>.scale` (f32) and `<name>.zero_point` (i32). Checks the
    /// lengths, a finite per-tensor scale, and that the companion names are free.
    fn quant_record(
        &self,
        name: &str,
        scale: QuantParam<'_, f32>,
        zero_point: QuantParam<'_, i32>,
        channels: usize,
        axis: Option<usize>,
    ) -> Result<QuantRecord, FormatError> {
        let scale_name = format!("{name}.scale");
        let zero_point_name = format!("{name}.zero_point");
        let mut companions: Vec<(RawTensorEntry, Vec<u8>)> = Vec::new();
        let scale_json = match scale {
            QuantParam::PerTensor(s) if s.is_finite() => serde_json::json!(s),
            QuantParam::PerTensor(_) => {
                return Err(FormatError::invalid(format!("tensor '{name}': scale is not finite")))
            }
            QuantParam::PerChannel(values) => {
                check_len(name, "the scales", values.len(), channels)?;
                companions.push((
                    Self::plain_entry(&scale_name, Dtype::F32, &[channels], channels * 4),
                    le_bytes(values),
                ));
                serde_json::json!(scale_name)
            }
        };
        let zero_point_json = match zero_point {
            QuantParam::PerTensor(0) => None,
            QuantParam::PerTensor(z) => Some(serde_json::json!(z)),
            QuantParam::PerChannel(values) => {
                check_len(name, "the zero points", values.len(), channels)?;
                companions.push((
                    Self::plain_entry(&zero_point_name, Dtype::I32, &[channels], channels * 4),
                    le_bytes(values),
                ));
                Some(serde_json::json!(zero_point_name))
            }
        };
        if self.names.contains(name) {
            return Err(FormatError::invalid(format!("tensor '{name}' added twice")));
        }
        for (companion, _) in &companions {
            if self.names.contains(&companion.name) {
                return Err(FormatError::invalid(format!("tensor '{}' added twice", companion.name)));
            }
        }
        let quant = RawQuant {
            scale: scale_json,
            zero_point: zero_point_json,
            axis: axis.map(|a| a as u64),
        };
        Ok((quant, companions))
    }

    /// Adds an octet-kernels packed int8 weight of logical shape `[n, k]` with its companions
    /// `<name>.col_scales` (`n_pad` f32) and `<name>.col_sums` (`[groups, n_pad]` i32). `k_group`
    /// is `None` for one activation scale per row, as in `octet_kernels::int8::pack_weights`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_packed_i8(
        &mut self,
        name: &str,
        n: usize,
        k: usize,
        k_group: Option<usize>,
        data: &[i8],
        col_scales: &[f32],
        col_sums: &[i32],
    ) -> Result<(), FormatError> {
        let layout = packed_i8_layout(n as u64, k as u64, k_group.map(|g| g as u64))
            .map_err(|e| FormatError::invalid(format!("tensor '{name}': {e}")))?;
        self.add_packed_i8_layout(name, &layout, data, col_scales, col_sums)
    }

    /// Adds packed int8 weights described by their octet-kernels layout (e.g. the fields of an
    /// `octet_kernels::int8::PackedI8Owned`), storing `k_group` in its canonical form.
    pub fn add_packed_i8_layout(
        &mut self,
        name: &str,
        layout: &PackedI8Layout,
        data: &[i8],
        col_scales: &[f32],
        col_sums: &[i32],
    ) -> Result<(), FormatError> {
        let k_group = file_k_group(layout);
        // The layout's fields are public: check they are what the file will say.
        match packed_i8_layout(layout.n as u64, layout.k as u64, k_group.map(|g| g as u64)) {
            Ok(expected) if expected == *layout => {}
            _ => {
                return Err(FormatError::invalid(format!(
                    "tensor '{name}': inconsistent packed layout {layout:?}"
                )))
            }
        }
        check_len(name, "the packed weights", data.len(), layout.data_len())?;
        check_len(name, "col_scales", col_scales.len(), layout.scales_len())?;
        check_len(name, "col_sums", col_sums.len(), layout.sums_len())?;
        let scales_name = format!("{name}.col_scales");
        let sums_name = format!("{name}.col_sums");
        for companion in [&scales_name, &sums_name] {
            if self.names.contains(companion) {
                return Err(FormatError::invalid(format!("tensor '{companion}' added twice")));
            }
        }
        let mut entry = Self::plain_entry(name, Dtype::I8Packed, &[layout.n, layout.k], data.len());
        entry.k_group = k_group.map(|g| g as u64);
        self.push(entry, le_bytes(data))?;
        self.add_f32(&scales_name, &[layout.n_pad], col_scales)?;
        self.add_i32(&sums_name, &[layout.groups, layout.n_pad], col_sums)
    }

    /// Adds an octet-kernels packed f32 weight of logical shape `[n, k]` (`n_pad * k` floats, as
    /// `octet_kernels::f32::pack_nk` writes them).
    pub fn add_packed_f32(&mut self, name: &str, n: usize, k: usize, data: &[f32]) -> Result<(), FormatError> {
        let layout =
            packed_f32_layout(n as u64, k as u64).map_err(|e| FormatError::invalid(format!("tensor '{name}': {e}")))?;
        check_len(name, "the packed weights", data.len(), layout.len())?;
        let entry = Self::plain_entry(name, Dtype::F32Packed, &[n, k], data.len() * 4);
        self.push(entry, le_bytes(data))
    }

    /// Assigns offsets, hashes the data, builds and validates the JSON, and seals the header.
    fn plan(&self) -> Result<Plan, FormatError> {
        let overflow = || FormatError::invalid("the model is too large");
        let mut entries = Vec::with_capacity(self.tensors.len());
        let mut data_hash = Sha256::new();
        let mut pos = 0u64;
        for t in &self.tensors {
            let offset = round_up(pos, ALIGN).ok_or_else(overflow)?;
            data_hash.update(&ZEROS[..(offset - pos) as usize]);
            data_hash.update(&t.bytes);
            pos = offset.checked_add(t.bytes.len() as u64).ok_or_else(overflow)?;
            entries.push(RawTensorEntry {
                offset,
                ..t.entry.clone()
            });
        }
        let data_len = pos;
        let data_sha256: [u8; 32] = data_hash.finalize().into();

        // The reader's validation, so the writer never produces a file the reader rejects.
        validate_document(self.meta.clone(), &entries, data_len, data_sha256)
            .map_err(|e| FormatError::invalid(format!("the model would not validate: {e}")))?;

        let doc = RawDocumentOut {
            meta: &self.meta,
            tensors: &entries,
            data_sha256: to_hex(&data_sha256),
        };
        let json = serde_json::to_vec(&doc).map_err(|e| FormatError::invalid(format!("metadata: {e}")))?;
        let json_len = json.len() as u64;
        let data_offset = round_up(HEADER_LEN as u64 + json_len, ALIGN).ok_or_else(overflow)?;
        let file_len = data_offset.checked_add(data_len).ok_or_else(overflow)?;
        // A channel order changes what the vectors mean: readers that do not know it must refuse.
        let flags = if entries.iter().any(|e| e.name == CHANNEL_ORDER_TENSOR) {
            FLAG_CHANNEL_ORDER
        } else {
            0
        };
        let mut header = Header::new(json_len, data_offset, data_len, file_len, flags);
        let header_bytes = header.seal(&json);
        header
            .check_layout(file_len)
            .map_err(|e| FormatError::invalid(e.to_string()))?;
        Ok(Plan {
            header_bytes,
            json,
            data_offset,
            entries,
            file_len,
        })
    }

    /// Writes the planned file to `out`.
    fn emit(&self, plan: &Plan, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&plan.header_bytes)?;
        out.write_all(&plan.json)?;
        let mut pos = (HEADER_LEN + plan.json.len()) as u64;
        let pad_to = |out: &mut dyn Write, pos: &mut u64, to: u64| -> std::io::Result<()> {
            while *pos < to {
                let n = (to - *pos).min(ALIGN) as usize;
                out.write_all(&ZEROS[..n])?;
                *pos += n as u64;
            }
            Ok(())
        };
        pad_to(out, &mut pos, plan.data_offset)?;
        for (t, entry) in self.tensors.iter().zip(&plan.entries) {
            pad_to(out, &mut pos, plan.data_offset + entry.offset)?;
            out.write_all(&t.bytes)?;
            pos += t.bytes.len() as u64;
        }
        debug_assert_eq!(pos, plan.file_len);
        Ok(())
    }

    /// The whole file in memory (for tests and fuzzing; [`ModelWriter::write`] streams instead).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        let plan = self.plan()?;
        let mut out = Vec::with_capacity(plan.file_len as usize);
        self.emit(&plan, &mut out)
            .map_err(|e| FormatError::io(Path::new("<memory>"), e))?;
        Ok(out)
    }

    /// Writes the file to `path` atomically (temporary file in the same folder, fsync, rename) and
    /// returns its length in bytes. On error the target is untouched and the temporary file removed.
    pub fn write(&self, path: &Path) -> Result<u64, FormatError> {
        let plan = self.plan()?;
        let file_name = path
            .file_name()
            .ok_or_else(|| FormatError::invalid(format!("{} is not a file path", path.display())))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(temp_name(file_name));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| FormatError::io(&tmp, e))?;
        let result = (|| {
            let mut out = BufWriter::with_capacity(1 << 20, file);
            self.emit(&plan, &mut out).map_err(|e| FormatError::io(&tmp, e))?;
            let file = out.into_inner().map_err(|e| FormatError::io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| FormatError::io(&tmp, e))?;
            drop(file);
            std::fs::rename(&tmp, path).map_err(|e| FormatError::io(path, e))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Make the rename itself durable. Some file systems refuse to fsync a folder; the file is
        // complete either way, so that is not an error.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(plan.file_len)
    }
}

/// A temporary file name next to the target: hidden, unique per process and call.
fn temp_name(file_name: &std::ffi::OsStr) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{}.{}-{n}.tmp", file_name.to_string_lossy(), std::process::id())
}
