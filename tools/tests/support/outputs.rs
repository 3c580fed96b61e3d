//! Catalogue rows: outputs (items 1, 2, 5 and 8 of issue 16).

use super::*;
use std::path::Path;

/// Rows for what octet writes: never anything but its own output, never a non-finite vector, nothing left behind.
pub fn cases() -> Vec<Case> {
    vec![
        // ---- 1: outputs that are not the user's output file
        Case {
            name: "embed -o the model file",
            setup: |d| {
                let m = own_model(d);
                vec!["embed".into(), s(&m), "-o".into(), s(&m), "hello".into()]
            },
            stdin: None,
            code: USAGE,
            needle: "is the same file as the model",
            after: model_unchanged,
        },
        Case {
            name: "embed -o a hard link to the model",
            setup: |d| {
                let m = own_model(d);
                std::fs::hard_link(&m, d.join("link.jsonl")).unwrap();
                vec![
                    "embed".into(),
                    s(&m),
                    "-o".into(),
                    s(&d.join("link.jsonl")),
                    "hello".into(),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "is the same file as the model",
            after: model_unchanged,
        },
        Case {
            name: "embed -o a symlink to the input",
            setup: |d| {
                std::fs::write(d.join("in.txt"), "a\nb\n").unwrap();
                symlink(&d.join("in.txt"), &d.join("out.jsonl"));
                vec![
                    "embed".into(),
                    s(model()),
                    "-i".into(),
                    s(&d.join("in.txt")),
                    "-o".into(),
                    s(&d.join("out.jsonl")),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "is the same file as the input",
            after: |d, _| assert_eq!(std::fs::read(d.join("in.txt")).unwrap(), b"a\nb\n"),
        },
        Case {
            name: "embed -o whose .partial is a symlink to the model",
            setup: |d| {
                let m = own_model(d);
                symlink(&m, &d.join("v.jsonl.partial"));
                vec![
                    "embed".into(),
                    s(&m),
                    "-o".into(),
                    s(&d.join("v.jsonl")),
                    "hello".into(),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "is the same file as the model",
            after: model_unchanged,
        },
        Case {
            name: "embed -o a symlink writes the file it points to and keeps the link",
            setup: |d| {
                symlink(Path::new("real.jsonl"), &d.join("link.jsonl"));
                vec![
                    "embed".into(),
                    s(model()),
                    "-o".into(),
                    s(&d.join("link.jsonl")),
                    "hello".into(),
                ]
            },
            stdin: None,
            code: OK,
            needle: "",
            after: |d, _| {
                assert!(std::fs::symlink_metadata(d.join("link.jsonl"))
                    .unwrap()
                    .file_type()
                    .is_symlink());
                assert_eq!(
                    std::fs::read_to_string(d.join("real.jsonl")).unwrap().lines().count(),
                    1
                );
            },
        },
        Case {
            name: "embed -o /dev/null is written in place",
            setup: |_| {
                vec![
                    "embed".into(),
                    s(model()),
                    "-o".into(),
                    "/dev/null".into(),
                    "hello".into(),
                ]
            },
            stdin: None,
            code: OK,
            needle: "",
            after: |_, _| {
                use std::os::unix::fs::FileTypeExt;
                assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
                assert!(!Path::new("/dev/null.partial").exists());
            },
        },
        Case {
            name: "embed -o /dev/null --format npy needs a regular file",
            setup: |_| {
                vec![
                    "embed".into(),
                    s(model()),
                    "-o".into(),
                    "/dev/null".into(),
                    "--format".into(),
                    "npy".into(),
                    "x".into(),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "need a regular file",
            after: nothing,
        },
        Case {
            name: "embed from /dev/null into /dev/null",
            setup: |_| vec!["embed".into(), s(model()), "-o".into(), "/dev/null".into()],
            stdin: None,
            code: OK,
            needle: "",
            after: nothing,
        },
        Case {
            name: "embed -o the file standard input reads",
            setup: |d| {
                std::fs::write(d.join("in.txt"), "a\nb\n").unwrap();
                vec![
                    "sh".into(),
                    format!(
                        "exec '{OCTET}' embed '{}' -o '{}' < '{}'",
                        s(model()),
                        s(&d.join("in.txt")),
                        s(&d.join("in.txt"))
                    ),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "is the same file as the input -",
            after: |d, _| assert_eq!(std::fs::read(d.join("in.txt")).unwrap(), b"a\nb\n"),
        },
        Case {
            name: "search --cache the model file",
            setup: |d| {
                let m = own_model(d);
                std::fs::write(d.join("c.txt"), "a\nb\n").unwrap();
                vec![
                    "search".into(),
                    s(&m),
                    "--corpus".into(),
                    s(&d.join("c.txt")),
                    "--cache".into(),
                    s(&m),
                    "q".into(),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "--cache",
            after: model_unchanged,
        },
        Case {
            name: "search --cache the corpus",
            setup: |d| {
                std::fs::write(d.join("c.txt"), "a\nb\n").unwrap();
                vec![
                    "search".into(),
                    s(model()),
                    "--corpus".into(),
                    s(&d.join("c.txt")),
                    "--cache".into(),
                    s(&d.join("c.txt")),
                    "q".into(),
                ]
            },
            stdin: None,
            code: USAGE,
            needle: "is the same file as the corpus",
            after: |d, _| assert_eq!(std::fs::read(d.join("c.txt")).unwrap(), b"a\nb\n"),
        },
        // ---- 2: a cache whose vectors are not the ones its header was written with
        Case {
            name: "search with a cache whose vectors were altered rebuilds it",
            setup: |d| {
                std::fs::write(d.join("c.txt"), "cats purr\nstocks fell\n").unwrap();
                let args = vec![
                    "search".into(),
                    s(model()),
                    "--corpus".into(),
                    s(&d.join("c.txt")),
                    "-q".into(),
                    "kitten".into(),
                ];
                let first = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
                assert!(first.status.success());
                std::fs::write(d.join("expected"), &first.stdout).unwrap();
                let cache = d.join("c.txt.octet-vectors");
                let mut bytes = std::fs::read(&cache).unwrap();
                let n = bytes.len();
                bytes[n - 3] ^= 0x40;
                std::fs::write(&cache, bytes).unwrap();
                args
            },
            stdin: None,
            code: OK,
            needle: "",
            after: |d, o| assert_eq!(o.stdout, std::fs::read(d.join("expected")).unwrap()),
        },
        // ---- 8: nothing left behind on errors
        Case {
            name: "search an empty corpus leaves no cache",
            setup: |d| {
                std::fs::write(d.join("c.txt"), "").unwrap();
                vec![
                    "search".into(),
                    s(model()),
                    "--corpus".into(),
                    s(&d.join("c.txt")),
                    "q".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "holds no texts",
            after: |d, _| assert_eq!(listing(d), ["c.txt"]),
        },
        Case {
            name: "search --corpus /dev/null creates nothing in /dev",
            setup: |_| {
                vec![
                    "search".into(),
                    s(model()),
                    "--corpus".into(),
                    "/dev/null".into(),
                    "q".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "holds no texts",
            after: |_, _| assert!(!Path::new("/dev/null.octet-vectors").exists()),
        },
        Case {
            name: "npy-int8 with a file-size limit of 0 leaves no partial files",
            setup: |d| {
                vec![
                    "sh".into(),
                    format!(
                        "ulimit -f 0; exec '{OCTET}' embed '{}' -o '{}' --format npy-int8 a b",
                        s(model()),
                        s(&d.join("q.npy"))
                    ),
                ]
            },
            stdin: None,
            code: 74,
            needle: "File too large",
            after: |d, _| assert_eq!(listing(d), Vec::<String>::new()),
        },
        // ---- 5: non-finite vectors
        Case {
            name: "embed with a NaN weight",
            setup: |d| {
                nan_model(&d.join("nan.octet"));
                vec![
                    "embed".into(),
                    s(&d.join("nan.octet")),
                    "-o".into(),
                    s(&d.join("v.npy")),
                    "hello".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "argument 1 (id 0, \"hello\") is not finite",
            after: |d, _| assert_eq!(listing(d), ["nan.octet"]),
        },
        Case {
            name: "similarity with a NaN weight",
            setup: |d| {
                nan_model(&d.join("nan.octet"));
                vec!["similarity".into(), s(&d.join("nan.octet")), "a".into(), "b".into()]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "is not finite",
            after: |_, o| assert!(o.stdout.is_empty()),
        },
        Case {
            name: "search with a NaN weight",
            setup: |d| {
                nan_model(&d.join("nan.octet"));
                std::fs::write(d.join("c.txt"), "a\nb\n").unwrap();
                vec![
                    "search".into(),
                    s(&d.join("nan.octet")),
                    "--corpus".into(),
                    s(&d.join("c.txt")),
                    "q".into(),
                ]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "is not finite",
            after: |d, _| assert_eq!(listing(d), ["c.txt", "nan.octet"]),
        },
        Case {
            name: "info --verify with a NaN weight",
            setup: |d| {
                nan_model(&d.join("nan.octet"));
                vec!["info".into(), "--verify".into(), s(&d.join("nan.octet"))]
            },
            stdin: None,
            code: BAD_INPUT,
            needle: "NaN or infinite weights in 1 tensor(s): embeddings.norm.bias (1 of 384)",
            after: nothing,
        },
    ]
}
