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
//! A file output `F` is written to `F.partial` in the same folder, fsynced, and renamed to `F`
//! on success (for `npy-int8` the scales file is renamed first, so `F` appearing means both are
//! complete). An interrupt or a crash therefore never leaves a half-written `F`: only
//! `F.partial`, which `--resume` continues (JSON lines only: the complete lines in it are kept,
//! a torn last line is cut, and the input's first records are skipped to match). On an error
//! octet handles itself, the caller decides with [`VectorWriter::keep`] (bad input: the complete
//! records stay in `F.partial` for `--resume`) or [`VectorWriter::discard`] (everything this
//! run wrote is removed; a file this run created is deleted).

use anyhow::Result;
use octet_tools::exit::CliError;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
/// | 8 | 4 | u32 version, 1 |
/// | 12 | 4 | u32 dims |
/// | 16 | 8 | u64 count |
/// | 24 | 32 | key: sha256 of the model's identity, the embedding options and the corpus bytes |
/// | 56 | 8 | zero |
/// | 64 | 4 * count * dims | f32 vectors, row after row |
pub const CACHE_MAGIC: [u8; 8] = *b"OCTETVEC";
/// Size of the cache header; the vectors start 64-byte aligned.
pub const CACHE_HEADER_LEN: usize = 64;

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

/// A file being written as `final_path` + ".partial".
struct PartialFile {
    final_path: PathBuf,
    partial_path: PathBuf,
    writer: BufWriter<File>,
    /// Length of the partial file when this run began (resumed runs keep earlier work).
    start_len: u64,
}

enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File(PartialFile),
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
}

/// The path of the temporary file for `path`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// The scales file beside an `npy-int8` output: `x.npy` -> `x.scales.npy`.
pub fn scales_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.scales.npy"))
}

impl VectorWriter {
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
        Ok(VectorWriter {
            encoding,
            dims,
            count: 0,
            main,
            scales: None,
            bytes: Vec::new(),
        })
    }

    /// Vectors to `path` (via `path.partial`). With `resume`, continues `path.partial` (or a
    /// copy of a complete `path`) and returns how many vectors it already holds; without it, an
    /// existing `path.partial` is an error, so an interrupted run is never wiped by accident.
    pub fn create(path: &Path, format: VectorFormat, dims: usize, resume: bool) -> Result<(VectorWriter, u64)> {
        let encoding = match format {
            VectorFormat::Jsonl => Encoding::Jsonl,
            VectorFormat::Npy => Encoding::NpyF32,
            VectorFormat::NpyInt8 => Encoding::NpyInt8,
            VectorFormat::F16 => Encoding::F16,
        };
        if resume && encoding != Encoding::Jsonl {
            return Err(CliError::usage(
                "--resume works with JSON lines output (--format jsonl) only",
            ));
        }
        check_output_path(path)?;
        let partial = partial_path(path);
        if !resume && partial.exists() {
            return Err(CliError::usage(format!(
                "{} exists: an earlier run into {} was interrupted; continue it with --resume, \
                 or delete it to start over",
                partial.display(),
                path.display()
            )));
        }
        let mut already = 0;
        let main = if resume {
            if !partial.exists() && path.exists() {
                std::fs::copy(path, &partial).map_err(|e| write_error(&partial, e))?;
            }
            if partial.exists() {
                let (file, records, len) = reopen_jsonl(&partial, dims)?;
                already = records;
                Sink::File(PartialFile {
                    final_path: path.to_path_buf(),
                    partial_path: partial,
                    writer: BufWriter::with_capacity(1 << 16, file),
                    start_len: len,
                })
            } else {
                Sink::File(PartialFile::create(path)?)
            }
        } else {
            Sink::File(PartialFile::create(path)?)
        };
        let scales = if encoding == Encoding::NpyInt8 {
            Some(Sink::File(PartialFile::create(&scales_path(path))?))
        } else {
            None
        };
        let mut writer = VectorWriter {
            encoding,
            dims,
            count: already,
            main,
            scales,
            bytes: Vec::new(),
        };
        writer.write_headers()?;
        Ok((writer, already))
    }

    /// An `octet search` cache at `path`, identified by `key`.
    pub fn create_cache(path: &Path, dims: usize, key: [u8; 32]) -> Result<VectorWriter> {
        check_output_path(path)?;
        let main = Sink::File(PartialFile::create(path)?);
        let mut writer = VectorWriter {
            encoding: Encoding::Cache(key),
            dims,
            count: 0,
            main,
            scales: None,
            bytes: Vec::new(),
        };
        writer.write_headers()?;
        Ok(writer)
    }

    /// Vectors in the output so far (with those of a resumed run).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the header with the current count (placeholder at the start, final at the end).
    fn write_headers(&mut self) -> Result<()> {
        let header = match self.encoding {
            Encoding::Jsonl | Encoding::F16 => return Ok(()),
            Encoding::NpyF32 => npy_header("<f4", &[self.count, self.dims as u64]),
            Encoding::NpyInt8 => npy_header("|i1", &[self.count, self.dims as u64]),
            Encoding::Cache(key) => cache_header(key, self.dims, self.count),
        };
        self.main.write_at_start(&header)?;
        if let Some(scales) = &mut self.scales {
            scales.write_at_start(&npy_header("<f4", &[self.count]))?;
        }
        Ok(())
    }

    /// Appends one vector; `id` labels JSON lines.
    pub fn write(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        debug_assert_eq!(vector.len(), self.dims);
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

    /// Completes the output: final headers, flush, fsync, rename into place.
    pub fn finish(mut self) -> Result<()> {
        let result = (|| {
            self.flush()?;
            self.write_headers()?;
            if let Some(s) = &mut self.scales {
                s.sync()?;
            }
            self.main.sync()
        })();
        if let Err(e) = result {
            self.discard();
            return Err(e);
        }
        let VectorWriter { main, scales, .. } = self;
        // Scales first: the main file appearing means both are complete.
        if let Some(s) = scales {
            s.commit()?;
        }
        main.commit()
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
        let Sink::File(f) = &self.main else { return None };
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
                notes.push(f.discard());
            }
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

impl PartialFile {
    /// Creates (or truncates) `path.partial`.
    fn create(path: &Path) -> Result<PartialFile> {
        let partial = partial_path(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| create_error(path, e))?;
        Ok(PartialFile {
            final_path: path.to_path_buf(),
            partial_path: partial,
            writer: BufWriter::with_capacity(1 << 16, file),
            start_len: 0,
        })
    }

    fn discard(&mut self) -> String {
        // Drop buffered bytes unwritten: the writer is replaced without flushing.
        let file = match self.writer.get_ref().try_clone() {
            Ok(f) => f,
            Err(_) => return format!("{} may hold partial output", self.partial_path.display()),
        };
        let _ = std::mem::replace(&mut self.writer, BufWriter::new(file)).into_parts();
        if self.start_len == 0 {
            let _ = std::fs::remove_file(&self.partial_path);
            format!("nothing was written to {}", self.final_path.display())
        } else {
            let _ = self.writer.get_ref().set_len(self.start_len);
            format!(
                "{} is back to the {} bytes it had before this run",
                self.partial_path.display(),
                self.start_len
            )
        }
    }
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Stdout(w) => w.write_all(bytes).map_err(stdout_error),
            Sink::File(f) => f.writer.write_all(bytes).map_err(|e| write_error(&f.final_path, e)),
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            Sink::Stdout(w) => w.flush().map_err(stdout_error),
            Sink::File(f) => f.writer.flush().map_err(|e| write_error(&f.final_path, e)),
        }
    }

    /// Writes `header` at offset 0 of a fresh file, or over the first bytes of a finished one.
    fn write_at_start(&mut self, header: &[u8]) -> Result<()> {
        match self {
            Sink::Stdout(w) => w.write_all(header).map_err(stdout_error),
            Sink::File(f) => {
                let result = (|| {
                    f.writer.flush()?;
                    let file = f.writer.get_mut();
                    let end = file.stream_position()?;
                    file.seek(SeekFrom::Start(0))?;
                    file.write_all(header)?;
                    file.seek(SeekFrom::Start(end.max(header.len() as u64)))?;
                    Ok(())
                })();
                result.map_err(|e| write_error(&f.final_path, e))
            }
        }
    }

    fn sync(&mut self) -> Result<()> {
        match self {
            Sink::Stdout(w) => w.flush().map_err(stdout_error),
            Sink::File(f) => {
                f.writer.flush().map_err(|e| write_error(&f.final_path, e))?;
                f.writer.get_ref().sync_all().map_err(|e| write_error(&f.final_path, e))
            }
        }
    }

    fn commit(self) -> Result<()> {
        match self {
            Sink::Stdout(mut w) => w.flush().map_err(stdout_error),
            Sink::File(f) => {
                std::fs::rename(&f.partial_path, &f.final_path).map_err(|e| {
                    CliError::io(format!(
                        "cannot rename {} to {}: {e}; the complete output is in {}",
                        f.partial_path.display(),
                        f.final_path.display(),
                        f.partial_path.display()
                    ))
                })?;
                // Make the rename durable; a failure here changes nothing the user can act on.
                if let Some(dir) = f.final_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
        }
    }
}

/// Checks that the output's folder exists and the path is not a folder.
fn check_output_path(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(CliError::cant_create(format!(
            "the output {} is a folder; give a file name",
            path.display()
        )));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(CliError::cant_create(format!(
            "cannot create {}: the folder {} does not exist; create it first (mkdir -p {})",
            path.display(),
            parent.display(),
            parent.display()
        )));
    }
    Ok(())
}

fn create_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    CliError::cant_create(format!(
        "cannot create {}: {e}; choose another --output or fix the folder's permissions",
        path.display()
    ))
}

/// A write error with a hint for the common causes.
fn write_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        ErrorKind::StorageFull => "; the disk is full: free some space and run again",
        ErrorKind::FileTooLarge => {
            "; the file reached a file-size limit (see `ulimit -f`) or the file system's largest file: \
             lift the limit or write elsewhere"
        }
        _ => "",
    };
    CliError::io(format!("cannot write {}: {e}{hint}", path.display()))
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == ErrorKind::BrokenPipe {
        // The reader went away (`| head`): main exits quietly on this.
        return e.into();
    }
    write_error(Path::new("standard output"), e)
}

/// Reopens a partial JSON-lines file for `--resume`: cuts a torn last line, checks that the last
/// complete line is the `id` it should be with `dims` values, and returns the file positioned at
/// its end, the number of complete lines, and their length in bytes.
fn reopen_jsonl(path: &Path, dims: usize) -> Result<(File, u64, u64)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| write_error(path, e))?;
    let (mut lines, mut end, mut last_start) = (0u64, 0u64, 0u64);
    let mut offset = 0u64;
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(|e| write_error(path, e))?;
        if n == 0 {
            break;
        }
        for (i, _) in block[..n].iter().enumerate().filter(|(_, &b)| b == b'\n') {
            lines += 1;
            last_start = end;
            end = offset + i as u64 + 1;
        }
        offset += n as u64;
    }
    if lines > 0 {
        let mut last = vec![0u8; (end - last_start) as usize];
        file.seek(SeekFrom::Start(last_start))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(|e| write_error(path, e))?;
        #[derive(serde::Deserialize)]
        struct Line {
            id: u64,
            embedding: Vec<serde_json::Value>,
        }
        let ok = match serde_json::from_slice::<Line>(&last) {
            Ok(line) if line.id + 1 == lines && line.embedding.len() == dims => true,
            Ok(line) if line.id + 1 == lines => {
                return Err(CliError::usage(format!(
                    "{} holds vectors of {} dims but this run makes {dims}; resume with the same model and --dims, \
                     or delete it to start over",
                    path.display(),
                    line.embedding.len()
                )))
            }
            _ => false,
        };
        if !ok {
            return Err(CliError::bad_input(format!(
                "{} does not look like `octet embed` JSON lines output (line {lines} is not {{\"id\": {}, ...}}); \
                 delete it to start over",
                path.display(),
                lines - 1
            )));
        }
    }
    file.set_len(end).map_err(|e| write_error(path, e))?;
    file.seek(SeekFrom::Start(end)).map_err(|e| write_error(path, e))?;
    Ok((file, lines, end))
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

fn cache_header(key: [u8; 32], dims: usize, count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CACHE_HEADER_LEN);
    out.extend_from_slice(&CACHE_MAGIC);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(dims as u32).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&key);
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
        assert_eq!(partial_path(Path::new("out/v.npy")), Path::new("out/v.npy.partial"));
        assert_eq!(scales_path(Path::new("out/v.npy")), Path::new("out/v.scales.npy"));
        assert_eq!(VectorFormat::from_extension(Path::new("a.NPY")), VectorFormat::Npy);
        assert_eq!(VectorFormat::from_extension(Path::new("a.jsonl")), VectorFormat::Jsonl);
    }
}
