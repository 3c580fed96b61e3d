//! Untrusted model files on disk: what `ModelFile::open` refuses before mapping (directories,
//! FIFOs, files whose length disagrees with the header), `ModelFile::open_copied` (a model that no
//! longer depends on its file), and regression inputs found by the `model_file` fuzz target
//! (`fuzz/`, `scripts/fuzz.sh`).

use super::super::*;
use super::util::*;

fn io_message(e: FormatError) -> String {
    match e {
        FormatError::Io { source, .. } => source.to_string(),
        other => panic!("expected an I/O error, got {other}"),
    }
}

#[test]
fn a_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let msg = io_message(ModelFile::open(dir.path()).unwrap_err());
    assert!(msg.contains("a directory"), "{msg}");
    let msg = io_message(ModelFile::open_copied(dir.path()).unwrap_err());
    assert!(msg.contains("a directory"), "{msg}");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.octet");
    let status = std::process::Command::new("mkfifo").arg(&path).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    // Opening a FIFO for reading blocks until a writer appears: this would hang if open tried.
    let msg = io_message(ModelFile::open(&path).unwrap_err());
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn a_file_truncated_or_extended_before_opening_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.octet");
    let bytes = sample_bytes();
    std::fs::write(&path, &bytes[..bytes.len() - 64]).unwrap();
    for open in [ModelFile::open, ModelFile::open_copied] {
        assert!(matches!(open(&path).unwrap_err(), FormatError::Truncated { .. }));
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 64]);
    std::fs::write(&path, &longer).unwrap();
    for open in [ModelFile::open, ModelFile::open_copied] {
        assert!(matches!(open(&path).unwrap_err(), FormatError::TrailingBytes { .. }));
    }
}

#[test]
fn a_copied_model_survives_its_file_being_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.octet");
    sample_writer().write(&path).unwrap();
    let model = ModelFile::open_copied(&path).unwrap();
    assert_eq!(model.path(), Some(path.as_path()));
    // What must never be done to a mapped model: truncate it in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    touch_everything(&model);
    model.verify_data().unwrap();
    assert_eq!(model.f32("scalar", &[]).unwrap(), &[42.0]);
}
