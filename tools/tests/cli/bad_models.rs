//! Damaged or foreign model files: each fails `embed` and `info` the same clean way.

use super::*;

/// Runs `embed` and `info` on a damaged copy of the model; both must fail the same clean way,
/// having written nothing.
fn bad_model(name: &str, damage: impl FnOnce(&mut Vec<u8>), needles: &[&str]) {
    let dir = test_dir(name);
    let path = dir.join(format!("{name}.octet"));
    let mut bytes = std::fs::read(model()).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let out = dir.join("v.jsonl");
    let o = run(
        &["embed", path.to_str().unwrap(), "-o", out.to_str().unwrap(), "hello"],
        None,
    );
    fails(&o, BAD_INPUT, needles);
    assert!(
        stderr(&o).contains(&path.display().to_string()),
        "the message does not name the file:\n{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty() && !out.exists() && !dir.join("v.jsonl.partial").exists());
    fails(&run(&["info", path.to_str().unwrap()], None), BAD_INPUT, needles);
}

#[test]
fn a_missing_model_names_the_path_and_how_to_make_one() {
    let o = run(&["embed", "/nonexistent/minilm.octet", "hello"], None);
    fails(
        &o,
        NO_INPUT,
        &["/nonexistent/minilm.octet does not exist", "octet convert"],
    );
    assert!(o.stdout.is_empty());
    let dir = test_dir("folder-model");
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    fails(
        &run(&["info", dir.to_str().unwrap()], None),
        NO_INPUT,
        &["is a folder", "convert it first"],
    );
}

/// One damage of the model file and what the message must say about it.
struct Damage {
    name: &'static str,
    damage: fn(&mut Vec<u8>),
    needles: &'static [&'static str],
}

#[test]
fn damaged_or_foreign_files_fail_embed_and_info_naming_the_problem_and_the_fix() {
    let cases = [
        Damage {
            name: "not-octet",
            damage: |b| *b = b"{\"this is\": \"json\"}\n".repeat(20),
            needles: &["not an octet model file", "octet convert"],
        },
        Damage {
            name: "newer",
            damage: |b| b[8..10].copy_from_slice(&2u16.to_le_bytes()),
            needles: &["format 2.", "newer", "upgrade octet"],
        },
        Damage {
            name: "truncated",
            damage: |b| b.truncate(b.len() / 2),
            needles: &["truncated", "copy it again or re-run `octet convert`"],
        },
        Damage {
            name: "checksum",
            damage: |b| {
                let at = b.windows(6).position(|w| w == b"\"bert\"").unwrap();
                b[at + 1] = b'B';
            },
            needles: &["checksum mismatch", "corrupt", "re-run `octet convert`"],
        },
        Damage {
            name: "arch",
            damage: |b| edit_json(b, "\"architecture\":\"bert\"", "\"architecture\":\"bort\""),
            needles: &["unknown architecture 'bort'", "upgrade octet"],
        },
    ];
    for case in cases {
        bad_model(case.name, case.damage, case.needles);
    }
}

#[test]
fn damaged_weights_pass_the_cheap_open_but_not_info_verify() {
    let dir = test_dir("data-checksum");
    let path = dir.join("m.octet");
    let mut bytes = std::fs::read(model()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    fails(
        &run(&["info", "--verify", path.to_str().unwrap()], None),
        BAD_INPUT,
        &["checksum mismatch", "data"],
    );
}
