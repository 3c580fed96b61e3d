//! Catalogue rows: inputs (items 4, 6, 7, 10 and 11 of issue 16).

use super::*;
use std::path::Path;

/// Rows for what octet reads: CSV, partial files, one-shot corpora, flags, model paths, sources.
pub fn cases() -> Vec<Case> {
    vec![
        // ---- 4: CSV that would lose data
        Case {
            name: "CSV row with an extra unquoted field",
            setup: |d| {
                std::fs::write(d.join("in.csv"), "id,text\n1,fine\n2,one, two\n").unwrap();
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    s(&d.join("in.csv")),
                    "--column".into(),
                    "text".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "line 3 of",
            after: |_, o| assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1),
        },
        Case {
            name: "CSV stray quote that would swallow the rest of the file",
            setup: |d| {
                std::fs::write(d.join("in.csv"), "id,text\n1,fine\n2,\"oops\n3,more\n4,rest\n").unwrap();
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    s(&d.join("in.csv")),
                    "--column".into(),
                    "text".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "line 3 of",
            after: |_, o| assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1),
        },
        Case {
            name: "CSV text after a closing quote",
            setup: |d| {
                std::fs::write(d.join("in.csv"), "id,text\n1,\"a\"b\n").unwrap();
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    s(&d.join("in.csv")),
                    "--column".into(),
                    "text".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "text follows the quote",
            after: nothing,
        },
        // ---- 6: --resume trusts only what it checks
        Case {
            name: "resume a partial file with a garbage line in the middle",
            setup: |d| {
                let lines = run(&["embed", model().to_str().unwrap(), "a", "b", "c"], None);
                let text = String::from_utf8(lines.stdout).unwrap();
                let l: Vec<&str> = text.lines().collect();
                std::fs::write(d.join("v.jsonl.partial"), format!("{}\ngarbage\n{}\n", l[0], l[2])).unwrap();
                std::fs::write(d.join("in.txt"), "a\nb\nc\nd\n").unwrap();
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    s(&d.join("in.txt")),
                    "-o".into(),
                    s(&d.join("v.jsonl")),
                    "--resume".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "is damaged: line 2",
            after: |d, _| assert!(!d.join("v.jsonl").exists()),
        },
        Case {
            name: "resume a partial file whose ids skip",
            setup: |d| {
                let lines = run(&["embed", model().to_str().unwrap(), "a", "b"], None);
                let text = String::from_utf8(lines.stdout).unwrap();
                let l: Vec<&str> = text.lines().collect();
                std::fs::write(
                    d.join("v.jsonl.partial"),
                    format!("{}\n{}\n", l[0], l[1].replace("\"id\":1", "\"id\":5")),
                )
                .unwrap();
                std::fs::write(d.join("in.txt"), "a\nb\nc\n").unwrap();
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    s(&d.join("in.txt")),
                    "-o".into(),
                    s(&d.join("v.jsonl")),
                    "--resume".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "has id 5 where 1 should be",
            after: nothing,
        },
        Case {
            name: "resume with another --no-normalize than the interrupted run",
            setup: |d| {
                std::fs::write(d.join("in.txt"), b"a\nb\n\xff\nd\n").unwrap();
                let (i, o) = (s(&d.join("in.txt")), s(&d.join("v.jsonl")));
                let first = run(&["embed", model().to_str().unwrap(), "-i", &i, "-o", &o], None);
                assert_eq!(first.status.code(), Some(BAD_INPUT));
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    i,
                    "-o".into(),
                    o,
                    "--resume".into(),
                    "--lossy".into(),
                    "--no-normalize".into(),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "normalize: None then, Some(false) now",
            after: |d, _| {
                assert_eq!(
                    std::fs::read_to_string(d.join("v.jsonl.partial"))
                        .unwrap()
                        .lines()
                        .count(),
                    2
                )
            },
        },
        // ---- 7: a corpus that can be read only once
        Case {
            name: "search --corpus - reads standard input once, uncached",
            setup: |_| {
                vec![
                    "search".into(),
                    s(model()),
                    "--corpus".into(),
                    "-".into(),
                    "kitten".into(),
                ]
            },
            stdin: Some(b"cats purr\nstocks fell\n"),
            code: OK,
            needle: "not cached",
            after: |_, o| assert!(String::from_utf8_lossy(&o.stdout).contains("cats purr")),
        },
        Case {
            name: "search --corpus <(cat f) through bash",
            setup: |d| {
                std::fs::write(d.join("c.txt"), "cats purr\nstocks fell\n").unwrap();
                vec![
                    "sh".into(),
                    format!(
                        "exec bash -c \"exec '{OCTET}' search '{}' --corpus <(cat '{}') kitten\"",
                        s(model()),
                        s(&d.join("c.txt"))
                    ),
                ]
            },
            stdin: None,
            code: OK,
            needle: "not cached",
            after: |d, o| {
                assert!(String::from_utf8_lossy(&o.stdout).contains("cats purr"));
                assert_eq!(listing(d), ["c.txt"]);
            },
        },
        // ---- 10: threads
        Case {
            name: "--threads 100000 is capped",
            setup: |_| {
                vec![
                    "embed".into(),
                    s(model()),
                    "--threads".into(),
                    "100000".into(),
                    "hello".into(),
                ]
            },
            stdin: None,
            code: OK,
            needle: "note: --threads 100000 is more than 4 per CPU",
            after: nothing,
        },
        // ---- 11: small ones
        Case {
            name: "a FIFO as the model",
            setup: |d| {
                mkfifo(&d.join("m.fifo"));
                vec!["embed".into(), s(&d.join("m.fifo")), "x".into()]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "is not a regular file",
            after: |_, o| assert_eq!(String::from_utf8_lossy(&o.stderr).matches("regular file").count(), 1),
        },
        Case {
            name: "/dev/zero as the model",
            setup: |_| vec!["info".into(), "/dev/zero".into()],
            stdin: None,
            code: BAD_INPUT,
            needle: "is not a regular file",
            after: |_, o| assert_eq!(String::from_utf8_lossy(&o.stderr).matches("regular file").count(), 1),
        },
        Case {
            name: "JSON lines field holding an array",
            setup: |_| vec!["embed".into(), s(model()), "--field".into(), "t".into()],
            stdin: Some(b"{\"t\": [1]}\n"),
            code: BAD_INPUT,
            needle: "field 't' is an array, not a string",
            after: nothing,
        },
        Case {
            name: "an -o another run holds is not called interrupted",
            setup: |d| {
                let partial = d.join("v.jsonl.partial");
                std::fs::write(&partial, "").unwrap();
                hold_lock(&partial);
                vec![
                    "embed".into(),
                    s(model()),
                    "-o".into(),
                    s(&d.join("v.jsonl")),
                    "x".into(),
                ]
            },
            stdin: None,
            code: CANT_CREATE,
            needle: "another octet run is writing",
            after: |_, o| assert!(!String::from_utf8_lossy(&o.stderr).contains("interrupted")),
        },
        Case {
            name: "two --resume runs on one partial do not interleave",
            setup: |d| {
                let partial = d.join("v.jsonl.partial");
                std::fs::write(&partial, "").unwrap();
                hold_lock(&partial);
                vec![
                    "embed".into(),
                    s(model()),
                    "-o".into(),
                    s(&d.join("v.jsonl")),
                    "--resume".into(),
                    "x".into(),
                ]
            },
            stdin: None,
            code: CANT_CREATE,
            needle: "another octet run is writing",
            after: |d, _| assert_eq!(std::fs::read(d.join("v.jsonl.partial")).unwrap(), b""),
        },
        Case {
            name: "convert weights of layers the config does not list",
            setup: |d| {
                let src = d.join("src");
                std::fs::create_dir_all(src.join("1_Pooling")).unwrap();
                let from = source_folder();
                for entry in walk(&from) {
                    let rel = entry.strip_prefix(&from).unwrap();
                    if rel != Path::new("config.json") {
                        symlink(&entry, &src.join(rel));
                    }
                }
                let config = std::fs::read_to_string(from.join("config.json")).unwrap();
                std::fs::write(
                    src.join("config.json"),
                    config.replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 5"),
                )
                .unwrap();
                vec![
                    "convert".into(),
                    s(&src),
                    "-o".into(),
                    s(&d.join("m.octet")),
                    "-q".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "holds weights for layers 5 to 5",
            after: |d, _| assert!(!d.join("m.octet").exists()),
        },
    ]
}
