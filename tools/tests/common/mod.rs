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

/// all-MiniLM-L6-v2, fetched with `scripts/fetch-minilm.sh` (a no-op when cached; a missing
/// model fails the test, it never skips it) and converted to int8 by the `octet` binary at
/// `octet` into `out`.
pub fn convert_minilm_int8(octet: &str, out: &Path) {
    let fetch = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/fetch-minilm.sh"))
        .output()
        .expect("run fetch-minilm.sh");
    assert!(
        fetch.status.success(),
        "fetch-minilm.sh failed:\n{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let stdout = String::from_utf8_lossy(&fetch.stdout);
    let source = stdout
        .lines()
        .last()
        .expect("the fetch script prints its folder")
        .trim();
    let convert = std::process::Command::new(octet)
        .args(["convert", source, "-o"])
        .arg(out)
        .args(["--quant", "int8", "-q"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run octet convert");
    assert!(
        convert.status.success(),
        "octet convert {source} failed:\n{}",
        String::from_utf8_lossy(&convert.stderr)
    );
}

/// `root/name`, emptied and created anew: a fresh folder for one test.
pub fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Runs the `octet` binary at `octet` with `args` and optional standard input. The input is
/// written from another thread, so a binary that stops reading early (or an input larger than
/// the pipe) never blocks the test.
pub fn run_octet(octet: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(octet)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octet");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().expect("wait for octet")
}
