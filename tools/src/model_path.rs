//! The checks on a model path before it is opened, shared by the command line (`load.rs`) and
//! the Python package, so both say the same thing about a folder, a missing file or a pipe.

use crate::exit::CliError;
use std::path::Path;

/// Checks that `path` names an existing regular file, with a message that says what to do
/// when it does not (a source folder: convert it; nothing there: where a model comes from).
pub fn check(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        let hint = if path.join("config.json").is_file() {
            format!(
                "; it looks like a model source folder: convert it first with `octet convert {} -o model.octet`",
                path.display()
            )
        } else {
            String::new()
        };
        return Err(CliError::no_input(format!(
            "the model {} is a folder, not an .octet file{hint}",
            path.display()
        )));
    }
    if !path.exists() {
        return Err(CliError::no_input(format!(
            "the model file {} does not exist; check the path, or make one with `octet convert` \
             (`bash scripts/quickstart.sh` leaves all-MiniLM-L6-v2 in ~/.cache/octet/models/)",
            path.display()
        )));
    }
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(CliError::bad_input(format!(
            "the model {} is not a regular file (a pipe, device or socket); give the .octet file itself",
            path.display()
        )));
    }
    Ok(())
}
