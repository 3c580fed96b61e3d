//! Outputs that cannot be written: a missing folder, a full disk, a closed pipe.

use super::*;

#[test]
fn an_output_path_in_a_missing_folder() {
    let dir = test_dir("missing-folder");
    let out = dir.join("no/such/folder/v.jsonl");
    let o = run(&["embed", m(), "-o", out.to_str().unwrap(), "hello"], None);
    fails(&o, CANT_CREATE, &["does not exist", "mkdir -p"]);
    assert!(!dir.join("no").exists());
}

#[test]
fn a_full_disk_is_a_clean_error_that_leaves_no_partial_output() {
    let dir = test_dir("full-disk");
    let input = dir.join("in.txt");
    std::fs::write(&input, (0..200).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
    for (name, format) in [("v.jsonl", "jsonl"), ("v.npy", "npy"), ("q.npy", "npy-int8")] {
        let out = dir.join(name);
        // `ulimit -f 50`: files may not grow past 50 blocks (25-50 KiB), about 60 JSON lines.
        let script = format!(
            "ulimit -f 50; exec '{OCTET}' embed '{}' -i '{}' -o '{}' --format {format}",
            m(),
            input.display(),
            out.display()
        );
        let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
        fails(
            &o,
            IO,
            &["cannot write", "File too large", "ulimit -f", "nothing was written"],
        );
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["in.txt"], "{format}: output left behind");
    }
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let input: String = (0..1100).map(|i| format!("line {i}\n")).collect();
    let script = format!(
        "'{OCTET}' embed '{}' | head -c 10 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        m()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}
