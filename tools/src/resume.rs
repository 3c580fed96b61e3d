//! `octet embed --resume`: continuing an interrupted JSON-lines run in `F.partial`.
//!
//! - The run is described by a short text (the model's `meta_sha256` and the options that
//!   change the vectors: prompt, dims, normalization, how the input is read), kept beside the
//!   partial file in `F.partial.run` while it exists. A resume whose description differs is
//!   refused, naming the differences, so vectors of two models or two prompts never mix.
//!   (`--lossy`, `--no-truncate` and `--batch-size` are left out: the error messages suggest
//!   changing the first two to get past a bad text, and the last changes no vector.)
//! - Every complete line of the partial file is checked: a JSON object with `id` equal to its
//!   line index and `embedding` an array of `dims` finite numbers. A torn last line (no `\n`)
//!   is cut. Anything else is an error naming the line: a damaged file is never continued.
//! - The partial file is opened without following a symlink and locked for the run, so two
//!   `--resume` runs on one partial never interleave.

use crate::sink::{busy_error, try_lock, write_error};
use anyhow::Result;
use octet_tools::exit::CliError;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The run description beside the partial file of output `path`.
pub fn run_record_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial.run");
    path.with_file_name(name)
}

/// Records `run` beside the partial file of `path`.
pub fn write_run_record(path: &Path, run: &str) -> Result<()> {
    let record = run_record_path(path);
    std::fs::write(&record, run).map_err(|e| write_error(&record, e))
}

/// Removes the run description (the output is complete, or this run's partial file is gone).
pub fn remove_run_record(path: &Path) {
    let _ = std::fs::remove_file(run_record_path(path));
}

/// Opens `partial` (a copy of a complete `path` if only that exists, a new file if neither
/// does) for `--resume`, locked, checked line by line against `dims` and against the run
/// description `run`. Returns the file positioned at the end of its last complete line, the
/// number of complete lines, and their length in bytes.
pub fn reopen(path: &Path, partial: &Path, dims: usize, run: &str) -> Result<(File, u64, u64)> {
    let fresh = !partial.exists();
    if fresh && path.exists() {
        let mut target = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(partial)
            .map_err(|e| write_error(partial, e))?;
        let mut source = File::open(path).map_err(|e| write_error(path, e))?;
        std::io::copy(&mut source, &mut target).map_err(|e| write_error(partial, e))?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(fresh);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(partial).map_err(|e| write_error(partial, e))?;
    if !try_lock(&file) {
        return Err(busy_error(path, partial));
    }
    let record = run_record_path(path);
    match std::fs::read_to_string(&record) {
        Ok(earlier) if earlier != run => return Err(mismatch(partial, &earlier, run)),
        Ok(_) => {}
        // A partial file without a description (a copy of a complete output, or a new file):
        // this run's description goes with it from now on.
        Err(_) => write_run_record(path, run)?,
    }
    let (lines, end) = check_lines(&mut file, partial, dims)?;
    file.set_len(end).map_err(|e| write_error(partial, e))?;
    file.seek(SeekFrom::Start(end)).map_err(|e| write_error(partial, e))?;
    Ok((file, lines, end))
}

/// The refusal of a resume with other options, naming each difference.
fn mismatch(partial: &Path, earlier: &str, now: &str) -> anyhow::Error {
    let mut differences = Vec::new();
    for (a, b) in earlier.lines().zip(now.lines()) {
        if a != b {
            let name = a.split(' ').next().unwrap_or("");
            differences.push(format!(
                "{name}: {} then, {} now",
                a[name.len()..].trim(),
                b[name.len()..].trim()
            ));
        }
    }
    if differences.is_empty() {
        differences.push("the run description differs".into());
    }
    CliError::usage(format!(
        "{} was written with other options than this run's ({}); resume with the same model and options, \
         or delete it to start over",
        partial.display(),
        differences.join("; ")
    ))
}

/// Checks every complete line; returns their count and total length (a torn tail excluded).
fn check_lines(file: &mut File, path: &Path, dims: usize) -> Result<(u64, u64)> {
    #[derive(serde::Deserialize)]
    struct Line {
        id: u64,
        embedding: Vec<f32>,
    }
    let mut reader = BufReader::with_capacity(1 << 20, &*file);
    let (mut lines, mut end) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| write_error(path, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break; // the end, or a torn last line: cut
        }
        let damaged = |why: String| {
            CliError::bad_input(format!(
                "{} is damaged: line {} {why}; it cannot be continued: delete it to start over",
                path.display(),
                lines + 1
            ))
        };
        let line: Line =
            serde_json::from_slice(&buf).map_err(|e| damaged(format!("is not an `octet embed` JSON line ({e})")))?;
        if line.id != lines {
            return Err(damaged(format!("has id {} where {lines} should be", line.id)));
        }
        if line.embedding.len() != dims {
            return Err(CliError::usage(format!(
                "{} holds vectors of {} dims but this run makes {dims}; resume with the same model and --dims, \
                 or delete it to start over",
                path.display(),
                line.embedding.len()
            )));
        }
        lines += 1;
        end += n as u64;
    }
    Ok((lines, end))
}
