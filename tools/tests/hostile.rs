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

/// Holds an exclusive lock on `path` for the rest of the test process, as a running octet would.
fn hold_lock(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: flock on a descriptor this process owns; the file is leaked so the lock stays.
    assert_eq!(
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    std::mem::forget(file);
}

/// The MiniLM source folder (after `model()` fetched it).
fn source_folder() -> PathBuf {
    model();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let fetch = Command::new("bash")
        .arg(root.join("scripts/fetch-minilm.sh"))
        .output()
        .unwrap();
    PathBuf::from(
        String::from_utf8_lossy(&fetch.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    )
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
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
                std::fs::write(
                    d.join("in.csv"),
                    "id,text\n1,fine\n2,\"oops\n3,more\n4,rest\n",
                )
                .unwrap();
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
                std::fs::write(
                    d.join("v.jsonl.partial"),
                    format!("{}\ngarbage\n{}\n", l[0], l[2]),
                )
                .unwrap();
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
                let first = run(
                    &["embed", model().to_str().unwrap(), "-i", &i, "-o", &o],
                    None,
                );
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
            after: |_, o| {
                assert_eq!(
                    String::from_utf8_lossy(&o.stderr)
                        .matches("regular file")
                        .count(),
                    1
                )
            },
        },
        Case {
            name: "/dev/zero as the model",
            setup: |_| vec!["info".into(), "/dev/zero".into()],
            stdin: None,
            code: BAD_INPUT,
            needle: "is not a regular file",
            after: |_, o| {
                assert_eq!(
                    String::from_utf8_lossy(&o.stderr)
                        .matches("regular file")
                        .count(),
                    1
                )
            },
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
        let o = if args[0] == "sh" {
            Command::new("sh").args(["-c", args[1]]).output().unwrap()
        } else {
            run(&args, case.stdin)
        };
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
