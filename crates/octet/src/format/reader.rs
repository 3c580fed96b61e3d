//! [`ModelFile`]: opens a `.octet` file by memory-mapping it, validates everything before any use,
//! and hands out typed, zero-copy views of the tensors.
//!
//! Validation on open (all of it before the first view is handed out): magic, version, required
//! flags, file length against the header, section layout, the metadata checksum (sha256 over the
//! header and JSON), the JSON structure, metadata values, and for every tensor its dtype, shape,
//! byte length against dtype x shape (checked arithmetic), 64-byte alignment, bounds, overlaps
//! and companion tensors. The data section's checksum is checked only by
//! [`ModelFile::verify_data`] because hashing a gigabyte on every open is too slow.
//!
//! # Mapped files must not change
//!
//! Weights are used in place from the map. If another process truncates or rewrites the file
//! while it is mapped, reading the lost pages raises SIGBUS (the process dies) and rewritten bytes
//! appear in tensors that were already validated. The file length is checked on open, and
//! [`super::ModelWriter`] never rewrites a file in place: it writes a temporary file in the same
//! folder and renames it over the target, so existing maps keep the old file's pages. Replace
//! models only that way (`octet convert`, or copy then `mv`).

use super::dtype::{Dtype, QuantParam};
use super::header::{Header, FLAG_CHANNEL_ORDER, HEADER_LEN};
use super::meta::ModelMeta;
use super::table::{parse_document, to_hex, Document, ParamRef, TensorInfo};
use super::{FormatError, CHANNEL_ORDER_TENSOR};
use bytemuck::{Pod, Zeroable};
use half::{bf16, f16};
use memmap2::Mmap;
#[cfg(doc)]
use octet_kernels::f32::PackedF32Layout;
use octet_kernels::int8::PackedI8Layout;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A 64-byte aligned chunk, so an owned buffer has the same alignment guarantees as a map.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Align64([u8; 64]);

/// Where the file's bytes live.
enum Backing {
    /// A read-only memory map of the file (page-aligned).
    Mapped(Mmap),
    /// An owned copy, 64-byte aligned; `len` bytes of `chunks` are the file.
    Owned { chunks: Vec<Align64>, len: usize },
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map) => map,
            Backing::Owned { chunks, len } => &bytemuck::cast_slice(chunks)[..*len],
        }
    }
}

/// An open, validated `.octet` model file. `Send + Sync`: share it between threads by reference
/// or in an `Arc`.
pub struct ModelFile {
    backing: Backing,
    header: Header,
    doc: Document,
    /// Byte offset of the data section in the file.
    data_start: usize,
    path: Option<PathBuf>,
    /// Tensor look-ups by name so far ([`ModelFile::lookups`]).
    lookups: AtomicUsize,
}

/// One tensor: its name, dtype, logical shape and bytes in the file.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
    info: &'a TensorInfo,
}

impl<'a> TensorView<'a> {
    /// The group size along k of an `i8_packed` tensor (`None` for other dtypes or one group).
    pub fn k_group(&self) -> Option<usize> {
        self.info.k_group
    }

    /// Number of elements of the logical shape.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl std::fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the bytes: a tensor can be hundreds of megabytes.
        f.debug_struct("TensorView")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Quantization parameters of an `i8`, `u6` or `u7` tensor: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct I8Quant<'a> {
    pub scale: QuantParam<'a, f32>,
    pub zero_point: QuantParam<'a, i32>,
    /// The channel axis, when a parameter is per channel.
    pub axis: Option<usize>,
}

/// A `u6` table of logical shape `[rows, dim]`: its packed bytes (`rows * 3 * ceil(dim / 4)`,
/// the layout of `octet_kernels::gather::u6`) and its quantization parameters, which a `u6`
/// tensor always has (per tensor, or per row with `axis == Some(0)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct U6Tensor<'a> {
    pub data: &'a [u8],
    pub quant: I8Quant<'a>,
}

/// A `u7` table of logical shape `[rows, dim]`: its packed bytes (`rows * 7 * ceil(dim / 8)`,
/// the layout of `octet_kernels::gather::u7`) and its quantization parameters, which a `u7`
/// tensor always has (per tensor, or per row with `axis == Some(0)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct U7Tensor<'a> {
    pub data: &'a [u8],
    pub quant: I8Quant<'a>,
}

/// The parts of an `i8_packed` weight: layout, packed weights, `col_scales`, `col_sums`.
pub type PackedI8Parts<'a> = (PackedI8Layout, &'a [i8], &'a [f32], &'a [i32]);

/// An `i8` tensor and its quantization parameters, if it has any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct I8Tensor<'a> {
    pub data: &'a [i8],
    pub quant: Option<I8Quant<'a>>,
}

impl ModelFile {
    /// Opens and validates the file at `path`, memory-mapping it.
    ///
    /// `path` must be a regular file (a symlink to one is fine): a FIFO or device is refused
    /// before it is opened, since opening a FIFO blocks and a device has no length to check.
    ///
    /// The weights stay in the map, so **the file must not be truncated or rewritten while this
    /// `ModelFile` lives**: reading a page past a new, shorter end raises SIGBUS (the process
    /// dies), and bytes rewritten in place change tensors that were validated on open. Replace
    /// models by writing a new file and renaming it over the old one, as `octet convert` and
    /// [`super::ModelWriter`] do: an existing map keeps the old file. For a file in a location
    /// others may write to, use [`ModelFile::open_copied`]. See FORMAT.md, section 8.
    pub fn open(path: &Path) -> Result<ModelFile, FormatError> {
        let (file, len) = Self::open_regular(path)?;
        if len < HEADER_LEN as u64 {
            // Too short to map usefully (and empty files cannot be mapped everywhere): read it and
            // let the header check say what it is.
            let mut head = Vec::with_capacity(HEADER_LEN);
            file.take(HEADER_LEN as u64)
                .read_to_end(&mut head)
                .map_err(|e| FormatError::io(path, e))?;
            Header::decode(&head)?;
            return Err(FormatError::Truncated {
                expected: HEADER_LEN as u64,
                got: head.len() as u64,
            });
        }
        // SAFETY: mapping a file is sound only while nobody truncates or modifies it; see the
        // module docs ("Mapped files must not change"): octet writes models by rename, never in
        // place, and the length is checked against the header below before any access.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        let mut model = Self::validate(Backing::Mapped(map))?;
        model.path = Some(path.to_path_buf());
        Ok(model)
    }

    /// Opens and validates the file at `path`, reading it into memory instead of mapping it: the
    /// model then no longer depends on the file, so another process truncating or rewriting it
    /// cannot crash this one or change its weights. Costs the file's size in memory and the time
    /// to read it. Use it for models in locations others may write to.
    pub fn open_copied(path: &Path) -> Result<ModelFile, FormatError> {
        let (mut file, len) = Self::open_regular(path)?;
        let len = usize::try_from(len).map_err(|_| FormatError::io(path, std::io::ErrorKind::OutOfMemory.into()))?;
        let mut chunks = vec![Align64([0; 64]); len.div_ceil(64)];
        let buf = &mut bytemuck::cast_slice_mut::<Align64, u8>(&mut chunks)[..len];
        // A file that shrank since `metadata` fails here (UnexpectedEof); one that grew is
        // caught by the length check against the header.
        file.read_exact(buf).map_err(|e| FormatError::io(path, e))?;
        let mut model = Self::validate(Backing::Owned { chunks, len })?;
        model.path = Some(path.to_path_buf());
        Ok(model)
    }

    /// Opens `path` for reading after checking that it is a regular file, and returns its length.
    fn open_regular(path: &Path) -> Result<(File, u64), FormatError> {
        let kind = std::fs::metadata(path)
            .map_err(|e| FormatError::io(path, e))?
            .file_type();
        if !kind.is_file() {
            let what = if kind.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what}; a model must be a regular file"),
            );
            return Err(FormatError::io(path, e));
        }
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        let meta = file.metadata().map_err(|e| FormatError::io(path, e))?;
        if !meta.is_file() {
            // Swapped for something else between the two looks.
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file; a model must be a regular file",
            );
            return Err(FormatError::io(path, e));
        }
        Ok((file, meta.len()))
    }

    /// Validates a file held in memory, with the same checks as [`ModelFile::open`]. The bytes are
    /// copied into a 64-byte aligned buffer so typed views are aligned.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ModelFile, FormatError> {
        let len = bytes.len();
        let mut chunks = vec![Align64([0; 64]); len.div_ceil(64)];
        bytemuck::cast_slice_mut::<Align64, u8>(&mut chunks)[..len].copy_from_slice(&bytes);
        Self::validate(Backing::Owned { chunks, len })
    }

    fn validate(backing: Backing) -> Result<ModelFile, FormatError> {
        let bytes = backing.bytes();
        let header = Header::decode(bytes)?;
        header.check_layout(bytes.len() as u64)?;
        // check_layout proved json_offset + json_len <= data_offset <= file_len == bytes.len().
        let json_start = header.json_offset as usize;
        let json = &bytes[json_start..json_start + header.json_len as usize];
        Header::verify_meta_sha256(&bytes[..HEADER_LEN], json)?;
        let doc = parse_document(json, header.data_len)?;
        let ordered = header.flags & FLAG_CHANNEL_ORDER != 0;
        if ordered != doc.index.contains_key(CHANNEL_ORDER_TENSOR) {
            return Err(FormatError::BadHeader {
                detail: format!(
                    "the channel-order flag is {} but the tensor {CHANNEL_ORDER_TENSOR} is {}",
                    if ordered { "set" } else { "clear" },
                    if ordered { "missing" } else { "present" }
                ),
            });
        }
        let data_start = header.data_offset as usize;
        Ok(ModelFile {
            backing,
            header,
            doc,
            data_start,
            path: None,
            lookups: AtomicUsize::new(0),
        })
    }

    /// The model metadata.
    pub fn meta(&self) -> &ModelMeta {
        &self.doc.meta
    }

    /// The file's format version, `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        (self.header.major, self.header.minor)
    }

    /// The file length in bytes.
    pub fn file_len(&self) -> u64 {
        self.header.file_len
    }

    /// The path the file was opened from (`None` for [`ModelFile::from_bytes`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Lower-case hex sha256 of the data section, as stored in the file.
    pub fn data_sha256(&self) -> String {
        to_hex(&self.doc.data_sha256)
    }

    /// Hashes the data section and compares it with the stored checksum (reads every page).
    pub fn verify_data(&self) -> Result<(), FormatError> {
        let data = &self.backing.bytes()[self.data_start..];
        let digest: [u8; 32] = Sha256::digest(data).into();
        if digest != self.doc.data_sha256 {
            return Err(FormatError::ChecksumMismatch { what: "data section" });
        }
        Ok(())
    }

    fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorView<'a> {
        let start = self.data_start + info.offset;
        TensorView {
            name: &info.name,
            dtype: info.dtype,
            shape: &info.shape,
            // Validated on open: offset + len <= data_len, and the data section ends at the end
            // of the bytes.
            bytes: &self.backing.bytes()[start..start + info.len],
            info,
        }
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, FormatError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        match self.doc.index.get(name) {
            Some(&i) => Ok(&self.doc.tensors[i]),
            None => Err(FormatError::MissingTensor {
                name: name.to_string(),
                needed_by: "the engine".into(),
            }),
        }
    }

    /// How many tensors have been looked up by name since the file was opened. A bound
    /// [`crate::Embedder`] looks up every tensor once, at open; `embed` looks up none (tested).
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Every byte of the file (header, JSON and data), as mapped or copied.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// Tells the OS that `bytes`, a view handed out by this file, will be read at random (a
    /// token table: each text touches a few rows). On a mapped file that is
    /// `madvise(MADV_RANDOM)` on its pages, which turns off the read-around of faults there:
    /// otherwise each fault reads (and maps) its neighbours too, and a corpus run reads most of
    /// a large table. EmbeddingGemma's corpus run (201 MB table) from a cold page cache: peak
    /// RSS 260 -> 210 MB, file bytes read 305 -> 144 MB (kernel 6.18). Pages already cached
    /// are mapped as the cache holds them whatever the advice: 260 MB after `cat` read the
    /// file, 375 MB right after the converter wrote it (large folios). Only a hint: does
    /// nothing for a copied file, a slice from elsewhere or where the OS refuses.
    pub(crate) fn advise_random_access(&self, bytes: &[u8]) {
        #[cfg(unix)]
        if let Backing::Mapped(map) = &self.backing {
            let base = map.as_ptr() as usize;
            let start = bytes.as_ptr() as usize;
            if start >= base && start + bytes.len() <= base + map.len() && !bytes.is_empty() {
                // A hint: a refusal changes no result, so it is ignored.
                let _ = map.advise_range(memmap2::Advice::Random, start - base, bytes.len());
            }
        }
        #[cfg(not(unix))]
        let _ = bytes;
    }

    /// Whether the file has a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.doc.index.contains_key(name)
    }

    /// The tensor called `name`, whatever its dtype.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, FormatError> {
        Ok(self.view(self.info(name)?))
    }

    /// All tensors, in table order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> {
        self.doc.tensors.iter().map(|info| self.view(info))
    }

    /// The tensor `name`, checked to have `dtype` and (if given) exactly `shape`.
    fn checked(&self, name: &str, dtype: Dtype, shape: Option<&[usize]>) -> Result<TensorView<'_>, FormatError> {
        let view = self.tensor(name)?;
        if view.dtype != dtype {
            return Err(FormatError::WrongDtype {
                tensor: name.to_string(),
                expected: dtype.to_string(),
                got: view.dtype.to_string(),
            });
        }
        if let Some(shape) = shape {
            if view.shape != shape {
                return Err(FormatError::WrongShape {
                    tensor: name.to_string(),
                    expected: shape.to_vec(),
                    got: view.shape.to_vec(),
                });
            }
        }
        Ok(view)
    }

    /// Reinterprets validated bytes as `T`. Alignment and length were checked on open, so failure
    /// here means a bug, reported as an error rather than a panic.
    fn cast<'a, T: Pod>(view: &TensorView<'a>) -> Result<&'a [T], FormatError> {
        bytemuck::try_cast_slice(view.bytes).map_err(|_| FormatError::Misaligned {
            tensor: view.name.to_string(),
            offset: 0,
            align: 64,
        })
    }

    fn typed<T: Pod>(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&[T], FormatError> {
        Self::cast(&self.checked(name, dtype, Some(shape))?)
    }

    /// An `f32` tensor of exactly `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<&[f32], FormatError> {
        self.typed(name, Dtype::F32, shape)
    }

    /// An `f16` tensor of exactly `shape`.
    pub fn f16(&self, name: &str, shape: &[usize]) -> Result<&[f16], FormatError> {
        self.typed(name, Dtype::F16, shape)
    }

    /// A `bf16` tensor of exactly `shape`.
    pub fn bf16(&self, name: &str, shape: &[usize]) -> Result<&[bf16], FormatError> {
        self.typed(name, Dtype::Bf16, shape)
    }

    /// An `i32` tensor of exactly `shape`.
    pub fn i32(&self, name: &str, shape: &[usize]) -> Result<&[i32], FormatError> {
        self.typed(name, Dtype::I32, shape)
    }

    /// The bytes of a `u8` tensor of any shape (blobs such as the tokenizer).
    pub fn blob(&self, name: &str) -> Result<&[u8], FormatError> {
        Ok(self.checked(name, Dtype::U8, None)?.bytes)
    }

    /// The `tokenizer.json` bytes named by the metadata.
    pub fn tokenizer_json(&self) -> Result<&[u8], FormatError> {
        self.blob(&self.doc.meta.tokenizer)
    }

    fn param<'a, T: Pod>(&'a self, p: ParamRef<T>) -> Result<QuantParam<'a, T>, FormatError> {
        match p {
            ParamRef::Value(v) => Ok(QuantParam::PerTensor(v)),
            ParamRef::Tensor(i) => Ok(QuantParam::PerChannel(Self::cast(&self.view(&self.doc.tensors[i]))?)),
        }
    }

    /// An `i8` tensor of exactly `shape`, with its quantization parameters if it has them.
    pub fn i8(&self, name: &str, shape: &[usize]) -> Result<I8Tensor<'_>, FormatError> {
        let view = self.checked(name, Dtype::I8, Some(shape))?;
        let data = Self::cast(&view)?;
        let quant = match view.info.quant {
            None => None,
            Some(q) => Some(I8Quant {
                scale: self.param(q.scale)?,
                zero_point: self.param(q.zero_point)?,
                axis: q.axis,
            }),
        };
        Ok(I8Tensor { data, quant })
    }

    /// A `u6` table of exactly `[rows, dim]`, with its quantization parameters.
    pub fn u6(&self, name: &str, rows: usize, dim: usize) -> Result<U6Tensor<'_>, FormatError> {
        let (data, quant) = self.packed_table(name, Dtype::U6, rows, dim)?;
        Ok(U6Tensor { data, quant })
    }

    /// A `u7` table of exactly `[rows, dim]`, with its quantization parameters.
    pub fn u7(&self, name: &str, rows: usize, dim: usize) -> Result<U7Tensor<'_>, FormatError> {
        let (data, quant) = self.packed_table(name, Dtype::U7, rows, dim)?;
        Ok(U7Tensor { data, quant })
    }

    /// The bytes and quantization parameters of a `u6` or `u7` table of exactly `[rows, dim]`.
    fn packed_table(
        &self,
        name: &str,
        dtype: Dtype,
        rows: usize,
        dim: usize,
    ) -> Result<(&[u8], I8Quant<'_>), FormatError> {
        let view = self.checked(name, dtype, Some(&[rows, dim]))?;
        // Validated on open: every u6 and u7 tensor has `quant`.
        let q = view
            .info
            .quant
            .ok_or_else(|| FormatError::bad_meta(format!("{dtype} tensor '{name}' without quant")))?;
        let quant = I8Quant {
            scale: self.param(q.scale)?,
            zero_point: self.param(q.zero_point)?,
            axis: q.axis,
        };
        Ok((view.bytes, quant))
    }

    /// An `i8_packed` weight of logical shape `[n, k]`: its octet-kernels layout, the packed
    /// weights, and the `col_scales` (`n_pad` f32) and `col_sums` (`[groups, n_pad]` i32)
    /// companions, ready for `octet_kernels::int8::PackedI8::from_parts`.
    pub fn packed_i8_parts(&self, name: &str, n: usize, k: usize) -> Result<PackedI8Parts<'_>, FormatError> {
        let view = self.checked(name, Dtype::I8Packed, Some(&[n, k]))?;
        let layout = view
            .info
            .packed_i8
            .ok_or_else(|| FormatError::bad_meta("i8_packed tensor without layout"))?;
        let weights = Self::cast(&view)?;
        let scales = self.typed(&format!("{name}.col_scales"), Dtype::F32, &[layout.n_pad])?;
        let sums = self.typed(&format!("{name}.col_sums"), Dtype::I32, &[layout.groups, layout.n_pad])?;
        Ok((layout, weights, scales, sums))
    }

    /// An `f32_packed` weight of logical shape `[n, k]`: the packed weights (`n_pad * k` floats,
    /// see [`PackedF32Layout`]).
    pub fn packed_f32_parts(&self, name: &str, n: usize, k: usize) -> Result<&[f32], FormatError> {
        Self::cast(&self.checked(name, Dtype::F32Packed, Some(&[n, k]))?)
    }
}

impl std::fmt::Debug for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFile")
            .field("path", &self.path)
            .field("version", &self.version())
            .field("file_len", &self.header.file_len)
            .field("architecture", &self.doc.meta.architecture)
            .field("tensors", &self.doc.tensors.len())
            .finish()
    }
}
