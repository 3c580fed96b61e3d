//! A catalogue of hostile inputs and environments (issue 16): one row each, with the exit code
//! and a message fragment octet must give, and a check that nothing that is not octet's own
//! output was touched. Cases that need concurrency, signals or memory limits are tests of their
//! own below the table. Runs the real all-MiniLM-L6-v2 int8 model, fetched and converted once
//! per process like `cli.rs` does.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const OCTET: &str = env!("CARGO_BIN_EXE_octet");
const OK: i32 = 0;
const USAGE: i32 = 2;
const BAD_INPUT: i32 = 65;
const NO_INPUT: i32 = 66;
const CANT_CREATE: i32 = 73;

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("octet-hostile-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    })
}

fn test_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// The MiniLM int8 model, fetched and converted with the binary once per process.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let fetch = Command::new("bash")
            .arg(root.join("scripts/fetch-minilm.sh"))
            .output()
            .unwrap();
        assert!(
            fetch.status.success(),
            "fetch-minilm.sh failed:\n{}",
            String::from_utf8_lossy(&fetch.stderr)
        );
        let source = String::from_utf8_lossy(&fetch.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        let out = scratch().join("minilm-int8.octet");
        let convert = run(
            &[
                "convert",
                &source,
                "-o",
                out.to_str().unwrap(),
                "--quant",
                "int8",
                "-q",
            ],
            None,
        );
        assert!(
            convert.status.success(),
            "convert failed:\n{}",
            String::from_utf8_lossy(&convert.stderr)
        );
        out
    })
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(OCTET)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octet");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().expect("wait for octet")
}

fn sha(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// The files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A model whose `embeddings.norm.bias[0]` is NaN, with both checksums resealed: only the
/// finiteness checks can catch it.
fn nan_model(path: &Path) {
    let mut bytes = std::fs::read(model()).unwrap();
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let (json_offset, json_len, data_offset) =
        (u64_at(&bytes, 16), u64_at(&bytes, 24), u64_at(&bytes, 32));
    let json: serde_json::Value =
        serde_json::from_slice(&bytes[json_offset..json_offset + json_len]).unwrap();
    let tensor = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "embeddings.norm.bias")
        .unwrap();
    let at = data_offset + tensor["offset"].as_u64().unwrap() as usize;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let old = json["data_sha256"].as_str().unwrap().to_string();
    let new: String = Sha256::digest(&bytes[data_offset..])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = &mut bytes[json_offset..json_offset + json_len];
    let pos = text
        .windows(old.len())
        .position(|w| w == old.as_bytes())
        .unwrap();
    text[pos..pos + old.len()].copy_from_slice(new.as_bytes());
    let mut header = bytes[..128].to_vec();
    header[56..88].fill(0);
    let digest = Sha256::new()
        .chain_update(&header)
        .chain_update(&bytes[json_offset..json_offset + json_len])
        .finalize();
    bytes[56..88].copy_from_slice(&digest);
    std::fs::write(path, bytes).unwrap();
}

/// One hostile case: `setup` prepares the folder and returns the arguments; `after` checks
/// what must hold once octet has run (e.g. the model is unchanged).
struct Case {
    name: &'static str,
    setup: fn(&Path) -> Vec<String>,
    stdin: Option<&'static [u8]>,
    code: i32,
    needle: &'static str,
    after: fn(&Path, &Output),
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A private copy of the model in `dir`, and its path.
fn own_model(dir: &Path) -> PathBuf {
    let path = dir.join("model.octet");
    std::fs::copy(model(), &path).unwrap();
    path
}

fn model_unchanged(dir: &Path, _: &Output) {
    assert_eq!(
        sha(&dir.join("model.octet")),
        sha(model()),
        "the model was changed"
    );
}

fn nothing(_: &Path, _: &Output) {}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn cases() -> Vec<Case> {
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
                    std::fs::read_to_string(d.join("real.jsonl"))
                        .unwrap()
                        .lines()
                        .count(),
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
                assert!(std::fs::metadata("/dev/null")
                    .unwrap()
                    .file_type()
                    .is_char_device());
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
                vec![
                    "similarity".into(),
                    s(&d.join("nan.octet")),
                    "a".into(),
                    "b".into(),
                ]
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

#[test]
fn catalogue_of_hostile_inputs() {
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let dir = test_dir(&format!("case-{i}"));
        let args = (case.setup)(&dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args, case.stdin);
        let err = String::from_utf8_lossy(&o.stderr);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_eq!(
                o.status.code(),
                Some(case.code),
                "exit code; stderr:\n{err}"
            );
            assert!(
                !err.contains("panicked") && !err.contains("internal error"),
                "panic:\n{err}"
            );
            assert!(
                err.contains(case.needle),
                "stderr lacks {:?}:\n{err}",
                case.needle
            );
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
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );
    assert_eq!(listing(&dir), ["out.fifo"]);
}
