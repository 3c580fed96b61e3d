//! What every integration test binary of the tools crate shares: the repository root and a
//! scratch folder per test process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (the parent of `tools/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ has a parent")
        .to_path_buf()
}

/// A fresh folder `<temp>/<prefix>-<pid>` for this test process. Statics are never dropped, so
/// it first removes the folders of earlier test processes with the same prefix that no longer
/// run (Linux: no `/proc/<pid>`), and any left by an earlier process with this pid.
pub fn process_scratch(prefix: &str) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.strip_prefix('-'))
            else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
