//! Where vectors go: standard output, or a file that is written under a temporary name and
//! renamed only when complete; and in which encoding.
//!
//! Encodings (`--format`):
//! - `jsonl`: one line per text, `{"id":N,"embedding":[f32, ...]}`; `id` is the text's
//!   0-based position in the input.
//! - `npy`: a NumPy `.npy` file (format 1.0), dtype `<f4`, shape `(count, dims)`, C order.
//! - `npy-int8`: `X.npy` holds dtype `|i1`, shape `(count, dims)`, and `X.scales.npy` beside it
//!   holds dtype `<f4`, shape `(count,)`. Vector `i` is approximately `q[i] * scale[i]`, with
//!   `scale[i] = max_j |v[i][j]| / 127` and `q[i][j] = round(v[i][j] / scale[i])` (an all-zero
//!   vector has scale 0). Cosine similarity can be computed on `q` directly.
//! - `f16`: raw little-endian IEEE binary16, `count * dims` values row after row, no header.
//! - the search cache (`octet search`), see [`CACHE_MAGIC`].
//!
//! A file output `F` is written to `F.partial` in the same folder (created exclusively and
//! locked: see [`crate::sink`] for that, for special files written in place and for the
//! same-file check), fsynced, and renamed to `F` on success (for `npy-int8` the scales file is renamed first, so `F` appearing means both are
//! complete). An interrupt or a crash therefore never leaves a half-written `F`: only
//! `F.partial`, which `--resume` continues (JSON lines only: the complete lines in it are kept,
//! a torn last line is cut, and the input's first records are skipped to match). On an error
//! octet handles itself, the caller decides with [`VectorWriter::keep`] (bad input: the complete
//! records stay in `F.partial` for `--resume`) or [`VectorWriter::discard`] (everything this
//! run wrote is removed; a file this run created is deleted).

use crate::resume::{self, run_record_path};
use crate::sink::{check_output_path, is_special, partial_path, resolve, write_error, PartialFile, Sink};
use anyhow::Result;
use octet_tools::exit::CliError;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The output encodings of `octet embed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VectorFormat {
    /// One JSON object per line: {"id": N, "embedding": [...]}.
    Jsonl,
    /// NumPy .npy, float32, shape (count, dims).
    Npy,
    /// NumPy .npy, int8, shape (count, dims), plus X.scales.npy (float32, one scale per vector).
    NpyInt8,
    /// Raw little-endian float16, count x dims values, no header.
    F16,
}

impl VectorFormat {
    /// The format an output file name suggests: `.npy` is npy, `.f16` is f16, anything else jsonl.
    pub fn from_extension(path: &Path) -> VectorFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => VectorFormat::Npy,
            Some("f16") => VectorFormat::F16,
            _ => VectorFormat::Jsonl,
        }
    }

    /// True for formats that are not text.
    pub fn is_binary(self) -> bool {
        self != VectorFormat::Jsonl
    }
}

/// First 8 bytes of an `octet search` cache file. Layout (little-endian):
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0 | 8 | magic `OCTETVEC` |
/// | 8 | 4 | u32 version, 2 |
/// | 12 | 4 | u32 dims |
/// | 16 | 8 | u64 count |
/// | 24 | 32 | key: sha256 of the model's identity, the embedding options and the corpus bytes |
/// | 56 | 32 | sha256 of the vector bytes (checked on every load: a cache whose vectors are not the ones its key was written with is never used) |
/// | 88 | 40 | zero |
/// | 128 | 4 * count * dims | f32 vectors, row after row |
pub const CACHE_MAGIC: [u8; 8] = *b"OCTETVEC";
/// Version of the cache layout.
pub const CACHE_VERSION: u32 = 2;
/// Size of the cache header; the vectors start 64-byte aligned.
pub const CACHE_HEADER_LEN: usize = 128;

/// Size of the `.npy` headers written here: fixed, so the count can be patched in at the end
/// (a 20-digit count still fits), and a multiple of 64 as the format recommends.
const NPY_HEADER_LEN: usize = 128;

/// What is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Jsonl,
    NpyF32,
    NpyInt8,
    F16,
    Cache([u8; 32]),
}

/// Writes vectors in one encoding to standard output or a file.
pub struct VectorWriter {
    encoding: Encoding,
    dims: usize,
    /// Vectors in the output, earlier runs' included.
    count: u64,
    main: Sink,
    /// `npy-int8` only: the scales file.
    scales: Option<Sink>,
    bytes: Vec<u8>,
    /// The cache only: sha256 of the vector bytes, stored in its header.
    content: Sha256,
    /// The cache only: a read handle on the file being written, which stays this run's file
    /// even if another run renames its own cache over the same path.
    cache_file: Option<File>,
}

/// The scales file beside an `npy-int8` output: `x.npy` -> `x.scales.npy`.
pub fn scales_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.scales.npy"))
}

/// Every file a `-o path` run may write, for the same-file check: the output, its temporary
/// file, and for `npy-int8` the scales file and its temporary file.
pub fn output_files(path: &Path, format: VectorFormat) -> Vec<PathBuf> {
    let path = resolve(path);
    let mut files = vec![partial_path(&path), run_record_path(&path)];
    if format == VectorFormat::NpyInt8 {
        files.push(scales_path(&path));
        files.push(partial_path(&scales_path(&path)));
    }
    files.push(path);
    files
}

fn encoding_of(format: VectorFormat) -> Encoding {
    match format {
        VectorFormat::Jsonl => Encoding::Jsonl,
        VectorFormat::Npy => Encoding::NpyF32,
        VectorFormat::NpyInt8 => Encoding::NpyInt8,
        VectorFormat::F16 => Encoding::F16,
    }
}

impl VectorWriter {
    fn new(encoding: Encoding, dims: usize, count: u64, main: Sink, scales: Option<Sink>) -> VectorWriter {
        VectorWriter {
            encoding,
            dims,
            count,
            main,
            scales,
            bytes: Vec::new(),
            content: Sha256::new(),
            cache_file: None,
        }
    }

    /// Vectors of `dims` values to standard output (text or f16 only: npy needs a file).
    pub fn stdout(format: VectorFormat, dims: usize) -> Result<VectorWriter> {
        let encoding = match format {
            VectorFormat::Jsonl => Encoding::Jsonl,
            VectorFormat::F16 => Encoding::F16,
            VectorFormat::Npy | VectorFormat::NpyInt8 => {
                return Err(CliError::usage(
                    "--format npy and npy-int8 need --output FILE (the header holds the count, written last)",
                ))
            }
        };
        let main = Sink::Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout()));
        Ok(VectorWriter::new(encoding, dims, 0, main, None))
    }

    /// Vectors to `path` (via `path.partial`, see [`crate::sink`]). With `resume`, continues
    /// `path.partial` (or a copy of a complete `path`) and returns how many vectors it already
    /// holds; without it, an existing `path.partial` is an error, so an interrupted run is never
    /// wiped by accident. `run` describes the model and options ([`crate::resume`]): it is kept
    /// beside the partial file, and a resume with a different one is refused.
    pub fn create(
        path: &Path,
        format: VectorFormat,
        dims: usize,
        resume: bool,
        run: &str,
    ) -> Result<(VectorWriter, u64)> {
        let encoding = encoding_of(format);
        if resume && encoding != Encoding::Jsonl {
            return Err(CliError::usage(
                "--resume works with JSON lines output (--format jsonl) only",
            ));
        }
        if is_special(path) {
            if resume {
                return Err(CliError::usage(format!(
                    "--resume needs a regular output file, and {} is not one (a device, pipe or socket)",
                    path.display()
                )));
            }
            if !matches!(encoding, Encoding::Jsonl | Encoding::F16) {
                return Err(CliError::usage(format!(
                    "{} is not a regular file (a device, pipe or socket): --format npy and npy-int8 write their \
                     header last and need a regular file; use --format jsonl or f16 there",
                    path.display()
                )));
            }
            let main = Sink::direct(path)?;
            return Ok((VectorWriter::new(encoding, dims, 0, main, None), 0));
        }
        let path = &resolve(path);
        check_output_path(path)?;
        let partial = partial_path(path);
        let (main, already) = if resume {
            let (file, records, len) = resume::reopen(path, &partial, dims, run)?;
            (Sink::File(PartialFile::wrap(path, partial, file, len)), records)
        } else {
            let hint = format!(
                "an earlier run into {} was interrupted; continue it with --resume, or delete it to start over",
                path.display()
            );
            let file = PartialFile::create_new(path, partial, &hint)?;
            if encoding == Encoding::Jsonl {
                resume::write_run_record(path, run)?;
            }
            (Sink::File(file), 0)
        };
        let scales = if encoding == Encoding::NpyInt8 {
            let scales = scales_path(path);
            let hint = format!("an earlier run into {} was interrupted; delete it", scales.display());
            Some(Sink::File(PartialFile::create_new(
                &scales,
                partial_path(&scales),
                &hint,
            )?))
        } else {
            None
        };
        let mut writer = VectorWriter::new(encoding, dims, already, main, scales);
        writer.write_headers(true)?;
        Ok((writer, already))
    }

    /// An `octet search` cache at `path`, identified by `key`, written under a temporary name
    /// unique to this run (concurrent runs each write their own, and the last rename wins).
    pub fn create_cache(path: &Path, dims: usize, key: [u8; 32]) -> Result<VectorWriter> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = &resolve(path);
        check_output_path(path)?;
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(
            ".partial-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = PartialFile::create_new(path, path.with_file_name(name), "a stale temporary file; delete it")?;
        let reader = file.writer.get_ref().try_clone().map_err(|e| write_error(path, e))?;
        let mut writer = VectorWriter::new(Encoding::Cache(key), dims, 0, Sink::File(file), None);
        writer.cache_file = Some(reader);
        writer.write_headers(true)?;
        Ok(writer)
    }

    /// Vectors in the output so far (with those of a resumed run).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the header with the current count (placeholder at the start, final at the end).
    fn write_headers(&mut self, first: bool) -> Result<()> {
        let header = match self.encoding {
            Encoding::Jsonl | Encoding::F16 => return Ok(()),
            Encoding::NpyF32 => npy_header("<f4", &[self.count, self.dims as u64]),
            Encoding::NpyInt8 => npy_header("|i1", &[self.count, self.dims as u64]),
            Encoding::Cache(key) => {
                let content = if first {
                    [0; 32]
                } else {
                    self.content.clone().finalize().into()
                };
                cache_header(key, self.dims, self.count, content)
            }
        };
        self.main.write_at_start(&header, first)?;
        if let Some(scales) = &mut self.scales {
            scales.write_at_start(&npy_header("<f4", &[self.count]), first)?;
        }
        Ok(())
    }

    /// Appends one vector; `id` labels JSON lines. A vector with a NaN or infinity is refused
    /// (the caller names the text): no format could carry it faithfully.
    pub fn write(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        debug_assert_eq!(vector.len(), self.dims);
        if let Some(bad) = vector.iter().find(|v| !v.is_finite()) {
            return Err(CliError::bad_input(format!("vector {id} holds {bad}")));
        }
        self.bytes.clear();
        match self.encoding {
            Encoding::Jsonl => {
                #[derive(Serialize)]
                struct Line<'a> {
                    id: u64,
                    embedding: &'a [f32],
                }
                serde_json::to_writer(&mut self.bytes, &Line { id, embedding: vector })?;
                self.bytes.push(b'\n');
            }
            Encoding::NpyF32 | Encoding::Cache(_) => {
                self.bytes.extend(vector.iter().flat_map(|v| v.to_le_bytes()));
                if matches!(self.encoding, Encoding::Cache(_)) {
                    self.content.update(&self.bytes);
                }
            }
            Encoding::F16 => {
                self.bytes
                    .extend(vector.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()));
            }
            Encoding::NpyInt8 => {
                let (q, scale) = quantize_int8(vector);
                self.bytes.extend(q.iter().map(|&v| v as u8));
                if let Some(scales) = &mut self.scales {
                    scales.write_all(&scale.to_le_bytes())?;
                }
            }
        }
        self.main.write_all(&self.bytes)?;
        self.count += 1;
        Ok(())
    }

    /// Flushes buffered bytes (so everything written so far is in the output).
    pub fn flush(&mut self) -> Result<()> {
        self.main.flush()?;
        if let Some(s) = &mut self.scales {
            s.flush()?;
        }
        Ok(())
    }

    /// Completes the output: final headers, flush, fsync, rename into place. For a cache,
    /// returns a handle on the file written (see [`VectorWriter::create_cache`]).
    pub fn finish(mut self) -> Result<Option<File>> {
        let result = (|| {
            self.flush()?;
            self.write_headers(false)?;
            if let Some(s) = &mut self.scales {
                s.sync()?;
            }
            self.main.sync()
        })();
        if let Err(e) = result {
            self.discard();
            return Err(e);
        }
        let VectorWriter {
            main,
            scales,
            cache_file,
            ..
        } = self;
        // Scales first: the main file appearing means both are complete. A failed rename drops
        // the other temporary file, which removes it.
        if let Some(s) = scales {
            s.commit()?;
        }
        let final_path = match &main {
            Sink::File(f) => Some(f.final_path.clone()),
            _ => None,
        };
        main.commit()?;
        if let (Some(path), Encoding::Jsonl) = (final_path, self.encoding) {
            resume::remove_run_record(&path);
        }
        Ok(cache_file)
    }

    /// After a bad input: keeps the complete records in the partial file for `--resume` and
    /// returns a note saying so (JSON lines files only; other outputs are discarded).
    pub fn keep(mut self) -> Option<String> {
        match (&self.encoding, &self.main) {
            (Encoding::Jsonl, Sink::File(_)) => {}
            _ => return self.discard(),
        }
        if self.flush().is_err() {
            return self.discard();
        }
        let Sink::File(f) = &mut self.main else {
            return None;
        };
        f.keep();
        Some(format!(
            "the {} vectors before it are kept in {}: fix the input and run the same command with --resume to continue",
            self.count,
            f.partial_path.display()
        ))
    }

    /// After an error: removes everything this run wrote (truncates a resumed partial file to
    /// its length at the start, deletes a new one) and returns a note saying so.
    pub fn discard(mut self) -> Option<String> {
        let mut notes = Vec::new();
        for sink in std::iter::once(&mut self.main).chain(self.scales.as_mut()) {
            if let Sink::File(f) = sink {
                if f.start_len == 0 && self.encoding == Encoding::Jsonl {
                    resume::remove_run_record(&f.final_path);
                }
                notes.push(f.discard());
            }
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// A `.npy` 1.0 header of exactly [`NPY_HEADER_LEN`] bytes.
fn npy_header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let mut out = Vec::with_capacity(NPY_HEADER_LEN);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((NPY_HEADER_LEN - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(NPY_HEADER_LEN - 1, b' ');
    out.push(b'\n');
    debug_assert_eq!(out.len(), NPY_HEADER_LEN);
    out
}

fn cache_header(key: [u8; 32], dims: usize, count: u64, content: [u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CACHE_HEADER_LEN);
    out.extend_from_slice(&CACHE_MAGIC);
    out.extend_from_slice(&CACHE_VERSION.to_le_bytes());
    out.extend_from_slice(&(dims as u32).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&key);
    out.extend_from_slice(&content);
    out.resize(CACHE_HEADER_LEN, 0);
    out
}

/// Symmetric per-vector int8: `v ~ q * scale`, `scale = max|v| / 127`.
pub fn quantize_int8(vector: &[f32]) -> (Vec<i8>, f32) {
    let max = vector.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max <= 0.0 || !max.is_finite() {
        return (vec![0; vector.len()], 0.0);
    }
    let scale = max / 127.0;
    (
        vector
            .iter()
            .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        scale,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_fixed_size_and_parsable() {
        let h = npy_header("<f4", &[u64::MAX, 4096]);
        assert_eq!(h.len(), NPY_HEADER_LEN);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 4096), }"));
        assert!(std::str::from_utf8(&npy_header("<f4", &[3])[10..])
            .unwrap()
            .contains("'shape': (3,)"));
    }

    #[test]
    fn int8_roundtrip_is_close() {
        let v = [0.5f32, -0.25, 0.0, 0.125];
        let (q, s) = quantize_int8(&v);
        assert_eq!(q[0], 127);
        for (a, b) in v.iter().zip(&q) {
            assert!((a - *b as f32 * s).abs() <= s / 2.0 + 1e-7);
        }
        assert_eq!(quantize_int8(&[0.0, 0.0]), (vec![0, 0], 0.0));
    }

    #[test]
    fn partial_and_scales_names() {
        assert_eq!(scales_path(Path::new("out/v.npy")), Path::new("out/v.scales.npy"));
        assert_eq!(VectorFormat::from_extension(Path::new("a.NPY")), VectorFormat::Npy);
        assert_eq!(VectorFormat::from_extension(Path::new("a.jsonl")), VectorFormat::Jsonl);
    }
}
