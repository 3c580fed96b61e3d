//! A catalogue of hostile inputs and environments (issue 16): one row each, with the exit code
//! and a message fragment octet must give, and a check that nothing that is not octet's own
//! output was touched (rows in `support/outputs.rs` and `support/inputs.rs`). Cases that need
//! concurrency, signals or memory limits are tests of their own below. Runs the real
//! all-MiniLM-L6-v2 int8 model, fetched and converted once per process like `cli.rs` does.

mod common;
mod support;

use std::path::Path;
use std::process::Command;
use support::*;

#[test]
fn catalogue_of_hostile_inputs() {
    let mut failures = Vec::new();
    for (i, case) in outputs::cases().iter().chain(&inputs::cases()).enumerate() {
        // For running the catalogue against an older binary, where some rows would replace
        // /dev/null: OCTET_HOSTILE_SKIP=/dev/null skips the rows whose name holds it.
        if std::env::var("OCTET_HOSTILE_SKIP").is_ok_and(|skip| case.name.contains(&skip)) {
            continue;
        }
        let dir = test_dir(&format!("case-{i}"));
        let args = (case.setup)(&dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = if args[0] == "sh" {
            Command::new("sh").args(["-c", args[1]]).output().unwrap()
        } else {
            run(&args, case.stdin)
        };
        let err = String::from_utf8_lossy(&o.stderr);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_eq!(o.status.code(), Some(case.code), "exit code; stderr:\n{err}");
            assert!(
                !err.contains("panicked") && !err.contains("internal error"),
                "panic:\n{err}"
            );
            assert!(err.contains(case.needle), "stderr lacks {:?}:\n{err}", case.needle);
            (case.after)(&dir, &o);
        }));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn embed_into_a_fifo_writes_through_it_without_replacing_it() {
    let dir = test_dir("fifo-out");
    let fifo = dir.join("out.fifo");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let o = run(
        &[
            "embed",
            model().to_str().unwrap(),
            "-o",
            fifo.to_str().unwrap(),
            "a",
            "b",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(reader.join().unwrap().lines().count(), 2);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
    assert_eq!(listing(&dir), ["out.fifo"]);
}

/// Item 2: two searches with two different models build one cache at the same time, three
/// times over; each must give exactly its own uncached result (never the other model's
/// vectors under its key), and a later search with each must too.
#[test]
fn concurrent_searches_building_one_cache_never_mix_models() {
    let dir = test_dir("concurrent-cache");
    let other = dir.join("other.octet");
    altered_model(&other, 3.0);
    let corpus = dir.join("c.txt");
    std::fs::write(
        &corpus,
        "cats purr softly\nstock markets fell\nthe kitten sleeps\nbonds rallied\n",
    )
    .unwrap();
    let cache = dir.join("shared.octet-vectors");
    let args = |m: &Path, extra: &str| {
        vec![
            "search".to_string(),
            s(m),
            "--corpus".into(),
            s(&corpus),
            "--json".into(),
            "-k".into(),
            "4".into(),
            extra.into(),
            "kitten".into(),
        ]
    };
    let expected: Vec<Vec<u8>> = [model(), other.as_path()]
        .iter()
        .map(|m| {
            let a = args(m, "--no-cache");
            let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        })
        .collect();
    assert_ne!(expected[0], expected[1], "the two models must rank differently");
    for round in 0..3 {
        let _ = std::fs::remove_file(&cache);
        let children: Vec<_> = [model(), other.as_path()]
            .iter()
            .map(|m| {
                let mut a = args(m, "--cache");
                a.insert(8, s(&cache));
                Command::new(OCTET)
                    .args(&a)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}, model {i}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.stdout, expected[i], "round {round}: model {i} got other results");
        }
        for (i, m) in [model(), other.as_path()].iter().enumerate() {
            let mut a = args(m, "--cache");
            a.insert(8, s(&cache));
            let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
            assert_eq!(
                o.stdout, expected[i],
                "round {round}: a later search with model {i} got other results"
            );
        }
        let left: Vec<String> = listing(&dir).into_iter().filter(|n| n.contains("partial")).collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

/// Item 9: the model truncated in place while `embed` runs: a message naming the file and exit
/// 65, not a bare SIGBUS (exit 135).
#[test]
fn a_model_truncated_during_a_run_is_a_clear_error() {
    use std::io::{BufRead, BufReader, Write};
    let dir = test_dir("sigbus");
    let path = own_model(&dir);
    let mut child = Command::new(OCTET)
        .args(["embed", path.to_str().unwrap(), "--batch-size", "8"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let words = [
        "cat", "zebra", "quantum", "harbor", "violin", "glacier", "pepper", "lantern",
    ];
    let line = |i: usize| format!("{} {} {i}\n", words[i % 8], words[(i * 3) % 8]);
    let first: String = (0..300).map(line).collect();
    stdin.write_all(first.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The first chunk (256 texts) is written once embedded: the model is in use.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut got = String::new();
    for _ in 0..256 {
        got.clear();
        stdout.read_line(&mut got).unwrap();
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let rest: String = (300..900).map(line).collect();
    let _ = stdin.write_all(rest.as_bytes());
    drop(stdin);
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let o = child.wait_with_output().unwrap();
    let _ = drain.join();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(BAD_INPUT), "stderr:\n{err}");
    assert!(
        err.contains("changed while octet was reading it") && err.contains(path.to_str().unwrap()),
        "{err}"
    );
}

/// Item 3: one 200 MB line (the 1 GB, scaled down for test time) keeps the peak
/// resident memory within the file's size plus 100 MB; before the fix it took ~110 bytes per
/// input byte. Measured with wait4's ru_maxrss of this child alone.
#[test]
// The child is reaped by wait4 (for its own rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn one_huge_line_stays_in_bounded_memory() {
    const SIZE: usize = 200 << 20;
    let dir = test_dir("huge-line");
    let input = dir.join("line.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let unit = b"the quick brown fox jumps over the lazy dog ";
        for _ in 0..SIZE / unit.len() {
            std::io::Write::write_all(&mut f, unit).unwrap();
        }
        std::io::Write::write_all(&mut f, b"\n").unwrap();
    }
    let out = dir.join("v.jsonl");
    let child = Command::new(OCTET)
        .args([
            "embed",
            model().to_str().unwrap(),
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child; status and usage are valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "octet failed: status {status}"
    );
    let peak = usage.ru_maxrss as usize * 1024;
    assert!(
        peak <= SIZE + (100 << 20),
        "peak RSS {} MB for a {} MB line",
        peak >> 20,
        SIZE >> 20
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
    let _ = std::fs::remove_file(&input);
}
