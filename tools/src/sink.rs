//! The files vectors are written to, and the rules that keep a run from destroying anything
//! that is not its own output.
//!
//! - A regular output `F` (or a path that does not exist yet) is written to a temporary file in
//!   the same folder and renamed over `F` only when complete. The temporary file is created
//!   exclusively (`O_EXCL`: an existing file or symlink there is never followed or truncated)
//!   and locked (`flock`) for the whole run, so two runs never write one file: the second is
//!   told another run holds it. A temporary file this run created is removed on any error
//!   (or panic unwinding), unless [`PartialFile::keep`] keeps it for `--resume`.
//! - A symlink output is followed: the file it points to is replaced, the link stays.
//! - A FIFO, socket or device (`-o /dev/null`), or any path under `/dev/` or `/proc/`
//!   (`-o /dev/stdout`), is written to directly, with no temporary file and no rename.
//! - [`refuse_same_file`]: an output that is one of the run's inputs (same device and inode,
//!   so hard links and symlinks count; standard input too) is refused before anything is written.

use anyhow::Result;
use octet_tools::exit::CliError;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The path of the temporary file for `path`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// True if `path` must be written in place: an existing file that is not a regular file or a
/// folder (FIFO, socket, device), or a path under `/dev/` or `/proc/` (`/dev/stdout` may point
/// to a regular file that a shell redirect holds open: replacing it would lose the output).
pub fn is_special(path: &Path) -> bool {
    if path.starts_with("/dev") || path.starts_with("/proc") {
        return true;
    }
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Where the output really goes: a symlink is followed (to its final target, even a dangling
/// one), so the link itself is never replaced by the rename.
pub fn resolve(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => path = path.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => break,
        }
    }
    path
}

/// The (device, inode) of an existing file, following symlinks.
#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok()
}

/// Refuses (exit 2) an output, or a file derived from it (`derived`: its temporary file, an
/// `npy-int8` scales file), that is the same file as one of `inputs` (`(what, path)`; the path
/// `-` stands for standard input). Hard links and symlinks are caught by device and inode.
pub fn refuse_same_file(flag: &str, output: &Path, derived: &[PathBuf], inputs: &[(&str, &Path)]) -> Result<()> {
    if is_special(output) {
        // Written in place, never replaced: `< /dev/null ... -o /dev/null` destroys nothing.
        return Ok(());
    }
    for (what, input) in inputs {
        let input_path = if input.as_os_str() == "-" {
            Path::new("/dev/stdin")
        } else {
            input
        };
        let Some(input_id) = identity(input_path) else {
            continue;
        };
        for out in std::iter::once(&output.to_path_buf()).chain(derived) {
            if identity(out).is_some_and(|o| o == input_id) {
                let via = if out == output {
                    String::new()
                } else {
                    format!(" (octet would write {})", out.display())
                };
                return Err(CliError::usage(format!(
                    "{flag} {} is the same file as the {what} {}{via}: writing it would destroy the {what}; \
                     write elsewhere",
                    output.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

/// Checks that the output's folder exists and the path is not a folder.
pub fn check_output_path(path: &Path) -> Result<()> {
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

/// Tries to take an exclusive lock on `file` without waiting; false if another process has it.
#[cfg(unix)]
pub fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns and keeps open; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
pub fn try_lock(_file: &File) -> bool {
    true
}

/// The message for an output another run is writing.
pub fn busy_error(path: &Path, partial: &Path) -> anyhow::Error {
    CliError::cant_create(format!(
        "another octet run is writing {} now (it holds {}); wait for it to finish, or choose another output",
        path.display(),
        partial.display()
    ))
}

/// A file being written under a temporary name, renamed over `final_path` when complete.
pub struct PartialFile {
    pub final_path: PathBuf,
    pub partial_path: PathBuf,
    pub writer: BufWriter<File>,
    /// Length of the temporary file when this run began (a resumed run keeps earlier work).
    pub start_len: u64,
    /// Committed or kept: nothing to clean up when dropped.
    done: bool,
}

impl PartialFile {
    /// Creates `partial` exclusively and locks it. An existing `partial` is an error: another
    /// run's (locked), or an interrupted one's (`exists_hint` says what to do).
    pub fn create_new(final_path: &Path, partial: PathBuf, exists_hint: &str) -> Result<PartialFile> {
        let file = match OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&partial)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if let Ok(existing) = File::open(&partial) {
                    if !try_lock(&existing) {
                        return Err(busy_error(final_path, &partial));
                    }
                }
                return Err(CliError::usage(format!("{} exists: {exists_hint}", partial.display())));
            }
            Err(e) => return Err(create_error(final_path, e)),
        };
        let mut this = PartialFile::wrap(final_path, partial, file, 0);
        if !try_lock(this.writer.get_ref()) {
            // Another run opened our new file before we could lock it: it is theirs now.
            this.done = true;
            return Err(busy_error(final_path, &this.partial_path));
        }
        Ok(this)
    }

    /// Wraps an open (and locked) temporary file whose first `start_len` bytes are earlier work.
    pub fn wrap(final_path: &Path, partial: PathBuf, file: File, start_len: u64) -> PartialFile {
        PartialFile {
            final_path: final_path.to_path_buf(),
            partial_path: partial,
            writer: BufWriter::with_capacity(1 << 16, file),
            start_len,
            done: false,
        }
    }

    /// Keeps the temporary file as it is (for `--resume`).
    pub fn keep(&mut self) {
        self.done = true;
    }

    /// Removes what this run wrote: deletes a file it created, or truncates a resumed one to
    /// its length at the start. Returns a note saying which.
    pub fn discard(&mut self) -> String {
        self.done = true;
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

    /// Renames the temporary file over the final path, and makes the rename durable.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.partial_path, &self.final_path).map_err(|e| {
            CliError::io(format!(
                "cannot rename {} to {}: {e}; the complete output is in {}",
                self.partial_path.display(),
                self.final_path.display(),
                self.partial_path.display()
            ))
        })?;
        self.done = true;
        // A failure here changes nothing the user can act on.
        if let Some(dir) = self.final_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.done {
            self.discard();
        }
    }
}

/// Where bytes go.
pub enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    /// A FIFO, socket or device, written in place.
    Direct {
        path: PathBuf,
        writer: BufWriter<File>,
    },
    File(PartialFile),
}

impl Sink {
    /// Opens a special file (see [`is_special`]) for writing in place.
    pub fn direct(path: &Path) -> Result<Sink> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| create_error(path, e))?;
        Ok(Sink::Direct {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 16, file),
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Stdout(w) => w.write_all(bytes).map_err(stdout_error),
            Sink::Direct { path, writer } => writer.write_all(bytes).map_err(|e| write_error(path, e)),
            Sink::File(f) => f.writer.write_all(bytes).map_err(|e| write_error(&f.final_path, e)),
        }
    }

    pub fn flush(&mut self) -> Result<()> {
        match self {
            Sink::Stdout(w) => w.flush().map_err(stdout_error),
            Sink::Direct { path, writer } => writer.flush().map_err(|e| write_error(path, e)),
            Sink::File(f) => f.writer.flush().map_err(|e| write_error(&f.final_path, e)),
        }
    }

    /// Writes `header` at offset 0 of a fresh file, or over the first bytes of a finished one.
    /// Streams (standard output, special files) get it once, at the start: `first` is true then.
    pub fn write_at_start(&mut self, header: &[u8], first: bool) -> Result<()> {
        let (path, writer) = match self {
            Sink::Stdout(w) => {
                return if first {
                    w.write_all(header).map_err(stdout_error)
                } else {
                    Ok(())
                }
            }
            Sink::Direct { path, writer } => {
                return if first {
                    writer.write_all(header).map_err(|e| write_error(path, e))
                } else {
                    Ok(())
                }
            }
            Sink::File(f) => (&f.final_path, &mut f.writer),
        };
        let result = (|| {
            writer.flush()?;
            let file = writer.get_mut();
            let end = file.stream_position()?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(header)?;
            file.seek(SeekFrom::Start(end.max(header.len() as u64)))?;
            Ok(())
        })();
        result.map_err(|e| write_error(path, e))
    }

    /// Flushes and, for a file, fsyncs.
    pub fn sync(&mut self) -> Result<()> {
        match self {
            Sink::File(f) => {
                f.writer.flush().map_err(|e| write_error(&f.final_path, e))?;
                f.writer.get_ref().sync_all().map_err(|e| write_error(&f.final_path, e))
            }
            other => other.flush(),
        }
    }

    /// Completes the output (renames a temporary file into place).
    pub fn commit(self) -> Result<()> {
        match self {
            Sink::File(f) => f.commit(),
            mut other => other.flush(),
        }
    }
}

pub fn create_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    CliError::cant_create(format!(
        "cannot create {}: {e}; choose another --output or fix the folder's permissions",
        path.display()
    ))
}

/// A write error with a hint for the common causes.
pub fn write_error(path: &Path, e: std::io::Error) -> anyhow::Error {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_paths_and_symlinks() {
        assert!(is_special(Path::new("/dev/null")));
        assert!(is_special(Path::new("/dev/stdout")));
        assert!(!is_special(Path::new("/nonexistent/x.jsonl")));
        let dir = std::env::temp_dir().join(format!("octet-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("target.jsonl", &link).unwrap();
            assert_eq!(resolve(&link), dir.join("target.jsonl"));
        }
        assert_eq!(partial_path(Path::new("out/v.npy")), Path::new("out/v.npy.partial"));
    }
}
