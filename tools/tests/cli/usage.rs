//! `--help` on every subcommand, and usage errors that stop before any work.

use super::*;

#[test]
fn every_subcommand_help_teaches_with_an_example() {
    for cmd in ["convert", "embed", "similarity", "search", "info", "inspect", "diff"] {
        let help = ok(run(&[cmd, "--help"], None));
        assert!(help.contains("Example"), "`octet {cmd} --help` has no example:\n{help}");
        assert!(
            help.contains(&format!("octet {cmd} ")),
            "`octet {cmd} --help` example does not run {cmd}:\n{help}"
        );
    }
    let top = ok(run(&["--help"], None));
    assert!(top.contains("Exit codes") && top.contains("65 bad input"), "{top}");
}

#[test]
fn usage_errors_exit_2_before_doing_anything() {
    let dir = test_dir("usage");
    let out = dir.join("v.jsonl");
    let o = run(&["embed", m(), "text", "--input", "x.txt"], None);
    fails(&o, USAGE, &["not both"]);
    let o = run(&["embed", m(), "--field", "a", "--column", "b"], Some(b""));
    fails(&o, USAGE, &["--field", "--column"]);
    let o = run(&["embed", m(), "--format", "npy", "x"], None);
    fails(&o, USAGE, &["--output"]);
    let o = run(&["embed", m(), "--prompt", "query", "x"], None);
    fails(&o, USAGE, &["unknown prompt 'query'"]);
    let o = run(&["embed", m(), "--dims", "999", "x"], None);
    fails(&o, USAGE, &["dims 999"]);
    let o = run(
        &["embed", m(), "--resume", "-o", out.to_str().unwrap(), "-f", "npy", "x"],
        None,
    );
    fails(&o, USAGE, &["--resume works with JSON lines"]);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "a usage error created files"
    );
    // clap's own errors use the same code.
    assert_eq!(run(&["embed"], None).status.code(), Some(USAGE));
    assert_eq!(run(&["similarity", m(), "only one"], None).status.code(), Some(USAGE));
}
